"""Every numeric and path flag of every `hf-steer memory` command: a bad value is one line and exit 2.

The flags are read from the parser itself (a new flag is fuzzed without touching this file). Values:
negative, zero where zero is impossible, nan, inf, huge, text, empty; for paths a missing path, a file
where a folder is expected and a folder where a file is expected. Every value is rejected before a model
is loaded, and nothing is written outside the test's temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from hf_steer.cli import build_parser, main
from hf_steer.memory import config as memory_config

PATH_FLAGS = {"model", "folder", "file", "output", "output_json"}
TEXT_FLAGS = {"profile": ["../x", "", "a b"], "name": ["a/b", ""], "text": ["", "   "]}
# flags where a negative or zero value is a legitimate setting
ZERO_OK = {"top_layers", "route_threshold", "seed", "weights"}
NEGATIVE_OK = {"weights"}


def _ranges() -> dict[str, tuple]:
    out = {}
    for cls in (memory_config.MemoryConfig, memory_config.AskConfig, memory_config.ChatConfig,
                memory_config.RollupConfig, memory_config.BenchConfig, memory_config.TrainPreset):
        for f in dataclasses.fields(cls):
            if f.metadata.get("range"):
                out[f.name] = f.metadata["range"]
    return out


def _commands():
    parser = build_parser()
    memory = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["memory"]
    sub = next(a for a in memory._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _valid_args(command: str, tmp) -> list[str]:
    common = ["--model", str(tmp / "tiny"), "--folder", str(tmp / "mem"), "--threads", "1"]
    return {
        "remember": ["--text", "Veltra Quosh was born in Marbelin.", *common],
        "list": common, "stack": common, "rollup": ["m1", *common], "forget": ["m1", *common],
        "regenerate": ["m1", "--without", "x", *common], "ask": ["hello", *common],
        "merge": ["--output", str(tmp / "merged"), *common], "chat": common,
        "bench": ["--output-json", str(tmp / "bench.json"), "--model", str(tmp / "tiny"), "--threads", "1"],
    }[command]


def _bad_values(action: argparse.Action, tmp, ranges) -> list[str]:
    dest = action.dest
    if dest in PATH_FLAGS:
        missing, a_file, under_a_file = str(tmp / "missing" / "x" / "y.bin"), str(tmp / "afile.txt"), str(tmp / "afile.txt" / "below")
        return {"model": [missing, a_file], "file": [missing, str(tmp)], "folder": [a_file, under_a_file],
                "output": [a_file, under_a_file], "output_json": [str(tmp), under_a_file]}[dest]
    if dest in TEXT_FLAGS:
        return TEXT_FLAGS[dest]
    if action.choices:
        return ["nosuch"]
    kind = getattr(action.type, "__name__", "")
    if kind not in ("int", "float"):
        return []
    bad = ["nan", "inf", "-inf", "abc", ""]
    bad.append("1e300" if kind == "float" else "99999999999999999999")
    if dest not in NEGATIVE_OK:
        bad.append("-5")
    lo, hi, open_low = ranges.get(dest, (None, None, False))
    if dest not in ZERO_OK and (dest not in ranges or (lo is not None and (lo > 0 or open_low))):
        bad.append("0")
    if kind == "int":
        bad.append("2.5")
    return bad


def _flag(action: argparse.Action) -> str:
    return next(o for o in action.option_strings if o.startswith("--"))


def test_every_bad_flag_value_is_one_line_and_exit_2(tmp_path, tiny_pair, capsys):
    from hf_steer.memory.catalog import Catalog

    model, tok = tiny_pair
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    Catalog(tmp_path / "mem" / "default", "tiny", "fp")
    (tmp_path / "afile.txt").write_text("not a folder")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    ranges = _ranges()
    capsys.readouterr()
    tried = 0
    for command, sub in _commands().items():
        valid = _valid_args(command, tmp_path)
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.dest == "help":
                continue
            for value in _bad_values(action, tmp_path, ranges):
                argv = ["memory", command, *valid, _flag(action), value]
                if action.nargs == "+" and action.dest == "without":
                    continue
                try:
                    rc = main(argv)
                except SystemExit as e:  # argparse's own rejections
                    rc = e.code
                err = capsys.readouterr().err.strip().splitlines()
                tried += 1
                assert rc == 2, (argv, err)
                assert len(err) == 1 and " error: " in err[0], (argv, err)
    assert tried >= 200
    # nothing was written outside the places a command may write (none of them succeeded)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, set(after) ^ set(before)


@pytest.mark.parametrize("argv", [
    ["memory", "ask"],
    ["memory", "nosuch"],
    ["memory", "ask", "q", "--nosuch-flag"],
])
def test_parse_errors_are_one_line_too(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and " error: " in err[0], err


def test_threads_are_bounded(tmp_path, capsys):
    from hf_steer.memory.catalog import Catalog

    Catalog(tmp_path / "default", "tiny", "fp")
    rc = main(["memory", "list", "--folder", str(tmp_path), "--threads", "100000", "--model", str(tmp_path / "x")])
    assert rc == 2 and "is neither an existing folder" in capsys.readouterr().err
    rc = main(["memory", "list", "--folder", str(tmp_path), "--threads", "100000"])
    assert rc == 2 and "--threads 100000 is not a thread count: use 1 to 1024" in capsys.readouterr().err
