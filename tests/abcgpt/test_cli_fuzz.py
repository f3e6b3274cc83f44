"""Bad values for every numeric and path flag of `hf-steer abc`: exit 2 and one error line, never a traceback.

The numeric flags are found in the parser itself (every flag whose type parses an int or a float), so a flag
added later is fuzzed too. Each bad invocation starts from a valid tiny one and spoils one flag.
"""

from __future__ import annotations

import argparse

import pytest

from hf_steer.cli import build_parser, main

from .conftest import TINY

# Bad for every flag of that kind ("0" is not here: it is a setting for some, e.g. --save-every, --gate-floor).
BAD_NUMBERS = ["-1", "0.5", "nan", "1e400", "99999999999999999999", "ten"]
BAD_FOR_FLOATS = ["-1", "nan", "-inf", "1e300", ""]


def numeric_flags(command: str) -> dict[str, str]:
    """``{flag: "int" | "float"}`` for every numeric flag of ``hf-steer abc COMMAND``."""
    parser = build_parser()
    abc = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["abc"]
    sub = next(a for a in abc._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = {}
    for action in sub._actions:
        kind = getattr(action.type, "__name__", None)
        if action.option_strings and kind in ("int", "float"):
            flags[action.option_strings[0]] = kind
    return flags


def invoke(argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_refused(argv, capsys, needle: str = "") -> None:
    code, err = invoke(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and ": error: " in err, " ".join(argv[2:]) + " -> " + err
    assert needle in err, (argv, err)


def with_flag(base: list[str], flag: str, value: str) -> list[str]:
    """``base`` with ``flag`` set to ``value`` (replacing it when present)."""
    argv = list(base)
    if flag in argv:
        i = argv.index(flag)
        del argv[i : i + 2]
    return [*argv, f"{flag}={value}"]  # `=` so "-1" and "" reach the flag's own parser


def sources_argv(tiny_sources) -> list[str]:
    return [x for name, path in tiny_sources.items() for x in ("--source", f"{name}={path}")]


def test_train_numeric_flags(tiny_sources, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["abc", "train", "--output-dir", str(tmp_path / "out"), *TINY, *sources_argv(tiny_sources)]
    flags = numeric_flags("train")
    assert {"--steps", "--n-embd", "--learning-rate", "--gate-floor", "--save-every", "--seed", "--threads",
            "--fixed-mixture"} <= set(flags)
    for flag, kind in flags.items():
        for value in BAD_NUMBERS if kind == "int" else BAD_FOR_FLOATS:
            assert_refused(["abc", "train", *with_flag(base[2:], flag, value)], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was written anywhere


def test_generate_numeric_flags(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["--model", str(trained), "--alpha", "0.2", "--max-new-tokens", "5"]
    flags = numeric_flags("generate")
    assert {"--alpha", "--max-new-tokens", "--temperature", "--num-samples", "--seed", "--threads"} <= set(flags)
    for flag, kind in flags.items():
        bad = BAD_NUMBERS if kind == "int" else [*BAD_FOR_FLOATS, *(["1.5"] if flag == "--alpha" else [])]
        for value in bad:
            assert_refused(["abc", "generate", *with_flag(base, flag, value)], capsys)
    assert list(tmp_path.iterdir()) == []


def test_bench_numeric_flags(tiny_sources, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["--output-json", str(tmp_path / "b.json"), "--steps", "2", "--n-embd", "16", "--n-layer", "1",
            "--n-head", "2", "--block-size", "24", "--batch-size", "2", "--n-samples", "2", "--sample-length", "8",
            "--eval-batches", "1", "--throughput-rounds", "1", *sources_argv(tiny_sources)]
    flags = numeric_flags("bench")
    assert {"--steps", "--n-samples", "--sample-length", "--throughput-rounds", "--gate-width"} <= set(flags)
    for flag, kind in flags.items():
        for value in BAD_NUMBERS if kind == "int" else BAD_FOR_FLOATS:
            assert_refused(["abc", "bench", *with_flag(base, flag, value)], capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "flag", "value", "needle"),
    [
        ("train", "--output-dir", "{file}", "is a file"),
        ("train", "--output-dir", "{file}/below", "cannot be created"),
        ("train", "--source", "a={missing}", "is missing"),
        ("train", "--source", "a={folder}", "is a folder"),
        ("generate", "--model", "{missing}", "does not exist"),
        ("generate", "--model", "{file}", "is a file"),
        ("generate", "--model", "{folder}", "has no config.json"),
        ("bench", "--output-json", "{folder}", "is a folder"),
        ("bench", "--output-json", "{file}/below/x.json", "cannot be created"),
        ("bench", "--output-json", "{folder}/x.png", "ends in .png"),
        ("bench", "--work-dir", "{file}", "cannot be created"),
        ("bench", "--source", "a={missing}", "is missing"),
    ],
)
def test_path_flags(tiny_sources, tmp_path, capsys, monkeypatch, command, flag, value, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "a_folder").mkdir()
    value = value.format(file=tmp_path / "a_file", folder=tmp_path / "a_folder", missing=tmp_path / "missing.txt")
    tiny = ["--steps", "2", "--n-embd", "16", "--n-layer", "1", "--n-head", "2", "--block-size", "24",
            "--batch-size", "2"]
    if flag == "--source":  # the spoiled source plus a good one
        sources = ["--source", value, "--source", f"b={next(iter(tiny_sources.values()))}"]
    else:
        sources = sources_argv(tiny_sources)
    if command == "train":
        argv = ["--output-dir", str(tmp_path / "out"), *tiny, *sources]
    elif command == "generate":
        argv = ["--model", str(tmp_path / "a_folder"), "--alpha", "0.2"]
    else:
        argv = ["--output-json", str(tmp_path / "b.json"), *tiny, "--n-samples", "2", "--sample-length", "8",
                "--eval-batches", "1", "--throughput-rounds", "1", *sources]
    if flag != "--source":
        argv = with_flag(argv, flag, value)
    assert_refused(["abc", command, *argv], capsys, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder"]
