"""The bench behind ``hf-steer abc adapt bench``: the α dial on the bundled SmolLM2-135M-Instruct.

Trains four adapters on one base model with the same rank, layers, steps and learning rate:

* ``abc``: the abc adapter on TinyStories + Shakespeare with abcGPT's dial schedule (Beta(½, ½) / Bernoulli);
* ``lora_mix``: a plain LoRA on exactly the same rows (the dial is not seen);
* ``lora_<source>``: one plain LoRA per source (every row from that source: the specialists).

Then, on held-out text only (the last ``val_fraction`` of each file, never trained on):

* held-out loss per source at α = 0, 0.1, …, 1 (abcGPT's :func:`~hf_steer.abcgpt.evaluation.loss_by_alpha`),
  against the specialists, the mixture LoRA and the base model;
* the source score of generations along the dial: samples written at each α, scored by the per-token
  log-likelihood ratio under the two specialists (abcGPT's :func:`~hf_steer.abcgpt.evaluation.source_score`),
  its Spearman correlation with α and its largest step between neighbouring α (fraction of its range);
* unrelated ability: KL to the base model on ordinary held-out prose at α=0.5
  (:func:`hf_steer.benchmarking.heldout_drift`) and a few chat questions, answers checked against expected ones;
* generation speed with the adapter vs a plain LoRA of the same rank, timed in alternation.

The work folder keeps every run's checkpoints, so an interrupted bench resumes where it stopped (a folder
written with other settings is started afresh). Goals from the issue are reported as booleans, never tuned
away; ``parts=("speed",)`` runs only the timing (untrained adapters: the same arithmetic), meant to be run
alone on an idle machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ...benchmarking import Timer, heldout_drift, machine_info, peak_rss_mb, write_report
from ...cli_args import config_from_args
from ...models import load_model
from ...utils import atomic_write_json, set_seed
from ..evaluation import ALPHA_GRID, evaluate_loss, loss_by_alpha, sample, source_score, spearman
from ..training import BUNDLED_SOURCES
from .adapt_config import AbcAdaptConfig, AbcAdapterBenchConfig
from .adapt_trainer import prepare_corpus, train_adapter, wrap_model, write_artifact

# Ordinary questions with short, checkable answers: does the chat model still answer them?
CHAT_QUESTIONS = [
    ("What is the capital of France?", ["paris"]),
    ("How many days are there in a week?", ["seven", "7"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("What is 2 plus 3?", ["five", "5"]),
    ("Which animal says 'moo'?", ["cow"]),
    ("What do bees make?", ["honey"]),
]


def _configs(work: Path, s: AbcAdapterBenchConfig, seed: int, base_model: str | None) -> dict[str, AbcAdaptConfig]:
    sources = s.sources or {n: str(BUNDLED_SOURCES[n]) for n in ("tinystories", "shakespeare")}
    base = AbcAdaptConfig(
        sources=sources, output_dir=str(work / "abc"), base_model=base_model, r=s.r, unit_size=s.unit_size, layers=s.layers,
        block_size=s.block_size, batch_size=s.batch_size, steps=s.steps, learning_rate=s.learning_rate,
        gate_function=s.gate_function, gate_width=s.gate_width, gate_floor=s.gate_floor,
        gate_normalize=s.gate_normalize, seed=seed, eval_windows=0,
        save_steps=max(1, s.steps // 4), logging_steps=max(1, s.steps // 8), resume=True,
    )
    runs = {"abc": base, "lora_mix": replace(base, output_dir=str(work / "lora_mix"), gated=False)}
    for k, name in enumerate(sources):
        onehot = [1.0 if j == k else 0.0 for j in range(len(sources))]
        runs[f"lora_{name}"] = replace(base, output_dir=str(work / f"lora_{name}"), gated=False, fixed_mixture=onehot)
    return runs


# Settings a plain LoRA never reads: a baseline trained with other gate settings is the same baseline.
_GATE_FIELDS = ("unit_size", "gate_function", "gate_width", "gate_floor", "gate_normalize", "concentration")


def _run_stamp(cfg: AbcAdaptConfig, base_model: str) -> dict:
    """What decides one run's weights: its training settings (without the gate's, for a plain LoRA), the
    sources' names and sizes (not their paths: the same files in another checkout train the same run)."""
    skip = {"output_dir", "resume", "progress", "sources"} | (set() if cfg.gated else set(_GATE_FIELDS))
    stamp = {k: v for k, v in asdict(cfg).items() if k not in skip}
    stamp["sources"] = {n: Path(p).stat().st_size for n, p in cfg.sources.items()}
    stamp["base_model"] = base_model
    return stamp


def _fresh_run_dirs(runs: dict[str, AbcAdaptConfig], base_model: str) -> None:
    """Reuse a run's folder (resume) only when it was written with the same settings; else start it afresh.
    Each run has its own stamp, so changing a gate setting retrains the abc adapter only, not the baselines."""
    for cfg in runs.values():
        out, stamp = Path(cfg.output_dir), _run_stamp(cfg, base_model)
        path = out / "bench_settings.json"
        if out.exists() and (not path.is_file() or json.loads(path.read_text()) != stamp):
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, stamp)


def _max_step_fraction(values: list[float]) -> float:
    span = max(values) - min(values)
    return float(np.abs(np.diff(values)).max() / span) if span > 0 else float("nan")


@torch.no_grad()
def chat_answers(model, tokenizer, max_new_tokens: int = 20, alpha=None) -> list[dict]:
    """Greedy answers to :data:`CHAT_QUESTIONS` (batched, left-padded) and whether each holds an expected word."""
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q, _ in CHAT_QUESTIONS]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    kwargs = {} if alpha is None else {"alpha": alpha}
    out = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                         **kwargs)
    answers = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return [{"question": q, "answer": a.strip(), "correct": any(w in a.lower() for w in expected)}
            for (q, expected), a in zip(CHAT_QUESTIONS, answers)]


@torch.no_grad()
def generation_speed(models: dict, tokenizer, new_tokens: int = 32, rounds: int = 5, alpha=0.5) -> dict:
    """Greedy generation tokens/s of each model (batch 1, KV cache), timed in alternation; median of ``rounds``
    after one warm-up round. ``alpha`` goes to the models that take it (the abc adapter)."""
    ids = tokenizer("Once upon a time", return_tensors="pt", add_special_tokens=False)["input_ids"]
    timings: dict[str, list[float]] = {name: [] for name in models}
    for r in range(rounds + 1):
        for name, (model, takes_alpha) in models.items():
            kwargs = {"alpha": alpha} if takes_alpha else {}
            x = ids.to(model.device)
            t0 = time.perf_counter()
            model.generate(x, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           pad_token_id=tokenizer.pad_token_id, **kwargs)
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            if r:
                timings[name].append(new_tokens / (time.perf_counter() - t0))
    return {name: round(statistics.median(v), 2) for name, v in timings.items()}


def _speed_models(base, tokenizer, cfg: AbcAdaptConfig, names: list[str]) -> dict:
    """Untrained abc adapter and plain LoRA of the same rank and layers (the timing does not depend on weights)."""
    abc = wrap_model(copy.deepcopy(base), cfg, names).eval()
    lora = wrap_model(copy.deepcopy(base), replace(cfg, gated=False), names).eval()
    return {"abc": (abc, True), "lora": (lora, False)}


def run_bench(output_json, *, model=None, seed: int = 0, log=print, **settings) -> dict:
    """Run the bench; write JSON (and a PNG beside it) with :func:`hf_steer.benchmarking.write_report`.

    ``model``: the base model (default: the bundled SmolLM2-135M-Instruct). ``settings``: the fields of
    :class:`~.adapt_config.AbcAdapterBenchConfig` (steps, r, layers, heldout_windows, n_samples, parts, ...).
    """
    s = config_from_args(AbcAdapterBenchConfig, argparse.Namespace(), **settings)
    parts = set(s.parts)
    output_json = Path(output_json)
    work = Path(s.work_dir) if s.work_dir else output_json.parent / (output_json.stem + "_runs")
    set_seed(seed)
    started = time.perf_counter()
    result: dict = {"machine": machine_info(), "settings": asdict(s),
                    "seed": seed, "base_model": str(model) if model else "bundled SmolLM2-135M-Instruct"}
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}  # process CPU seconds (all threads): with one thread, the wall time of an idle machine
    cpu_started = time.process_time()
    with Timer() as t:
        base, tokenizer = load_model(model)
    wall["load"], cpu["load"] = round(t.wall, 1), round(t.cpu, 1)
    runs = _configs(work, s, seed, str(model) if model else None)
    names = list(runs["abc"].sources)

    if "speed" in parts and parts == {"speed"}:
        log("== timing generation (untrained adapters)")
        tps = generation_speed(_speed_models(base, tokenizer, runs["abc"], names), tokenizer, s.speed_new_tokens, s.speed_rounds)
        result["generation_tokens_per_second"] = tps
        result["generation_speed_ratio"] = round(tps["abc"] / tps["lora"], 4)
        result["goals"] = {"generation_speed_at_least_0.85": result["generation_speed_ratio"] >= 0.85}
        result["wall_seconds"] = {**wall, "total": round(time.perf_counter() - started, 1)}
        result["cpu_seconds"] = {**cpu, "total": round(time.process_time() - cpu_started, 1)}
        write_report(result, output_json)
        return result

    _fresh_run_dirs(runs, result["base_model"])
    log("== preparing the sources")
    corpus = prepare_corpus(runs["abc"], tokenizer)
    result["tokens"] = {n: {"train": len(corpus.train[n]), "heldout": len(corpus.val[n])} for n in names}
    trained = {}
    for key, cfg in runs.items():
        log(f"== training {key} ({cfg.steps} steps of {cfg.batch_size}x{cfg.block_size} tokens)")
        with Timer() as t:
            trained[key] = train_adapter(cfg, copy.deepcopy(base), tokenizer, corpus, log=log).eval()
        wall[f"train_{key}"], cpu[f"train_{key}"] = round(t.wall, 1), round(t.cpu, 1)
        write_report({**result, "wall_seconds": wall, "cpu_seconds": cpu}, output_json, partial=True)
    abc = trained["abc"]
    spec = {n: trained[f"lora_{n}"] for n in names}
    mix = trained["lora_mix"]

    log("== held-out loss along the dial")
    bs = 8
    nb = max(1, s.heldout_windows // bs)
    block = s.block_size
    with Timer() as t:
        curves = loss_by_alpha(abc, corpus, block, nb, bs)

        def heldout(m, n):
            return round(evaluate_loss(m, corpus.val[n], None, block, nb, bs), 5)

        specialist_loss = {n: heldout(spec[n], n) for n in names}
        mixture_loss = {n: heldout(mix, n) for n in names}
        cross_loss = {n: {o: heldout(spec[o], n) for o in names if o != n} for n in names}
        with abc.disable_adapter():
            base_loss = {n: heldout(abc, n) for n in names}
    wall["eval_loss"], cpu["eval_loss"] = round(t.wall, 1), round(t.cpu, 1)
    endpoint = {names[0]: curves[names[0]][0], names[1]: curves[names[1]][-1]}
    endpoint_gap = {n: round(endpoint[n] / specialist_loss[n] - 1, 4) for n in names}
    middle = {n: curves[n][ALPHA_GRID.index(0.5)] for n in names}
    middle_gap = {n: round(middle[n] / mixture_loss[n] - 1, 4) for n in names}
    result.update({
        "sources": names, "dial": f"alpha=0 is {names[0]}, alpha=1 is {names[1]}", "alphas": ALPHA_GRID,
        "loss_by_alpha": curves, "specialist_loss": specialist_loss, "mixture_loss": mixture_loss,
        "specialist_loss_on_other_source": cross_loss, "base_loss": base_loss,
        "endpoint_gap_vs_specialist": endpoint_gap, "middle_gap_vs_mixture_lora": middle_gap,
        "heldout_windows_per_source": nb * bs,
    })
    write_report({**result, "wall_seconds": wall, "cpu_seconds": cpu}, output_json, partial=True)

    log("== sampling along the dial")
    scores = []
    with Timer() as t:
        for a in ALPHA_GRID:
            # One seed for every α (common random numbers): the dial is the only thing that changes between points.
            samples = sample(abc, tokenizer, a, s.n_samples, s.sample_length, prompt=s.sample_prompt, seed=seed)
            scores.append({"alpha": a, **source_score(samples, spec[names[0]], spec[names[1]])})
    wall["source_score"], cpu["source_score"] = round(t.wall, 1), round(t.cpu, 1)
    values = [row["score"] for row in scores]
    rho = spearman(ALPHA_GRID, values)
    steps_between = np.diff(values)
    result.update({
        "source_score_by_alpha": scores,
        "source_score_definition": (
            f"mean per-token log p_{names[1]}(x) - log p_{names[0]}(x) under the two specialist LoRAs, "
            f"{s.n_samples} samples x {s.sample_length} tokens per alpha, temperature 1, prompt {s.sample_prompt!r}, "
            "the same sampling seed at every alpha"
        ),
        "spearman": round(rho, 4),
        "monotone": bool((steps_between >= 0).all()),
        "max_step_fraction": round(_max_step_fraction(values), 4),
    })

    log("== unrelated ability: KL on held-out prose, chat questions")
    with Timer() as t:
        drift = {}
        for a in (0.0, 0.5, 1.0):
            with abc.set_alpha(a):
                drift[f"abc alpha={a}"] = heldout_drift(abc, tokenizer, abc.disable_adapter)
        drift["lora_mix"] = heldout_drift(mix, tokenizer, mix.disable_adapter)
        chat = {}
        with abc.disable_adapter():
            chat["base"] = chat_answers(abc, tokenizer, s.chat_tokens)
        for a in (0.0, 0.5, 1.0):
            chat[f"abc alpha={a}"] = chat_answers(abc, tokenizer, s.chat_tokens, alpha=a)
        chat["lora_mix"] = chat_answers(mix, tokenizer, s.chat_tokens)
    wall["unrelated"], cpu["unrelated"] = round(t.wall, 1), round(t.cpu, 1)
    result["heldout_drift"] = {k: {m: round(v, 5) if isinstance(v, float) else v for m, v in d.items()} for k, d in drift.items()}
    result["kl_at_alpha_0.5"] = result["heldout_drift"]["abc alpha=0.5"]["kl_nats"]
    result["chat_correct"] = {k: sum(r["correct"] for r in v) for k, v in chat.items()}
    result["chat_questions"] = len(CHAT_QUESTIONS)
    result["chat_answers"] = chat

    if "speed" in parts:
        log("== timing generation")
        with Timer() as t:
            tps = generation_speed({"abc": (abc, True), "lora": (mix, False)}, tokenizer, s.speed_new_tokens, s.speed_rounds)
        wall["speed"], cpu["speed"] = round(t.wall, 1), round(t.cpu, 1)
        result["generation_tokens_per_second"] = tps
        result["generation_speed_ratio"] = round(tps["abc"] / tps["lora"], 4)

    result["goals"] = {
        "endpoints_within_3pct_of_specialist": bool(all(g <= 0.03 for g in endpoint_gap.values())),
        "source_score_monotone": result["monotone"],
        "spearman_at_least_0.95": bool(rho >= 0.95),
        "max_step_at_most_0.35": bool(result["max_step_fraction"] <= 0.35),
        "middle_within_3pct_of_mixture_lora": bool(all(g <= 0.03 for g in middle_gap.values())),
    }
    if "generation_speed_ratio" in result:
        result["goals"]["generation_speed_at_least_0.85"] = bool(result["generation_speed_ratio"] >= 0.85)
    wall["total"] = round(time.perf_counter() - started, 1)
    cpu["total"] = round(time.process_time() - cpu_started, 1)
    result["wall_seconds"], result["cpu_seconds"] = wall, cpu
    result["goals"]["bench_within_30_minutes"] = bool(wall["total"] <= 1800)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["train_log"] = {k: json.loads((Path(c.output_dir) / "training_log.json").read_text())["log"] for k, c in runs.items()}

    # The abc adapter's folder becomes a pushable artifact whose card shows these curves and references.
    write_artifact(Path(runs["abc"].output_dir), abc, corpus, runs["abc"], curves=curves,
                   reference={"specialist": specialist_loss, "mixture": mixture_loss},
                   metrics_extra={"specialist LoRA": specialist_loss, "mixture LoRA": mixture_loss, "base model": base_loss})
    result["adapter_folder"] = str(runs["abc"].output_dir)
    result["config"] = {k: v for k, v in asdict(runs["abc"]).items() if k not in ("sources", "output_dir")}
    write_report(result, output_json, plot=_plot)
    return result


def _plot(result: dict, path: Path) -> None:
    from ...plotting import pyplot, save_figure

    plt = pyplot()
    names = result["sources"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for i, n in enumerate(names):
        ax.plot(result["alphas"], result["loss_by_alpha"][n], marker="o", color=f"C{i}", label=f"{n} (abc adapter)")
        ax.axhline(result["specialist_loss"][n], color=f"C{i}", linestyle="--", linewidth=1, label=f"{n} specialist LoRA")
        ax.axhline(result["mixture_loss"][n], color=f"C{i}", linestyle=":", linewidth=1, label=f"{n} mixture LoRA")
    ax.set_xlabel(f"α (0 = {names[0]}, 1 = {names[1]})")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    rows = result["source_score_by_alpha"]
    ax.plot([r["alpha"] for r in rows], [r["score"] for r in rows], marker="o", color="C2")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("α")
    ax.set_ylabel(f"log p_{names[1]} − log p_{names[0]} per token")
    ax.set_title(f"source score of samples (Spearman {result['spearman']:.3f}, largest step "
                 f"{result['max_step_fraction']:.2f})", fontsize=9)
    ax.grid(alpha=0.3)
    speed = result.get("generation_speed_ratio")
    fig.suptitle(
        f"abc adapter on SmolLM2-135M-Instruct: r={result['config']['r']}, {result['config']['steps']} steps; "
        f"KL at α=0.5 {result['kl_at_alpha_0.5']:.3f} nats; chat {result['chat_correct']['abc alpha=0.5']}/"
        f"{result['chat_questions']} at α=0.5" + (f"; generation speed ×{speed:.2f} of LoRA" if speed else ""),
        fontsize=9,
    )
    save_figure(fig, path)
