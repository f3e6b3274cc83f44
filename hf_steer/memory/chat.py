"""The ``hf-steer memory chat`` REPL: chat, and LoRA-tize the conversation in the background as it goes.

Every ``every`` user turns (and on ``/remember``) the turns since the last chunk go to the background
worker; replies keep coming from the current stack meanwhile. Before each prompt the REPL collects
finished adapters and switches them in. Commands::

    /remember        learn the turns since the last chunk now
    /list            the catalog of this profile
    /forget NAME     forget an adapter (roll-ups containing it are rebuilt)
    /rollup [METHOD] roll every active chunk adapter into one (cat, svd, ties, dare_ties, retrain)
    /profile [NAME]  show or switch profile (work, personal, ...)
    /wait            wait for training jobs still running (handy in scripts)
    /quit            leave (waits for running jobs so nothing said is lost)

The assistant's replies are learned too, but only their sentences that name something (a
recommendation, a name it was given): a small model's chatter is not worth remembering and is dropped by
the reader (:mod:`hf_steer.memory.augment`); ``--no-learn-replies`` keeps only the user's turns. A chunk
asking how to answer ("answer in one word") becomes a behaviour adapter, on for every question.
"""

from __future__ import annotations

import sys
from typing import TextIO

from ..errors import HfSteerError
from .config import AskConfig, ChatConfig
from .memory import LoraMemory
from .offload import RayTrainer, check_address
from .worker import BackgroundTrainer

HELP = "commands: /remember /list /forget NAME /rollup [METHOD] /profile [NAME] /wait /quit"


class ChatSession:
    """State of one REPL: the memory, the trainer, the history and the turns not yet learned.

    ``chat`` and ``ask`` hold the settings (:class:`~hf_steer.memory.config.ChatConfig`,
    :class:`~hf_steer.memory.config.AskConfig`); their defaults are the CLI's.
    """

    def __init__(self, memory: LoraMemory, *, chat: ChatConfig | None = None, ask: AskConfig | None = None,
                 out: TextIO = sys.stdout):
        self.memory = memory
        self.cfg = chat or ChatConfig()
        self.ask = ask or AskConfig(max_new_tokens=self.cfg.max_new_tokens)
        self.out = out
        self.history: list[dict[str, str]] = []
        self.unlearned: list[dict[str, str]] = []
        self.user_turns_since = 0
        self.worker = None
        self.retries: dict[str, int] = {}
        if not self.cfg.inline:
            address = check_address(self.cfg.ray_address)
            if address:  # a Ray cluster trains (see offload.py); the chat never waits on it
                self.worker = RayTrainer(memory.base_path, address=address, load_in_4bit=memory.quantized,
                                         connect_timeout=self.cfg.ray_connect_timeout)
                self.say(f"[memory] training on the Ray cluster at {address}")
            else:
                self.worker = BackgroundTrainer(memory.base_path, threads=self.cfg.worker_threads,
                                                load_in_4bit=memory.quantized)
            for name, entry in memory.queued().items():  # chunks a previous session did not finish
                if entry.get("job"):
                    self._submit(entry["job"])
                    self.say(f"[memory] training {name} again (queued by an earlier session)")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- training -------------------------------------------------------------------------------
    MAX_RETRIES = 2

    def _submit(self, job: dict) -> None:
        mem = self.memory
        self.worker.submit({**job, "anchors": mem.anchors(mem.preset.anchors), "seed": mem.seed + len(mem.catalog)})

    def remember_now(self) -> None:
        turns = [t for t in self.unlearned if self.cfg.learn_replies or t["role"] == "user"]
        self.unlearned, self.user_turns_since = [], 0
        if not turns:
            self.say("[memory] nothing new to remember")
            return
        if self.worker is None:
            try:
                row = self.memory.remember(turns)
                self.say(f"[memory] learned {', '.join([row['name'], *row['also']])} ({row['train']['seconds']:.1f} s); "
                         f"active: {', '.join(self.memory.active)}")
                for note in row.get("notes", []):
                    self.say(f"[memory] note: {note}")
            except HfSteerError as e:
                self.say(f"[memory] not learned: {e}")
            return
        try:  # read and kept on disk before the worker sees it
            jobs = self.memory.queue_chunk(turns, taken=list(self.worker.pending))
        except HfSteerError as e:
            self.say(f"[memory] not learned: {e}")
            return
        for job in jobs:
            self._submit(job)
            what = "a behaviour" if job["kind"] == "behaviour" else f"{len(job['facts'])} facts"
            self.say(f"[memory] training {job['name']} in the background ({what} from {len(turns)} turns)")
            for note in job.get("notes", []):
                self.say(f"[memory] note: {note}")

    def collect(self, results=None) -> None:
        """Switch in every adapter the worker has finished; a failed chunk stays queued and is retried."""
        if self.worker is None:
            return
        for msg in results if results is not None else self.worker.poll():
            name = msg["name"]
            queued = self.memory.queued()
            if name not in queued:  # forgotten while it trained: its adapter is not wanted
                self.say(f"[memory] dropped {name}: it was forgotten while it trained")
                continue
            if msg["event"] == "error":
                tries = self.retries[name] = self.retries.get(name, 0) + 1
                if tries <= self.MAX_RETRIES and self.worker.failed is None and self.worker.process.is_alive():
                    self.say(f"[memory] training {name} failed ({msg['error']}); retrying ({tries}/{self.MAX_RETRIES})")
                    self._submit(queued[name]["job"])
                else:
                    self.say(f"[memory] training {name} failed: {msg['error']}; it stays queued for the next session")
                continue
            try:
                self.memory.add_trained(msg["files"], msg["row"])
                self.say(f"[memory] learned {name} ({msg['seconds']:.1f} s); active: {', '.join(self.memory.active)}")
            except HfSteerError as e:
                self.say(f"[memory] could not add {name}: {e}")

    # -- one line of input ----------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Process one input line; False means quit."""
        self.collect()
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return self.command(line)
        self.history.append({"role": "user", "content": line})
        self.unlearned.append({"role": "user", "content": line})
        reply = self.memory.chat(self.history[-self.cfg.history_turns :], retrieve=self.ask.retrieve,
                                 route=self.ask.route, recite=self.ask.recite, k=self.ask.k,
                                 max_new_tokens=self.cfg.max_new_tokens)
        self.history.append({"role": "assistant", "content": reply})
        self.unlearned.append({"role": "assistant", "content": reply})
        self.say(f"bot> {reply}")
        self.user_turns_since += 1
        if self.user_turns_since >= self.cfg.every:
            self.remember_now()
        return True

    def command(self, line: str) -> bool:
        cmd, *args = line.split()
        try:
            if cmd in ("/quit", "/exit"):
                return False
            if cmd == "/help":
                self.say(HELP)
            elif cmd == "/remember":
                self.remember_now()
            elif cmd == "/wait":
                if self.worker is not None:
                    self.collect(self.worker.wait())
                self.say("[memory] no training running")
            elif cmd == "/list":
                rows = self.memory.table()
                if not rows:
                    self.say("[memory] (empty)")
                for r in rows:
                    flag = "*" if r["active"] else " "
                    what = f"roll-up of {','.join(r['members'])}" if r["kind"] == "rollup" else r["summary"]
                    self.say(f"{flag} {r['name']:<8} {r['kind']:<6} r={r['r']:<3} {what}")
            elif cmd == "/forget":
                if not args:
                    raise HfSteerError("/forget needs a NAME: see /list")
                res = self.memory.forget(args[0])
                rebuilt = f"; rebuilt {', '.join(res['rebuilt'])}" if res["rebuilt"] else ""
                self.say(f"[memory] forgot {args[0]}{rebuilt}")
                for note in res["copies_left"]:
                    self.say(f"[memory] note: {note}")
            elif cmd == "/rollup":
                row = self.memory.rollup(method=args[0] if args else "cat")
                self.say(f"[memory] rolled {', '.join(row['members'])} into {row['name']} ({row['method']}, r={row['r']})")
                if (row.get("recall_check") or {}).get("warning"):
                    self.say(f"[memory] warning: {row['recall_check']['warning']}")
            elif cmd == "/profile":
                if args:
                    if self.worker is not None:
                        self.collect(self.worker.wait())  # finish jobs of the old profile first
                    self.memory.use_profile(args[0])
                    self.history, self.unlearned, self.user_turns_since = [], [], 0
                self.say(f"[memory] profile {self.memory.profile}: {len(self.memory.names())} adapters")
            else:
                self.say(f"[memory] unknown command {cmd}; {HELP}")
        except HfSteerError as e:
            self.say(f"[memory] {e}")
        return True

    def close(self) -> None:
        if self.worker is not None:
            if self.worker.pending:
                self.say(f"[memory] waiting for {len(self.worker.pending)} training job(s)")
                self.collect(self.worker.wait())
            self.worker.close()


def run_chat(memory: LoraMemory, stdin: TextIO = sys.stdin, **kwargs) -> int:
    """Read lines until EOF or /quit; remember turns in the background; print replies."""
    session = ChatSession(memory, **kwargs)
    session.say(f"[memory] profile {memory.profile}, {len(memory.names())} adapters; {HELP}")
    try:
        while True:
            if stdin.isatty():
                print("you> ", end="", flush=True)
            line = stdin.readline()
            if not line or not session.handle(line):
                break
    finally:
        session.close()
    return 0
