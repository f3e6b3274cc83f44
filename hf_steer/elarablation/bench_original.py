"""`hf-steer elarablate bench-original`: does training on each original elarablate context file lower its bad mass?

For every YAML file of a folder (a copy of envy-ai/elarablate's ``slopcontext/``, say), one adapter is
trained on that file alone (a fresh LoRA each time, same settings), and the probability mass the
file's rules call bad is read at the file's own slot(s) before and after, over the WHOLE vocabulary
at T=1 (not only the top-k the trainer sees, so a bad token that merely left the top-k still counts).

A file whose rules call no token bad (``monster_variety.yaml`` has good regexes only, and the original
leaves a token no regex matches neutral) has no bad mass; what the original trains there is the band: a good
candidate of the top-k (at the file's temperature) under ``min_threshold`` is pulled up, one over
``max_threshold`` pushed down. Its figure is how far the good candidates are from that band,
sum(max(0, min - p) + max(0, p - max)), lowered when training moves them into it. The stand-in used until
2026-12-06, the good mass above ``max_threshold``, read 0 -> 0.064 on the bundled model although the five good
candidates had all been under ``min_threshold`` (0.005-0.026) and all rose to 0.038-0.064: the file's rules were
met but for one candidate 0.014 over the line (band miss 0.130 -> 0.014), and a figure that starts at 0 can
only rise.
Only the file's own slots are measured, never the keep rows the trainer adds beside them. Files whose
contexts share one slot (``{a|b}`` alternatives) are measured on every alternative and averaged.

A file the model already obeys (no candidate punished or rewarded at any step: ``he_asked_2.yaml`` on Gemma-3-270M,
bad mass 4e-6) trains nothing, as with the original (its loss is zero): its figure stays where it was, and the
report lists it under ``nothing_to_train`` beside the goal that counts every file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import HfSteerError

SETTINGS = {"num_train_epochs": 8.0}


def vocabulary_classes(rules, texts: Sequence[str]) -> torch.Tensor:
    """A (V,) bool mask of the tokens ``rules`` call bad (reader texts given in id order)."""
    return torch.tensor([rules.classify(t, i) == "bad" for i, t in enumerate(texts)], dtype=torch.bool)


def band_miss(good_probs: Sequence[float], min_threshold: float, max_threshold: float) -> float:
    """How far good candidates' probabilities lie outside [min_threshold, max_threshold] (0 when all are inside)."""
    return float(sum(max(0.0, min_threshold - p) + max(0.0, p - max_threshold) for p in good_probs))


@torch.no_grad()
def slot_figure(model, prepared, bad_masks: list[torch.Tensor | None], pad_id: int, texts: Callable[[int], str]) -> float:
    """Mean over rows of the full-vocabulary bad mass at T=1 (or the good candidates' band miss, see module doc)."""
    from .trainer import last_position_logits, left_pad

    device = next(model.parameters()).device
    values = []
    for start in range(0, len(prepared), 8):
        rows, masks = prepared[start:start + 8], bad_masks[start:start + 8]
        ids, mask, pos = left_pad([r.input_ids for r in rows], pad_id)
        logits = last_position_logits(model, ids.to(device), mask.to(device), pos.to(device)).float().cpu()
        for row, row_logits, bad in zip(rows, logits, masks):
            if bad is not None:
                values.append(float(row_logits.softmax(-1)[bad].sum()))
                continue
            probs = (row_logits / row.temperature).softmax(-1)
            top = probs.topk(row.top_k)
            good = [p for p, t in zip(top.values.tolist(), top.indices.tolist())
                    if row.rules.classify(texts(t), t) == "good"]
            values.append(band_miss(good, row.min_threshold, row.max_threshold))
    return sum(values) / len(values)


def run_original_bench(
    output_json: str | os.PathLike,
    *,
    folder: str | os.PathLike,
    model: Any = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
    chat_template: str | None = None,
    config=None,
    lora=None,
    **settings: Any,
) -> dict[str, Any]:
    """Train one fresh adapter per context file of ``folder`` and report the bad mass before/after.

    Args:
        output_json: where the figures go (a PNG of the per-file change is written beside it).
        folder: a folder of original elarablate YAML files (searched recursively).
        model: a model folder / ``.gguf`` / Hub id, or ``None`` for the bundled model.
        chat_template: a chat template for a model without one (see :func:`~hf_steer.elarablation.chat.chat_template`).
        config, lora: an :class:`ElarablationConfig` (its :class:`ElarablationArguments` fields are used: a
            fresh config is made per file) / :class:`LoraArguments` (what the CLI passes).
        **settings: :class:`ElarablationConfig` fields (default: 8 epochs, the config's loss and rates).
    """
    from peft import get_peft_model
    from peft.tuners.lora import LoraLayer
    from tqdm.auto import tqdm

    from ..benchmarking import Timer, peak_rss_mb, write_report
    from ..models import load_model
    from ..utils import set_seed
    from .chat import apply_chat_template
    from .chat import chat_template as chat_template_text
    from .config import ElarablationConfig
    from .contexts import TokenTexts, load_contexts, resolve_source
    from .pipeline import default_lora_config
    from .plots import plot_original_files
    from .trainer import ElarablationTrainer

    folder = Path(folder)
    if chat_template:
        chat_template_text(chat_template)  # a bad name is an error before the model loads
    if not folder.is_dir():
        raise HfSteerError(f"--folder {folder} is not a folder: pass a copy of elarablate's slopcontext/")
    files = resolve_source(folder)
    # Every file is read before the model loads. One the original cannot read either (it prints an error and
    # skips it) is reported as such, not trained.
    datasets, unreadable = [], []
    for path in files:
        try:
            datasets.append((path, load_contexts(str(path))))
        except HfSteerError as e:
            unreadable.append({"file": str(path.relative_to(folder)), "error": str(e)})
            log(f"  not readable: {e}")
    if not datasets:
        raise HfSteerError(f"--folder {folder}: no readable elarablate YAML file in it (see the lines above): fix them")
    set_seed(seed)
    base, tokenizer = load_model(model)
    apply_chat_template(tokenizer, chat_template)
    if lora is None:
        from .arguments import LoraArguments

        lora = LoraArguments()
    base = get_peft_model(base, default_lora_config(base, lora.lora_r, lora.lora_alpha, lora.layers()))
    texts = TokenTexts(tokenizer)
    vocab = [texts(i) for i in range(base.get_output_embeddings().weight.shape[0])]
    if config is not None:  # a fresh config per file: take the fields a user sets from the one passed
        from .arguments import ElarablationArguments

        own = ("seed", "save_strategy", "report_to")  # set per file below
        settings = {**{f.name: getattr(config, f.name) for f in dataclasses.fields(ElarablationArguments)
                       if f.name not in own}, **settings}
    config = {**SETTINGS, **settings}
    results = []
    for path, dataset in tqdm(datasets, desc="context files", unit="file"):
        # Each file's adapter starts from the same draw, so a file's figure does not depend on the files read before
        # it: drawn from wherever the last file left the generator, names_dark_m read 0.00439 -> 0.00454 among all 43
        # files and 0.00439 -> 0.00375 alone (bundled model, 2026-12-06).
        set_seed(seed)
        for module in base.modules():
            if isinstance(module, LoraLayer):
                module.reset_lora_parameters("default", True)
        args = ElarablationConfig(output_dir=str(Path(output_json).with_suffix("")) + "-scratch", seed=seed,
                                  disable_tqdm=True, save_strategy="no", report_to="none", **config)
        trainer = ElarablationTrainer(base, args, dataset, tokenizer)
        # The file's own slots: not the keep rows the trainer adds beside them (``auto_keep``), whose figure was
        # the over-threshold mass of an ordinary slot ("Hugo turned to" -> " her" 0.32): averaged in, it made
        # names_elf_f_Am read 0.61 -> 0.61 where its own slot reads 0.001.
        roots = [r for r in trainer._rows if r.depth == 1 and r.kind == "slop"]
        masks = [vocabulary_classes(r.rules, vocab) if any(r.rules.bad) or r.rules.bad_words else None for r in roots]
        base.eval()
        with base.disable_adapter():
            before = slot_figure(base, roots, masks, tokenizer.pad_token_id, texts)
        with Timer() as t:
            trainer.train()
        base.eval()
        after = slot_figure(base, roots, masks, tokenizer.pad_token_id, texts)
        steps = [e for e in trainer.state.log_history if "n_rewarded" in e]
        # a file whose slot the base already leaves as its rules ask (nothing punished or rewarded at any step) has a
        # loss of zero, as the original's: the adapter stays untrained and the figure does not move
        idle = bool(steps) and not any(e["n_punished"] or e["n_rewarded"] for e in steps) and after == before
        results.append({
            "file": str(path.relative_to(folder)), "contexts": len(roots),
            "figure": "bad_mass" if masks[0] is not None else "good_band_miss",
            "before": before, "after": after, "lowered": after < before,
            "rewarded_first_step": steps[0]["n_rewarded"] if steps else None,
            "punished_first_step": steps[0]["n_punished"] if steps else None,
            "train_seconds": round(t.wall, 2), "steps": trainer.state.global_step, "nothing_to_train": idle,
        })
        log(f"  {results[-1]['file']:50} {results[-1]['figure']:20} {before:.4g} -> {after:.4g}"
            + ("  (nothing to train: 0 punished, 0 rewarded at every step)" if idle else ""))
    lowered = sum(r["lowered"] for r in results)
    idle_files = [r["file"] for r in results if r["nothing_to_train"]]
    figures = {
        "model": str(model or "bundled"), "folder": str(folder), "files": len(results), "lowered": lowered,
        "unreadable": unreadable,
        "nothing_to_train": idle_files,
        "goals": {"every_readable_file_lowers_its_bad_mass": lowered == len(results),
                  "every_file_with_something_to_train_lowers_it": lowered == len(results) - len(idle_files)},
        "settings": {k: getattr(args, k) for k in ("loss_type", "learning_rate", "num_train_epochs", "anchor_weight")},
        "results": results, "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    write_report(figures, output_json, plot=lambda result, png: plot_original_files(result["results"], png))
    return figures
