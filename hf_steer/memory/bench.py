"""`hf-steer memory bench`: teach facts, conversations and a behaviour chunk by chunk; measure what is kept.

Protocol (bundled model by default, CPU, greedy decoding; an answer counts when it *contains* the
expected word). Every figure is given for the **default answer path** (the notes retrieval finds plus
the routed adapters: what ``ask`` and ``chat`` do) and, for comparison, the other paths.

1. ``encyclopedia``: the 20 invented facts of :mod:`bench_data`, ``facts_per_chunk`` per chunk (one
   by default: 20 adapters, so the end figures are also "after 20 chunks"). Base recall; after each
   chunk, recall of every fact taught so far (``recall_after_stack``); at the end recall of the
   paraphrased and reversed questions, locality (unrelated answers identical to the base's), KL on
   held-out prose (every adapter active), the same with routed adapters only, notes only, and every
   adapter stacked; roll-ups (``cat``, ``svd``, ``ties``, ``retrain``); forgetting the first chunk.
2. ``conversation`` (:data:`bench_chats.DEV_CHATS`) and ``conversation_heldout``
   (:data:`bench_chats.HELDOUT_CHATS`, never used to choose a setting): one profile per chat (each is a
   different user), 4-turn chunks remembered one by one (timed: ``seconds_per_chunk`` is their
   median), then paraphrased questions, reported per kind: first-person facts, assistant-stated
   facts, corrections (``correction_newest``: the new value answered; ``correction_superseded``: the
   old value still in the answer), and locality in each chat's profile.
3. ``behaviour``: in each dev chat's profile, the method author's "answer in one word" chunk; share of
   held-out simple questions answered in at most two words (and correctly), the chat's fact recall
   with the behaviour on, and, after forgetting the behaviour adapter, the share of answers identical
   to those before it (the base's length back).
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ..benchmarking import heldout_drift, machine_info, write_report
from ..utils import set_seed
from . import bench_chats as chats
from . import bench_data as data
from .config import BenchConfig
from .memory import LoraMemory

GOALS = {"encyclopedia_recall": 0.90, "conversation_recall": 0.90, "locality": 0.95, "correction_newest": 0.90,
         "correction_superseded_max": 0.10, "behaviour_short_rate": 0.80, "seconds_per_chunk_median": 10.0,
         "recall_after_20_chunks": 0.85, "recall_after_rollup_retrain": 0.80}
SUMMARY_KEYS = ["seconds_per_chunk_median", "encyclopedia_recall", "encyclopedia_locality", "recall_after_20_chunks",
                "conversation_recall", "conversation_heldout_recall", "conversation_locality", "correction_newest",
                "correction_superseded", "behaviour_short_rate", "behaviour_fact_recall",
                "behaviour_restored_after_forget", "recall_after_rollup_retrain"]


def _contains(answer: str, expected: str) -> bool:
    return expected.lower() in answer.lower()


def _words(answer: str) -> int:
    return len(re.findall(r"[\w'’-]+", answer))


def _recall(mem: LoraMemory, qa: list[tuple[str, str]], **kw) -> tuple[float, list[str]]:
    if not qa:
        return float("nan"), []
    answers = mem.ask_many([q for q, _ in qa], **kw)
    return round(sum(_contains(a, e) for a, (_, e) in zip(answers, qa)) / len(qa), 4), answers


def questions(facts) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(paraphrased questions, reversed questions), each as (question, expected word)."""
    para = [(q, f[1]) for f in facts for q in f[2]]
    rev = [f[3] for f in facts]
    return para, rev


PATHS = {  # name -> ask_many keywords
    "default": {},
    "adapters_only": {"retrieve": False},
    "notes_only": {"adapters": False, "retrieve": True},
    "all_active": {"retrieve": False, "route": False},
}


def run_bench(
    output_json: str | os.PathLike | None,
    *,
    model: str | None = None,
    seed: int = 0,
    log=print,
    **settings: Any,
) -> dict[str, Any]:
    """Run the benchmark, write ``output_json`` (+ PNG) and return its figures.

    ``settings`` are :class:`~hf_steer.memory.config.BenchConfig` fields.
    """
    from ..models import load_model

    cfg = BenchConfig(**settings)
    set_seed(seed)
    t0 = time.perf_counter()
    machine = machine_info()  # the load at the start says whether times were measured on an idle machine
    base_model, tok = load_model(model, device="cpu")
    workdir = tempfile.TemporaryDirectory(prefix="hf_steer_memory_bench_")
    result: dict[str, Any] = {
        "model": model or "bundled SmolLM2-135M-Instruct", "settings": cfg.to_dict(), "seed": seed,
        "preset": cfg.train_preset().to_dict(), "machine": machine, "goals": GOALS, "summary_keys": SUMMARY_KEYS,
        "answer_path": "default = notes (retrieved statements above note_threshold) + routed adapters",
    }
    mem = LoraMemory(base_model, tok, base_model=model or "bundled", folder=workdir.name, preset=cfg.train_preset(),
                     embedder="default" if cfg.retrieval else None, seed=seed, profile="encyclopedia",
                     note_threshold=cfg.note_threshold, personal_note_threshold=cfg.personal_note_threshold,
                     route_threshold=cfg.route_threshold)

    def checkpoint() -> None:  # figures so far, so an interrupted run still leaves its numbers
        if output_json:
            write_report(result, output_json, partial=True)

    chunk_seconds: list[float] = []
    try:
        if "encyclopedia" in cfg.parts:
            _encyclopedia(mem, cfg, result, log, checkpoint)
        for part, chat_set in (("conversation", chats.DEV_CHATS), ("conversation_heldout", chats.HELDOUT_CHATS)):
            if part in cfg.parts:
                _conversations(mem, cfg, chat_set[: cfg.chats], part, result, log, chunk_seconds,
                               behaviour="behaviour" in cfg.parts and part == "conversation", checkpoint=checkpoint)
    finally:
        mem._unload_all()
        workdir.cleanup()
    if chunk_seconds:
        result["seconds_per_chunk_each"] = [round(s, 2) for s in chunk_seconds]
        result["seconds_per_chunk_median"] = round(statistics.median(chunk_seconds), 2)
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    if output_json:
        write_report(result, output_json, plot=_plot)
    return result


def _encyclopedia(mem: LoraMemory, cfg: BenchConfig, result: dict, log, checkpoint) -> None:
    facts = data.FACTS[: cfg.facts]
    chunks = data.chunks(cfg.facts_per_chunk, cfg.facts)
    per_chunk = [facts[i : i + cfg.facts_per_chunk] for i in range(0, len(facts), cfg.facts_per_chunk)]
    ask = dict(max_new_tokens=cfg.max_new_tokens)
    para, rev = questions(facts)
    loc_q = [q for q, _ in data.LOCALITY]
    result.update(n_facts=len(facts), n_chunks=len(chunks), n_paraphrased_questions=len(para),
                  n_reversed_questions=len(rev), n_locality_questions=len(loc_q))
    log(f"encyclopedia: {len(facts)} facts in {len(chunks)} chunks, preset {mem.preset.name}")
    result["base_recall"], base_answers = _recall(mem, para, adapters=False, retrieve=False, **ask)
    base_loc = mem.ask_many(loc_q, adapters=False, retrieve=False, **ask)
    seconds, train_seconds, curve = [], [], []
    for i, chunk in enumerate(chunks):
        start = time.perf_counter()
        row = mem.remember(chunk)
        seconds.append(time.perf_counter() - start)
        train_seconds.append(row["train"]["seconds"])
        seen, _ = questions([f for c in per_chunk[: i + 1] for f in c])
        r, _ = _recall(mem, seen, **ask)
        curve.append(r)
        log(f"  chunk {i + 1}/{len(chunks)}: {seconds[-1]:.1f} s (training {train_seconds[-1]:.1f} s), "
            f"recall so far {r:.3f} (default path)")
    result["encyclopedia_seconds_each_chunk"] = [round(s, 2) for s in seconds]
    result["encyclopedia_train_seconds_each_chunk"] = [round(s, 2) for s in train_seconds]
    result["recall_after_stack"] = curve
    if len(chunks) >= 20:
        result["recall_after_20_chunks"] = curve[19]
    checkpoint()
    answers = {}
    for path, kw in PATHS.items():
        if not cfg.retrieval and kw.get("retrieve", True) and path != "all_active" and path != "adapters_only":
            continue
        key = "encyclopedia" if path == "default" else f"encyclopedia_{path}"
        result[f"{key}_recall"], answers[path] = _recall(mem, para, **kw, **ask)
        result[f"{key}_reversed_recall"], _ = _recall(mem, rev, **kw, **ask)
        loc = mem.ask_many(loc_q, **kw, **ask)
        result[f"{key}_locality"] = round(sum(a == b for a, b in zip(base_loc, loc)) / len(loc_q), 4)
        log(f"  {path}: recall {result[f'{key}_recall']:.3f}, reversed {result[f'{key}_reversed_recall']:.3f}, "
            f"locality {result[f'{key}_locality']:.3f}")
    result["locality"] = result.get("encyclopedia_locality")
    main = "default" if "default" in answers else "adapters_only"  # without retrieval the default path is not run
    model_now = mem.peft if mem.peft is not None else mem.model
    result["kl_heldout_nats_all_active"] = round(heldout_drift(model_now, mem.tokenizer, mem.base_only)["kl_nats"], 5)
    result["examples"] = [{"question": q, "expected": e, "base": b, "memory": a}
                          for (q, e), b, a in list(zip(para, base_answers, answers[main]))[:: max(1, len(para) // 8)]]
    checkpoint()

    chunk_names = mem.names("chunk")
    for method in cfg.rollups:
        kw = {"svd_rank": cfg.svd_rank} if method == "svd" else {}
        row = mem.rollup(chunk_names, method=method, check=False, **kw)
        result[f"recall_after_rollup_{method}"], _ = _recall(mem, para, **ask)
        result[f"recall_after_rollup_{method}_adapters_only"], _ = _recall(mem, para, retrieve=False, **ask)
        result[f"rollup_{method}_rank"] = row["r"]
        if "train" in row:
            result[f"rollup_{method}_train_seconds"] = row["train"]["seconds"]
        log(f"  roll-up {method} (rank {row['r']}): recall {result[f'recall_after_rollup_{method}']:.3f} default path, "
            f"{result[f'recall_after_rollup_{method}_adapters_only']:.3f} adapters only")
        mem.forget(row["name"])
        mem.stack(chunk_names)
        checkpoint()

    if len(chunks) > 1:
        gone, rest = questions(per_chunk[0])[0], questions([f for c in per_chunk[1:] for f in c])[0]
        hits = [_contains(a, e) for a, (_, e) in zip(answers[main], para)]
        before_rest = round(sum(hits[len(gone):]) / len(rest), 4)
        mem.forget(chunk_names[0])
        result["forgotten_recall"], _ = _recall(mem, gone, **ask)
        result["forgotten_base_recall"], _ = _recall(mem, gone, adapters=False, retrieve=False, **ask)
        result["others_before_forget"] = before_rest
        result["others_after_forget"], _ = _recall(mem, rest, **ask)
        log(f"  forgot {chunk_names[0]}: its recall {result['forgotten_recall']:.3f} (base "
            f"{result['forgotten_base_recall']:.3f}), others {result['others_after_forget']:.3f} (before {before_rest:.3f})")


def _score(answers: list[str], qs: list[tuple]) -> dict[str, Any]:
    """Recall per kind; corrections also count answers that still hold the superseded value."""
    out: dict[str, Any] = {}
    kinds: dict[str, list[bool]] = {}
    superseded: list[bool] = []
    for a, (_q, expected, kind, old) in zip(answers, qs):
        kinds.setdefault(kind, []).append(_contains(a, expected))
        if old:
            superseded.append(_contains(a, old))
    every = [h for hs in kinds.values() for h in hs]
    out["recall"] = round(sum(every) / len(every), 4) if every else None
    for kind, hs in kinds.items():
        out[f"recall_{kind}"] = round(sum(hs) / len(hs), 4)
    if superseded:
        out["correction_newest"] = out.get("recall_correction")
        out["correction_superseded"] = round(sum(superseded) / len(superseded), 4)
    out["n_questions"] = len(every)
    return out


def _conversations(mem: LoraMemory, cfg: BenchConfig, chat_set: list[dict], part: str, result: dict, log,
                   chunk_seconds: list[float], behaviour: bool, checkpoint=lambda: None) -> None:
    ask = dict(max_new_tokens=cfg.max_new_tokens)
    loc_q = [q for q, _ in data.LOCALITY]
    base_loc = mem.ask_many(loc_q, adapters=False, retrieve=False, **ask)
    answers: dict[str, list[str]] = {p: [] for p in PATHS}
    all_q: list[tuple] = []
    locality, notes, beh = [], [], {"short": [], "right": [], "fact_before": [], "fact_with": [], "restored": []}
    for chat in chat_set:
        mem.use_profile(f"{part}-{chat['name']}")
        for chunk in chat["chunks"]:
            start = time.perf_counter()
            row = mem.remember(chunk)
            chunk_seconds.append(time.perf_counter() - start)
            notes += row.get("notes", [])
            log(f"  {part} {chat['name']}: chunk of {len(chunk)} turns in {chunk_seconds[-1]:.1f} s "
                f"(training {row['train']['seconds']:.1f} s, {row['train']['examples']} texts)")
        qs = chat["questions"]
        all_q += qs
        for path, kw in PATHS.items():
            if not cfg.retrieval and path in ("default", "notes_only"):
                continue
            answers[path] += mem.ask_many([q for q, *_ in qs], **kw, **ask)
        loc = mem.ask_many(loc_q, **ask)
        locality.append(sum(a == b for a, b in zip(base_loc, loc)) / len(loc_q))
        if behaviour:
            _behaviour(mem, cfg, qs, answers["default"][-len(qs):], beh, log)
        _summarise(result, part, answers, all_q, locality, notes, beh, chunk_seconds, log=None)
        result[f"{part}_chats_done"] = chat_set.index(chat) + 1
        log(f"  {part} after {result[f'{part}_chats_done']} chat(s): recall {result.get(f'{part}_recall')} "
            f"(default path), locality {result[f'{part}_locality']}")
        checkpoint()  # figures so far, after every chat
    _summarise(result, part, answers, all_q, locality, notes, beh, chunk_seconds, log=log)


def _summarise(result: dict, part: str, answers: dict, all_q: list, locality: list, notes: list, beh: dict,
               chunk_seconds: list[float], log) -> None:
    if chunk_seconds:
        result["seconds_per_chunk_each"] = [round(s, 2) for s in chunk_seconds]
        result["seconds_per_chunk_median"] = round(statistics.median(chunk_seconds), 2)
    for path in PATHS:
        if not answers[path]:
            continue
        scores = _score(answers[path], all_q)
        key = part if path == "default" else f"{part}_{path}"
        for k, v in scores.items():
            result[f"{key}_{k}" if k != "recall" else f"{key}_recall"] = v
        if log:
            log(f"  {part} {path}: " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    result[f"{part}_locality"] = round(sum(locality) / len(locality), 4)
    result[f"{part}_examples"] = [{"question": q, "expected": e, "kind": kind, "answer": a}
                                  for (q, e, kind, _), a in zip(all_q, answers["default"] or answers["adapters_only"])]
    result[f"{part}_unlinked_corrections"] = notes
    if part == "conversation":
        result["conversation_locality"] = result[f"{part}_locality"]
        for k in ("correction_newest", "correction_superseded"):
            if f"{part}_{k}" in result:
                result[k] = result[f"{part}_{k}"]
    if beh["short"]:
        n = len(beh["short"])
        result["behaviour_short_rate"] = round(sum(beh["short"]) / n, 4)
        result["behaviour_correct_rate"] = round(sum(beh["right"]) / n, 4)
        result["behaviour_fact_recall_before"] = round(sum(beh["fact_before"]) / len(beh["fact_before"]), 4)
        result["behaviour_fact_recall"] = round(sum(beh["fact_with"]) / len(beh["fact_with"]), 4)
        result["behaviour_restored_after_forget"] = round(sum(beh["restored"]) / len(beh["restored"]), 4)


def _behaviour(mem: LoraMemory, cfg: BenchConfig, qs: list[tuple], fact_answers: list[str], beh: dict, log) -> None:
    ask = dict(max_new_tokens=cfg.max_new_tokens)
    simple = chats.BEHAVIOUR["questions"]
    before = mem.ask_many([q for q, _ in simple], **ask)
    row = mem.remember(chats.BEHAVIOUR["chunk"])
    after = mem.ask_many([q for q, _ in simple], **ask)
    beh["short"] += [_words(a) <= 2 for a in after]
    beh["right"] += [_words(a) <= 2 and _contains(a, e) for a, (_, e) in zip(after, simple)]
    facts_with = mem.ask_many([q for q, *_ in qs], **ask)
    beh["fact_before"] += [_contains(a, e) for a, (_, e, *_r) in zip(fact_answers, qs)]
    beh["fact_with"] += [_contains(a, e) for a, (_, e, *_r) in zip(facts_with, qs)]
    mem.forget(row["name"])
    again = mem.ask_many([q for q, _ in simple], **ask)
    beh["restored"] += [a == b for a, b in zip(again, before)]
    log(f"  behaviour {row['name']} ({row['train']['seconds']:.1f} s): <=2 words {sum(_words(a) <= 2 for a in after)}"
        f"/{len(after)} (before {sum(_words(a) <= 2 for a in before)}), mean words {statistics.mean(map(_words, before)):.1f}"
        f" -> {statistics.mean(map(_words, after)):.1f}; after forgetting identical {sum(a == b for a, b in zip(again, before))}"
        f"/{len(before)}")


def _plot(result: dict[str, Any], path: Path) -> None:
    from ..plotting import pyplot, save_figure

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    curve = result.get("recall_after_stack") or []
    if curve:
        ax1.plot(range(1, len(curve) + 1), curve, marker="o")
    ax1.axhline(0.85, ls="--", c="grey", lw=0.8)
    ax1.set(xlabel="chunks remembered (encyclopedia)", ylabel="recall of facts taught so far", ylim=(0, 1.05),
            title="Retention (default path)")
    keys = ["encyclopedia_recall", "encyclopedia_adapters_only_recall", "encyclopedia_notes_only_recall",
            "encyclopedia_locality", "conversation_recall", "conversation_recall_first_person",
            "conversation_recall_assistant", "correction_newest", "correction_superseded",
            "conversation_heldout_recall", "conversation_locality", "behaviour_short_rate", "behaviour_fact_recall",
            "behaviour_restored_after_forget", "recall_after_rollup_cat", "recall_after_rollup_retrain",
            "forgotten_recall", "others_after_forget"]
    keys = [k for k in keys if isinstance(result.get(k), (int, float))]
    ax2.barh(keys, [result[k] for k in keys])
    ax2.set(xlim=(0, 1.05), title=f"median {result.get('seconds_per_chunk_median', '?')} s per 4-turn chunk")
    ax2.invert_yaxis()
    ax2.tick_params(axis="y", labelsize=7)
    save_figure(fig, path)
