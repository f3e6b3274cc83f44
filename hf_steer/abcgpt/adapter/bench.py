"""The bench behind ``hf-steer abc adapt bench``: the α dial on the bundled SmolLM2-135M-Instruct.

Trains four adapters on one base model with the same rank, layers, steps and learning rate:

* ``abc``: the abc adapter on TinyStories + Shakespeare with abcGPT's dial schedule (Beta(½, ½) / Bernoulli);
* ``lora_mix``: a plain LoRA on exactly the same rows (the dial is not seen);
* ``lora_<source>``: one plain LoRA per source (every row from that source: the specialists).

Then, on held-out text only (the last ``val_fraction`` of each file, never trained on):

* held-out loss per source at α = 0, 0.1, …, 1 (abcGPT's :func:`~hf_steer.abcgpt.evaluation.loss_by_alpha`),
  against the specialists, the mixture LoRA and the base model;
* the source score of generations along the dial: samples written at each α, scored by the per-token
  log-likelihood ratio under the two specialists (abcGPT's :func:`~hf_steer.abcgpt.evaluation.source_score`, kept
  per sample), its Spearman correlation with α and its largest step between neighbouring α (fraction of its
  range). ``score_seeds`` seeds (default 2) × ``n_samples`` (16) per α, the same seeds at every α, with a 95%
  interval per α and a paired one per step (:func:`summarize_scores`). One seed was used before; its one
  reversal (0.913 → 0.862 at α 0.8 → 0.9) was noise: a second seed gave 0.829 → 0.951, both together rise
  (0.871 → 0.907 → 0.958 at α 0.8, 0.9, 1) and the step's paired interval is −0.11…+0.19
  (docs/results/abc_adapter/noise_check.json);
* unrelated ability: KL to the base model on ordinary held-out prose at α=0.5
  (:func:`hf_steer.benchmarking.heldout_drift`) and a few chat questions, answers checked against expected ones;
* generation speed with the adapter vs a plain LoRA of the same rank, timed in alternation.

With ``jobs=2`` (the default) the four trainings run two at a time and the sampling seeds side by side, each in a
``spawn``-ed process with one torch thread: on a 2-core machine that halves the wall time of ≈ 77% of the bench
(before, one process trained the four runs one after another). Each worker reports its own wall and CPU seconds;
``cpu_seconds.total`` adds them to the bench process's.

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

from ...benchmarking import Timer, heldout_drift, machine_info, mean_ci95, peak_rss_mb, write_report
from ...cli_args import config_from_args
from ...models import load_model
from ...utils import atomic_write_json, quiet_third_party, set_seed
from ..evaluation import ALPHA_GRID, evaluate_loss, loss_by_alpha, mean_logprob, sample, spearman
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
        gate_normalize=s.gate_normalize, balanced_positions=s.balanced_positions,
        concentration=s.concentration, vertex_fraction=s.vertex_fraction, seed=seed, eval_windows=0,
        save_steps=max(1, s.steps // 4), logging_steps=max(1, s.steps // 8), resume=True,
    )
    # One adapter for every source stands in for N specialists: with pooled rows it gets their rows together
    # (N x batch_size a step); the specialists and the mixture LoRA keep the same rank, layers and steps.
    if s.pooled_rows:
        base = replace(base, batch_size=s.batch_size * len(sources))
    runs = {"abc": base, "lora_mix": replace(base, output_dir=str(work / "lora_mix"), gated=False)}
    for k, name in enumerate(sources):
        onehot = [1.0 if j == k else 0.0 for j in range(len(sources))]
        runs[f"lora_{name}"] = replace(base, output_dir=str(work / f"lora_{name}"), gated=False, fixed_mixture=onehot,
                                       batch_size=s.batch_size)
    return runs


# Settings a plain LoRA never reads: a baseline trained with other gate settings is the same baseline.
_GATE_FIELDS = ("unit_size", "gate_function", "gate_width", "gate_floor", "gate_normalize", "balanced_positions",
                "concentration", "vertex_fraction")


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


def _train_in_worker(cfg: AbcAdaptConfig, base_model: str | None) -> dict:
    """One training in a worker process (one torch thread, its own copy of the base): wall and CPU seconds."""
    torch.set_num_threads(1)
    quiet_third_party()
    wall, cpu = time.perf_counter(), time.process_time()
    base, tokenizer = load_model(base_model)
    train_adapter(cfg, base, tokenizer, log=lambda *a: None)
    return {"wall": round(time.perf_counter() - wall, 1), "cpu": round(time.process_time() - cpu, 1)}


def train_in_parallel(runs: dict[str, AbcAdaptConfig], base_model: str | None, jobs: int, log=print) -> dict[str, dict]:
    """Train ``runs`` ``jobs`` at a time, each in a ``spawn``-ed process with one torch thread.

    The runs are independent (each has its own rows, seed and folder), so this changes no weight: a run trained
    here and one trained in the bench's own process start from the same base weights and read the same rows
    (``tests/abcgpt/adapter/test_bench.py`` checks the curves agree). One thread per process on its own core,
    rather than two threads in one process, because two threads of one small matrix multiply wait on each
    other at every op. Returns ``{run: {"wall": s, "cpu": s}}`` measured inside each worker.
    """
    done = _run_in_workers(_train_in_worker, [(cfg, base_model) for cfg in runs.values()], jobs)
    out = dict(zip(runs, done))
    for key, figures in out.items():
        log(f"== trained {key} in a worker: {figures['wall']} s wall, {figures['cpu']} CPU-s")
    return out


def _run_in_workers(fn, calls: list[tuple], jobs: int) -> list:
    """``[fn(*args) for args in calls]``, ``jobs`` at a time in ``spawn``-ed processes (results in order)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and locks mid-state
    with ProcessPoolExecutor(max_workers=min(jobs, len(calls)), mp_context=ctx) as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]


@torch.no_grad()
def sample_scores(abc, specialist_a, specialist_b, tokenizer, seed: int, n_samples: int, length: int, prompt: str,
                  alphas=ALPHA_GRID) -> list[list[float]]:
    """Per-sample source score at each α for one sampling seed: ``n_samples`` samples written at α with ``seed``
    (the same seed at every α), each scored by its mean per-token log p_b − log p_a under the two specialists
    (abcGPT's :func:`~hf_steer.abcgpt.evaluation.source_score`, kept per sample so the bench can give intervals)."""
    rows = []
    for a in alphas:
        samples = sample(abc, tokenizer, a, n_samples, length, prompt=prompt, seed=seed)
        rows.append((mean_logprob(specialist_b, samples) - mean_logprob(specialist_a, samples)).tolist())
    return rows


def _score_in_worker(folders: dict[str, str], base_model: str | None, seed: int, n_samples: int, length: int,
                     prompt: str) -> dict:
    """:func:`sample_scores` in a worker process (one thread), on the adapters saved in ``folders``."""
    from peft import PeftModel

    from .adapt_trainer import load_adapter

    torch.set_num_threads(1)
    quiet_third_party()
    wall, cpu = time.perf_counter(), time.process_time()
    abc, tokenizer = load_adapter(folders["abc"], base_model=base_model)
    base, _ = load_model(base_model)
    spec_a = PeftModel.from_pretrained(copy.deepcopy(base), folders["a"]).eval()
    spec_b = PeftModel.from_pretrained(base, folders["b"]).eval()
    rows = sample_scores(abc, spec_a, spec_b, tokenizer, seed, n_samples, length, prompt)
    return {"rows": rows, "wall": round(time.perf_counter() - wall, 1), "cpu": round(time.process_time() - cpu, 1)}


def summarize_scores(by_seed: list[list[list[float]]], alphas=ALPHA_GRID) -> dict:
    """The source score along the dial from per-sample scores ``by_seed[seed][alpha][sample]``.

    Per α: the mean over every sample of every seed with its 95% t-interval, the share scored as source b, and
    each seed's own mean. Between neighbouring α: the step of the mean with a paired 95% interval (sample i of
    a seed at α and at the next α start from the same random numbers, so their difference is the dial's effect
    plus less noise than two independent means). ``monotone`` is the strict check on the means (the issue's
    goal); ``reversals_beyond_noise`` counts the steps down whose paired interval lies wholly below zero.
    """
    per_alpha = [np.concatenate([np.asarray(seed_rows[i]) for seed_rows in by_seed]) for i in range(len(alphas))]
    rows = []
    for i, a in enumerate(alphas):
        mean, low, high = mean_ci95(per_alpha[i])
        rows.append({"alpha": a, "score": round(mean, 5), "ci95": [round(low, 5), round(high, 5)],
                     "fraction_b": round(float((per_alpha[i] > 0).mean()), 4),
                     "score_by_seed": [round(float(np.mean(seed_rows[i])), 5) for seed_rows in by_seed]})
    steps = []
    for i in range(len(alphas) - 1):
        mean, low, high = mean_ci95(per_alpha[i + 1] - per_alpha[i])
        steps.append({"from": alphas[i], "to": alphas[i + 1], "step": round(mean, 5), "ci95": [round(low, 5), round(high, 5)]})
    values = [r["score"] for r in rows]
    return {
        "source_score_by_alpha": rows,
        "source_score_steps": steps,
        "spearman": round(spearman(list(alphas), values), 4),
        "monotone": bool((np.diff(values) >= 0).all()),
        "reversals_beyond_noise": sum(st["ci95"][1] < 0 for st in steps),
        "max_step_fraction": round(_max_step_fraction(values), 4),
    }


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
    worker_cpu = 0.0  # CPU seconds spent in worker processes (process_time counts only this one)
    if s.jobs > 1:
        log(f"== training {len(runs)} runs, {s.jobs} at a time in worker processes (one thread each)")
        with Timer() as t:
            done = train_in_parallel(runs, str(model) if model else None, s.jobs, log=log)
        wall["trainings_in_workers"] = round(t.wall, 1)
        for key, figures in done.items():
            wall[f"train_{key}"], cpu[f"train_{key}"] = figures["wall"], figures["cpu"]
            worker_cpu += figures["cpu"]
    for key, cfg in runs.items():
        # jobs > 1: every run is finished in its folder, so this only loads it (train_adapter resumes at its end)
        log(f"== training {key} ({cfg.steps} steps of {cfg.batch_size}x{cfg.block_size} tokens)")
        with Timer() as t:
            trained[key] = train_adapter(cfg, copy.deepcopy(base), tokenizer, corpus, log=log).eval()
        name = f"train_{key}" if s.jobs == 1 else f"load_{key}"
        wall[name], cpu[name] = round(t.wall, 1), round(t.cpu, 1)
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

    log(f"== sampling along the dial ({s.score_seeds} seeds x {s.n_samples} samples per alpha)")
    seeds = [seed + k for k in range(s.score_seeds)]
    with Timer() as t:
        if s.jobs > 1:  # one worker per seed, on the adapters saved in the work folder
            folders = {"abc": runs["abc"].output_dir, "a": runs[f"lora_{names[0]}"].output_dir,
                       "b": runs[f"lora_{names[1]}"].output_dir}
            done = _run_in_workers(_score_in_worker, [(folders, str(model) if model else None, k, s.n_samples,
                                                       s.sample_length, s.sample_prompt) for k in seeds], s.jobs)
            by_seed = [d["rows"] for d in done]
            worker_cpu += sum(d["cpu"] for d in done)
            score_cpu = sum(d["cpu"] for d in done)
        else:
            by_seed = [sample_scores(abc, spec[names[0]], spec[names[1]], tokenizer, k, s.n_samples, s.sample_length,
                                     s.sample_prompt) for k in seeds]
            score_cpu = 0.0
    wall["source_score"], cpu["source_score"] = round(t.wall, 1), round(t.cpu + score_cpu, 1)
    result.update(summarize_scores(by_seed))
    result["source_score_definition"] = (
        f"mean per-token log p_{names[1]}(x) - log p_{names[0]}(x) under the two specialist LoRAs, "
        f"{s.score_seeds} sampling seeds x {s.n_samples} samples x {s.sample_length} tokens per alpha, temperature 1, "
        f"prompt {s.sample_prompt!r}, the same seeds at every alpha; ci95: 95% t-interval of the mean over samples; "
        "steps: paired by seed and sample"
    )
    rho = result["spearman"]

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
    cpu["total"] = round(time.process_time() - cpu_started + worker_cpu, 1)  # this process and the workers
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
    if all("ci95" in r for r in rows):
        ax.fill_between([r["alpha"] for r in rows], [r["ci95"][0] for r in rows], [r["ci95"][1] for r in rows],
                        color="C2", alpha=0.2, linewidth=0, label="95% interval of the mean")
        ax.legend(fontsize=7, loc="lower right")
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
