"""Memory tab: a chat that learns in the background, and the catalog to forget, roll up or regenerate.

Backend over :class:`hf_steer.memory.LoraMemory` and its :class:`~hf_steer.memory.worker.BackgroundTrainer`
(the same pair ``hf-steer memory chat`` drives). One memory serves every browser tab of the server; the
chat history and the turns not yet learned are per browser tab (``gr.State``).

Two browser tabs must not corrupt one catalog: every action that touches the memory holds ONE lock
(``MemoryBackend.lock``) in the server process, and the catalog itself writes atomically, so a server
killed mid-action leaves the last complete catalog (see ``tests/studio/test_memory_kill.py``).

Thin glue only, written here because the memory package has no public equivalent: naming a job while
others are pending (the REPL's ``ChatSession`` does the same for one user), and the status line.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ..errors import HfSteerError
from .app import Studio, guarded, number, text

ROLLUP_METHODS = ("cat", "svd", "ties", "dare_ties", "linear", "retrain")
# name, kind, active (✓), turns, facts (statements), created, size of the adapter folder, roll-ups it is in
# (chunk) or its members (roll-up), first statement
TABLE_HEADERS = ["name", "kind", "on", "turns", "facts", "created", "KB", "links", "summary"]


def _folder_kb(folder: Path) -> int:
    return round(sum(f.stat().st_size for f in folder.glob("*") if f.is_file()) / 1024) if folder.is_dir() else 0


class MemoryBackend:
    """One :class:`LoraMemory` (created on first use) plus its background trainer, behind one lock."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.config = studio.config
        self.lock = threading.RLock()
        self._memory = None
        self.worker = None
        self.jobs: dict[str, dict[str, Any]] = {}  # submitted, not yet back: name -> {"submitted", "turns"}
        self.events: list[str] = []  # what happened, newest last (switched in / failed)
        self.version = 0  # bumped on every catalog change, so the page redraws the table only then
        self.busy: str | None = None  # a long action in progress (shown in the status line)
        self.open_error: str | None = None  # why the memory could not be opened (shown in the status line)
        studio.closers.append(self.close)

    # -- the memory ------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the memory (if not yet) and switch in finished adapters."""
        _ = self.memory
        self.collect()

    @property
    def opened(self) -> bool:
        return self._memory is not None

    @property
    def memory(self):
        with self.lock:
            if self._memory is None:
                from ..memory import LoraMemory

                model, tokenizer = self.studio.fresh_copy()
                self._memory = LoraMemory(
                    model, tokenizer, base_model=self.studio.model_path, folder=self.config.memory_folder,
                    profile=self.config.profile, preset=self.config.memory_preset,
                    embedder="default" if self.config.retrieval else None, route=self.config.retrieval,
                )
                if self.config.background:
                    from ..memory.worker import BackgroundTrainer

                    m = self._memory
                    self.worker = BackgroundTrainer(m.base_path, threads=1, load_in_4bit=m.quantized)
                self.open_error = None
                self.version += 1
            return self._memory

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def _event(self, line: str) -> None:
        self.events = [*self.events[-19:], f"{line} ({time.strftime('%H:%M:%S')})"]

    def collect(self) -> None:
        """Switch in every adapter the background trainer has finished."""
        if self.worker is None:
            return
        with self.lock:
            self._collect_messages(self.worker.poll())

    def _collect_messages(self, msgs: list[dict]) -> None:
        for msg in msgs:
            self.jobs.pop(msg["name"], None)
            if msg["name"] not in self.memory.queued():  # forgotten while it trained: not wanted
                self._event(f"dropped {msg['name']}: it was forgotten while it trained")
                continue
            if msg["event"] == "error":
                self._event(f"✗ training {msg['name']} failed: {msg['error']}")
                continue
            try:
                self.memory.add_trained(msg["files"], msg["row"])
            except HfSteerError as e:
                self._event(f"✗ could not add {msg['name']}: {e}")
                continue
            self.version += 1
            self._event(f"✓ {msg['name']} switched in after {msg['seconds']:.1f} s of training")

    def _new_name(self) -> str:
        return self.memory.catalog.new_name(taken=list(self.jobs))

    # -- chat ------------------------------------------------------------------------------------------------
    def chat(self, message: str, history: list[dict], unlearned: list[dict]) -> tuple[list[dict], list[dict]]:
        """One user turn: the reply from the current stack; every ``memory_every`` user turns, a new memory."""
        message = text(message, "message")
        history = list(history or [])
        with self.lock:
            self.collect()
            turns = [*history, {"role": "user", "content": message}]
            reply = self.memory.chat(turns[-6:], max_new_tokens=self.config.chat_tokens)
        history = [*turns, {"role": "assistant", "content": reply}]
        # Only the user's turns are learned: a small model's own replies are often wrong.
        unlearned = [*(unlearned or []), {"role": "user", "content": message}]
        if self.config.memory_every and len(unlearned) >= self.config.memory_every:
            unlearned = self.remember(unlearned)
        return history, unlearned

    def remember(self, unlearned: list[dict]) -> list[dict]:
        """Learn the turns not yet learned (in the background when there is a trainer); returns ``[]``."""
        turns = [t for t in (unlearned or []) if isinstance(t, dict) and t.get("role") == "user" and t.get("content")]
        if not turns:
            raise HfSteerError("nothing new to remember: say something in the chat first")
        with self.lock:
            memory = self.memory
            name = self._new_name()
            if self.worker is not None:
                # The chunk is checked and kept on disk before the worker sees it (it survives a crash).
                # A chunk can plan two jobs: its facts and, when it asks for one, a behaviour adapter.
                anchors = memory.anchors(memory.preset.anchors)
                for job in memory.queue_chunk(turns, name=name, taken=list(self.jobs)):
                    self.worker.submit({**job, "anchors": anchors, "seed": memory.seed + len(memory.catalog)})
                    self.jobs[job["name"]] = {"submitted": time.time(), "turns": len(turns)}
            else:
                row = memory.remember(turns, name=name)
                self.version += 1
                self._event(f"✓ {name} switched in after {row['train']['seconds']:.1f} s of training")
                for also in row.get("also", []):
                    self._event(f"✓ {also} (behaviour) switched in")
        return []

    def wait(self, timeout: float = 600.0) -> None:
        """Block until every submitted job is back and switched in (for scripts and tests)."""
        if self.worker is not None and self.jobs:
            msgs = self.worker.wait(timeout)
            with self.lock:
                self._collect_messages(msgs)

    # -- status and catalog ----------------------------------------------------------------------------------
    def status(self) -> str:
        """The status line: profile, active adapters, training queued / running, the last switch-in."""
        if self._memory is None:
            if self.open_error:
                return f"Memory could not be opened: {self.open_error}"
            return "Memory: loading the model (the first message waits for it)."
        m = self._memory
        parts = [f"profile **{m.profile}**: {len(m.catalog)} adapter(s), active: {', '.join(m.active) or 'none'}"]
        if self.busy:
            parts.append(f"busy: {self.busy}")
        jobs = []
        for i, (name, job) in enumerate(self.jobs.items()):
            waited = time.time() - job["submitted"]
            if i == 0 and self.worker is not None and self.worker.ready:
                jobs.append(f"{name} running ({waited:.0f} s, {job['turns']} turn(s))")
            elif i == 0:
                jobs.append(f"{name} queued (the training process is starting, {waited:.0f} s)")
            else:
                jobs.append(f"{name} queued")
        if jobs:
            parts.append("training: " + ", ".join(jobs))
        if self.events:
            parts.append("last: " + self.events[-1])
        return " · ".join(parts)

    def table(self) -> list[list[Any]]:
        if self._memory is None:
            return []
        m = self._memory
        rows = []
        for name, row in m.catalog.rows.items():
            link = row.get("members") if row.get("kind") == "rollup" else m.rollups_containing(name)
            rows.append([
                name, row.get("kind"), "✓" if name in m.active else "", len(row.get("turns") or []),
                len(row.get("statements") or []), (row.get("created") or "")[5:16].replace("T", " "),
                _folder_kb(m.catalog.adapter_dir(name)), ", ".join(link or []),
                (row.get("statements") or [""])[0][:60],
            ])
        return rows

    def names(self) -> list[str]:
        return list(self._memory.catalog.rows) if self._memory is not None else []

    def _names(self, selected: Any, what: str, *, one: bool = False) -> list[str]:
        if isinstance(selected, str):
            selected = [selected]
        if not selected or not isinstance(selected, (list, tuple)) or not all(isinstance(n, str) for n in selected):
            raise HfSteerError(f"no adapter selected: tick the adapter(s) to {what} in the list first")
        if one and len(selected) != 1:
            raise HfSteerError(f"{len(selected)} adapters selected: tick exactly one adapter to {what}")
        for n in selected:
            self.memory.catalog.get(n)  # an unknown name: one line listing the known ones
        return list(selected)

    # -- actions on the catalog ------------------------------------------------------------------------------
    def forget(self, selected: Any) -> str:
        with self.lock:
            self.collect()
            names = self._names(selected, "forget")
            done = []
            for name in names:
                self.busy = f"forgetting {name}"
                try:
                    res = self.memory.forget(name)
                finally:
                    self.busy = None
                self.version += 1
                rebuilt = f" (rebuilt {', '.join(res['rebuilt'])})" if res["rebuilt"] else ""
                done.append(f"{name}{rebuilt}")
            self._event(f"forgot {', '.join(done)}")
            return f"Forgot {', '.join(done)}."

    def rollup(self, selected: Any, method: Any) -> str:
        if method not in ROLLUP_METHODS:
            raise HfSteerError(f"roll-up method {method!r} is unknown: use one of {', '.join(ROLLUP_METHODS)}")
        with self.lock:
            self.collect()
            names = self._names(selected, "roll up")
            self.busy = f"rolling up {', '.join(names)} ({method})"
            try:
                row = self.memory.rollup(names, method=method)
            finally:
                self.busy = None
            self.version += 1
            self._event(f"rolled {', '.join(names)} into {row['name']}")
            return f"Rolled {', '.join(names)} into **{row['name']}** ({method}, r={row['r']})."

    def turns_of(self, selected: Any) -> list[tuple[str, int]]:
        """``(label, index)`` of the turns of the one selected chunk adapter (empty otherwise)."""
        if self._memory is None or not isinstance(selected, (list, tuple)) or len(selected) != 1:
            return []
        row = self._memory.catalog.rows.get(selected[0])
        if not row or row.get("kind") != "chunk":
            return []
        return [(f"{i}: {t['role']}: {t['content'][:90]}", i) for i, t in enumerate(row.get("turns") or [])]

    def regenerate(self, selected: Any, drop: Any) -> str:
        with self.lock:
            self.collect()
            (name,) = self._names(selected, "regenerate", one=True)
            n_turns = len(self.memory.catalog.rows[name].get("turns") or [])
            if not isinstance(drop, (list, tuple)) or not drop:
                raise HfSteerError(f"no turn ticked: tick the turns of {name} to leave out, then regenerate")
            without = sorted({number(i, "turn index", 0, max(n_turns - 1, 0), integer=True) for i in drop})
            self.busy = f"regenerating {name} without turn(s) {without}"
            try:
                self.memory.regenerate(name, without=without)
            finally:
                self.busy = None
            self.version += 1
            self._event(f"regenerated {name} without turn(s) {without}")
            return f"Regenerated **{name}** without turn(s) {', '.join(map(str, without))}."

    # -- profiles --------------------------------------------------------------------------------------------
    def profiles(self) -> list[str]:
        from ..memory.memory import default_folder

        folder = Path(self.config.memory_folder).expanduser() if self.config.memory_folder else default_folder()
        found = sorted(p.name for p in folder.glob("*") if (p / "catalog.json").is_file()) if folder.is_dir() else []
        current = self._memory.profile if self._memory is not None else self.config.profile
        return sorted({*found, current})

    def use_profile(self, profile: Any) -> str:
        profile = text(profile, "profile")
        with self.lock:
            memory = self.memory
            if self.worker is not None and self.jobs:
                self._collect_messages(self.worker.wait())  # the old profile's jobs land in the old profile
            memory.use_profile(profile)
            self.version += 1
            self._event(f"switched to profile {profile}")
            return f"Profile **{profile}**: {len(memory.catalog)} adapter(s)."


def build(backend: MemoryBackend) -> None:
    """Lay out the Memory tab and wire its events (inside a ``gr.Tab``)."""
    import gradio as gr

    gr.Markdown(
        "Chat: every few user turns (or on **Remember now**) the turns are learned as a LoRA adapter in a "
        "background process while the chat goes on; the status line says when it is switched in. Start a "
        "**New conversation** to ask without the old turns in the prompt: what it answers then comes from the "
        "adapters. Tick adapters in the catalog to forget them, roll them up, or regenerate one without chosen turns."
    )
    history = gr.State([])
    unlearned = gr.State([])
    seen_version = gr.State(-1)
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="chat", elem_id="mem-chat", height=360)
            with gr.Row():
                message = gr.Textbox(show_label=False, placeholder="Tell me something to remember, or ask",
                                     elem_id="mem-input", scale=5)
                send = gr.Button("Send", variant="primary", elem_id="mem-send", scale=1)
            with gr.Row():
                remember = gr.Button("Remember now", elem_id="mem-remember")
                new_chat = gr.Button("New conversation", elem_id="mem-new")
            status = gr.Markdown(backend.status(), elem_id="mem-status")
        with gr.Column(scale=3):
            with gr.Row():
                profile = gr.Dropdown(backend.profiles(), value=backend.config.profile, label="profile",
                                      allow_custom_value=True, elem_id="mem-profile", scale=3)
                switch = gr.Button("Switch profile", elem_id="mem-switch", scale=1)
            table = gr.Dataframe(headers=TABLE_HEADERS, value=None, label="catalog", interactive=False,
                                 elem_id="mem-table", wrap=True)
            selected = gr.CheckboxGroup([], label="selected adapters", elem_id="mem-selected")
            with gr.Row():
                forget = gr.Button("Forget", variant="stop", elem_id="mem-forget")
                method = gr.Dropdown(list(ROLLUP_METHODS), value="cat", label="roll-up method", elem_id="mem-method")
                rollup = gr.Button("Roll up", elem_id="mem-rollup")
            drop = gr.CheckboxGroup([], label="turns to leave out (one chunk adapter selected)", elem_id="mem-turns")
            regenerate = gr.Button("Regenerate without the ticked turns", elem_id="mem-regenerate")
            result = gr.Markdown("", elem_id="mem-result")

    def catalog_outputs():
        names = backend.names()
        return gr.update(value=backend.table() or None), gr.update(choices=names, value=[]), gr.update(choices=[], value=[])

    @guarded
    def on_send(msg, hist, todo):
        hist, todo = backend.chat(msg, hist, todo)
        return "", hist, hist, todo, backend.status()

    @guarded
    def on_remember(todo):
        todo = backend.remember(todo)
        return todo, backend.status()

    def on_new_chat():
        return [], [], [], backend.status()

    def on_tick(version, ticked, dropped):
        if backend.lock.acquire(blocking=False):  # a long action holds the lock: just redraw the status
            try:
                # open the catalog as soon as the base is loaded (once: after an error, a user action retries)
                if backend.opened or (backend.studio.loaded and not backend.open_error):
                    backend.open()
            except HfSteerError as e:  # e.g. a catalog saved for another base model: say so, keep ticking
                backend.open_error = str(e)
            finally:
                backend.lock.release()
        if version == backend.version:
            return backend.status(), version, gr.skip(), gr.skip(), gr.skip()
        # The catalog changed (here or in another browser tab): redraw it, keeping what this tab has ticked.
        names = backend.names()
        kept = [n for n in (ticked or []) if n in names]
        drop_update = gr.skip() if kept == list(ticked or []) else gr.update(choices=backend.turns_of(kept), value=[])
        return (backend.status(), backend.version, gr.update(value=backend.table() or None),
                gr.update(choices=names, value=kept), drop_update)

    @guarded
    def on_forget(names):
        return backend.forget(names), backend.status(), *catalog_outputs()

    @guarded
    def on_rollup(names, how):
        return backend.rollup(names, how), backend.status(), *catalog_outputs()

    @guarded
    def on_regenerate(names, dropped, progress=gr.Progress()):
        progress(0.1, desc="regenerating (training the adapter again)")
        return backend.regenerate(names, dropped), backend.status(), *catalog_outputs()

    def on_select(names):
        turns = backend.turns_of(names)
        return gr.update(choices=turns, value=[])

    @guarded
    def on_switch(name):
        msg = backend.use_profile(name)
        return (msg, backend.status(), gr.update(choices=backend.profiles(), value=backend.memory.profile),
                [], [], [], *catalog_outputs())

    chat_out = [message, chatbot, history, unlearned, status]
    send.click(on_send, [message, history, unlearned], chat_out)
    message.submit(on_send, [message, history, unlearned], chat_out)
    remember.click(on_remember, [unlearned], [unlearned, status])
    new_chat.click(on_new_chat, None, [chatbot, history, unlearned, status])
    catalog_out = [table, selected, drop]
    # preprocess=False: the handlers check the raw names and indices themselves (one clear line for a bad one)
    forget.click(on_forget, [selected], [result, status, *catalog_out], preprocess=False)
    rollup.click(on_rollup, [selected, method], [result, status, *catalog_out], preprocess=False)
    regenerate.click(on_regenerate, [selected, drop], [result, status, *catalog_out], preprocess=False)
    selected.change(on_select, [selected], [drop])
    switch.click(on_switch, [profile], [result, status, profile, chatbot, history, unlearned, *catalog_out],
                 preprocess=False)
    timer = gr.Timer(1.5)
    timer.tick(on_tick, [seen_version, selected, drop], [status, seen_version, *catalog_out], show_progress="hidden",
               concurrency_limit=None, queue=False)
