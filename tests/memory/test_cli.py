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
    rc, out = _run(capsys, tiny_folder, "forget", "nope")
    assert rc == 2 and "adapter 'nope' is not in catalog" in out.err
    rc, out = _run(capsys, tiny_folder, "forget", "veltra")
    assert rc == 0 and out.out.strip() == "forgot veltra"


@pytest.mark.parametrize(
    "args, message",
    [
        (["remember", "--text", "  "], "chunk is empty"),
        (["forget", "nope"], "profile 'default' does not exist in"),
        (["rollup", "nope"], "profile 'default' does not exist in"),
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


def test_a_missing_profile_is_refused_and_not_created(tiny_folder, capsys):
    _run(capsys, tiny_folder, "remember", "--text", "user: Veltra Quosh was born in Marbelin.", "--steps", "1",
         "--top-layers", "1", "--profile", "personal")
    rc, out = _run(capsys, tiny_folder, "ask", "hello", "--profile", "nosuchprofile")
    assert rc == 2 and out.err.strip().splitlines() == [
        f"hf-steer: error: profile 'nosuchprofile' does not exist in {tiny_folder / 'mem'} (profiles: personal): "
        "check the name, or create it with `remember` or `chat`"]
    assert not (tiny_folder / "mem" / "nosuchprofile").exists()


def test_ask_says_what_answered_unless_quiet(tiny_folder, capsys):
    _run(capsys, tiny_folder, "remember", "--text", "user: Veltra Quosh was born in Marbelin.", "--name", "veltra",
         "--steps", "1", "--top-layers", "1")
    rc, out = _run(capsys, tiny_folder, "ask", "Where was Veltra Quosh born?", "--max-new-tokens", "3")
    lines = out.out.splitlines()
    # --no-retrieval: no routing, so the whole active stack answers, and no note is used
    assert rc == 0 and lines[-1] == "[adapters: veltra; no note]"
    rc, out = _run(capsys, tiny_folder, "ask", "Where was Veltra Quosh born?", "--max-new-tokens", "3", "--quiet")
    assert rc == 0 and len(out.out.splitlines()) <= 1 and "adapters" not in out.out
    rc, out = _run(capsys, tiny_folder, "ask", "Where was Veltra Quosh born?", "--max-new-tokens", "3", "--no-adapters")
    assert out.out.splitlines()[-1] == "[no adapter; no note]"


def test_regenerate_a_turn_that_does_not_exist(tiny_folder, capsys):
    _run(capsys, tiny_folder, "remember", "--text", "user: Veltra Quosh was born in Marbelin.", "--name", "veltra",
         "--steps", "1", "--top-layers", "1")
    rc, out = _run(capsys, tiny_folder, "regenerate", "veltra", "--without", "5")
    assert rc == 2 and "adapter 'veltra' has no turn 5: it has 1 turns (0..0)" in out.err


def test_the_line_under_an_answer_says_what_answered_it():
    from hf_steer.memory.cli import describe_answer

    line = describe_answer({"answer": "Oskovo.", "adapters": ["ma", "b1"], "notes": ["Ana Brel lives in Oskovo."],
                            "recited": None, "draft": "Ana Brel lives in Oskovo."})
    assert line == ("[adapters: ma, b1; notes: Ana Brel lives in Oskovo.; "
                    "draft: 'Ana Brel lives in Oskovo.', reshaped by the behaviour adapters]")
    assert describe_answer({"adapters": [], "notes": [], "recited": None, "draft": None}) == "[no adapter; no note]"
