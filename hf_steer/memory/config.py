"""Every LoRA memory setting, with its default, its help and its allowed range, in one place.

The CLI flags are generated from these dataclasses (:mod:`hf_steer.cli_args`), and the Python API
takes its defaults from them, so a default is written once. ``__post_init__`` checks every value
(range, finiteness) and raises one :class:`~hf_steer.errors.HfSteerError` line naming the flag --
the CLI turns a bad value into exit status 2 before any model is loaded.

Light on purpose (no torch): ``hf-steer memory --help`` imports it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import HfSteerError

_BIG = 1_000_000


def _help(text: str, lo: float | None = None, hi: float | None = None, *, open_low: bool = False) -> dict[str, Any]:
    return {"help": text, "range": (lo, hi, open_low)}


def check_ranges(config: Any) -> None:
    """Check every field with a ``range`` in its metadata: finite, and ``lo <= value <= hi``."""
    for f in fields(config):
        rng = f.metadata.get("range")
        value = getattr(config, f.name)
        if rng is None or value is None or isinstance(value, bool):
            continue
        lo, hi, open_low = rng
        flag = "--" + f.name.replace("_", "-")
        if not isinstance(value, (int, float)):
            raise HfSteerError(f"{flag} {value!r} is not a number: pass a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise HfSteerError(f"{flag} {value} is not a finite number: pass a number between {lo} and {hi}")
        if f.type in (int, "int", "int | None") and isinstance(value, float) and not value.is_integer():
            raise HfSteerError(f"{flag} {value} is not a whole number")
        too_low = lo is not None and (value <= lo if open_low else value < lo)
        if too_low or (hi is not None and value > hi):
            low = f"more than {lo}" if open_low else f"at least {lo}"
            raise HfSteerError(f"{flag} {value} is out of range: use {low} and at most {hi}")


@dataclass(frozen=True)
class TrainPreset:
    """How one chunk becomes one adapter.

    ``top_layers`` > 0 adapts only the last that many decoder layers (enables frozen-prefix caching);
    0 adapts every layer. ``anchors`` base-model answers to ordinary questions are replayed in each
    chunk's training to keep unrelated answers unchanged. ``steps`` counts optimizer steps; ``epochs``
    (when set) overrides it with ``epochs * ceil(n_examples / batch_size)``. ``batch_size`` 0 means
    "all examples in one batch".

    ``fast-cpu`` (issue 14, 2026-12-02): top 3 layers, 8 steps at lr 1e-2, 4 anchors, 1 echo question
    per fact. Before: top 6 layers, 12 steps at lr 5e-3, 8 anchors, 2 echo questions -- about 64 s per
    4-turn chunk on the idle 2-core CPU (docs/memory.md, "Speed").
    """

    name: str = field(default="fast-cpu", metadata={"help": "preset name (fast-cpu, author)"})
    r: int = field(default=16, metadata=_help("LoRA rank of each chunk adapter", 1, 1024))
    alpha: float = field(default=32.0, metadata=_help("LoRA alpha (scale = alpha / r)", 0, 1e4, open_low=True))
    dropout: float = field(default=0.0, metadata=_help("LoRA dropout while training", 0, 0.9))
    learning_rate: float = field(default=1e-2, metadata=_help("AdamW learning rate (cosine decay to 0)", 0, 1.0,
                                                              open_low=True))
    steps: int = field(default=8, metadata=_help("optimizer steps per chunk", 1, 100_000))
    epochs: int | None = field(default=None, metadata=_help("passes over the chunk's texts (overrides steps)", 1, 10_000))
    batch_size: int = field(default=0, metadata=_help("texts per step (0 = all in one batch)", 0, 4096))
    max_length: int = field(default=128, metadata=_help("token cut-off of a training text", 8, 8192))
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        metadata={"help": "linear modules that get LoRA"})
    top_layers: int = field(default=3, metadata=_help("adapt only the last N decoder layers (0 = all)", 0, 10_000))
    anchors: int = field(default=4, metadata=_help("replayed base answers per chunk (keeps unrelated answers)", 0, 1000))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay", 0, 10))
    templates_per_topic: int = field(default=1, metadata=_help("'what do you know about T?' questions per topic", 0, 8))
    echo: int = field(default=1, metadata=_help("echo questions per fact (the fact with a name asked for)", 0, 8))
    notes_examples: bool = field(default=True, metadata={"help": "one question per fact asked with its notes"})
    plain_statements: bool = field(default=False, metadata={"help": "each fact as plain text too"})
    behaviour_top_layers: int = field(default=12, metadata=_help(
        "decoder layers a behaviour adapter adapts (0 = all): answering in one word moves the answer to the first "
        "token, which the top 3 layers alone cannot do", 0, 10_000))
    behaviour_learning_rate: float = field(default=5e-3, metadata=_help(
        "AdamW learning rate of a behaviour adapter", 0, 1.0, open_low=True))
    extra: dict = field(default_factory=dict, metadata={"help": "free-form settings kept with the preset"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        check_ranges(self)
        if not self.target_modules:
            raise HfSteerError("target_modules is empty: name at least one linear module (e.g. q_proj)")

    def for_behaviour(self) -> TrainPreset:
        """The preset a behaviour adapter trains with (its own layers and learning rate).

        Issue 14, "answer in one word", 20 held-out simple questions (busy CPU, 1 thread): top 3 layers at
        lr 1e-2 answered 18/20 in <= 2 words but 1/20 with the right word ("Japan.", "Bees."): the top
        layers only see the question's subject, the answer is found lower down. Top 12 layers at lr 5e-3:
        20/20 short, 6/20 right, 52 s; all 30 layers: 20/20 short, 8/20 right, 150 s.
        """
        return replace(self, top_layers=self.behaviour_top_layers, learning_rate=self.behaviour_learning_rate)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainPreset:
        """A preset from a catalog row (older rows spell the learning rate ``lr``)."""
        data = dict(data)
        if "lr" in data:
            data.setdefault("learning_rate", data.pop("lr"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


PRESETS: dict[str, TrainPreset] = {
    # Tuned on SmolLM2-135M on CPU (see docs/memory.md for the figures behind each number).
    "fast-cpu": TrainPreset(),
    # The issue author's GPU settings (text-generation-webui defaults: q_proj + v_proj, every layer).
    "author": TrainPreset(
        name="author", r=64, alpha=128.0, dropout=0.05, learning_rate=1e-4, epochs=10, batch_size=2, max_length=256,
        target_modules=("q_proj", "v_proj"), top_layers=0, anchors=0, behaviour_top_layers=0,
        behaviour_learning_rate=1e-4,
    ),
}


def get_preset(preset: str | TrainPreset, **overrides) -> TrainPreset:
    """Look a preset up by name (or pass one through) and apply keyword overrides (None = keep)."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise HfSteerError(f"preset {preset!r} is unknown: use one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "lr" in overrides:
        overrides["learning_rate"] = overrides.pop("lr")
    unknown = set(overrides) - {f.name for f in fields(TrainPreset)}
    if unknown:
        raise HfSteerError(f"preset setting(s) {sorted(unknown)} unknown: use fields of TrainPreset")
    return replace(preset, **overrides)


# The preset fields a command line may override (None on the line = the preset's own value).
PRESET_FLAGS = ("steps", "r", "learning_rate", "top_layers")


@dataclass
class MemoryConfig:
    """Which memory a command opens, and on which base model."""

    model: str | None = field(default=None, metadata={
        "help": "base model folder, .gguf file or Hub id (default: the bundled SmolLM2-135M-Instruct)"})
    folder: str | None = field(default=None, metadata={
        "help": "where profiles live (default: $HF_STEER_MEMORY or the hf_steer cache)"})
    profile: str = field(default="default", metadata={"help": "catalog to use: one per context (work, personal, ...)"})
    load_in_4bit: bool = field(default=False, metadata={"help": "load the base in nf4 4-bit (bitsandbytes)"})
    retrieval: bool = field(default=True, metadata={
        "help": "embed chunks with MiniLM for notes and routing (--no-retrieval: no sentence-transformers)"})
    route_threshold: float = field(default=0.5, metadata=_help(
        "cosine between a question and a remembered statement above which the statement's adapter answers", 0, 1))
    note_threshold: float = field(default=0.4, metadata=_help(
        "cosine between a question and a remembered statement above which the statement goes in the prompt as a "
        "note", 0, 1))
    personal_note_threshold: float = field(default=0.2, metadata=_help(
        "the note threshold for a question about the user or the assistant (I, my, we, us, you, your) and for a "
        "statement naming a name (or a word rarer than 'party', as 'the knee') the question names, and the score at "
        "which its best note's chunk adapter is routed too: such a question is about what was said, and its right "
        "note scored 0.22-0.39 on the dev chats",
        0, 1))
    seed: int = field(default=0, metadata=_help("seed of each adapter's training", 0, 2**32 - 1))

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.profile is not None:
            from .catalog import check_name

            check_name(self.profile, "profile name")


@dataclass
class AskConfig:
    """How a question is answered (``ask``, ``chat`` and the bench's default path)."""

    retrieve: bool = field(default=True, metadata={"help": "put the remembered statements nearest to the question in "
                                                           "the prompt as notes (part of the best measured path)"})
    adapters: bool = field(default=True, metadata={"help": "use the adapters (routed per question)"})
    route: bool = field(default=True, metadata={"help": "per question, only the adapters whose statements match it "
                                                        "(--no-route: the whole active stack)"})
    recite: bool = field(default=True, metadata={
        "help": "when an answer recites a remembered statement that is not the question's best note (or only part of "
                "it), answer with that note whole (needs notes; --no-recite: the generated answer as is)"})
    k: int = field(default=2, metadata=_help("notes per question at most", 1, 100))
    max_new_tokens: int = field(default=48, metadata=_help("answer length in tokens at most", 1, 4096))

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class ChatConfig:
    """The ``chat`` REPL: how often it learns, where it trains."""

    every: int = field(default=4, metadata=_help("user turns per chunk (each chunk becomes an adapter)", 1, _BIG))
    learn_replies: bool = field(default=True, metadata={
        "help": "learn the assistant's replies too (what they name: a recommendation, its own name); "
                "--no-learn-replies keeps only your turns"})
    max_new_tokens: int = field(default=64, metadata=_help("reply length in tokens at most", 1, 4096))
    history_turns: int = field(default=6, metadata=_help("turns of history in each prompt", 1, 1000))
    worker_threads: int = field(default=1, metadata=_help("CPU threads of the background training process", 1, 1024))
    inline: bool = field(default=False, metadata={"help": "train in this process (the chat waits) instead of a worker"})
    ray_address: str | None = field(default=None, metadata={
        "help": "train on a Ray cluster at this address (default: $RAY_ADDRESS; none = a local background process)"})
    ray_connect_timeout: float = field(default=60.0, metadata=_help(
        "seconds to wait for the Ray cluster before its chunks report an error (they stay queued)", 1, 3600))

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class RollupConfig:
    """``rollup``: how adapters are combined into one."""

    method: str = field(default="cat", metadata={"help": "cat/svd/ties/dare_ties/linear: PEFT weighted merge; "
                                                         "retrain: one adapter trained on all members' turns"})
    svd_rank: int | None = field(default=None, metadata=_help("rank of an svd roll-up (default: largest member rank)",
                                                              1, 4096))
    density: float = field(default=0.5, metadata=_help("kept fraction for ties / dare_ties", 0, 1, open_low=True))

    def __post_init__(self) -> None:
        check_ranges(self)


def finite_weights(weights) -> list[float] | None:
    """Roll-up weights must be finite numbers (negative ones subtract an adapter: allowed)."""
    if weights is None:
        return None
    out = [float(w) for w in weights]
    bad = [w for w in out if not math.isfinite(w) or abs(w) > 1e6]
    if bad:
        raise HfSteerError(f"--weights {bad[0]} is not a usable weight: pass finite numbers such as 1 or 0.5")
    return out


def check_seed(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise HfSteerError(f"--seed {seed} is out of range: use 0 to {2**32 - 1}")
    return seed


BENCH_PARTS = ("encyclopedia", "conversation", "conversation_heldout", "behaviour")


@dataclass
class BenchConfig:
    """``hf-steer memory bench``: which sets, how many chunks, which settings."""

    parts: list[str] = field(default_factory=lambda: list(BENCH_PARTS), metadata={
        "help": "which sets to run: " + ", ".join(BENCH_PARTS)})
    facts: int = field(default=20, metadata=_help("built-in encyclopedia facts to teach", 1, 20))
    facts_per_chunk: int = field(default=1, metadata=_help("encyclopedia facts per chunk (1: 20 adapters)", 1, 20))
    chats: int | None = field(default=None, metadata=_help(
        "conversations run per set (default: all -- 4 dev, 3 held-out); fewer for a quick run", 1, 1000))
    rollups: list[str] = field(default_factory=lambda: ["cat", "svd", "ties", "retrain"], metadata={
        "help": "roll-up methods measured on the encyclopedia profile"})
    note_threshold: float = field(default=MemoryConfig.note_threshold, metadata=_help(
        "cosine above which a statement goes in the prompt as a note", 0, 1))
    personal_note_threshold: float = field(default=MemoryConfig.personal_note_threshold, metadata=_help(
        "the note (and routing) threshold for a question about the user or the assistant (I, my, we, us, you, "
        "your)", 0, 1))
    route_threshold: float = field(default=MemoryConfig.route_threshold, metadata=_help(
        "cosine above which a statement's adapter answers", 0, 1))
    preset: str = field(default="fast-cpu", metadata={"help": "training preset (fast-cpu, author)"})
    steps: int | None = field(default=None, metadata=_help("override the preset's optimizer steps", 1, 100_000))
    r: int | None = field(default=None, metadata=_help("override the preset's LoRA rank", 1, 1024))
    learning_rate: float | None = field(default=None, metadata=_help("override the preset's learning rate", 0, 1.0,
                                                                     open_low=True))
    top_layers: int | None = field(default=None, metadata=_help("override the preset's adapted top layers", 0, 10_000))
    svd_rank: int | None = field(default=None, metadata=_help("rank of the svd roll-up (default: largest member rank)",
                                                              1, 4096))
    retrieval: bool = field(default=True, metadata={"help": "measure the retrieval paths too (needs MiniLM)"})
    max_new_tokens: int = field(default=16, metadata=_help("answer length (the expected word comes early)", 1, 512))

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.preset not in PRESETS:
            raise HfSteerError(f"--preset {self.preset!r} is unknown: use one of {', '.join(PRESETS)}")
        self.parts = list(self.parts)
        bad = [p for p in self.parts if p not in BENCH_PARTS]
        if bad or not self.parts:
            raise HfSteerError(f"--parts {bad or self.parts} unknown: use some of {', '.join(BENCH_PARTS)}")
        self.rollups = list(self.rollups)
        bad = [m for m in self.rollups if m not in ("cat", "svd", "ties", "dare_ties", "linear", "retrain")]
        if bad:
            raise HfSteerError(f"--rollups {bad} unknown: use cat, svd, ties, dare_ties, linear or retrain")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_preset(self) -> TrainPreset:
        return get_preset(self.preset, **{f: getattr(self, f) for f in PRESET_FLAGS})
