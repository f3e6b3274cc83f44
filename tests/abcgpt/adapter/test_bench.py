"""`hf-steer abc adapt bench` end to end on a tiny base model: every figure, the goals, the PNG, resuming."""

import json
import math

from hf_steer.abcgpt.adapter.bench import CHAT_QUESTIONS
from hf_steer.cli import main

TINY = ["--steps", "2", "--r", "4", "--layers", "all", "--block-size", "24", "--batch-size", "2", "--heldout-windows", "8",
        "--n-samples", "2", "--sample-length", "4", "--chat-tokens", "3", "--speed-new-tokens", "3", "--speed-rounds", "1",
        "--threads", "1"]


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
    assert len(report["source_score_by_alpha"]) == 11
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
