"""Every numeric and path flag of every ``hf-steer drugs`` command, given a bad value, exits 2 with one
error line and no traceback, before any model is loaded and without writing anything."""

from __future__ import annotations

import argparse

import pytest

from hf_steer.cli import build_parser, main

# The smallest valid line of each command: a bad flag added to it must be the only thing wrong.
BASE = {
    "generate": ["--prompt", "hi", "--dose", "A=0.1"],
    "vergence": [],
    "explore": [],
    "bench": ["--output-json", "{tmp}/bench.json"],
    "export": ["{tmp}/export"],
}
BAD_NUMBERS = ["-1", "nan", "inf", "99999999999999999999", "abc"]
PATH_FLAGS = {"--model", "--judge", "--output", "--output-json"}


PARSER = build_parser()  # built once: a parser is reusable, and building one per case costs most of the time


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = PARSER
    drugs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["drugs"]
    return next(a for a in drugs._actions if isinstance(a, argparse._SubParsersAction)).choices


def _cases():
    for command, parser in _subcommands().items():
        for action in parser._actions:
            flag = action.option_strings[0] if action.option_strings else None
            if flag in ("-h", None):
                continue
            is_number = getattr(action.type, "__name__", "") in ("int", "float")
            if is_number:
                for value in BAD_NUMBERS:
                    yield command, flag, value
            elif action.dest == "thetas" and command == "bench":
                for value in ("A=-1", "A=nan", "A=4", "X=0.1", "A=", "A=abc"):
                    yield command, flag, value
            elif action.dest in ("dose",):
                for value in ("A=-1", "A=nan", "A=inf", "A=1e9", "Z=0.1", "A", "A=x"):
                    yield command, flag, value
            elif action.dest == "ranges":
                for value in ("0.5-0.2", "a-b", "0-2", "-"):
                    yield command, flag, value
            elif action.dest == "types":
                for value in ("", "XYZ", "AA"):
                    yield command, flag, value
            elif flag in PATH_FLAGS:
                yield from ((command, flag, v) for v in ("{tmp}/no/such/model" if flag in ("--model", "--judge") else "{tmp}",
                                                         "{tmp}/file.txt/x", "{tmp}/out.wrongsuffix"))
            elif action.choices:
                yield command, flag, "no-such-choice"


CASES = list(_cases())


def test_every_numeric_and_path_flag_is_covered():
    flags = {(c, f) for c, f, _ in CASES}
    assert ("generate", "--max-new-tokens") in flags and ("bench", "--speed-rounds") in flags
    assert ("vergence", "--output") in flags and ("bench", "--threads") in flags and ("generate", "--sinks") in flags
    assert len(CASES) >= 200


@pytest.mark.parametrize("command, flag, value", CASES)
def test_bad_value_is_one_line(command, flag, value, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("hf_steer.cli.build_parser", lambda: PARSER)
    monkeypatch.chdir(tmp_path)  # a default output path would land here, never in the repository
    (tmp_path / "file.txt").write_text("a file, not a folder")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    line = [a.replace("{tmp}", str(tmp_path)) for a in [command, *BASE[command], flag, value]]
    if flag == "--model":
        line += ["--dose", "A=0.1"] if command == "generate" else []
    try:
        rc = main(["drugs", *line])
    except SystemExit as e:  # argparse's own errors (a value its type refuses)
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, (line, err)
    assert "Traceback" not in err
    assert len([x for x in err.splitlines() if "error:" in x]) == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
