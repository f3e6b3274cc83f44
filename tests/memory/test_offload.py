"""Training on a Ray cluster: a local cluster on 127.0.0.1 started here, a real kill of a task's worker,
an address that does not answer, and an adapter that comes back trained on another base model.

The cluster is small (1 CPU, 80 MB object store) and started once for the module; the tests skip with
one line only when Ray is missing or its head cannot start on this machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hf_steer.errors import HfSteerError
from hf_steer.memory import LoraMemory
from hf_steer.memory.learn import ChunkTrainer
from hf_steer.memory.train import get_preset

from .conftest import CHUNK_A, CHUNK_B, TINY, fake_embedder

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    pytest.importorskip("ray", reason="Ray is not installed (pip install ray)")
    ray_bin = Path(sys.executable).with_name("ray")
    port, tmp = _free_port(), tempfile.mkdtemp(prefix="hfr", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_STEER_RAY_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    log = open(Path(tmp) / "head.log", "w")
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=80000000", f"--temp-dir={tmp}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.skip(f"a local Ray head did not start on 127.0.0.1 (see {tmp}/head.log)")
    yield address
    import ray

    ray.shutdown()
    os.killpg(proc.pid, signal.SIGTERM)  # the head and the processes it started (one session, ours)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def _tiny_folder(tmp_path, tiny_pair, name="tiny"):
    model, tok = tiny_pair
    model.save_pretrained(tmp_path / name)
    tok.save_pretrained(tmp_path / name)
    return tmp_path / name


def _task_worker_pids() -> list[int]:
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "_train_remote" in cmd:
            out.append(p.info["pid"])
    return out


def test_ray_trains_the_chunks_and_a_killed_task_is_retried(ray_address, tmp_path, tiny_pair):
    from hf_steer.memory.offload import RayTrainer

    folder = _tiny_folder(tmp_path, tiny_pair)
    model, tok = tiny_pair
    mem = LoraMemory(model, tok, base_model=str(folder), folder=tmp_path / "mem", preset=get_preset("fast-cpu", **TINY),
                     embedder=fake_embedder)
    jobs = mem.queue_chunk(CHUNK_A) + mem.queue_chunk(CHUNK_B, taken=["m001"])
    trainer = RayTrainer(str(folder), address=ray_address)
    try:
        for job in jobs:
            trainer.submit({**job, "anchors": mem.anchors(TINY["anchors"]), "seed": 0})  # returns at once
        killed, deadline = None, time.time() + 120
        while killed is None and time.time() < deadline:  # the first task loads torch: seconds to find it
            pids = _task_worker_pids()
            if pids:
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        assert killed is not None, "no Ray worker ran the task"
        results = trainer.wait(timeout=300)
    finally:
        trainer.close()
    assert sorted(r["name"] for r in results) == ["m001", "m002"], results
    assert all(r["event"] == "done" for r in results), [r.get("error") for r in results]
    for r in results:
        mem.add_trained(r["files"], r["row"])
    assert sorted(mem.names("chunk")) == ["m001", "m002"] and mem.queued() == {}
    assert mem.catalog.rows["m002"]["statements"] == ["Doran Pellick works as a lighthouse keeper in Tessomund."]


def test_an_address_that_does_not_answer_keeps_the_chunk_queued(tmp_path, tiny_pair):
    pytest.importorskip("ray", reason="Ray is not installed (pip install ray)")
    folder = _tiny_folder(tmp_path, tiny_pair)
    script = "Veltra Quosh was born in the town of Marbelin.\n/remember\n/wait\n/quit\n"
    cmd = [sys.executable, "-m", "hf_steer.cli", "memory", "chat", "--model", str(folder), "--folder",
           str(tmp_path / "mem"), "--no-retrieval", "--steps", "1", "--top-layers", "1", "--max-new-tokens", "3",
           "--threads", "1", "--ray-address", f"127.0.0.1:{_free_port()}", "--ray-connect-timeout", "3"]
    proc = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    failed = [line for line in proc.stdout.splitlines() if line.startswith("[memory] training m001 failed")]
    assert len(failed) == 1 and "no answer from the Ray cluster at 127.0.0.1:" in failed[0], proc.stdout
    assert failed[0].endswith("it stays queued for the next session")
    assert (tmp_path / "mem" / "default" / "queue" / "m001.json").is_file()  # the chunk is not lost


def test_a_malformed_ray_address_is_one_line(tmp_path, capsys):
    from hf_steer.cli import main

    rc = main(["memory", "chat", "--folder", str(tmp_path), "--ray-address", "not an address"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Ray address 'not an address' is not one" in err[0]


def test_an_adapter_trained_on_another_base_is_refused_and_stays_queued(tmp_path, tiny_pair):
    from conftest import make_tiny_model

    model, tok = tiny_pair
    mem = LoraMemory(model, tok, base_model="tiny", folder=tmp_path / "mem", preset=get_preset("fast-cpu", **TINY),
                     embedder=fake_embedder)
    job = mem.queue_chunk(CHUNK_A)[0]
    other = ChunkTrainer(make_tiny_model("llama", seed=1), tok, "other-tiny")
    result = other.train({**job, "anchors": [], "seed": 0})
    with pytest.raises(HfSteerError, match=r"adapter 'm001' was trained on base 'other-tiny' .* it stays queued") as e:
        mem.add_trained(result["files"], result["row"])
    assert "\n" not in str(e.value)
    assert mem.names() == [] and "m001" in mem.queued() and not mem.catalog.adapter_dir("m001").exists()
