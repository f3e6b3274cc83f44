"""`hf-steer memory bench`: teach invented facts chunk by chunk and measure recall, locality and forgetting.

Protocol (bundled model, CPU, greedy decoding, an answer counts when it *contains* the expected word):

1. base: recall of every question and the answers to the locality questions, with no adapter;
2. remember each chunk as its own adapter (timed); after each one, recall of every fact taught so far
   with all adapters stacked (``recall_after_stack``);
3. final figures with the full stack: ``recall`` (paraphrased questions), ``reversed_recall``,
   ``locality`` (share of unrelated answers identical to the base's), ``kl_heldout_nats`` (mean
   per-token KL(base || memory) on held-out prose, every adapter active);

Every recall/locality figure is given twice: routed (the memory's default: per question, only the
adapters whose remembered statements match it, by embedding, are active) and ``*_all_active`` (every
adapter stacked on every question -- the raw stacking figure).
4. retrieval-only (adapters off, top-k chunks in the prompt) and retrieval + adapters;
5. roll-ups of every chunk adapter with ``cat``, ``svd``, ``ties`` and ``retrain`` (one adapter trained
   on every chunk's turns, timed), recall with the roll-up alone;
6. forget the first chunk: its facts' recall (``forgotten_recall``, to compare with ``base_recall`` of
   the same facts) and the other facts' recall (``others_after_forget``, to compare with ``recall``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..benchmarking import heldout_drift, machine_info, write_report
from ..utils import set_seed
from . import bench_data as data
from .config import BenchConfig
from .memory import LoraMemory

GOALS = {"seconds_per_chunk": 10.0, "recall": 0.90, "locality": 0.95, "recall_after_stack_last": 0.85,
         "recall_after_rollup": 0.80}
SUMMARY_KEYS = ["seconds_per_chunk", "train_cpu_seconds_per_chunk", "base_recall", "recall", "reversed_recall",
                "locality", "recall_all_active", "locality_all_active", "kl_heldout_nats", "recall_after_stack",
                "recall_after_rollup_cat", "recall_after_rollup_svd", "recall_after_rollup_ties",
                "recall_after_rollup_retrain", "forgotten_recall", "others_after_forget", "retrieval_only_recall",
                "retrieval_adapters_recall"]


def _contains(answer: str, expected: str) -> bool:
    return expected.lower() in answer.lower()


def _recall(mem: LoraMemory, qa: list[tuple[str, str]], **kw) -> tuple[float, list[str]]:
    if not qa:
        return float("nan"), []
    answers = mem.ask_many([q for q, _ in qa], **kw)
    return sum(_contains(a, e) for a, (_, e) in zip(answers, qa)) / len(qa), answers


def questions(facts) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(paraphrased questions, reversed questions), each as (question, expected word)."""
    para = [(q, f[1]) for f in facts for q in f[2]]
    rev = [f[3] for f in facts]
    return para, rev


def run_bench(
    output_json: str | os.PathLike | None,
    *,
    model: str | None = None,
    seed: int = 0,
    log=print,
    **settings: Any,
) -> dict[str, Any]:
    """Run the benchmark, write ``output_json`` (+ PNG) and return its figures.

    ``settings`` are :class:`~hf_steer.memory.config.BenchConfig` fields (``facts``,
    ``facts_per_chunk``, ``preset``, ``steps``/``r``/``learning_rate``/``top_layers``, ``svd_rank``,
    ``retrieval``, ``max_new_tokens``, ``all_active_curve``).
    """
    from ..models import load_model

    cfg = BenchConfig(**settings)
    set_seed(seed)
    n_facts, facts_per_chunk, max_new_tokens = cfg.facts, cfg.facts_per_chunk, cfg.max_new_tokens
    use_retrieval, all_active_curve, svd_rank, retrieval_k = cfg.retrieval, cfg.all_active_curve, cfg.svd_rank, 1
    facts = data.FACTS[:n_facts]
    chunks = data.chunks(facts_per_chunk, n_facts)
    per_chunk = [facts[i : i + facts_per_chunk] for i in range(0, len(facts), facts_per_chunk)]
    t0 = time.perf_counter()
    machine = machine_info()  # the load at the start says whether times were measured on an idle machine
    base_model, tok = load_model(model, device="cpu")
    workdir = tempfile.TemporaryDirectory(prefix="hf_steer_memory_bench_")
    mem = LoraMemory(base_model, tok, base_model=model or "bundled", folder=workdir.name, preset=cfg.train_preset(),
                     embedder="default" if use_retrieval else None, seed=seed)
    ask = dict(max_new_tokens=max_new_tokens)
    para, rev = questions(facts)
    loc_q = [q for q, _ in data.LOCALITY]
    result: dict[str, Any] = {
        "model": model or "bundled SmolLM2-135M-Instruct", "settings": cfg.to_dict(), "seed": seed,
        "n_facts": len(facts), "n_chunks": len(chunks),
        "n_paraphrased_questions": len(para), "n_reversed_questions": len(rev), "n_locality_questions": len(loc_q),
        "preset": mem.preset.to_dict(), "machine": machine, "summary_keys": SUMMARY_KEYS,
    }
    log(f"bench: {len(facts)} facts in {len(chunks)} chunks, preset {mem.preset.name}")

    result["base_recall"], base_answers = _recall(mem, para, **ask)
    result["base_reversed_recall"], _ = _recall(mem, rev, **ask)
    base_loc = mem.ask_many(loc_q, **ask)
    log(f"base recall {result['base_recall']:.3f}")

    def checkpoint() -> None:  # figures so far, so an interrupted run still leaves its numbers
        if output_json:
            write_report(result, output_json, partial=True)


    seconds, train_seconds, cpu_seconds, curve, curve_all = [], [], [], [], []
    for i, chunk in enumerate(chunks):
        start = time.perf_counter()
        row = mem.remember(chunk)
        seconds.append(time.perf_counter() - start)
        train_seconds.append(row["train"]["seconds"])
        cpu_seconds.append(row["train"]["cpu_seconds"])
        seen_para, _ = questions([f for c in per_chunk[: i + 1] for f in c])
        r, _ = _recall(mem, seen_para, **ask)
        curve.append(round(r, 4))
        if all_active_curve:
            r_all, _ = _recall(mem, seen_para, route=False, **ask)
            curve_all.append(round(r_all, 4))
        log(f"chunk {i + 1}/{len(chunks)}: {seconds[-1]:.1f} s (training {train_seconds[-1]:.1f} s, "
            f"{cpu_seconds[-1]:.1f} CPU s), routed recall so far {r:.3f} with {i + 1} adapters"
            + (f", all active {curve_all[-1]:.3f}" if all_active_curve else ""))
    result["seconds_per_chunk"] = round(sum(seconds) / len(seconds), 2)
    result["train_seconds_per_chunk"] = round(sum(train_seconds) / len(train_seconds), 2)
    result["train_cpu_seconds_per_chunk"] = round(sum(cpu_seconds) / len(cpu_seconds), 2)
    result["seconds_each_chunk"] = [round(s, 2) for s in seconds]
    result["recall_after_stack"] = curve
    checkpoint()
    if all_active_curve:
        result["recall_after_stack_all_active"] = curve_all

    result["recall"], answers = _recall(mem, para, **ask)
    result["reversed_recall"], _ = _recall(mem, rev, **ask)
    loc = mem.ask_many(loc_q, **ask)
    result["locality"] = sum(a == b for a, b in zip(base_loc, loc)) / len(loc_q)
    result["recall_all_active"], _ = _recall(mem, para, route=False, **ask)
    result["reversed_recall_all_active"], _ = _recall(mem, rev, route=False, **ask)
    loc_all = mem.ask_many(loc_q, route=False, **ask)
    result["locality_all_active"] = sum(a == b for a, b in zip(base_loc, loc_all)) / len(loc_q)
    model_now = mem.peft if mem.peft is not None else mem.model
    result["kl_heldout_nats"] = round(heldout_drift(model_now, tok, mem.base_only)["kl_nats"], 5)
    result["examples"] = [{"question": q, "expected": e, "base": b, "memory": a}
                          for (q, e), b, a in list(zip(para, base_answers, answers))[:: max(1, len(para) // 8)]]
    log(f"routed: recall {result['recall']:.3f}, reversed {result['reversed_recall']:.3f}, locality "
        f"{result['locality']:.3f}; all active: recall {result['recall_all_active']:.3f}, reversed "
        f"{result['reversed_recall_all_active']:.3f}, locality {result['locality_all_active']:.3f}; "
        f"KL (all active) {result['kl_heldout_nats']:.4f} nats")

    checkpoint()
    if use_retrieval:
        result["retrieval_only_recall"], _ = _recall(mem, para, adapters=False, retrieve=True, k=retrieval_k, **ask)
        result["retrieval_adapters_recall"], _ = _recall(mem, para, adapters=True, retrieve=True, k=retrieval_k, **ask)
        log(f"retrieval only {result['retrieval_only_recall']:.3f}, retrieval + adapters "
            f"{result['retrieval_adapters_recall']:.3f}")

    chunk_names = mem.names("chunk")
    for method in ("cat", "svd", "ties", "retrain"):
        kw = {"svd_rank": svd_rank} if method == "svd" else {}
        row = mem.rollup(chunk_names, method=method, check=False, **kw)
        result[f"recall_after_rollup_{method}"], _ = _recall(mem, para, **ask)
        result[f"rollup_{method}_rank"] = row["r"]
        if "train" in row:
            result[f"rollup_{method}_train_seconds"] = row["train"]["seconds"]
        log(f"roll-up {method} (rank {row['r']}): recall {result[f'recall_after_rollup_{method}']:.3f}")
        mem.forget(row["name"])
        mem.stack(chunk_names)
        checkpoint()

    if len(chunks) > 1:
        gone, rest = questions(per_chunk[0])[0], questions([f for c in per_chunk[1:] for f in c])[0]
        # para lists the first chunk's questions first: reuse the answers already computed above
        hits = [_contains(a, e) for a, (_, e) in zip(answers, para)]
        base_hits = [_contains(a, e) for a, (_, e) in zip(base_answers, para)]
        before_rest = sum(hits[len(gone) :]) / len(rest)
        base_gone = sum(base_hits[: len(gone)]) / len(gone)
        mem.forget(chunk_names[0])
        result["forgotten_recall"], _ = _recall(mem, gone, **ask)
        result["forgotten_base_recall"] = base_gone
        result["others_before_forget"] = before_rest
        result["others_after_forget"], _ = _recall(mem, rest, **ask)
        log(f"forgot {chunk_names[0]}: its recall {result['forgotten_recall']:.3f} (base {base_gone:.3f}), "
            f"others {result['others_after_forget']:.3f} (before {before_rest:.3f})")

    result["goals"] = GOALS
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    workdir.cleanup()
    if output_json:
        write_report(result, output_json, plot=_plot)
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    from ..plotting import pyplot, save_figure

    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    curve = result["recall_after_stack"]
    ax1.plot(range(1, len(curve) + 1), curve, marker="o")
    ax1.axhline(0.85, ls="--", c="grey", lw=0.8)
    ax1.set(xlabel="adapters stacked", ylabel="recall of facts taught so far", ylim=(0, 1.05), title="Retention")
    keys = ["base_recall", "recall", "reversed_recall", "locality", "retrieval_only_recall",
            "retrieval_adapters_recall", "recall_after_rollup_cat", "recall_after_rollup_svd", "recall_after_rollup_ties",
            "recall_after_rollup_retrain",
            "forgotten_recall", "others_after_forget"]
    keys = [k for k in keys if k in result]
    ax2.barh(keys, [result[k] for k in keys])
    ax2.set(xlim=(0, 1.05), title=f"{result['seconds_per_chunk']} s/chunk")
    ax2.invert_yaxis()
    save_figure(fig, path)

