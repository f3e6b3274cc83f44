"""The settings of ``hf-steer abc train / generate / bench``, one dataclass each (TRL's ``*_config.py`` style).

Each field's default and help live here once: the CLI builds its flags from these fields with
:func:`hf_steer.cli_args.add_config_arguments`, and the Python API takes the same names. Every value is
checked in ``__post_init__`` with one :class:`~hf_steer.errors.HfSteerError` line naming the setting
and the fix. This file imports nothing heavy (no torch), so ``hf-steer --help`` stays fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from ..errors import HfSteerError

GATE_FAMILIES = ("residual", "mlp", "heads")
# Upper bounds that keep a typo (an extra zero, 1e30) from hanging a run or a machine; far above any
# sensible setting for a character-level model. Memory is checked separately, against the machine.
MAX_STEPS = 10**8
MAX_SIZE = 1 << 20  # widths, context, batch rows
MAX_LAYERS = 4096
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (``set_seed``) takes 32 bits


def check_int(name: str, value, low: int, high: int) -> int:
    """``value`` as an int in [low, high], or one line naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
        raise HfSteerError(f"{name} is {value!r}: use a whole number from {low} to {high}")
    if not low <= value <= high:
        raise HfSteerError(f"{name} is {value}: use a whole number from {low} to {high}")
    return int(value)


def check_float(name: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the given interval, or one line naming ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise HfSteerError(f"{name} is {value!r}: use a number") from None
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if not math.isfinite(x) or x < low or x > high or (low_open and x == low) or (high_open and x == high):
        raise HfSteerError(f"{name} is {value}: use a number in {interval}")
    return x


DATA_DIR = Path(__file__).parent / "data"
# The bundled sources, by the names the CLI and the bench use by default.
BUNDLED_SOURCES = {
    "tinystories": DATA_DIR / "tinystories.txt",
    "shakespeare": DATA_DIR / "tinyshakespeare.txt",
    "names": DATA_DIR / "names.txt",
}


def parse_source_specs(specs: list[str]) -> dict[str, Path]:
    """``["tinystories=path.txt", "shakespeare"]`` -> {name: path}; a bare name picks a bundled source."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep:
            if name not in BUNDLED_SOURCES:
                raise HfSteerError(
                    f"--source {spec!r} has no path: write NAME=PATH, or one of the bundled names {', '.join(BUNDLED_SOURCES)}"
                )
            path = str(BUNDLED_SOURCES[name])
        if not name or not path.strip():
            raise HfSteerError(f"--source {spec!r} is not NAME=PATH: write e.g. shakespeare=data/shakespeare.txt")
        if name in out:
            raise HfSteerError(f"--source name {name!r} is given twice: give each source its own name")
        out[name] = Path(path.strip()).expanduser()
    if len(out) < 2:
        raise HfSteerError(f"{len(out)} source(s) given: abcGPT needs two or more, e.g. --source tinystories --source shakespeare")
    return out


@dataclass
class TrainConfig:
    """Everything one training run needs; checked once in ``__post_init__``."""

    sources: dict[str, str] = field(metadata={"help": "source name -> UTF-8 text file (two or more)"})
    output_dir: str = field(metadata={"help": "folder for the model, checkpoints and hf_steer.json"})
    n_embd: int = field(default=128, metadata={"help": "width of the residual stream"})
    n_layer: int = field(default=4, metadata={"help": "transformer blocks"})
    n_head: int = field(default=4, metadata={"help": "attention heads (n_embd must be a multiple)"})
    block_size: int = field(default=128, metadata={
        "help": "context in characters; generation slides this window, so text can be longer"})
    batch_size: int = field(default=16, metadata={"help": "rows per step per process"})
    steps: int = field(default=600, metadata={"help": "optimizer steps (a resumed run continues up to this step)"})
    learning_rate: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "the cosine schedule ends at this fraction of the peak"})
    warmup_steps: int = field(default=30, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay on matrices"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clip (0 = off)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on embeddings, attention and MLP outputs"})
    gated: bool = field(default=True, metadata={"help": "gates on; off trains the plain GPT baseline"})
    gate_residual: bool = field(default=True, metadata={"help": "gate the residual channels"})
    gate_mlp: bool = field(default=True, metadata={"help": "gate the MLP hidden units"})
    gate_heads: bool = field(default=True, metadata={"help": "gate the attention heads"})
    gate_function: Literal["cos2", "gaussian"] = field(default="cos2", metadata={"help": "spotlight shape"})
    gate_width: float = field(default=0.35, metadata={"help": "Gaussian gate width (normalised distance)"})
    gate_floor: float = field(default=0.0, metadata={
        "help": "least any gate lets through, in [0, 1): more capacity at the dial's ends, less contrast"})
    concentration: float = field(default=0.5, metadata={"help": "Dirichlet concentration of the training dial"})
    fixed_mixture: list[float] | None = field(default=None, metadata={
        "help": "train a specialist: always this mixture, one weight per source (e.g. 1 0)"})
    val_fraction: float = field(default=0.1, metadata={"help": "held-out share at the end of each source file"})
    lowercase: bool = field(default=False, metadata={"help": "lower-case all text (case is kept by default)"})
    eval_batches: int = field(default=4, metadata={"help": "held-out batches per source for the saved α curves"})
    log_every: int = field(default=50, metadata={"help": "print the training loss every N steps"})
    save_every: int = field(default=200, metadata={
        "help": "checkpoint every N steps (the last step is always saved, so --resume can continue); 0 = never"})
    keep_checkpoints: int = field(default=1, metadata={"help": "newest checkpoints kept"})
    seed: int = field(default=0, metadata={"help": "seed for data, init and the units' source positions m"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint in --output-dir"})
    write_artifacts: bool = field(default=True, metadata={"help": "write hf_steer.json and the α-curve PNG"})
    extra: dict = field(default_factory=dict, metadata={"help": "free-form notes kept in training_args.json"})

    def __post_init__(self):
        if not isinstance(self.sources, dict) or len(self.sources) < 2:
            raise HfSteerError(f"sources is {self.sources!r}: give two or more NAME -> file entries")
        if not str(self.output_dir).strip():
            raise HfSteerError("output_dir is empty: name a folder for the model")
        for name, high in (("n_embd", MAX_SIZE), ("n_head", MAX_SIZE), ("block_size", MAX_SIZE),
                           ("batch_size", MAX_SIZE), ("n_layer", MAX_LAYERS), ("steps", MAX_STEPS),
                           ("eval_batches", 10**6), ("log_every", MAX_STEPS), ("keep_checkpoints", 10**6)):
            setattr(self, name, check_int(name, getattr(self, name), 1, high))
        for name in ("warmup_steps", "save_every"):
            setattr(self, name, check_int(name, getattr(self, name), 0, MAX_STEPS))
        self.seed = check_int("seed", self.seed, 0, MAX_SEED)
        if self.n_embd % self.n_head:
            raise HfSteerError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: pick a multiple")
        self.learning_rate = check_float("learning_rate", self.learning_rate, 0, 10, low_open=True)
        self.min_lr_ratio = check_float("min_lr_ratio", self.min_lr_ratio, 0, 1)
        self.weight_decay = check_float("weight_decay", self.weight_decay, 0, 100)
        self.grad_clip = check_float("grad_clip", self.grad_clip, 0, 1e6)
        self.dropout = check_float("dropout", self.dropout, 0, 1, high_open=True)
        self.gate_width = check_float("gate_width", self.gate_width, 0, 100, low_open=True)
        self.gate_floor = check_float("gate_floor", self.gate_floor, 0, 1, high_open=True)
        self.concentration = check_float("concentration", self.concentration, 0, 1e6, low_open=True)
        self.val_fraction = check_float("val_fraction", self.val_fraction, 0, 0.5, low_open=True, high_open=True)
        if self.gate_function not in ("cos2", "gaussian"):
            raise HfSteerError(f"gate_function is {self.gate_function!r}: use cos2 or gaussian")
        if self.fixed_mixture is not None:
            w = [check_float("fixed_mixture weight", x, 0, 1) for x in self.fixed_mixture]
            if len(w) != len(self.sources) or abs(sum(w) - 1) > 1e-6:
                raise HfSteerError(
                    f"fixed_mixture is {self.fixed_mixture}: give {len(self.sources)} non-negative weights summing to 1"
                )
            self.fixed_mixture = w

    @property
    def gates(self) -> dict[str, bool]:
        """Which unit families the model gates (all off for the ungated baseline)."""
        on = {"residual": self.gate_residual, "mlp": self.gate_mlp, "heads": self.gate_heads}
        return {k: self.gated and v for k, v in on.items()}


@dataclass
class GenerateConfig:
    """Settings of :func:`~hf_steer.abcgpt.generation.generate_text` and ``hf-steer abc generate``."""

    prompt: str = field(default="\n", metadata={"help": "text to continue (on the command line \\n and \\t work)"})
    alpha: float | None = field(default=None, metadata={"help": "two-source dial in [0, 1] (0 = first source)"})
    mix: str | dict | None = field(default=None, metadata={
        "help": "mixture over the sources, e.g. shakespeare=0.7,tinystories=0.3"})
    max_new_tokens: int = field(default=200, metadata={
        "help": "characters to write; past the model's context the window slides, as in nanoGPT"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature"})
    num_samples: int = field(default=1, metadata={"help": "samples to write"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})

    def __post_init__(self):
        if not isinstance(self.prompt, str) or not self.prompt:
            raise HfSteerError("prompt is empty: give at least one character, e.g. a newline")
        if (self.alpha is None) == (self.mix is None):
            raise HfSteerError("give exactly one of alpha (two sources) or mix (NAME=WEIGHT,...)")
        # alpha and mix are checked against the model's sources by generate_text (the error names them).
        self.max_new_tokens = check_int("max_new_tokens", self.max_new_tokens, 1, 100_000)
        self.temperature = check_float("temperature", self.temperature, 0, 1000, low_open=True)
        self.num_samples = check_int("num_samples", self.num_samples, 1, 10_000)
        self.seed = check_int("seed", self.seed, 0, MAX_SEED)


@dataclass
class BenchConfig:
    """What ``hf-steer abc bench`` adds to a :class:`TrainConfig` (whose fields set the models' size)."""

    eval_batches: int = field(default=8, metadata={"help": "held-out batches per source for every loss figure"})
    n_samples: int = field(default=24, metadata={"help": "samples per α for the source score"})
    sample_length: int = field(default=120, metadata={"help": "characters per sample (must fit --block-size)"})
    throughput_rounds: int = field(default=5, metadata={"help": "alternating timing rounds for the throughput ratio"})
    work_dir: str | None = field(default=None, metadata={
        "help": "folder for the four trained models (default: <output-json stem>_models beside the JSON)"})

    def __post_init__(self):
        self.eval_batches = check_int("eval_batches", self.eval_batches, 1, 10**6)
        self.n_samples = check_int("n_samples", self.n_samples, 1, 100_000)
        self.sample_length = check_int("sample_length", self.sample_length, 1, MAX_SIZE)
        self.throughput_rounds = check_int("throughput_rounds", self.throughput_rounds, 1, 10_000)


def check_model_folder(path: str | os.PathLike) -> Path | None:
    """The abcGPT folder at ``path``, ``None`` for a Hub id, or one line saying what is wrong (no torch needed)."""
    from ..artifacts import hub_model_id, read_json_object

    p = Path(path).expanduser()
    if not p.exists():
        if hub_model_id(str(path)) is None:
            raise HfSteerError(
                f"model folder {path} does not exist: pass a folder written by `hf-steer abc train` (or a Hub id)")
        return None
    if not p.is_dir():
        raise HfSteerError(f"model {path} is a file: pass the folder written by `hf-steer abc train`")
    if not (p / "config.json").is_file():
        raise HfSteerError(f"model folder {path} has no config.json: pass a folder written by `hf-steer abc train`")
    model_type = read_json_object(p / "config.json", "model config").get("model_type")
    if model_type != "abcgpt":
        raise HfSteerError(
            f"model folder {path} holds a {model_type!r} model, not abcGPT: pass a folder written by `hf-steer abc train`"
        )
    return p


def field_names(cls) -> set[str]:
    return {f.name for f in fields(cls) if f.init}
