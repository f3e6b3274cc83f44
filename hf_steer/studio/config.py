"""StudioConfig: what ``hf-steer studio`` takes. The defaults live here, never in the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import HfSteerError


@dataclass
class StudioConfig:
    """Settings of one studio server (one base model shared by the four tabs, each with its own copy)."""

    model: str | None = field(
        default=None, metadata={"help": "model folder, .gguf or Hub id (default: the bundled SmolLM2-135M-Instruct)"}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0 exposes the studio to your network)"})
    port: int = field(default=7860, metadata={"help": "port to listen on (0: any free port)"})
    memory_folder: str | None = field(
        default=None, metadata={"help": "folder of the memory profiles (default: $HF_STEER_MEMORY or the hf_steer cache)"}
    )
    profile: str = field(default="default", metadata={"help": "memory profile opened at start"})
    memory_preset: str = field(default="fast-cpu", metadata={"help": "training preset of new memories (fast-cpu | author)"})
    memory_every: int = field(default=4, metadata={"help": "user turns between two background memories (0: only on 'Remember now')"})
    background: bool = field(
        default=True, metadata={"help": "train memories in a background process (off: train in the server, the chat waits)"}
    )
    chat_tokens: int = field(default=64, metadata={"help": "longest memory-chat reply, in tokens"})
    retrieval: bool = field(
        default=True, metadata={"help": "route each question to the memories whose statements match it (MiniLM embedder)"}
    )
    abc_folder: str | None = field(
        default=None,
        metadata={"help": "abcGPT or abc adapter folder the abcGPT tab opens (default: a small starter abcGPT, trained once and cached)"},
    )
    work_folder: str | None = field(
        default=None, metadata={"help": "where the studio keeps what it trains (default: <hf_steer cache>/studio)"}
    )
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)"})
    preload: bool = field(default=True, metadata={"help": "load the base model in the background as soon as the page is up"})

    def __post_init__(self):
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise HfSteerError(f"port {self.port!r} is not a TCP port: use 0..65535 (0 picks a free one)")
        if self.threads is not None and self.threads < 1:
            raise HfSteerError(f"threads {self.threads} is not a count >= 1: give how many CPU threads torch may use")
        if self.memory_every < 0:
            raise HfSteerError(f"memory_every {self.memory_every} is negative: give 0 (manual only) or a number of turns")
        if not isinstance(self.chat_tokens, int) or self.chat_tokens < 1:
            raise HfSteerError(f"chat_tokens {self.chat_tokens!r} is not a count >= 1: give the longest reply in tokens")
        if not self.host:
            raise HfSteerError("host is empty: use 127.0.0.1 (this machine only) or 0.0.0.0")
