"""Background training: a separate process (multiprocessing, ``spawn``) with its own copy of the base.

The chat process never trains. It hands a job (name + turns + replay anchors) to the worker and keeps
chatting; the worker trains the adapter on its own base copy with the same code as
``LoraMemory.remember`` (so results are identical), writes the adapter folder into a staging area and
reports back. The chat process then loads that folder into its PeftModel and adds the catalog row --
the catalog has a single writer, so there is no cross-process locking to get wrong.

``device`` lets the worker train somewhere else than the chat runs (e.g. chat on CPU, train on
``cuda``); the adapter files are device-independent.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from .train import TrainPreset


def _worker_main(base_path: str, preset: dict, staging: str, seed: int, threads: int, device: str | None,
                 jobs, results) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    from ..utils import quiet_third_party

    quiet_third_party()
    from .memory import LoraMemory

    preset = TrainPreset(**{**preset, "target_modules": tuple(preset["target_modules"])})
    scratch = Path(staging) / "scratch"
    # A private scratch memory: same training code, no retrieval, its own throwaway catalog.
    mem = LoraMemory(base_model=base_path, folder=scratch, profile="worker", preset=preset, embedder=None,
                     seed=seed, device=device)
    results.put({"event": "ready"})
    while True:
        job = jobs.get()
        if job is None:
            break
        name = job["name"]
        start = time.perf_counter()
        try:
            row = mem.remember(job["turns"], name=name, activate=False, anchors=job.get("anchors") or [])
            out = Path(staging) / name
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(mem.catalog.adapter_dir(name), out)
            mem.forget(name)
            row.pop("embedding", None)
            results.put({"event": "done", "name": name, "folder": str(out), "row": row,
                         "seconds": round(time.perf_counter() - start, 2)})
        except Exception as e:  # report, keep serving: one bad chunk must not kill the memory
            results.put({"event": "error", "name": name, "error": f"{type(e).__name__}: {e}",
                         "trace": traceback.format_exc(limit=3)})


class BackgroundTrainer:
    """Owns the worker process and its two queues; ``submit`` never blocks, ``poll`` never waits."""

    def __init__(self, base_path: str, preset: TrainPreset, *, seed: int = 0, threads: int = 1,
                 device: str | None = None, staging: str | None = None):
        ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and locks mid-state
        self.staging = Path(staging or tempfile.mkdtemp(prefix="hf_steer_memory_worker_"))
        self.jobs, self.results = ctx.Queue(), ctx.Queue()
        self.pending: dict[str, float] = {}
        self.ready = False
        self.process = ctx.Process(
            target=_worker_main,
            args=(base_path, preset.to_dict(), str(self.staging), seed, threads, device, self.jobs, self.results),
            daemon=True,
        )
        self.process.start()

    def submit(self, name: str, turns: list[dict], anchors: list[tuple[str, str]] = ()) -> None:
        self.pending[name] = time.time()
        self.jobs.put({"name": name, "turns": turns, "anchors": [list(a) for a in anchors]})

    def _take(self, block: bool, timeout: float | None) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                msg = self.results.get(block=block and not out, timeout=timeout)
            except queue.Empty:
                return out
            if msg["event"] == "ready":
                self.ready = True
                continue
            self.pending.pop(msg.get("name"), None)
            out.append(msg)

    def poll(self) -> list[dict[str, Any]]:
        """Finished jobs so far (``{"event": "done" | "error", ...}``); never waits."""
        return self._take(block=False, timeout=None)

    def wait(self, timeout: float = 600.0) -> list[dict[str, Any]]:
        """Block until every submitted job has reported (or ``timeout`` seconds passed)."""
        out, deadline = [], time.time() + timeout
        while self.pending and time.time() < deadline:
            if not self.process.is_alive():
                out.append({"event": "error", "name": ",".join(self.pending), "error": "the training process died"})
                self.pending.clear()
                break
            out += self._take(block=True, timeout=min(1.0, max(0.01, deadline - time.time())))
        return out

    def close(self) -> None:
        if self.process.is_alive():
            self.jobs.put(None)
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(timeout=5)
        shutil.rmtree(self.staging, ignore_errors=True)
