"""`hf-steer elarablate bench`: the slot bench. Train on 8 name contexts, measure on held-out ones, write JSON + PNG.

All figures come from contexts never trained on:

- **names** at the 10 held-out name slots of the library (``female_names`` + ``elf_names``,
  ``heldout`` lists): ``samples`` names per context at T=1 and T=0.7 (a "name" is the first capitalised
  word of a sampled continuation, :mod:`~hf_steer.elarablation.sampling`): El- incidence, effective
  number of names, top name share, named rate;
- **back-references** (``reference`` lists: a name introduced a few sentences before, then a slot where
  it comes back; written so the base reuses it): the exact probability of the whole introduced name,
  before and after; ``reference_kept`` = mean after / mean before (El- names alone too);
- **drift** on unrelated text: KL and perplexity change (``hf_steer.benchmarking.heldout_drift`` on the
  shared held-out prose, and on held-out TinyStories + Shakespeare).

"Before" is the same PEFT model with its adapter switched off, so both sides see identical weights but
for the LoRA.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .contexts import load_contexts, render_context
from .sampling import name_counts, sample_continuations

TRAIN_FAMILIES = ["female_names"]  # its 8 training contexts
HELDOUT_FAMILIES = ["female_names", "elf_names"]  # 10 held-out name contexts
REFERENCE_FAMILIES = ["female_names", "male_names"]  # 20 back-references
DATA_DIR = Path(__file__).parent / "data"
UNRELATED_FILES = ["unrelated_tinystories.txt", "unrelated_shakespeare.txt"]
SUMMARY_KEYS = ["incidence_before", "incidence_after", "effective_names_before", "effective_names_after",
                "top_name_share_before", "top_name_share_after", "named_rate_before", "named_rate_after",
                "reference_p_before", "reference_p_after", "reference_kept", "reference_kept_el",
                "kl_nats", "ppl_change_pct", "kl_stories_nats", "ppl_stories_change_pct", "train_seconds",
                "peak_rss_mb"]


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


@torch.no_grad()
def continuation_probability(model, tokenizer, context: str, continuation: str) -> float:
    """Exact probability that the model writes ``continuation`` (all its tokens) right after ``context``."""
    from .trainer import continuation_ids

    device = next(model.parameters()).device
    ids = tokenizer(context)["input_ids"]
    cont = continuation_ids(tokenizer, context, continuation)
    logits = model(input_ids=torch.tensor([ids + cont[:-1]], device=device)).logits[0, len(ids) - 1:].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(logp[torch.arange(len(cont)), torch.tensor(cont, device=logp.device)].sum().exp())


def reference_probabilities(model, tokenizer, rows) -> list[float]:
    """The probability of each back-reference row's expected name at its slot."""
    return [continuation_probability(model, tokenizer, render_context(r, tokenizer), r["expected"]) for r in rows]


def kept(before: list[float], after: list[float], rows, predicate=lambda name: True) -> float:
    """Mean probability after / mean before, over the rows whose expected name passes ``predicate``."""
    pairs = [(b, a) for b, a, r in zip(before, after, rows) if predicate(r["expected"])]
    mean_before = sum(b for b, _ in pairs) / len(pairs)
    return (sum(a for _, a in pairs) / len(pairs)) / mean_before if mean_before else float("nan")


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
    """Held-out TinyStories + Shakespeare (never the anchor text): the second drift check."""
    return "\n\n".join((DATA_DIR / f).read_text(encoding="utf-8") for f in UNRELATED_FILES)


def _measure(model, tokenizer, heldout, samples: int, seed: int) -> dict[str, Any]:
    t1 = name_figures(sample_names(model, tokenizer, heldout, samples, 1.0, seed))
    t07 = name_figures(sample_names(model, tokenizer, heldout, samples, 0.7, seed + 1))
    return {
        "incidence": t1["incidence"], "top10_names_t1": t1["top10"],
        "incidence_t07": t07["incidence"], "effective_names": t07["effective_names"],
        "top_name_share": t07["top_name_share"], "top10_names_t07": t07["top10"],
        "named_total_t07": t07["named_total"],
        "named_rate": t1["named_rate"], "named_rate_t07": t07["named_rate"],
    }


def run_bench(
    output_json: str | os.PathLike,
    *,
    model: Any = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
    samples: int = 200,
    repetition: bool = False,
    adapter_dir: str | os.PathLike | None = None,
    chat_template: str | None = None,
    config=None,
    lora=None,
    **settings: Any,
) -> dict[str, Any]:
    """Train on the 8 bench contexts, measure before/after, write ``output_json`` and a PNG beside it.

    Args:
        output_json: where the figures go (``<stem>.png`` is written beside it).
        model: a model folder / ``.gguf`` / Hub id, or ``None`` for the bundled model.
        seed: seeds training and sampling.
        samples: samples per held-out context at each temperature (the issue asks 200).
        repetition: also measure how often 16-token continuations loop.
        adapter_dir: where to keep the trained adapter (default: ``<stem>-adapter`` beside the JSON).
        chat_template: a template for a model without one.
        config, lora: an :class:`ElarablationConfig` / :class:`LoraArguments` (else from ``settings``).
        **settings: ElarablationConfig fields (loss_type, learning_rate, num_train_epochs, ...).
    """
    from ..artifacts import record_metrics
    from ..benchmarking import Timer, heldout_drift, peak_rss_mb, write_report
    from ..utils import set_seed
    from .arguments import BenchArguments
    from .pipeline import train
    from .plots import plot_slot_bench

    BenchArguments(samples=samples, repetition=repetition)  # one clear error for a bad value, before any work
    set_seed(seed)
    output_json = Path(output_json)
    adapter_dir = Path(adapter_dir or output_json.with_name(output_json.stem + "-adapter"))
    heldout = list(load_contexts(HELDOUT_FAMILIES, split="heldout"))
    reference = list(load_contexts(REFERENCE_FAMILIES, split="reference"))
    train_set = load_contexts(TRAIN_FAMILIES)

    log(f"training on {len(train_set)} contexts ...")
    with Timer() as timer:
        result = train(train_set, adapter_dir, model, config=config, lora=lora, chat_template=chat_template,
                       disable_tqdm=True, seed=seed, **settings)
    trainer = result["trainer"]
    peft_model, tokenizer = trainer.model, trainer.processing_class
    peft_model.eval()
    log(f"trained in {result['train_seconds']:.1f} s ({result['steps']} steps); measuring before ...")

    with peft_model.disable_adapter():
        before = _measure(peft_model, tokenizer, heldout, samples, seed)
        ref_before = reference_probabilities(peft_model, tokenizer, reference)
    log("measuring after ...")
    after = _measure(peft_model, tokenizer, heldout, samples, seed)
    ref_after = reference_probabilities(peft_model, tokenizer, reference)

    figures: dict[str, Any] = {}
    for key in before:
        figures[f"{key}_before"] = before[key]
        figures[f"{key}_after"] = after[key]
    is_el = lambda name: name.startswith("El")  # noqa: E731
    figures.update({
        "reference_p_before": sum(ref_before) / len(ref_before), "reference_p_after": sum(ref_after) / len(ref_after),
        "reference_p_el_before": sum(p for p, r in zip(ref_before, reference) if is_el(r["expected"]))
        / sum(1 for r in reference if is_el(r["expected"])),
        "reference_kept": kept(ref_before, ref_after, reference),
        "reference_kept_el": kept(ref_before, ref_after, reference, is_el),
        "reference_rows": [{"expected": r["expected"], "context": r["text"][-60:], "before": b, "after": a}
                           for r, b, a in zip(reference, ref_before, ref_after)],
    })
    drift = heldout_drift(peft_model, tokenizer, peft_model.disable_adapter)
    stories = heldout_drift(peft_model, tokenizer, peft_model.disable_adapter, text=unrelated_text())
    figures.update({"kl_nats": drift["kl_nats"], "ppl_before": drift["ppl_before"], "ppl_after": drift["ppl_after"],
                    "ppl_change_pct": drift["ppl_change_pct"], "drift_positions": drift["positions"],
                    "kl_stories_nats": stories["kl_nats"], "ppl_stories_change_pct": stories["ppl_change_pct"],
                    "drift_stories_positions": stories["positions"]})
    if repetition:
        log("measuring repetition ...")
        with peft_model.disable_adapter():
            figures["repetition_before"] = repetition_rate(peft_model, tokenizer, heldout, seed=seed + 3)
        figures["repetition_after"] = repetition_rate(peft_model, tokenizer, heldout, seed=seed + 3)
    figures.update({
        "model": str(model or "bundled"), "train_seconds": round(result["train_seconds"], 2),
        "wall_seconds": round(timer.wall, 2), "train_steps": result["steps"],
        "train_contexts": len(train_set), "trained_positions": len(trainer._rows),
        "keep_rows": sum(1 for r in trainer._rows if r.kind == "keep"), "peak_rss_mb": round(peak_rss_mb(), 1),
        "heldout_contexts": len(heldout), "reference_contexts": len(reference), "samples_per_context": samples,
        "config": {k: v for k, v in trainer.args.to_dict().items()
                   if k in ("loss_type", "learning_rate", "num_train_epochs", "top_k", "max_threshold", "min_threshold",
                            "tether_weight", "margin_cap", "bad_ratio", "tree_depth", "keep_weight", "neutral_weight", "within_class", "auto_keep",
                            "anchor_weight", "seed", "bf16")},
        "summary_keys": SUMMARY_KEYS,
    })
    inc_b, inc_a = figures["incidence_before"], figures["incidence_after"]
    figures["goals"] = {
        "incidence_after<=2%": inc_a <= 0.02,
        "incidence_20x_below": inc_a * 20 <= inc_b,
        "named_rate_within_2pts": abs(figures["named_rate_after"] - figures["named_rate_before"]) <= 0.02,
        "reference_base_p>=0.4": figures["reference_p_before"] >= 0.4,
        "reference_kept>=90%": figures["reference_kept"] >= 0.9,
        "reference_kept_el>=90%": figures["reference_kept_el"] >= 0.9,
        "kl<=0.02": figures["kl_nats"] <= 0.02,
        "ppl<=+1%": figures["ppl_change_pct"] <= 1.0,
    }
    write_report(figures, output_json, plot=plot_slot_bench)
    # the adapter's card carries the figures and the plot
    shutil.copy(output_json.with_suffix(".png"), adapter_dir / "before_after.png")
    record_metrics(adapter_dir, {k: figures[k] for k in SUMMARY_KEYS if isinstance(figures.get(k), (int, float))},
                   plots=["before_after.png"])
    return figures
