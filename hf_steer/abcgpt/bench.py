"""The dial benchmark behind ``hf-steer abc bench``.

Trains, with equal size and steps: the gated abcGPT on the source mixture, an ungated GPT on the same
mixture, and one ungated specialist per source. Then measures
- ``loss_by_alpha``: the gated model's held-out loss on each source at α = 0, 0.1, …, 1;
- ``specialist_loss`` / ``mixture_loss``: each source's held-out loss under its specialist / the ungated mix;
- ``source_score_by_alpha``: samples generated at each α, scored by the log-likelihood ratio
  log p_second(x) − log p_first(x) per character under the two specialists; ``spearman`` of score vs α;
- ``throughput_ratio``: gated vs ungated training tokens/s, timed on the same batches in alternation.
Goals from the issue are checked and reported as booleans, never tuned away.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ..benchmarking import check_output_json, machine_info, write_report
from ..errors import HfSteerError
from .config import BenchConfig, TrainConfig, field_names
from .evaluation import (
    ALPHA_GRID,
    evaluate_loss,
    loss_by_alpha,
    plot_alpha_curves,
    sample,
    source_score,
    spearman,
)
from .training import prepare_data, sample_batch, train, write_artifact_files


def measure_throughput(models: dict, corpus, cfg: TrainConfig, rounds: int = 5, steps: int = 5) -> dict:
    """Training tokens/s of each model, timed in alternation on identical batches (fair on a shared CPU).

    Returns the median over rounds per model. Copies are trained so the benchmarked models stay untouched.
    """
    import copy

    timings = {name: [] for name in models}
    copies = {name: copy.deepcopy(m).train() for name, m in models.items()}
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in copies.items()}
    rng = np.random.default_rng(12345)
    device = next(iter(models.values())).device
    batches = [tuple(t.to(device) for t in sample_batch(corpus, rng, cfg.batch_size, cfg.block_size)[:2]) for _ in range(steps)]
    for r in range(rounds + 1):
        for name, m in copies.items():
            t0 = time.perf_counter()
            for x, mix in batches:
                loss = m(input_ids=x, alpha=mix, labels=x, use_cache=False).loss
                loss.backward()
                opts[name].step()
                opts[name].zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()  # kernels run asynchronously: wait for them before reading the clock
            if r:  # round 0 warms up allocators and kernels
                timings[name].append(steps * x.numel() / (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in timings.items()}


def run_bench(output_json: str | Path, *, model=None, seed: int = 0, log=print, **settings) -> dict:
    """Run the benchmark, write JSON (+ PNG beside it) and return the figures.

    ``settings`` are :class:`~hf_steer.abcgpt.config.TrainConfig` fields for the four models (``steps``,
    ``n_embd``, ``sources`` ...; default: the bundled tinystories and shakespeare) and
    :class:`~hf_steer.abcgpt.config.BenchConfig` fields (``n_samples``, ``sample_length`` ...).
    ``model`` is part of every bench's signature; abcGPT's bench trains its models from scratch, so it
    must stay ``None``.
    """
    from .training import BUNDLED_SOURCES

    if model is not None:
        raise HfSteerError("abcGPT's bench trains its four models from scratch: call run_bench without model")
    train_fields, bench_fields = field_names(TrainConfig) - {"output_dir", "seed"}, field_names(BenchConfig)
    unknown = sorted(set(settings) - train_fields - bench_fields)
    if unknown:
        raise HfSteerError(f"run_bench got unknown setting(s) {', '.join(unknown)}: use TrainConfig or BenchConfig fields")
    bench = BenchConfig(**{k: v for k, v in settings.items() if k in bench_fields})
    sources = settings.pop("sources", None) or {
        "tinystories": str(BUNDLED_SOURCES["tinystories"]), "shakespeare": str(BUNDLED_SOURCES["shakespeare"])}
    if len(sources) != 2:
        raise HfSteerError(f"bench takes exactly two sources, got {len(sources)}: the source score compares two specialists")
    output_json = check_output_json(output_json)
    work = Path(bench.work_dir).expanduser() if bench.work_dir else output_json.parent / (output_json.stem + "_models")
    names = list(sources)
    train_settings = {k: v for k, v in settings.items() if k in train_fields}
    train_settings.update(output_dir=str(work / "gated"), eval_batches=bench.eval_batches, seed=seed, save_every=0,
                          write_artifacts=False)
    base = TrainConfig(sources=sources, **train_settings)
    base = replace(base, log_every=max(1, base.steps // 5))
    if bench.sample_length + 1 > base.block_size:
        raise HfSteerError(
            f"sample_length={bench.sample_length} does not fit block_size={base.block_size}: use a sample of at most "
            f"{base.block_size - 1} characters (the specialists score it in one window)"
        )
    steps, block_size, batch_size, eval_batches = base.steps, base.block_size, base.batch_size, bench.eval_batches
    n_samples, sample_length = bench.n_samples, bench.sample_length
    runs = {"gated": base, "ungated": replace(base, output_dir=str(work / "ungated"), gated=False)}
    for k, name in enumerate(names):
        onehot = [1.0 if j == k else 0.0 for j in range(len(names))]
        runs[f"specialist_{name}"] = replace(base, output_dir=str(work / f"specialist_{name}"), gated=False, fixed_mixture=onehot)

    prepared = prepare_data(base)
    results, wall = {}, {}
    for key, cfg in runs.items():
        log(f"== training {key} ({steps} steps)")
        t0 = time.perf_counter()
        results[key] = train(cfg, prepared)
        wall[key] = round(time.perf_counter() - t0, 1)
    gated, ungated = results["gated"].model, results["ungated"].model
    corpus = results["gated"].corpus
    spec = {name: results[f"specialist_{name}"].model for name in names}

    log("== evaluating")
    curves = loss_by_alpha(gated, corpus, block_size, eval_batches, batch_size)
    specialist_loss = {n: round(evaluate_loss(spec[n], corpus.val[n], None, block_size, eval_batches, batch_size), 5) for n in names}
    mixture_loss = {n: round(evaluate_loss(ungated, corpus.val[n], None, block_size, eval_batches, batch_size), 5) for n in names}
    endpoint_gap = {
        names[0]: round(curves[names[0]][0] / specialist_loss[names[0]] - 1, 4),
        names[1]: round(curves[names[1]][-1] / specialist_loss[names[1]] - 1, 4),
    }

    log("== sampling along the dial")
    scores = []
    for i, a in enumerate(ALPHA_GRID):
        samples = sample(gated, results["gated"].tokenizer, a, n_samples, sample_length, seed=seed + i)
        scores.append({"alpha": a, **source_score(samples, spec[names[0]], spec[names[1]])})
    score_values = [s["score"] for s in scores]
    rho = spearman(ALPHA_GRID, score_values)
    span = max(score_values) - min(score_values)
    steps_between = np.diff(score_values)
    max_jump = float(np.abs(steps_between).max() / span) if span > 0 else float("nan")
    # An ideal linear transition moves 1/10 of the span per step; a step function moves all of it at once.
    gradual = bool(span > 0 and max_jump <= 0.5)

    log("== timing")
    tps = measure_throughput({"gated": gated, "ungated": ungated}, corpus, base, rounds=bench.throughput_rounds)
    throughput_ratio = round(tps["gated"] / tps["ungated"], 4)

    n_params = sum(p.numel() for p in gated.parameters())
    report = {
        "sources": names,
        "dial": f"alpha=0 is {names[0]}, alpha=1 is {names[1]}",
        "alphas": ALPHA_GRID,
        "loss_by_alpha": curves,
        "specialist_loss": specialist_loss,
        "mixture_loss": mixture_loss,
        "endpoint_gap_vs_specialist": endpoint_gap,
        "source_score_by_alpha": scores,
        "source_score_definition": f"mean per-char log p_{names[1]}(x) - log p_{names[0]}(x) under the specialists, "
        f"{n_samples} samples x {sample_length} chars per alpha, temperature 1",
        "spearman": round(rho, 4),
        "max_step_fraction": round(max_jump, 4),
        "throughput_ratio": throughput_ratio,
        "tokens_per_second": {k: round(v, 1) for k, v in tps.items()},
        "train_tokens_per_second": {k: round(r.tokens_per_second, 1) for k, r in results.items()},
        "final_train_loss": {k: round(r.final_train_loss, 4) for k, r in results.items()},
        "goals": {
            "endpoints_within_3pct_of_specialist": bool(all(g <= 0.03 for g in endpoint_gap.values())),
            "spearman_at_least_0.95": bool(rho >= 0.95),
            "gradual_transition": gradual,
            "throughput_at_least_0.85": bool(throughput_ratio >= 0.85),
        },
        "config": {
            **{k: v for k, v in asdict(base).items() if k not in ("sources", "output_dir", "extra", "write_artifacts",
                                                                   "fixed_mixture", "resume", "save_every")},
            "gates": [f for f, on in base.gates.items() if on], "params": n_params,
            "eval_windows_per_source": eval_batches * batch_size, "n_samples": n_samples, "sample_length": sample_length,
        },
        "wall_seconds": wall,
        "machine": machine_info(),
    }
    # The gated model's folder becomes a pushable artifact whose card carries the bench's α curves.
    # Card table: one row per source, columns α=0..1 then the two references.
    write_artifact_files(
        Path(base.output_dir), gated, results["gated"].tokenizer, corpus, base,
        metrics_extra={"specialist": specialist_loss, "ungated mix": mixture_loss}, curves=curves,
        reference={"specialist": specialist_loss, "mixture": mixture_loss},
    )
    write_report(report, output_json, plot=_plot)
    return report


def _plot(report: dict, path: Path) -> None:
    from ..plotting import pyplot, save_figure

    plt = pyplot()

    names = report["sources"]
    curves_png = path.with_name(path.stem + "_curves.png")
    plot_alpha_curves(report["loss_by_alpha"], curves_png, "held-out loss along the dial",
                      report["specialist_loss"], report["mixture_loss"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, n in enumerate(names):
        axes[0].plot(report["alphas"], report["loss_by_alpha"][n], marker="o", color=f"C{i}", label=f"{n} (gated)")
        axes[0].axhline(report["specialist_loss"][n], color=f"C{i}", linestyle="--", linewidth=1, label=f"{n} specialist")
        axes[0].axhline(report["mixture_loss"][n], color=f"C{i}", linestyle=":", linewidth=1, label=f"{n} ungated mix")
    axes[0].set_xlabel(f"α (0 = {names[0]}, 1 = {names[1]})")
    axes[0].set_ylabel("held-out loss (nats/char)")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    s = report["source_score_by_alpha"]
    axes[1].plot([r["alpha"] for r in s], [r["score"] for r in s], marker="o", color="C2")
    axes[1].axhline(0, color="grey", linewidth=0.8)
    axes[1].set_xlabel("α")
    axes[1].set_ylabel(f"log p_{names[1]} − log p_{names[0]} per char")
    axes[1].set_title(f"source score of samples (Spearman {report['spearman']:.3f})", fontsize=9)
    axes[1].grid(alpha=0.3)
    fig.suptitle(f"abcGPT dial bench: {report['config']['params'] / 1e6:.2f}M params, {report['config']['steps']} steps, "
                 f"throughput ratio {report['throughput_ratio']:.2f}", fontsize=10)
    save_figure(fig, path)
