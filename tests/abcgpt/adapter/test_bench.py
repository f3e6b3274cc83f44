"""`hf-steer abc adapt bench` end to end on a tiny base model: every figure, the goals, the PNG, resuming."""

import json
import math

import numpy as np
import pytest
import torch

from hf_steer.abcgpt.adapter.bench import CHAT_QUESTIONS
from hf_steer.cli import main

TINY = ["--steps", "2", "--r", "4", "--layers", "all", "--block-size", "24", "--batch-size", "2", "--heldout-windows", "8",
        "--n-samples", "2", "--sample-length", "4", "--chat-tokens", "3", "--speed-new-tokens", "3", "--speed-rounds", "1",
        "--threads", "1", "--jobs", "1"]  # in this process: worker processes are tested once, below (each costs seconds)


def test_bench_writes_every_figure(tiny_sources, tiny_base_folder, tmp_path, capsys):
    out = tmp_path / "bench.json"
    sources = [x for name, path in tiny_sources.items() for x in ("--source", f"{name}={path}")]
    argv = ["abc", "adapt", "bench", "--output-json", str(out), "--base-model", str(tiny_base_folder), *sources, *TINY]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    names = ["tinystories", "shakespeare"]
    assert report["sources"] == names and len(report["alphas"]) == 11
    assert all(len(report["loss_by_alpha"][n]) == 11 for n in names)
    for key in ("specialist_loss", "mixture_loss", "base_loss", "endpoint_gap_vs_specialist", "middle_gap_vs_mixture_lora"):
        assert set(report[key]) == set(names), key
    assert len(report["source_score_by_alpha"]) == 11 and len(report["source_score_steps"]) == 10
    assert all(len(r["score_by_seed"]) == 2 and r["ci95"][0] <= r["score"] <= r["ci95"][1] for r in report["source_score_by_alpha"])
    assert math.isnan(report["spearman"]) or -1 <= report["spearman"] <= 1  # NaN: a flat score (barely trained)
    assert report["chat_questions"] == len(CHAT_QUESTIONS) and set(report["chat_correct"]) >= {"base", "abc alpha=0.5"}
    assert report["kl_at_alpha_0.5"] >= 0 and report["generation_speed_ratio"] > 0
    assert set(report["goals"]) == {
        "endpoints_within_3pct_of_specialist", "source_score_monotone", "spearman_at_least_0.95", "max_step_at_most_0.35",
        "middle_within_3pct_of_mixture_lora", "generation_speed_at_least_0.85", "bench_within_30_minutes"}
    assert report["machine"]["torch_threads"] == 1 and "partial" not in report
    assert (tmp_path / "bench.png").stat().st_size > 5000 and report["plot"] == "bench.png"
    # the abc adapter's folder is a pushable artifact carrying the bench's curves and references
    meta = json.loads((tmp_path / "bench_runs" / "abc" / "hf_steer.json").read_text())
    assert meta["plots"] == ["alpha_curves.png"] and set(meta["metrics"]["specialist LoRA"]) == set(names)
    assert "goals" in capsys.readouterr().out
    # a second run with the same settings reuses the four trained runs (resumable)
    first = {k: v for k, v in report["wall_seconds"].items() if k.startswith("train_")}
    assert main(argv) == 0
    again = json.loads(out.read_text())
    assert again["loss_by_alpha"] == report["loss_by_alpha"]
    assert again["train_log"] == report["train_log"] and set(first) == {f"train_{k}" for k in again["train_log"]}


def test_trainings_in_worker_processes_equal_trainings_in_process(tiny_sources, tiny_base_folder, tmp_path):
    from safetensors.torch import load_file

    from hf_steer.abcgpt.adapter import AbcAdaptConfig, train_adapter
    from hf_steer.abcgpt.adapter.bench import train_in_parallel
    from hf_steer.models import load_model

    def runs(folder):
        common = dict(sources={k: str(v) for k, v in tiny_sources.items()}, base_model=str(tiny_base_folder), r=4,
                      layers="all", block_size=24, batch_size=2, steps=3, save_steps=0, eval_windows=0, vertex_fraction=0.5)
        return {"abc": AbcAdaptConfig(output_dir=str(folder / "abc"), **common),
                "lora": AbcAdaptConfig(output_dir=str(folder / "lora"), gated=False, **common)}

    figures = train_in_parallel(runs(tmp_path / "workers"), str(tiny_base_folder), jobs=2, log=lambda *a: None)
    assert set(figures) == {"abc", "lora"} and all(f["cpu"] > 0 and f["wall"] > 0 for f in figures.values())
    for key, cfg in runs(tmp_path / "here").items():
        base, tokenizer = load_model(str(tiny_base_folder))
        train_adapter(cfg, base, tokenizer, log=lambda *a: None)
        here = load_file(tmp_path / "here" / key / "adapter_model.safetensors")
        there = load_file(tmp_path / "workers" / key / "adapter_model.safetensors")
        assert here.keys() == there.keys()
        for name in here:
            torch.testing.assert_close(there[name], here[name], rtol=1e-5, atol=1e-6)
    # the source score's worker (called here, in this process) reads the saved adapters and scores what the
    # in-process path scores
    from hf_steer.abcgpt.adapter.adapt_trainer import load_adapter
    from hf_steer.abcgpt.adapter.bench import _score_in_worker, sample_scores

    folders = {"abc": str(tmp_path / "here" / "abc"), "a": str(tmp_path / "here" / "lora"), "b": str(tmp_path / "here" / "abc")}
    worker = _score_in_worker(folders, str(tiny_base_folder), seed=3, n_samples=2, length=4, prompt="\n")
    torch.set_num_threads(1)
    abc, tokenizer = load_adapter(folders["abc"], base_model=str(tiny_base_folder))
    from peft import PeftModel

    spec = [PeftModel.from_pretrained(load_model(str(tiny_base_folder))[0], folders[k]).eval() for k in ("a", "b")]
    here_rows = sample_scores(abc, spec[0], spec[1], tokenizer, 3, 2, 4, "\n")
    assert len(worker["rows"]) == 11 and all(len(r) == 2 for r in worker["rows"])
    np.testing.assert_allclose(worker["rows"], here_rows, atol=1e-5)
    assert np.abs(here_rows).max() > 0  # two different "specialists": the scores are not trivially zero


def test_source_score_summary_gives_intervals_and_paired_steps():
    from hf_steer.abcgpt.adapter.bench import summarize_scores

    alphas = [0.0, 0.5, 1.0]
    rng = torch.Generator().manual_seed(0)
    # two seeds x 40 samples; sample i shares its noise at every alpha (common random numbers)
    noise = [torch.randn(40, generator=rng) for _ in range(2)]
    means = [-1.0, 0.5, 0.45]  # the last step goes down by 0.05, far less than the spread of one sample
    by_seed = [[(m + n).tolist() for m in means] for n in noise]
    out = summarize_scores(by_seed, alphas)
    rows = out["source_score_by_alpha"]
    assert [r["alpha"] for r in rows] == alphas and all(len(r["score_by_seed"]) == 2 for r in rows)
    assert rows[0]["ci95"][0] < rows[0]["score"] < rows[0]["ci95"][1]
    assert rows[0]["ci95"][1] - rows[0]["ci95"][0] > 0.3  # 80 samples of unit spread
    assert rows[0]["fraction_b"] < 0.5 < rows[1]["fraction_b"]
    # paired steps remove the shared noise: the steps are exact, so their intervals are points
    assert [st["step"] for st in out["source_score_steps"]] == pytest.approx([1.5, -0.05])
    assert out["source_score_steps"][1]["ci95"][1] < 0 and out["reversals_beyond_noise"] == 1
    assert out["monotone"] is False and out["spearman"] == pytest.approx(0.5)
    assert out["max_step_fraction"] == pytest.approx(1.0)


def test_speed_only_needs_no_training(tiny_base_folder, tmp_path):
    out = tmp_path / "speed.json"
    assert main(["abc", "adapt", "bench", "--output-json", str(out), "--base-model", str(tiny_base_folder), "--parts", "speed",
                 "--layers", "all", "--speed-new-tokens", "3", "--speed-rounds", "1", "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    assert set(report["generation_tokens_per_second"]) == {"abc", "lora"} and report["generation_speed_ratio"] > 0
    assert not (tmp_path / "speed_runs").exists()


def test_bench_settings_errors_are_one_line(tmp_path, capsys):
    for extra, needle in [(["--parts", "speed", "--n-samples", "0"], "n_samples is 0"),
                          (["--source", "tinystories", "--source", "shakespeare", "--source", "names"], "exactly two sources")]:
        assert main(["abc", "adapt", "bench", "--output-json", str(tmp_path / "x.json"), *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1


def test_one_adapter_sees_the_rows_of_all_specialists(tmp_path):
    from hf_steer.abcgpt.adapter.adapt_config import AbcAdapterBenchConfig
    from hf_steer.abcgpt.adapter.bench import _configs

    sources = {"a": "a.txt", "b": "b.txt"}
    pooled = _configs(tmp_path, AbcAdapterBenchConfig(sources=sources, batch_size=4), seed=0, base_model=None)
    assert {k: c.batch_size for k, c in pooled.items()} == {"abc": 8, "lora_mix": 8, "lora_a": 4, "lora_b": 4}
    assert {c.steps for c in pooled.values()} == {80} and {c.r for c in pooled.values()} == {16}
    assert pooled["lora_a"].fixed_mixture == [1.0, 0.0] and pooled["abc"].gated and not pooled["lora_mix"].gated
    same = _configs(tmp_path, AbcAdapterBenchConfig(sources=sources, batch_size=4, pooled_rows=False), seed=0, base_model=None)
    assert {c.batch_size for c in same.values()} == {4}
