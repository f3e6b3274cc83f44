"""Background training: a separate process (multiprocessing, ``spawn``) with its own copy of the base.

The chat process never trains. It keeps each chunk in its profile's queue on disk (so nothing said is
lost if anything dies), hands a job (name + turns + replay anchors + preset) to the worker and keeps
chatting; the worker trains the adapter with the same code as ``LoraMemory.remember``
(:class:`~hf_steer.memory.learn.ChunkTrainer`) and sends it back as bytes. The chat process writes it
into the catalog -- one writer, so there is no cross-process locking to get wrong, and the worker
writes nothing to disk: no scratch catalog or staging folder keeps a copy of the user's words.

``device`` lets the worker train somewhere else than the chat runs (e.g. chat on CPU, train on
``cuda``); the adapter files are device-independent. For another machine, see
:mod:`hf_steer.memory.offload` (Ray).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from typing import Any


def _worker_main(base_path: str, threads: int, device: str | None, load_in_4bit: bool, jobs, results) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    from ..utils import quiet_third_party

    quiet_third_party()
    from ..models import load_model
    from .learn import ChunkTrainer

    try:
        model, tokenizer = load_model(base_path, device=device, load_in_4bit=load_in_4bit)
        trainer = ChunkTrainer(model, tokenizer, base_path)
    except Exception as e:
        results.put({"event": "failed", "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
        return
    results.put({"event": "ready", "fingerprint": trainer.fingerprint})
    while True:
        job = jobs.get()
        if job is None:
            break
        try:
            results.put({"event": "done", **trainer.train(job)})
        except Exception as e:  # report, keep serving: one bad chunk must not kill the memory
            first = str(e).splitlines()[0] if str(e) else ""
            results.put({"event": "error", "name": job["name"], "error": f"{type(e).__name__}: {first}",
                         "trace": traceback.format_exc(limit=3)})


class BackgroundTrainer:
    """Owns the worker process and its two queues; ``submit`` never blocks, ``poll`` never waits.

    Messages from :meth:`poll` / :meth:`wait`: ``{"event": "done", "name", "row", "files", "seconds"}``
    or ``{"event": "error", "name", "error"}``.
    """

    def __init__(self, base_path: str, *, threads: int = 1, device: str | None = None, load_in_4bit: bool = False):
        ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and locks mid-state
        self.jobs, self.results = ctx.Queue(), ctx.Queue()
        self.pending: dict[str, float] = {}
        self.ready = False
        self.failed: str | None = None
        self.process = ctx.Process(
            target=_worker_main, args=(base_path, threads, device, load_in_4bit, self.jobs, self.results), daemon=True,
        )
        self.process.start()

    def submit(self, job: dict[str, Any]) -> None:
        """Queue ``{"name", "turns", "anchors", "preset", "seed"}`` for training (returns at once)."""
        self.pending[job["name"]] = time.time()
        self.jobs.put(job)

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
            if msg["event"] == "failed":  # the worker could not even load the base model
                self.failed = msg["error"]
                out += [{"event": "error", "name": n, "error": f"the training process failed: {msg['error']}"}
                        for n in self.pending]
                self.pending.clear()
                continue
            self.pending.pop(msg.get("name"), None)
            out.append(msg)

    def poll(self) -> list[dict[str, Any]]:
        """Finished jobs so far; never waits."""
        out = self._take(block=False, timeout=None)
        if self.pending and not self.process.is_alive():
            out += self._died()
        return out

    def _died(self) -> list[dict[str, Any]]:
        out = [{"event": "error", "name": n, "error": "the training process died"} for n in self.pending]
        self.pending.clear()
        return out

    def wait(self, timeout: float = 600.0) -> list[dict[str, Any]]:
        """Block until every submitted job has reported (or ``timeout`` seconds passed)."""
        out, deadline = [], time.time() + timeout
        while self.pending and time.time() < deadline:
            if not self.process.is_alive():
                out += self._take(block=False, timeout=None) + self._died()
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
