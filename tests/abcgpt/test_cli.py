"""`hf-steer abc train/generate/bench` end to end on tiny settings, and one-line errors for bad input."""

import json

import pytest

from hf_steer.abcgpt.bench import run_bench
from hf_steer.abcgpt.generation import parse_mix
from hf_steer.abcgpt.training import parse_source_specs, read_source
from hf_steer.cli import main
from hf_steer.errors import HfSteerError

from .conftest import TINY


def run(argv, capsys) -> tuple[int, str, str]:
    """``hf-steer ARGV`` as a user runs it: (exit status, stdout, stderr); argparse's own errors exit 2 too."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


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
        (["--alpha", "-0.5"], "alpha is -0.5: it must lie in [0, 1]"),
        (["--mix", "shakespeare=0.7,tinystories=0.2"], "--mix weights sum to 0.9, not 1"),
        (["--mix", "shakespeare=0.5,poems=0.5"], "--mix names unknown source 'poems'"),
        (["--mix", "shakespeare"], "is not NAME=WEIGHT"),
    ],
)
def test_generate_bad_dial_is_one_line_exit_2(trained, capsys, extra, needle):
    code, _, err = run(["abc", "generate", "--model", str(trained), *extra], capsys)
    assert code == 2 and needle in err and err.startswith("hf-steer: error: ") and err.count("\n") == 1


def test_generate_with_default_settings_writes_past_the_context(trained, capsys):
    """The documented command: 200 characters (the default) from a model that sees 64 at a time."""
    code, out, err = run(["abc", "generate", "--model", str(trained), "--alpha", "0.2", "--threads", "1"], capsys)
    assert code == 0, err
    # 200 sampled characters (a few may be <unk>/<|endoftext|>, which decoding drops): 3x the context
    assert len(out) > 190
    code, out, _ = run(["abc", "generate", "--model", str(trained), "--alpha", "0.2", "--prompt", "x" * 100,
                        "--max-new-tokens", "30"], capsys)
    assert code == 0 and out.startswith("x" * 100) and len(out) > 120  # a prompt longer than the context


@pytest.mark.parametrize("kind", ["missing", "file", "no_config", "other_model", "bad_json"])
def test_generate_bad_model_path_is_one_line(tmp_path, capsys, kind):
    path = tmp_path / kind
    if kind == "file":
        path.write_text("weights?")
    elif kind != "missing":
        path.mkdir()
        if kind == "other_model":
            (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
        elif kind == "bad_json":
            (path / "config.json").write_text("{not json")
    code, out, err = run(["abc", "generate", "--model", str(path), "--alpha", "0.2"], capsys)
    needle = {"missing": "does not exist", "file": "is a file", "no_config": "has no config.json",
              "other_model": "holds a 'llama' model, not abcGPT", "bad_json": "is not valid JSON"}[kind]
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err
    code, _, err = run(["abc", "generate", "--model", "/nonexistent", "--alpha", "0.2"], capsys)
    assert code == 2 and err == (
        "hf-steer: error: model folder /nonexistent does not exist: pass a folder written by `hf-steer abc train` "
        "(or a Hub id)\n"
    )


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
    code, _, err = run(["abc", "train", "--output-dir", str(tmp_path / "o"), "--gates", "mlp,neurons", *TINY], capsys)
    assert code == 2 and "--gates 'mlp,neurons' is not a list of residual,mlp,heads" in err
    code, _, err = run(["abc", "train", "--output-dir", str(tmp_path / "o"), "--source", f"a={empty}",
                        "--source", f"b={tmp_path / 'nope.txt'}", *TINY], capsys)
    assert code == 2
    assert "corpus file for source 'a' is empty" in err and err.count("\n") == 1


def test_parse_mix_orders_weights_by_the_models_sources():
    assert parse_mix("c=0.5, a=0.5", ["a", "b", "c"]) == [0.5, 0.0, 0.5]
    assert parse_mix({"b": 1.0}, ["a", "b", "c"]) == [0.0, 1.0, 0.0]
    with pytest.raises(HfSteerError, match="must each lie in"):
        parse_mix("a=1.5,b=-0.5", ["a", "b"])


def test_train_flags_reach_the_saved_config(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["gate_floor"] == 0.2 and config["gate_residual"] is False and config["gate_mlp"] is True


def test_bench_writes_every_figure(tiny_sources, tmp_path, capsys):
    argv = ["abc", "bench", "--output-json", str(tmp_path / "bench.json"), "--steps", "2", "--n-embd", "16",
            "--n-layer", "1", "--n-head", "2", "--block-size", "24", "--batch-size", "2", "--eval-batches", "1",
            "--n-samples", "2", "--sample-length", "8", "--throughput-rounds", "1", "--threads", "1"]
    for name, path in tiny_sources.items():
        argv += ["--source", f"{name}={path}"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert f"wrote {tmp_path / 'bench.json'} and bench.png" in out and '"spearman"' in out
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["machine"]["torch_threads"] == 1 and "load_average" in saved["machine"]
    assert saved["config"]["steps"] == 2 and saved["config"]["gates"] == ["residual", "mlp", "heads"]
    for key in ("loss_by_alpha", "specialist_loss", "mixture_loss", "source_score_by_alpha", "spearman",
                "throughput_ratio", "goals"):
        assert key in saved
    assert [len(v) for v in saved["loss_by_alpha"].values()] == [11, 11]
    assert [s["alpha"] for s in saved["source_score_by_alpha"]] == saved["alphas"]
    assert saved["throughput_ratio"] > 0 and set(saved["specialist_loss"]) == {"tinystories", "shakespeare"}
    assert (tmp_path / "bench.png").stat().st_size > 1000
    with pytest.raises(HfSteerError, match="trains its four models from scratch"):
        run_bench(tmp_path / "x.json", model="some/model")
    with pytest.raises(HfSteerError, match="unknown setting"):
        run_bench(tmp_path / "x.json", n_embed=16)
