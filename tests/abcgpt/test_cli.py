"""`hf-steer abc train/generate/bench` end to end on tiny settings, and one-line errors for bad input."""

import json

import pytest

from hf_steer.abcgpt.bench import run_bench
from hf_steer.abcgpt.generation import parse_mix
from hf_steer.abcgpt.training import parse_source_specs, read_source
from hf_steer.cli import main
from hf_steer.errors import HfSteerError

TINY = ["--steps", "4", "--n-embd", "16", "--n-layer", "1", "--n-head", "2", "--block-size", "64", "--batch-size", "4"]


@pytest.fixture(scope="module")
def trained(tiny_sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("abc_cli") / "model"
    argv = ["abc", "train", "--output-dir", str(out), "--gates", "mlp,heads", "--gate-floor", "0.2", *TINY]
    for name, path in tiny_sources.items():
        argv += ["--source", f"{name}={path}"]
    assert main(argv) == 0
    return out


def test_train_then_generate_with_alpha_and_mix(trained, capsys):
    capsys.readouterr()
    assert main(["abc", "generate", "--model", str(trained), "--alpha", "0.3", "--max-new-tokens", "20",
                 "--prompt", "Once", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Once") and len(text.rstrip("\n")) >= 20
    config = json.loads((trained / "config.json").read_text())
    assert (config["gate_residual"], config["gate_mlp"], config["gate_heads"]) == (False, True, True)
    assert main(["abc", "generate", "--model", str(trained), "--mix", "shakespeare=0.7,tinystories=0.3",
                 "--max-new-tokens", "10", "--num-samples", "2"]) == 0
    assert capsys.readouterr().out.count("--- sample") == 2


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--alpha", "1.5"], "alpha is 1.5: it must lie in [0, 1] (0 = tinystories, 1 = shakespeare)"),
        (["--alpha", "nan"], "alpha is nan: pass a number in [0, 1]"),
        (["--mix", "shakespeare=0.7,tinystories=0.2"], "--mix weights sum to 0.9, not 1"),
        (["--mix", "shakespeare=0.5,poems=0.5"], "--mix names unknown source 'poems'"),
        (["--mix", "shakespeare"], "is not NAME=WEIGHT"),
    ],
)
def test_generate_bad_dial_is_one_line_exit_2(trained, capsys, extra, needle):
    capsys.readouterr()
    assert main(["abc", "generate", "--model", str(trained), *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("hf-steer: error: ") and err.count("\n") == 1


def test_corpus_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(HfSteerError, match="corpus file for source 'a' is empty"):
        read_source("a", empty)
    with pytest.raises(HfSteerError, match="corpus file for source 'b' is missing"):
        read_source("b", tmp_path / "nope.txt")
    with pytest.raises(HfSteerError, match="is given twice"):
        parse_source_specs(["a=x.txt", "a=y.txt"])
    with pytest.raises(HfSteerError, match="needs two or more"):
        parse_source_specs(["shakespeare"])
    assert main(["abc", "train", "--output-dir", str(tmp_path / "o"), "--gates", "mlp,neurons", *TINY]) == 2
    assert "--gates 'mlp,neurons' is not a list of residual,mlp,heads" in capsys.readouterr().err
    assert main(["abc", "train", "--output-dir", str(tmp_path / "o"), "--source", f"a={empty}",
                 "--source", f"b={tmp_path / 'nope.txt'}", *TINY]) == 2
    err = capsys.readouterr().err
    assert "corpus file for source 'a' is empty" in err and err.count("\n") == 1


def test_parse_mix_orders_weights_by_the_models_sources():
    assert parse_mix("c=0.5, a=0.5", ["a", "b", "c"]) == [0.5, 0.0, 0.5]
    assert parse_mix({"b": 1.0}, ["a", "b", "c"]) == [0.0, 1.0, 0.0]
    with pytest.raises(HfSteerError, match="must each lie in"):
        parse_mix("a=1.5,b=-0.5", ["a", "b"])


def test_train_flags_reach_the_saved_config(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["gate_floor"] == 0.2 and config["gate_residual"] is False and config["gate_mlp"] is True


def test_bench_writes_every_figure(tiny_sources, tmp_path):
    report = run_bench(tmp_path / "bench.json", sources=tiny_sources, steps=2, n_embd=16, n_layer=1, n_head=2,
                       block_size=24, batch_size=2, eval_batches=1, n_samples=2, sample_length=8,
                       throughput_rounds=1, log=lambda *_: None)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["spearman"] == report["spearman"]
    for key in ("loss_by_alpha", "specialist_loss", "mixture_loss", "source_score_by_alpha", "spearman",
                "throughput_ratio", "goals"):
        assert key in saved
    assert [len(v) for v in saved["loss_by_alpha"].values()] == [11, 11]
    assert [s["alpha"] for s in saved["source_score_by_alpha"]] == saved["alphas"]
    assert saved["throughput_ratio"] > 0 and set(saved["specialist_loss"]) == {"tinystories", "shakespeare"}
    assert (tmp_path / "bench.png").stat().st_size > 1000
