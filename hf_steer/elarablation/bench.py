"""`hf-steer elarablate bench`: train on 8 name contexts, measure on held-out ones, write JSON + PNG.

All name figures come from HELD-OUT contexts of the library (never trained on). A "name" is the first
capitalised word of a sampled continuation (see :mod:`hf_steer.elarablation.sampling`). "Before" is the
same PEFT model with its adapter switched off, so both sides see identical weights but for the LoRA.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..utils import atomic_write_json, set_seed
from .contexts import load_contexts, render_context
from .sampling import name_counts, sample_continuations

TRAIN_FAMILIES = ["female_names"]  # its 8 training contexts
HELDOUT_FAMILIES = ["female_names", "elf_names"]  # 10 held-out name contexts
REFERENCE_FAMILIES = ["female_names", "elf_names", "male_names"]  # 12 back-references
DATA_DIR = Path(__file__).parent / "data"
UNRELATED_FILES = ["unrelated_tinystories.txt", "unrelated_shakespeare.txt"]
DEMO_CONTEXT = 'The elf girl nods. "My name is'


def _share(counts: Counter, predicate) -> float:
    total = sum(counts.values())
    return sum(c for k, c in counts.items() if predicate(k)) / total if total else 0.0


def name_figures(names: Counter) -> dict[str, Any]:
    """incidence (El-), effective names (exp entropy), top-name share and named rate of a name Counter."""
    named = Counter({n: c for n, c in names.items() if n})
    total_named = sum(named.values())
    entropy = -sum(c / total_named * math.log(c / total_named) for c in named.values()) if total_named else 0.0
    top = named.most_common(1)
    return {
        "incidence": _share(named, lambda n: n.startswith("El")),
        "effective_names": math.exp(entropy),
        "top_name_share": top[0][1] / total_named if top else 0.0,
        "named_rate": total_named / sum(names.values()) if names else 0.0,
        "top10": [[n, c] for n, c in named.most_common(10)],
        "named_total": total_named,
    }


def sample_names(model, tokenizer, rows, n: int, temperature: float, seed: int) -> Counter:
    """Names over all rows (n samples each), one seeded generator for the whole set."""
    generator = torch.Generator().manual_seed(seed)
    total: Counter = Counter()
    for row in rows:
        samples = sample_continuations(model, tokenizer, render_context(row, tokenizer), n=n,
                                       temperature=temperature, max_new_tokens=4, generator=generator)
        total.update(name_counts(samples))
    return total


def reference_kept(model, tokenizer, rows, n: int, seed: int) -> float:
    """Share of samples (T=1) that name the character introduced earlier in the context."""
    generator = torch.Generator().manual_seed(seed)
    kept = total = 0
    for row in rows:
        expected = row["expected"]
        samples = sample_continuations(model, tokenizer, render_context(row, tokenizer), n=n, temperature=1.0,
                                       max_new_tokens=4, generator=generator,
                                       done=lambda text, e=expected: e in text or "\n" in text)
        kept += sum(c for text, c in samples.items() if expected in text)
        total += sum(samples.values())
    return kept / total if total else 0.0


def is_repetitive(text: str) -> bool:
    """A continuation loops: the same word twice in a row, or a repeated word pair (" Am Am", "the the")."""
    words = re.findall(r"[A-Za-z']+", text.lower())
    if any(a == b for a, b in zip(words, words[1:])):
        return True
    pairs = list(zip(words, words[1:]))
    return len(pairs) != len(set(pairs))


def repetition_rate(model, tokenizer, rows, n: int = 20, max_new_tokens: int = 16, temperature: float = 0.7,
                    seed: int = 0) -> float:
    """Share of sampled continuations (``max_new_tokens`` long, T=0.7) that loop (see :func:`is_repetitive`)."""
    generator = torch.Generator().manual_seed(seed)
    loops = total = 0
    for row in rows:
        samples = sample_continuations(model, tokenizer, render_context(row, tokenizer), n=n, temperature=temperature,
                                       max_new_tokens=max_new_tokens, done=lambda t: False, generator=generator)
        loops += sum(c for text, c in samples.items() if is_repetitive(text))
        total += sum(samples.values())
    return loops / total if total else 0.0


def unrelated_text() -> str:
    return "\n\n".join((DATA_DIR / f).read_text(encoding="utf-8") for f in UNRELATED_FILES)


@torch.no_grad()
def unrelated_logprobs(model, tokenizer, max_tokens: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token log-probs over held-out unrelated text and the ids they predict."""
    device = next(model.parameters()).device
    ids = tokenizer(unrelated_text(), return_tensors="pt")["input_ids"][:, :max_tokens].to(device)
    logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1).cpu()
    return logprobs, ids[0, 1:].cpu()


def kl_and_ppl(before: torch.Tensor, after: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Mean KL(before‖after) per position and the perplexity change in percent."""
    kl = (before.exp() * (before - after)).sum(-1).mean().item()
    nll_before = -before.gather(1, targets[:, None]).mean().item()
    nll_after = -after.gather(1, targets[:, None]).mean().item()
    return {"kl_unrelated_nats": kl, "ppl_before": math.exp(nll_before), "ppl_after": math.exp(nll_after),
            "ppl_change_pct": 100 * (math.exp(nll_after - nll_before) - 1), "unrelated_positions": len(targets)}


def _measure(model, tokenizer, heldout, reference, samples: int, samples_ref: int, seed: int) -> dict[str, Any]:
    t1 = name_figures(sample_names(model, tokenizer, heldout, samples, 1.0, seed))
    t07 = name_figures(sample_names(model, tokenizer, heldout, samples, 0.7, seed + 1))
    return {
        "incidence": t1["incidence"], "top10_names_t1": t1["top10"],
        "incidence_t07": t07["incidence"], "effective_names": t07["effective_names"],
        "top_name_share": t07["top_name_share"], "top10_names_t07": t07["top10"],
        "named_total_t07": t07["named_total"],
        "named_rate": t1["named_rate"], "named_rate_t07": t07["named_rate"],
        "reference_kept": reference_kept(model, tokenizer, reference, samples_ref, seed + 2),
    }


def run_bench(
    output_json: str | os.PathLike,
    model: Any = None,
    samples: int = 200,
    samples_reference: int = 50,
    seed: int = 0,
    adapter_dir: str | os.PathLike | None = None,
    repetition: bool = False,
    log=print,
    **train_config: Any,
) -> dict[str, Any]:
    """Train on the 8 bench contexts, measure before/after, write ``output_json`` and a PNG beside it.

    Args:
        output_json: where the figures go (``<stem>.png`` is written beside it).
        model: a model folder / Hub id, or ``None`` for the bundled model.
        samples: samples per held-out context at each temperature (the issue asks 200).
        samples_reference: samples per back-reference context.
        adapter_dir: where to keep the trained adapter (default: ``<stem>-adapter`` beside the JSON).
        repetition: also measure how often 16-token continuations loop (before/after; run it once with
            ``tree_depth=1`` and once with ``tree_depth=2`` to compare).
        **train_config: ElarablationConfig fields (loss_type, learning_rate, num_train_epochs, ...).
    """
    from .pipeline import train
    from .plots import plot_names

    set_seed(seed)
    output_json = Path(output_json)
    adapter_dir = Path(adapter_dir or output_json.with_name(output_json.stem + "-adapter"))
    heldout = list(load_contexts(HELDOUT_FAMILIES, split="heldout"))
    reference = list(load_contexts(REFERENCE_FAMILIES, split="reference"))
    train_set = load_contexts(TRAIN_FAMILIES)

    log(f"training on {len(train_set)} contexts ...")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = train(train_set, adapter_dir, model, disable_tqdm=True, **train_config)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 if sys.platform == "darwin" else 1) / 1024
    trainer = result["trainer"]
    peft_model, tokenizer = trainer.model, trainer.processing_class
    peft_model.eval()
    log(f"trained in {result['train_seconds']:.1f} s ({result['steps']} steps); measuring before ...")

    with peft_model.disable_adapter():
        before = _measure(peft_model, tokenizer, heldout, reference, samples, samples_reference, seed)
        lp_before, targets = unrelated_logprobs(peft_model, tokenizer)
    log("measuring after ...")
    after = _measure(peft_model, tokenizer, heldout, reference, samples, samples_reference, seed)
    lp_after, _ = unrelated_logprobs(peft_model, tokenizer)

    figures: dict[str, Any] = {}
    for key in before:
        figures[f"{key}_before"] = before[key]
        figures[f"{key}_after"] = after[key]
    figures.update(kl_and_ppl(lp_before, lp_after, targets))
    if repetition:
        log("measuring repetition ...")
        with peft_model.disable_adapter():
            figures["repetition_before"] = repetition_rate(peft_model, tokenizer, heldout, seed=seed + 3)
        figures["repetition_after"] = repetition_rate(peft_model, tokenizer, heldout, seed=seed + 3)
    figures.update({
        "train_seconds": round(result["train_seconds"], 2), "train_steps": result["steps"],
        "train_contexts": len(train_set), "peak_rss_mb": round(peak_rss_mb, 1),
        "peak_rss_mb_before_training": round(rss_before / 1024, 1),
        "heldout_contexts": len(heldout), "reference_contexts": len(reference),
        "samples_per_context": samples, "samples_per_reference": samples_reference,
        "config": {k: v for k, v in result["trainer"].args.to_dict().items()
                   if k in ("loss_type", "learning_rate", "num_train_epochs", "top_k", "max_threshold",
                            "min_threshold", "tether_weight", "margin_cap", "tree_depth", "seed")},
        "device": str(next(peft_model.parameters()).device), "torch_threads": torch.get_num_threads(),
    })
    inc_b, inc_a = figures["incidence_before"], figures["incidence_after"]
    figures["goals"] = {
        "incidence_after<=2%": inc_a <= 0.02,
        "incidence_20x_below": inc_a * 20 <= inc_b,
        "effective_names>=5x": figures["effective_names_after"] >= 5 * figures["effective_names_before"],
        "top_name_share<=5%": figures["top_name_share_after"] <= 0.05,
        "named_rate_within_2pts": abs(figures["named_rate_after"] - figures["named_rate_before"]) <= 0.02,
        "reference_kept_within_2pts": figures["reference_kept_after"] >= figures["reference_kept_before"] - 0.02,
        "kl<=0.02": figures["kl_unrelated_nats"] <= 0.02,
        "ppl<=+1%": figures["ppl_change_pct"] <= 1.0,
        "train<=20s": figures["train_seconds"] <= 20,
    }
    png = output_json.with_suffix(".png")
    plot_names(Counter(dict(before["top10_names_t07"])), Counter(dict(after["top10_names_t07"])), png,
               title="Held-out names at T=0.7", totals=(before["named_total_t07"], after["named_total_t07"]))
    figures["plot"] = png.name
    atomic_write_json(output_json, figures)
    from .pipeline import write_manifest  # the adapter's card carries the figures

    manifest_metrics = {k: v for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    import json
    import shutil

    shutil.copy(png, adapter_dir / "before_after.png")
    old = json.loads((adapter_dir / "hf_steer.json").read_text())
    write_manifest(adapter_dir, "adapter", old["base_model"], old["hyperparameters"], metrics=manifest_metrics,
                   plots=["before_after.png"], datasets=old["datasets"])
    with contextlib.suppress(Exception):
        peft_model.unload() if hasattr(peft_model, "unload") else None
    return figures
