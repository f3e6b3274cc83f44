"""`hf-steer elarablate bench-stories`: the story-level bench.

Runs :func:`~hf_steer.elarablation.auto.run_auto` (stories for the training prompts, discovery,
contexts, training) in ``<stem>-work/`` beside the JSON, then judges the held-out stories written before
and after: the targeted patterns' rate, EQ-Bench's slop index, distinct-2, the share of looping
stories, and their perplexity under a judge model (Gemma-3-270M, when installed). Goals (issue 16):
patterns >= 90% fewer, slop index >= 50% lower, distinct-2 not lower, looping not higher, judge
perplexity <= +3%; and the whole loop on the bundled model within 10 minutes, training within 60 s.

``--eval-prompts stories:sealed`` judges on the second held-out prompt set (kept out of development). With
``--rounds N`` the judged after-stories are the last round's, and the figures compare them with the untrained model's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..benchmarking import load_judge


def run_story_bench(
    output_json: str | os.PathLike,
    *,
    model: Any = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
    settings=None,
    config=None,
    lora=None,
    chat_template: str | None = None,
    judge: str | None = "auto",
) -> dict[str, Any]:
    """The loop of ``auto`` plus the judge; writes ``output_json`` and a PNG beside it (see the module doc)."""
    import dataclasses

    from ..benchmarking import check_judge, peak_rss_mb, write_report
    from .arguments import AutoArguments
    from .auto import run_auto
    from .plots import plot_story_report
    from .stories import judge_perplexity, read_jsonl

    settings = settings or AutoArguments(seed=seed)
    if settings.seed != seed:
        settings = dataclasses.replace(settings, seed=seed)
    check_judge(judge)
    output_json = Path(output_json)
    work_dir = output_json.with_name(output_json.stem + "-work")
    report = run_auto(work_dir, model=model, settings=settings, config=config, lora=lora,
                      chat_template=chat_template, log=log)
    figures = {k: report[k] for k in ("before", "after", "patterns", "changes", "timings_seconds", "total_seconds",
                                      "adapter", "rounds") if k in report}
    judged = load_judge(judge, log, without="no judge perplexity")
    if judged is not None:
        judge_model, judge_tokenizer = judged
        for side in ("before", "after"):
            texts = [d["text"] for d in read_jsonl(work_dir / report["files"][side])]
            figures[side]["judge_ppl"] = judge_perplexity(judge_model, judge_tokenizer, texts)
        figures["changes"]["judge_ppl"] = figures["after"]["judge_ppl"] / figures["before"]["judge_ppl"] - 1
        figures["judge"] = "google/gemma-3-270m (pretrained, Q4_K_M)" if judge in ("auto", "gemma") else str(judge)
    c = figures["changes"]
    train_seconds = report["train_seconds"]  # every round's, with --rounds
    figures.update({
        "model": str(model or "bundled"), "work_dir": work_dir.name, "eval_prompts": settings.eval_prompts,
        "settings": report["settings"], "train_seconds": train_seconds, "peak_rss_mb": round(peak_rss_mb(), 1),
        "bf16": report["bf16"],
        "train_positions": report["stages"].get("train", {}).get("positions"),
        "keep_rows": report["stages"].get("train", {}).get("keep_rows"),
    })
    figures["goals"] = {
        "patterns<=-90%": c["patterns"] <= -0.9,
        "slop_index<=-50%": c["slop_index"] <= -0.5,
        "distinct_2_not_lower": figures["after"]["distinct_2"] >= figures["before"]["distinct_2"],
        "looping_not_higher": figures["after"]["looping"] <= figures["before"]["looping"],
        **({"judge_ppl<=+3%": c["judge_ppl"] <= 0.03} if "judge_ppl" in c else {}),
        "loop<=600s": report["total_seconds"] <= 600,
        **({"train<=60s": train_seconds <= 60} if train_seconds is not None else {}),
    }
    figures["summary"] = report["summary"] + (
        [f"judge perplexity ({figures['judge']}): {figures['before']['judge_ppl']:.2f} -> "
         f"{figures['after']['judge_ppl']:.2f} ({100 * c['judge_ppl']:+.1f}%)"] if "judge_ppl" in c else []
    ) + [f"goals: {figures['goals']}"]
    write_report(figures, output_json, plot=plot_story_report)
    return figures
