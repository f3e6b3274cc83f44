"""`hf-steer abc adapt train/generate/bench` from the user's side (tiny base model), and one-line errors."""

import json

import pytest

from hf_steer.cli import main

TINY = ["--r", "4", "--layers", "all", "--block-size", "24", "--batch-size", "2", "--steps", "2", "--eval-windows", "2",
        "--save-steps", "0", "--threads", "1"]


def run(argv):
    """Exit status of `hf-steer argv`, whether argparse (usage errors) or the command ends it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def trained(tiny_sources, tiny_base_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapt_cli") / "dial"
    argv = ["abc", "adapt", "train", "--base-model", str(tiny_base_folder), "--output-dir", str(out), *TINY]
    for name, path in tiny_sources.items():
        argv += ["--source", f"{name}={path}"]
    assert main(argv) == 0
    return out


def test_train_then_generate_at_a_dial(trained, capsys):
    assert json.loads((trained / "adapter_config.json").read_text())["peft_type"] == "ABC_ADAPTER"
    capsys.readouterr()
    assert main(["abc", "adapt", "generate", "--adapter", str(trained), "--alpha", "0.3", "--prompt", "Once",
                 "--max-new-tokens", "5", "--threads", "1"]) == 0
    assert capsys.readouterr().out.startswith("Once")
    assert main(["abc", "adapt", "generate", "--adapter", str(trained), "--mix", "shakespeare=0.7,tinystories=0.3",
                 "--num-samples", "2", "--max-new-tokens", "4", "--chat", "--prompt", "Hi"]) == 0
    assert capsys.readouterr().out.count("--- sample") == 2


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--alpha", "1.5"], "alpha is 1.5: it must lie in [0, 1] (0 = tinystories, 1 = shakespeare)"),
        (["--alpha", "nan"], "argument --alpha: 'nan' is not a finite number"),
        (["--mix", "shakespeare=0.7,tinystories=0.2"], "weights sum to 0.9, not 1"),
        (["--mix", "shakespeare=0.5,poems=0.5"], "names unknown source 'poems'"),
        (["--alpha", "0.5", "--temperature", "0"], "argument --temperature: '0' must be above 0"),
    ],
)
def test_bad_dials_are_one_line_exit_2(trained, capsys, extra, needle):
    capsys.readouterr()
    assert run(["abc", "adapt", "generate", "--adapter", str(trained), "--threads", "1", *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("hf-steer") and ": error: " in err and err.count("\n") == 1


def test_adapter_on_another_base_is_one_line(trained, other_base_folder, capsys):
    capsys.readouterr()
    assert main(["abc", "adapt", "generate", "--adapter", str(trained), "--alpha", "0.5", "--threads", "1",
                 "--base-model", str(other_base_folder)]) == 2
    err = capsys.readouterr().err
    assert "was trained on base model" in err and err.count("\n") == 1


def test_bad_training_inputs_are_one_line(tiny_sources, tiny_base_folder, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    base = ["abc", "adapt", "train", "--base-model", str(tiny_base_folder), "--output-dir", str(tmp_path / "o"), *TINY]
    both = ["--source", f"a={tiny_sources['tinystories']}", "--source", f"b={tiny_sources['shakespeare']}"]
    cases = [
        (["--source", f"a={empty}", "--source", f"b={tiny_sources['shakespeare']}"], "corpus file for source 'a' is empty"),
        (["--source", f"a={tiny_sources['tinystories']}"], "1 source(s) given"),
        (["--source", "a=missing.txt", "--source", f"b={tiny_sources['shakespeare']}"], "is missing"),
        ([*both, "--unit-size", "3"], "unit_size 3 does not divide r=4"),
        ([*both, "--layers", "40-45"], "do not fit this model"),
        ([*both, "--layers", "x"], "is not a list of block indices"),
        ([*both, "--fixed-mixture", "0.5", "0.6"], "fixed_mixture is [0.5, 0.6]"),
    ]
    for extra, needle in cases:
        capsys.readouterr()
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_missing_adapter_folder_is_one_line(tmp_path, capsys):
    assert main(["abc", "adapt", "generate", "--adapter", str(tmp_path), "--alpha", "0.5"]) == 2
    assert "has no adapter_config.json" in capsys.readouterr().err
