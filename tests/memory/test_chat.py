"""`hf-steer memory chat` driven through stdin in a subprocess, with its background training worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """\
Veltra Quosh was born in the town of Marbelin.
Doran Pellick keeps bees in Tessomund.
/wait
/list
Saffi Dunmore won the Harrowgate cup.
/remember
/wait
Just answer in one word from now on, please.
/remember
/wait
/rollup
/list
/forget m001
/list
/forget nope
/profile work
/list
/quit
"""


def test_chat_repl_learns_in_the_background(tmp_path, tiny_pair):
    model, tok = tiny_pair
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    cmd = [sys.executable, "-m", "hf_steer.cli", "memory", "chat", "--model", str(tmp_path / "tiny"),
           "--folder", str(tmp_path / "mem"), "--no-retrieval", "--every", "2", "--steps", "2", "--r", "4",
           "--top-layers", "1", "--max-new-tokens", "4", "--threads", "1", "--no-learn-replies"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, input=SCRIPT, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = out.splitlines()
    assert sum(line.startswith("bot> ") for line in lines) == 4
    # two user turns -> a background job; the REPL answered without waiting for it
    assert "[memory] training m001 in the background (2 facts from 2 turns)" in out
    # a request about answers becomes a behaviour adapter, shown as such in the catalog
    assert "[memory] training b003 in the background (a behaviour from 1 turns)" in out
    assert any(line.startswith("* b003") and " behaviour " in line for line in lines), out
    assert any(line.startswith("[memory] learned m001") for line in lines)
    assert any(line.startswith("[memory] learned m002") for line in lines)
    assert any(line.startswith("* m001") for line in lines)
    assert "[memory] rolled m001, m002 into r004 (cat, r=8)" in out
    assert "[memory] forgot m001; rebuilt r004" in out
    assert "[memory] adapter 'nope' is not in catalog" in out
    assert "[memory] profile work: 0 adapters" in out
    # what was learned is on disk: the default profile kept m002 and the rebuilt roll-up
    data = json.loads((tmp_path / "mem" / "default" / "catalog.json").read_text())
    assert set(data["rows"]) == {"m002", "b003", "r004"} and data["rows"]["r004"]["members"] == ["m002"]
