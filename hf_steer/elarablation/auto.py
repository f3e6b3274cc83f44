"""`hf-steer elarablate auto`: the whole Elarablation loop on a model, in resumable stages.

1. ``stories``  — the model writes stories for the training prompts (``stories_train.jsonl``);
2. ``patterns`` — over-used words, names and phrases against human frequencies, and the contexts cut from
   the model's own stories where each starts (``patterns.json``, ``contexts.yaml``: edit it and re-run);
3. ``before``   — stories for the held-out evaluation prompts, before training (``stories_eval_before.jsonl``);
4. ``train``    — an adapter on ``contexts.yaml`` (plus keep contexts for discovered names) in ``adapter/``;
5. ``after``    — the same evaluation prompts with the adapter (``stories_eval_after.jsonl``), and the
   report (``report.json`` + ``report.png``): every targeted pattern's rate, the slop index, distinct-2
   and the looping share, before and after.

With ``--rounds N`` the loop runs again in ``round2/`` ... ``roundN/`` on the model with the rounds before merged in
(in memory): new stories, new patterns (often the words the last round wrote in place of its patterns), the last
round's after-stories as this round's before, a new adapter on top. ``all_rounds_adapter/`` joins every round into one
adapter on the model the user gave, and ``report.json`` judges the untrained model's stories against the last round's
on every round's patterns. Raising ``--rounds`` on a finished folder adds rounds; a round whose model changed (the
round before it trained again) starts over.

Every stage writes its files atomically (stories batch by batch) and ``state.json`` records the finished
ones; running the same command again resumes from the last finished stage. Editing ``contexts.yaml``
makes the next run train and evaluate again. A work folder started with other settings is an error
(use the same settings or another folder), never silently mixed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import HfSteerError
from ..utils import atomic_write_json
from .arguments import ElarablationArguments

STAGES = ("stories", "patterns", "before", "train", "after")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# Settings added after a work folder could have been started, with the value such a folder was run with: it resumes
# with that value passed (``--no-first-token-push``), and the error below says so.
ADDED_SETTINGS = {"first_token_push": False, "train_deeper_rows": True, "let_go_beginnings": False,
                  "hold_let_go_words": None, "loop_contexts": 0, "bf16": False}
# Recorded since 2026-12-05 (auto now records every hyperparameter an adapter's hf_steer.json does); a folder from before
# ran with the trainer's defaults for them.
ADDED_SETTINGS.update({k: ElarablationArguments.__dataclass_fields__[k].default for k in (
    "tether_weight", "margin_cap", "max_threshold", "min_threshold", "temperature", "tree_depth", "tree_width",
    "min_path_prob", "next_max_threshold", "next_min_threshold", "anchor_tokens", "bad_ratio", "tether_centred")})


class AutoState:
    """``state.json`` of a work folder: the settings it was started with and the stages finished."""

    def __init__(self, work_dir: Path, settings: dict[str, Any]):
        self.path = work_dir / "state.json"
        self.data: dict[str, Any] = {"settings": settings, "finished": {}}
        if self.path.is_file():
            try:
                old = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise HfSteerError(f"{self.path} is damaged: remove it (the stage files stay) or use another --work-dir") from None
            before = {**{k: v for k, v in ADDED_SETTINGS.items() if k in settings}, **old.get("settings", {})}
            changed = sorted(k for k in set(settings) | set(before) if settings.get(k) != before.get(k))
            if changed:
                values = ", ".join(f"{k}={before.get(k)!r}" for k in changed)
                raise HfSteerError(
                    f"work folder {work_dir} was started with other settings ({', '.join(changed)} differ): it has "
                    f"{values}; run it with those to resume it, or pass another --work-dir")
            old["settings"] = before
            self.data = old

    def done(self, stage: str) -> bool:
        return stage in self.data["finished"]

    def finish(self, stage: str, **info: Any) -> None:
        self.data["finished"][stage] = info
        atomic_write_json(self.path, self.data)

    def forget(self, *stages: str) -> None:
        for stage in stages:
            self.data["finished"].pop(stage, None)
        atomic_write_json(self.path, self.data)


def user_patterns(stories: list[dict], texts: str) -> list[dict]:
    """Patterns the user named (``--patterns``), each checked against the stories."""
    from .discover import human_rate
    from .stories import STOPWORDS, pattern_regex, words

    total = sum(len(words(s["text"])) for s in stories) or 1
    out = []
    for text in [t.strip() for t in texts.split(",") if t.strip()]:
        rx = pattern_regex(text)
        hits = [s for s in stories if rx.search(s["text"])]
        if not hits:
            raise HfSteerError(f"pattern {text!r} never occurs in the {len(stories)} stories: check the spelling, or "
                               "write more stories (--stories-per-prompt)")
        count = sum(len(rx.findall(s["text"])) for s in stories)
        ws = text.split()
        cut = next((w for w in ws[1:] if w.lower() not in STOPWORDS), ws[-1]) if len(ws) > 1 else ws[0]
        human = human_rate(text) if len(ws) == 1 else 0.0
        out.append({"kind": "phrase" if len(ws) > 1 else ("name" if text[:1].isupper() else "word"), "text": text,
                    "cut": cut, "count": count, "prompts": len({s["prompt_id"] for s in hits}),
                    "stories": len(hits), "ratio": (count / total + 1e-7) / (human + 1e-7), "human_per_1k": 1000 * human,
                    "slop_list": False, "score": float(count)})
    return out


def run_auto(
    work_dir: str | os.PathLike,
    *,
    model: Any = None,
    settings=None,
    config=None,
    lora=None,
    chat_template: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) the loop in ``work_dir``; returns the report (``summary``: printable lines).

    Args:
        work_dir: the folder every stage writes to (created if needed); round ``k`` > 1 writes to ``round<k>/``.
        model: a model folder / ``.gguf`` / Hub id, or ``None`` for the bundled model.
        settings: :class:`~hf_steer.elarablation.arguments.AutoArguments`.
        config: an :class:`ElarablationConfig` for the training stage (its epochs and seed are the settings').
        lora: :class:`~hf_steer.elarablation.arguments.AutoLoraArguments` (the top six layers by default).
        chat_template: a template for a model without one (``gemma``, ``chatml``, a file).
    """
    from ..models import load_model
    from .arguments import AutoArguments, AutoLoraArguments
    from .chat import apply_chat_template
    from .chat import chat_template as chat_template_text
    from .pipeline import check_output_dir
    from .stories import load_prompts

    settings = settings or AutoArguments()
    lora = lora or AutoLoraArguments()
    work_dir = check_output_dir(work_dir)
    if chat_template:
        chat_template_text(chat_template)  # a bad name is an error before the model loads
    train_prompts, chat = load_prompts(settings.prompts)
    settings = settings.with_hold_weight(chat)
    eval_prompts, eval_chat = load_prompts(settings.eval_prompts)
    settings = settings.with_eval_stories(len(eval_prompts))  # recorded as run: a folder resumes with its count
    if set(train_prompts) & set(eval_prompts):
        raise HfSteerError("--eval-prompts share prompts with --prompts: judge on prompts the patterns were not found on")
    from .pipeline import RECORDED

    # the adapter's recorded hyperparameters (its epochs, seed and context_weight are auto's train_epochs, seed and
    # hold_weight), how the model was loaded, and bf16 (it changes the stories as well as the training)
    recorded = {k for k in RECORDED if k not in ("num_train_epochs", "seed", "context_weight", "hold_let_go_words")} | {
        "load_in_4bit", "bf16"}
    if config is None:  # the trainer's defaults (the CLI always passes a config)
        from .config import ElarablationConfig

        config = ElarablationConfig(output_dir=str(work_dir / "adapter"))
    training = {k: v for k, v in dataclasses.asdict(config).items() if k in recorded}
    # `rounds` is left out: raising it on a finished folder adds rounds, the ones done stay
    recorded_settings = {"model": str(model or "bundled"), "chat_template": chat_template,
                         **{k: v for k, v in dataclasses.asdict(settings).items() if k != "rounds"},
                         **dataclasses.asdict(lora), **training}

    first_state = AutoState(work_dir, recorded_settings)  # a folder started with other settings: the first error
    loaded: dict[str, Any] = {}

    def base():
        if "model" not in loaded:
            loaded["model"], loaded["tokenizer"] = load_model(model)
            apply_chat_template(loaded["tokenizer"], chat_template)
        return loaded["model"], loaded["tokenizer"]

    if settings.hold_let_go_words and settings.hold_weight > 0:  # a list the model cannot use: now, not after stage 3
        from .contexts import reader_text
        from .trainer import listed_tokens

        _, tok = base()
        listed_tokens([reader_text(tok, i) for i in range(len(tok))], settings.hold_let_go_words)

    rounds: list[dict[str, Any]] = []
    model_of_round, loaded_of_round = base, loaded  # base() reads `loaded`: each round gets its own loader and dict
    for k in range(1, settings.rounds + 1):
        folder = work_dir if k == 1 else work_dir / f"round{k}"
        state = first_state if k == 1 else AutoState(folder, recorded_settings)
        if k > 1:
            loaded_next: dict[str, Any] = {}
            model_of_round = _merged(model_of_round, loaded_of_round, rounds[-1]["folder"] / "adapter", loaded_next)
            loaded_of_round = loaded_next
            # this round was trained on the rounds before it: if one of them was trained again, it starts over
            under = _digest(rounds[-1]["folder"] / "adapter" / "adapter_model.safetensors")
            if state.data.get("previous_adapter") not in (None, under):
                log(f"round {k - 1} was trained again: round {k} starts over ({folder} is written anew)")
                shutil.rmtree(folder)
                state = AutoState(folder, recorded_settings)
            state.data["previous_adapter"] = under
            before = folder / "stories_eval_before.jsonl"
            if not state.done("before"):  # the held-out stories before this round are the last round's after
                from ..utils import atomic_write_text

                folder.mkdir(parents=True, exist_ok=True)
                atomic_write_text(before, (rounds[-1]["folder"] / "stories_eval_after.jsonl").read_text(encoding="utf-8"))
                state.finish("before", file=before.name, copied_from=f"round {k - 1}'s after")
        rounds.append(_round(k, folder, state, model_of_round, loaded_of_round, settings, config, lora, train_prompts,
                             chat, eval_prompts, eval_chat, log))
    if settings.rounds == 1:
        report = build_report(work_dir, rounds[0]["patterns"], rounds[0]["state"], rounds[0]["timings"])
    else:
        _join_adapters(model, [r["folder"] / "adapter" for r in rounds], work_dir / ALL_ROUNDS, log)
        report = build_rounds_report(work_dir, rounds)
    report["bf16"] = recorded_settings["bf16"]  # the stories and the training
    report["settings"] = dataclasses.asdict(settings)  # as run (the hold weight decided by the prompts)
    return report


ALL_ROUNDS = "all_rounds_adapter"


def _round(k: int, folder: Path, state: AutoState, base, loaded: dict, settings, config, lora, train_prompts, chat,
           eval_prompts, eval_chat, log) -> dict[str, Any]:
    """Round ``k``'s five stages in ``folder`` (see the module doc); returns its patterns, state and timings."""
    tag = f"round {k}/{settings.rounds} " if settings.rounds > 1 else ""
    timings: dict[str, float] = dict(state.data.get("timings", {}))
    after_path = folder / "stories_eval_after.jsonl"

    @contextlib.contextmanager
    def timed(stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - start, 2)
            state.data["timings"] = timings

    def retrain() -> None:
        """New contexts: the adapter and the stories written with it are out of date."""
        state.forget("train", "after")
        after_path.unlink(missing_ok=True)

    # -- 1. stories for the training prompts
    stories_path = folder / "stories_train.jsonl"
    if not state.done("stories"):
        log(f"{tag}[1/5] stories for {len(train_prompts)} training prompts x {settings.stories_per_prompt}")
        with timed("stories"):
            _stories(base, stories_path, train_prompts, chat, settings.stories_per_prompt, settings, "train stories",
                     bf16=config.bf16)
        state.finish("stories", file=stories_path.name)
    # -- 2. patterns and contexts
    contexts_path = folder / "contexts.yaml"
    if not state.done("patterns") or not contexts_path.is_file():
        log(f"{tag}[2/5] finding over-used patterns")
        with timed("patterns"):
            patterns, lines = _patterns(base, stories_path, contexts_path, train_prompts, chat, settings,
                                        later_round=k > 1)
        atomic_write_json(folder / "patterns.json", {"patterns": patterns, "summary": lines})
        retrain()
        state.finish("patterns", contexts=_digest(contexts_path))
        for line in lines:
            log(line)
    patterns = json.loads((folder / "patterns.json").read_text(encoding="utf-8"))["patterns"]
    if state.data["finished"]["patterns"].get("contexts") != _digest(contexts_path):
        log(f"{contexts_path.name} was edited: training and evaluating again")
        retrain()
        state.finish("patterns", contexts=_digest(contexts_path))
    # -- 3. evaluation stories before training
    before_path = folder / "stories_eval_before.jsonl"
    if not state.done("before"):
        log(f"{tag}[3/5] stories for {len(eval_prompts)} held-out prompts x {settings.eval_stories_per_prompt}, "
            "before training")
        with timed("before"):
            _stories(base, before_path, eval_prompts, eval_chat, settings.eval_stories_per_prompt, settings,
                     "held-out stories, before", seed_offset=1, bf16=config.bf16)
        state.finish("before", file=before_path.name)
    # -- 4. training
    adapter_dir = folder / "adapter"
    if not state.done("train"):
        from .pipeline import train

        log(f"{tag}[4/5] training on {contexts_path.name}")
        m, tok = base()
        # a progress bar (the stage is minutes long) and the step figures every 10 steps, not each step
        fields = {"num_train_epochs": settings.train_epochs, "seed": settings.seed, "save_strategy": "no",
                  "context_weight": settings.hold_weight, "hold_let_go_words": settings.hold_let_go_words,
                  "disable_tqdm": False, "logging_steps": 10}
        after_path.unlink(missing_ok=True)
        with timed("train"):
            result = train(str(contexts_path), adapter_dir, m, config=config, lora=lora, tokenizer=tok, **fields)
        loaded["model"] = result["trainer"].model
        state.finish("train", seconds=round(result["train_seconds"], 2), steps=result["steps"],
                     positions=len(result["trainer"]._rows),
                     keep_rows=sum(1 for r in result["trainer"]._rows if r.kind == "keep"))
    # -- 5. evaluation stories after training, and the report
    if not state.done("after"):
        log(f"{tag}[5/5] the same held-out prompts with the adapter")
        with timed("after"):
            tuned = _tuned(base, loaded, adapter_dir)
            _stories(lambda: (tuned, loaded["tokenizer"]), after_path, eval_prompts, eval_chat,
                     settings.eval_stories_per_prompt, settings, "held-out stories, after", seed_offset=1, bf16=config.bf16)
        state.finish("after", file=after_path.name)
    return {"folder": folder, "patterns": patterns, "state": state, "timings": timings}


def _merged(base, loaded: dict, adapter_dir: Path, into: dict):
    """The loader of the next round's model (kept in ``into``): this round's model with its adapter merged in, in
    memory. The next adapter is trained on that model, so only what ``_join_adapters`` writes applies to the user's."""

    def next_base():
        if "model" not in into:
            tuned = _tuned(base, loaded, adapter_dir)
            into["model"], into["tokenizer"] = tuned.merge_and_unload(), loaded["tokenizer"]
            loaded.clear()  # the PeftModel's layers are gone with the merge
        return into["model"], into["tokenizer"]

    return next_base


def _join_adapters(model: Any, adapters: list[Path], output: Path, log) -> None:
    """One adapter on the user's model with every round in it: round ``k``'s LoRA was trained on the model with the
    rounds before it merged in, and LoRAs add, so their matrices side by side (PEFT's ``cat``: rank r1 + r2 + ...) are
    the rounds merged one after another, exactly."""
    from peft import PeftModel

    from ..artifacts import Artifact
    from ..models import load_model

    digests = {str(a.relative_to(output.parent)): _digest(a / "adapter_model.safetensors") for a in adapters}
    old = Artifact.load(output)
    if old is not None and old.hyperparameters.get("rounds_adapters") == digests:
        return
    log(f"joining {len(adapters)} rounds' adapters into {output}")
    base, _ = load_model(model)
    names = [f"round{k}" for k in range(1, len(adapters) + 1)]
    joined = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name=names[0])
    for name, folder in zip(names[1:], adapters[1:]):
        joined.load_adapter(str(folder), adapter_name=name)
    joined.add_weighted_adapter(names, [1.0] * len(names), "default", combination_type="cat")
    joined.set_adapter("default")
    for name in names:
        joined.delete_adapter(name)
    # written beside and swapped in, so a killed run never leaves a half-written adapter where the last one was
    partial = output.with_name(f".{output.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    joined.save_pretrained(str(partial))
    first = Artifact.load(adapters[0])
    Artifact(method=first.method, artifact="adapter", base_model=first.base_model, description=first.description,
             datasets=sorted({d for a in adapters for d in (Artifact.load(a).datasets or [])}),
             hyperparameters={**first.hyperparameters, "rounds": len(adapters), "rounds_adapters": digests,
                              "lora_r": sum(Artifact.load(a).hyperparameters.get("lora_r", 0) for a in adapters)},
             metrics={"train_seconds": round(sum(Artifact.load(a).metrics.get("train_seconds", 0) for a in adapters), 2)}
             ).save(partial)
    if output.exists():
        stale = output.with_name(f".{output.name}.old")
        shutil.rmtree(stale, ignore_errors=True)
        output.rename(stale)
        partial.rename(output)
        shutil.rmtree(stale)
    else:
        partial.rename(output)


def _stories(base, path: Path, prompts, chat: bool, per_prompt: int, settings, desc: str,
             seed_offset: int = 0, bf16: bool = False) -> list[dict]:
    """Write (or finish writing) a stage's stories, batch by batch, so a killed run resumes where it stopped."""
    from .stories import append_jsonl, generate_stories, read_jsonl

    done = read_jsonl(path)
    model, tokenizer = base()
    # rewrite what was read cleanly (a line cut by a kill is dropped), then append batch by batch
    from ..utils import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in done))
    return generate_stories(model, tokenizer, prompts, chat, per_prompt, settings.max_new_tokens,
                            settings.story_temperature, settings.seed + seed_offset, settings.generation_batch_size,
                            desc=desc, done=done, on_batch=lambda rows: append_jsonl(path, rows), bf16=bf16)


def _patterns(base, stories_path: Path, contexts_path: Path, prompts, chat: bool, settings,
              later_round: bool = False) -> tuple[list, list]:
    from .discover import FILE_HEADER, context_documents, rank_patterns, summary_lines, write_context_file
    from .stories import pattern_regex, read_jsonl

    stories = read_jsonl(stories_path)
    if settings.patterns:
        named, notes = [t.strip() for t in settings.patterns.split(",") if t.strip()], []
        if later_round:  # a pattern the rounds before trained out is done, not a typo
            gone = [t for t in named if not any(pattern_regex(t).search(s["text"]) for s in stories)]
            named = [t for t in named if t not in gone]
            if not named:
                raise HfSteerError(f"none of --patterns occurs in this round's {len(stories)} stories: the rounds before "
                                   "trained them out, so there is nothing for another round; use fewer --rounds")
            notes += [f"not trained again: {t!r} no longer occurs in this round's stories" for t in gone]
        patterns = user_patterns(stories, ",".join(named))
    else:
        patterns, notes = rank_patterns(stories, settings.top, settings.min_stories)
    _, tokenizer = base()
    docs, patterns, more = context_documents(tokenizer, stories, patterns, prompts, chat,
                                             settings.contexts_per_pattern, settings.top, settings.context_tokens,
                                             settings.loop_contexts)
    notes += more
    if not docs:
        raise HfSteerError(f"no over-used pattern with a context was found in {len(stories)} stories: write more stories "
                           "(--stories-per-prompt), lower --min-stories, or name patterns (--patterns)")
    write_context_file(contexts_path, docs, FILE_HEADER.format(command="auto"))
    return patterns, summary_lines(patterns, notes)


def _tuned(base, loaded: dict, adapter_dir: Path):
    """The model with the trained adapter (loaded from ``adapter/`` when training ran in an earlier session)."""
    model, _ = base()
    if hasattr(model, "peft_config"):
        return model
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise HfSteerError(f"{adapter_dir} has no adapter: remove state.json's 'train' entry or the work folder")
    loaded["model"] = PeftModel.from_pretrained(model, str(adapter_dir))
    return loaded["model"]


def build_report(work_dir: Path, patterns: list[dict], state: AutoState, timings: dict[str, float]) -> dict[str, Any]:
    """``report.json`` + ``report.png`` from the stage files; returns the report with printable ``summary`` lines."""
    names = [p["text"] for p in patterns]
    paths = (work_dir / "stories_eval_before.jsonl", work_dir / "stories_eval_after.jsonl")
    return _write_report(work_dir, paths, [_figures(path, names) for path in paths], patterns,
                         state.data["finished"], timings, adapter="adapter",
                         train_seconds=state.data["finished"].get("train", {}).get("seconds"))


def build_rounds_report(work_dir: Path, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The report of several rounds: the untrained model's held-out stories against the last round's, judged on
    every round's patterns, and each round's own changes against the untrained model."""
    first_found: dict[str, dict] = {}
    for k, r in enumerate(rounds, 1):
        for p in r["patterns"]:
            first_found.setdefault(p["text"], {**p, "round": k})
    patterns = list(first_found.values())
    timings = {(stage if k == 1 else f"round{k} {stage}"): seconds
               for k, r in enumerate(rounds, 1) for stage, seconds in r["timings"].items()}
    trained = [r["state"].data["finished"].get("train", {}).get("seconds") for r in rounds]
    names = [p["text"] for p in patterns]
    before_path = work_dir / "stories_eval_before.jsonl"
    before = _figures(before_path, names)
    per_round, after = [], before
    for k, r in enumerate(rounds, 1):
        after = _figures(r["folder"] / "stories_eval_after.jsonl", names)
        train = r["state"].data["finished"].get("train", {})
        per_round.append({"round": k, "folder": str(r["folder"].relative_to(work_dir.parent)),
                          "patterns_found": len(r["patterns"]), "train_seconds": trained[k - 1],
                          "train_positions": train.get("positions"), "keep_rows": train.get("keep_rows"),
                          "changes": changes(before, after), "looping": after["looping"],
                          "distinct_2": after["distinct_2"]})
    return _write_report(work_dir, (before_path, rounds[-1]["folder"] / "stories_eval_after.jsonl"), (before, after),
                         patterns, {f"round{k}": r["state"].data["finished"] for k, r in enumerate(rounds, 1)}, timings,
                         adapter=ALL_ROUNDS, train_seconds=None if None in trained else round(sum(trained), 2),
                         rounds=per_round)


def _figures(path: Path, names: list[str]) -> dict[str, Any]:
    from .stories import read_jsonl, story_figures

    return story_figures([d["text"] for d in read_jsonl(path)], names)


def _write_report(work_dir: Path, paths, figures, patterns: list[dict], stages: dict,
                  timings: dict[str, float], **extra: Any) -> dict[str, Any]:
    """``paths`` and ``figures``: the (before, after) story files and their figures."""
    from ..benchmarking import write_report
    from .plots import plot_story_report

    before, after = figures
    report = {"before": before, "after": after, "patterns": patterns, "stages": stages,
              "timings_seconds": timings, "total_seconds": round(sum(timings.values()), 2),
              "files": dict(zip(("before", "after"), (str(p.relative_to(work_dir)) for p in paths))), **extra}
    report["changes"] = changes(before, after)
    from .stories import change_intervals, read_jsonl

    # how far a new draw of the held-out prompts could move the changes (a report on few stories is a draw)
    report["change_intervals_90"] = change_intervals(read_jsonl(paths[0]), read_jsonl(paths[1]),
                                                     [p["text"] for p in patterns])
    report["summary"] = report_lines(report)
    write_report(report, work_dir / "report.json", plot=plot_story_report)
    return report


def changes(before: dict, after: dict) -> dict[str, float]:
    """Relative changes of the story figures (negative = fewer)."""
    def rel(a: float, b: float) -> float:
        return (b - a) / a if a else (0.0 if b == a else float("inf"))

    return {
        "patterns": rel(before.get("patterns_per_1k_words", 0.0), after.get("patterns_per_1k_words", 0.0)),
        "slop_index": rel(before["slop_index"], after["slop_index"]),
        "distinct_2": rel(before["distinct_2"], after["distinct_2"]),
        "looping_points": after["looping"] - before["looping"],
        # the slop index's change if the targeted patterns vanished and nothing else changed
        "slop_index_patterns_alone": rel(before["slop_index"],
                                         before.get("slop_index_without_patterns", before["slop_index"])),
    }


def _stories_using(before: dict, after: dict, pattern: str) -> str:
    """How many stories write the pattern, before -> after (reports before 2026-12-07 do not say)."""
    if "pattern_stories" not in before or "pattern_stories" not in after:
        return ""
    return f" ({before['pattern_stories'][pattern]}->{after['pattern_stories'][pattern]} stories)"


def report_lines(report: dict) -> list[str]:
    b, a, c = report["before"], report["after"], report["changes"]
    spans = report.get("change_intervals_90", {})  # reports before 2026-12-08 have none

    def span(name: str) -> str:
        if name not in spans:
            return ""
        low, high = spans[name]
        return f", {100 * low:+.0f}% to {100 * high:+.0f}% over redrawn prompts"

    lines = [
        f"held-out stories: {b['stories']} before, {a['stories']} after ({b['mean_words']:.0f} / {a['mean_words']:.0f} words each)",
        f"targeted patterns per 1,000 words: {b.get('patterns_per_1k_words', 0):.2f} -> "
        f"{a.get('patterns_per_1k_words', 0):.2f} ({100 * c['patterns']:+.0f}%{span('patterns')})",
        f"slop index: {b['slop_index']:.1f} -> {a['slop_index']:.1f} ({100 * c['slop_index']:+.0f}%{span('slop_index')}); with every "
        f"targeted pattern gone and nothing else changed it would be {b.get('slop_index_without_patterns', 0):.1f} "
        f"({100 * c['slop_index_patterns_alone']:+.0f}%)",
        f"distinct-2: {b['distinct_2']:.3f} -> {a['distinct_2']:.3f}",
        f"looping stories: {100 * b['looping']:.1f}% -> {100 * a['looping']:.1f}%",
    ]
    for r in report.get("rounds", []):
        c_k = r["changes"]
        lines.append(f"after round {r['round']} ({r['patterns_found']} patterns found): patterns "
                     f"{100 * c_k['patterns']:+.0f}%, slop index {100 * c_k['slop_index']:+.0f}%, distinct-2 "
                     f"{r['distinct_2']:.3f}, looping {100 * r['looping']:.1f}%")
    worst = sorted(report["patterns"], key=lambda p: -a["pattern_rates"].get(p["text"], 0))[:3]
    if worst:
        lines.append("still most frequent after: " + ", ".join(
            f"{p['text']!r} {b['pattern_rates'][p['text']]:.2f}->{a['pattern_rates'][p['text']]:.2f}"
            + _stories_using(b, a, p["text"]) for p in worst))
    lines.append(f"adapter: {report['adapter']}/ in the work folder (load it with PeftModel, or merge it as trained: "
                 "`hf-steer elarablate merge --adapter ... --scale 1`)")
    lines.append(f"time: {report['total_seconds']:.0f} s in all ("
                 + ", ".join(f"{k} {v:.0f} s" for k, v in report["timings_seconds"].items()) + ")")
    return lines

