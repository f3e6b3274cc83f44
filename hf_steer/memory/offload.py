"""Train chunk adapters on a Ray cluster: a GPU box on the LAN, a cloud node, or this machine.

The method author's plan was to "offload" LoRA-tizing to another device. Rather than a protocol of our
own, this uses Ray (PyPI ``ray``): each planned job becomes a Ray task that loads the base model once
per worker process (cached), trains the adapter with the same code as everywhere else
(:class:`~hf_steer.memory.learn.ChunkTrainer`) and returns it as bytes through Ray's object store.
Only the chat process writes the catalog.

:class:`RayTrainer` has the interface of the local :class:`~hf_steer.memory.worker.BackgroundTrainer`
(``submit`` / ``poll`` / ``wait`` / ``close``), so the chat does not care where training happens:

* connecting happens in a background thread -- the chat never waits, not even on a cluster that does
  not answer (its jobs then report one error line each and stay queued on disk);
* a task whose worker dies is retried by Ray (``max_retries``), and a task that still fails reports an
  error: the chat resubmits it a few times and otherwise leaves the chunk queued for the next session;
* the adapter's ``hf_steer.json`` carries the fingerprint of the base it was trained on, and the chat
  refuses one trained on another base (one line; the chunk stays queued).

``address`` is anything ``ray.init`` takes (``"host:port"``, ``"ray://host:10001"``, ``"auto"``);
``None`` reads ``RAY_ADDRESS``. The cluster's nodes need hf_steer and the base model: the bundled
model is found by name on each node, any other base by the same path or Hub id.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

from ..errors import HfSteerError

_ADDRESS = re.compile(r"^(?:auto|local|(?:ray://)?[\w.\-]+:\d{1,5})$")
_TRAINERS: dict[tuple, Any] = {}  # per Ray worker process: (base, 4-bit) -> ChunkTrainer


def check_address(address: str | None) -> str | None:
    """``address`` (or ``$RAY_ADDRESS``) if it is a Ray address; one line otherwise."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and not _ADDRESS.match(address):
        raise HfSteerError(f"Ray address {address!r} is not one: use host:port, ray://host:port or auto")
    return address


def _train_remote(base_model: str | None, load_in_4bit: bool, job: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: train one job on this node (the base model is loaded once per worker process)."""
    key = (base_model, load_in_4bit)
    if key not in _TRAINERS:
        import torch

        from ..models import load_model
        from ..utils import quiet_third_party
        from .learn import ChunkTrainer

        quiet_third_party()
        torch.set_num_threads(max(1, int(os.environ.get("HF_STEER_RAY_THREADS", "1"))))
        model, tokenizer = load_model(base_model, load_in_4bit=load_in_4bit)
        _TRAINERS[key] = ChunkTrainer(model, tokenizer, base_model or "bundled")
    return _TRAINERS[key].train(job)


def _remote_base(base_path: str) -> str | None:
    """What a node loads: the bundled model by name (each node has its own copy), else the path/Hub id."""
    from ..artifacts import BUNDLED_HUB_ID, hub_model_id

    return None if hub_model_id(base_path) == BUNDLED_HUB_ID else base_path


class RayTrainer:
    """Jobs as Ray tasks; ``submit`` never blocks, ``poll`` never waits (see the module docstring).

    Messages from :meth:`poll` / :meth:`wait`: ``{"event": "done", "name", "row", "files", "seconds"}``
    or ``{"event": "error", "name", "error"}``.
    """

    def __init__(self, base_path: str, *, address: str | None = None, load_in_4bit: bool = False,
                 num_cpus: float = 1, max_retries: int = 2, connect_timeout: float = 60.0):
        self.address = check_address(address)
        self.base = _remote_base(base_path)
        self.load_in_4bit = load_in_4bit
        self.num_cpus, self.max_retries, self.connect_timeout = num_cpus, max_retries, connect_timeout
        self.pending: dict[str, dict] = {}  # name -> job, until it reports
        self.ready = False
        self.failed: str | None = None
        self._refs: dict[Any, str] = {}
        self._waiting: list[dict] = []  # submitted before the connection was up
        self._errors: list[dict] = []
        self._lock = threading.Lock()
        self._started = time.time()
        self._thread = threading.Thread(target=self._connect, name="hf-steer-ray-connect", daemon=True)
        self._thread.start()

    # -- connection (in a thread: the chat never waits on it) ------------------------------------------
    def _connect(self) -> None:
        try:
            import ray
        except ImportError:
            self.failed = "Ray is not installed: run `pip install ray` (or leave --ray-address out)"
            return
        try:
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR",
                     configure_logging=False, include_dashboard=False if self.address in (None, "local") else None)
        except Exception as e:  # ConnectionError, TimeoutError, RuntimeError: all mean "no cluster there"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.failed = f"could not reach the Ray cluster at {self.address or 'a new local cluster'}: {first[:160]}"
            return
        self._remote = ray.remote(num_cpus=self.num_cpus, max_retries=self.max_retries)(_train_remote)
        with self._lock:
            self.ready = True
            waiting, self._waiting = self._waiting, []
        for job in waiting:
            self._launch(job)

    def _launch(self, job: dict) -> None:
        ref = self._remote.remote(self.base, self.load_in_4bit, job)
        with self._lock:
            self._refs[ref] = job["name"]

    # -- the BackgroundTrainer interface -----------------------------------------------------------------
    @property
    def process(self):  # the chat asks ``worker.process.is_alive()``
        return self

    def is_alive(self) -> bool:
        return self.failed is None

    def submit(self, job: dict[str, Any]) -> None:
        """Queue a job as a Ray task (held until the connection is up; returns at once)."""
        self.pending[job["name"]] = job
        with self._lock:
            if not self.ready:
                self._waiting.append(job)
                return
        self._launch(job)

    def _failed_messages(self) -> list[dict]:
        out = [{"event": "error", "name": n, "error": self.failed} for n in self.pending]
        self.pending.clear()
        self._waiting.clear()
        return out

    def poll(self) -> list[dict[str, Any]]:
        """Finished jobs so far; never waits."""
        if self.failed is None and not self.ready and time.time() - self._started > self.connect_timeout:
            where = self.address or "a new local cluster"
            self.failed = f"no answer from the Ray cluster at {where} within {self.connect_timeout:.0f} s"
        if self.failed is not None:
            return self._failed_messages()
        if not self.ready or not self._refs:
            return []
        import ray

        with self._lock:
            refs = list(self._refs)
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in done:
            with self._lock:
                name = self._refs.pop(ref)
            try:
                result = ray.get(ref)
                out.append({"event": "done", **result})
            except Exception as e:  # the task raised, or its worker died more than max_retries times
                cause = getattr(e, "cause", None) or e
                text = str(cause).strip().splitlines()
                out.append({"event": "error", "name": name,
                            "error": f"Ray task failed ({type(cause).__name__}: {text[-1][:160] if text else ''})"})
            self.pending.pop(name, None)
        return out

    def wait(self, timeout: float = 600.0) -> list[dict[str, Any]]:
        """Block until every submitted job has reported (or ``timeout`` seconds passed)."""
        out, deadline = [], time.time() + timeout
        while self.pending and time.time() < deadline:
            out += self.poll()
            if self.pending:
                time.sleep(0.2)
        return out

    def close(self) -> None:
        """Leave the cluster (a cluster this process started goes with it); queued chunks stay on disk."""
        self._thread.join(timeout=0.1)
        if self.ready:
            import ray

            ray.shutdown()
