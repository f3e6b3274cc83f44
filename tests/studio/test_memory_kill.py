"""No action loses data: a forget or a regenerate killed half-way leaves the catalog as it was.

The studio runs as its own process (`hf-steer studio`, as a user starts it) on a tiny model; the test seeds a
profile with three chunk adapters and a `retrain` roll-up of them, then sets the adapters' recorded training
length very high, so that regenerating one, or forgetting one (which retrains the roll-up from the other two),
runs until the process is killed. The page shows the action as busy, the test kills the server with SIGKILL,
and every file of the profile must be byte-for-byte what it was.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_tiny_model, make_tokenizer

from .conftest import free_port, wait_text

FAST = dict(steps=3, r=4, alpha=8.0, top_layers=1, max_length=64, anchors=0)
CHUNKS = [
    ["Ana Brel lives in Oskovo.", "Ana Brel has a red bicycle."],
    ["Tomas Vek plays the cello.", "Tomas Vek was born in 1980."],
    ["Irsa Moll grows figs.", "Irsa Moll keeps two goats."],
]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def seeded(tiny_folder, tmp_path):
    """A memory folder whose profile holds m001-m003 and r004 = retrain(m001, m002, m003), slow to retrain."""
    from hf_steer.memory import LoraMemory
    from hf_steer.memory.train import get_preset

    folder = tmp_path / "memory"
    mem = LoraMemory(make_tiny_model("llama"), make_tokenizer("bytelevel"), base_model=str(tiny_folder),
                     folder=folder, preset=get_preset("fast-cpu", **FAST), embedder=None)
    for chunk in CHUNKS:
        mem.remember(chunk)
    mem.rollup(["m001", "m002", "m003"], method="retrain")
    for name in ("m001", "m002", "m003"):  # what regenerate / the roll-up rebuild will train with
        mem.catalog.rows[name]["preset"]["steps"] = 10_000  # a minute or more here; a roll-up turns it into 10 000 epochs, the most allowed
    mem.catalog.save()
    return folder


def start_server(tiny_folder, memory_folder, work) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    log = open(work.parent / f"studio-{port}.log", "w+")  # a file, not a pipe: a full pipe would stall the server
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_steer.cli", "studio", "--model", str(tiny_folder), "--port", str(port),
         "--memory-folder", str(memory_folder), "--work-folder", str(work), "--no-background", "--no-retrieval",
         "--memory-every", "0", "--threads", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        log.seek(0)
        if "hf-steer studio on" in log.read():  # the server prints its URL once it listens
            return process, f"http://127.0.0.1:{port}/"
        time.sleep(0.5)
    log.seek(0)
    raise AssertionError(f"the studio did not start: {log.read()[-2000:]}")


def kill_during(page, process, url: str, names: list[str], button: str, busy: str, turn: int | None = None) -> None:
    page.goto(url)
    wait_text(page, "#mem-table", 'r004')
    for name in names:
        page.locator("#mem-selected label", has_text=name).locator("input").check()
    if turn is not None:
        page.locator("#mem-turns label", has_text=f"{turn}: user").locator("input").check()
    page.locator(button).click()
    wait_text(page, "#mem-status", busy, 120_000)
    time.sleep(1.0)
    assert process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize("action", ["regenerate", "forget"])
def test_an_action_killed_half_way_leaves_the_catalog_as_it_was(action, seeded, tiny_folder, page, tmp_path):
    profile = seeded / "default"
    before = digest(profile)
    process, url = start_server(tiny_folder, seeded, tmp_path / "work")
    try:
        if action == "regenerate":
            kill_during(page, process, url, ["m001"], "#mem-regenerate", "busy: regenerating m001", turn=1)
        else:
            kill_during(page, process, url, ["m001"], "#mem-forget", "busy: forgetting m001")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert digest(profile) == before

    from hf_steer.memory import Catalog
    from hf_steer.memory.catalog import base_fingerprint

    catalog = Catalog(profile, str(tiny_folder), base_fingerprint(make_tiny_model("llama")))
    assert list(catalog.rows) == ["m001", "m002", "m003", "r004"]
    assert catalog.rows["r004"]["members"] == ["m001", "m002", "m003"]
