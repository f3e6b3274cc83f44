"""`hf-steer memory ...` in process: a full remember/list/forget round and one clear line per bad input."""

from __future__ import annotations

import json

import pytest

from hf_steer.cli import main


@pytest.fixture
def tiny_folder(tmp_path, tiny_pair):
    model, tok = tiny_pair
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    return tmp_path


def _run(capsys, folder, *args):
    common = ["--model", str(folder / "tiny"), "--folder", str(folder / "mem"), "--no-retrieval", "--threads", "1"]
    rc = main(["memory", *args, *common])
    return rc, capsys.readouterr()


def test_remember_list_forget(tiny_folder, capsys):
    rc, out = _run(capsys, tiny_folder, "remember", "--text", "user: Veltra Quosh was born in Marbelin.",
                   "--name", "veltra", "--steps", "2", "--top-layers", "1")
    assert rc == 0 and out.out.startswith("remembered veltra: 1 statements, 2 steps")
    rc, out = _run(capsys, tiny_folder, "list", "--json")
    rows = json.loads(out.out)
    assert rc == 0 and [r["name"] for r in rows] == ["veltra"] and rows[0]["active"]
    rc, out = _run(capsys, tiny_folder, "forget", "veltra")
    assert rc == 0 and out.out.strip() == "forgot veltra"


@pytest.mark.parametrize(
    "args, message",
    [
        (["remember", "--text", "  "], "chunk is empty"),
        (["forget", "nope"], "adapter 'nope' is not in catalog"),
        (["rollup", "nope"], "adapter 'nope' is not in catalog"),
        (["remember", "--text", "Veltra Quosh was born in Marbelin.", "--name", "a.b"], "adapter name 'a.b' is not allowed"),
        (["remember", "--file", "/nonexistent.txt"], "--file /nonexistent.txt does not exist"),
        (["list", "--profile", "../x"], "profile name '../x' is not allowed"),
    ],
)
def test_bad_inputs_give_one_line(tiny_folder, capsys, args, message):
    rc, out = _run(capsys, tiny_folder, *args)
    assert rc == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hf-steer: error: ") and message in lines[0]
