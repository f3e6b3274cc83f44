"""Every command in README.md and docs/*.md runs as written on the bundled model.

The shell blocks (```bash / ```sh / ```console, and untagged ``` blocks) of each page are read line by line; every line that
starts with ``hf-steer`` is a command a user will paste. Commands of one page run in order in one
folder (a later command uses what an earlier one wrote). Quick ones run as written; long ones (a
benchmark, a full training) run with the size flags in ``SHRINK`` added, so the command line and its
flags are still exactly what the page shows; ``hf-steer push`` goes to the loopback Hub. A command
the table does not know fails the test: a page cannot grow a command nobody runs.
Syntax summaries (``hf-steer memory list | stack [NAMES]``) belong in ```text blocks, which are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}

# Commands that run longer than a test should: the flags that make them small (appended; a later
# flag wins in argparse, so the page's own flags are still parsed and checked).
SHRINK: dict[str, list[str]] = {
    "hf-steer demo": ["--epochs", "1", "--samples", "4"],
    "hf-steer elarablate train": ["--num-train-epochs", "1"],
    "hf-steer memory remember": ["--steps", "2"],
    "hf-steer abc train": ["--steps", "20", "--eval-batches", "2"],
    # the page's resumed run trains on from the first one's last step
    "hf-steer abc train --source tinystories --source shakespeare --output-dir runs/abc --steps 1200": [
        "--steps", "30", "--eval-batches", "2"],
    "hf-steer abc generate": ["--max-new-tokens", "40"],
    "hf-steer abc adapt train": ["--steps", "2", "--block-size", "64", "--batch-size", "2", "--eval-windows", "1"],
    "hf-steer abc adapt generate": ["--max-new-tokens", "12"],
    "hf-steer drugs generate": ["--max-new-tokens", "12"],
    "hf-steer drugs vergence": ["--samples", "1", "--thetas", "0.3"],
    "hf-steer drugs explore": ["--samples", "1", "--thetas", "0.3", "--max-new-tokens", "8"],
}
# Commands not run here, and why (each must say why).
_BENCH = ("a benchmark: its code runs in the method's tests on a tiny model; on the bundled model it takes "
          "from 20 minutes to hours on 2 cores even with its smallest settings (the measured runs are in docs/results)")
NOT_RUN: dict[str, str] = {
    "hf-steer elarablate bench": _BENCH,
    "hf-steer elarablate bench-stories": _BENCH,
    "hf-steer drugs bench": _BENCH,
    "hf-steer memory bench": _BENCH,
    "hf-steer abc bench": _BENCH,
    "hf-steer abc adapt bench": _BENCH,
    "hf-steer elarablate auto": ("writes stories before it trains (136 stories took 39 minutes on a loaded 2-core "
                                 "machine); tests/elarablation/test_auto.py runs it on a tiny model"),
    "hf-steer elarablate find": ("samples 4 stories for every prompt of its prompt set (tens of minutes on 2 cores); "
                                 "tests/elarablation/test_discover.py runs it on a tiny model"),
    "hf-steer elarablate train path/to/elarablate/slopcontext": (
        "path/to/elarablate/slopcontext stands for a clone of the original elarablate repository; "
        "tests/elarablation/test_original_files.py trains on its 43 published files"),
    "hf-steer elarablate bench-original": (
        "path/to/elarablate/slopcontext stands for a clone of the original elarablate repository; "
        "tests/elarablation/test_original_files.py reads its 43 published files"),
    "hf-steer studio": "a server that runs until Ctrl-C: tests/studio start it as a user does and drive it in Chromium",
}


@pytest.fixture
def hub_env(tmp_path):
    """Environment for a subprocess that pushes to a loopback Hub as user ``USER`` (the pages' placeholder)."""
    from hub_server import HubServer

    token = "hf_docsTestToken0123456789abcdef"
    with HubServer(tokens={token: "USER"}) as server:
        hf_home = tmp_path / "hf_home"
        yield {"HF_ENDPOINT": server.url, "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
               "HF_TOKEN": token, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0"}


def shell_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks a user would paste into a shell (untagged ones included)."""
    blocks, body, language = [], None, None
    for line in text.splitlines():
        fence = line.strip()
        if body is None and fence.startswith("```"):
            body, language = [], fence[3:].strip().lower()
        elif body is not None and fence == "```":
            if language in SHELL_LANGUAGES:
                blocks.append("\n".join(body) + "\n")
            body = None
        elif body is not None:
            body.append(line)
    return blocks


def page_commands(page: Path) -> list[str]:
    commands = []
    for block in shell_blocks(page.read_text(encoding="utf-8")):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            if not line.startswith("hf-steer"):
                continue
            commands.append(re.split(r"\s+#", line, maxsplit=1)[0].strip())
    return commands


def _prefix(command: str, table: dict[str, object]) -> str | None:
    matches = [p for p in table if command == p or command.startswith(p + " ")]
    return max(matches, key=len) if matches else None


def test_every_page_command_is_known():
    """A command on a page is either run (maybe shrunk) or listed in NOT_RUN with the reason."""
    for page in PAGES:
        for command in page_commands(page):
            assert "[" not in command and "|" not in command, (
                f"{page.name}: `{command}` is a syntax summary: put it in a ```text block or write a real command"
            )


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if page_commands(p)], ids=lambda p: p.name)
def test_page_commands_run(page, tmp_path, bundled_path, hub_env):
    env = {**os.environ, **hub_env, "HF_STEER_MEMORY": str(tmp_path / "memory"), "PYTHONWARNINGS": "ignore"}
    for command in page_commands(page):
        reason = NOT_RUN.get(_prefix(command, NOT_RUN) or "")
        if reason:
            continue
        argv = shlex.split(command)
        shrink = SHRINK.get(_prefix(command, SHRINK) or "", [])
        proc = subprocess.run([sys.executable, "-m", "hf_steer.cli", *argv[1:], *shrink], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, f"{page.name}: `{command}` failed:\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr
