"""AbcAdaptConfig: everything one ``hf-steer abc adapt train`` run needs (TRL style: one typed config).

A plain dataclass rather than a ``TrainingArguments`` subclass, so the CLI can build its flags from it
(:func:`hf_steer.cli_args.add_config_arguments`) without importing transformers; :func:`.adapt_trainer.training_arguments`
turns it into the ``TrainingArguments`` the Trainer runs with (CPU: ``use_cpu=True, bf16=False``).
The defaults are the bench's settings on the bundled SmolLM2-135M-Instruct (docs/abc_adapter.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ...errors import HfSteerError


def _check_numbers(config) -> None:
    """No setting is NaN or infinite (one line naming the first that is)."""
    for name, value in vars(config).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise HfSteerError(f"{name} is {value}: use a finite number")


# Every linear layer of a Llama-style block (SmolLM2, Llama, Qwen, Mistral, Gemma...).
LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class AbcAdaptConfig:
    """Settings of one abc adapter (or, with ``gated=False``, plain LoRA baseline) training run."""

    sources: dict[str, str] = field(default_factory=dict, metadata={"help": "source name -> text file (2 or more)"})
    output_dir: str | None = field(default=None, metadata={"help": "folder for the adapter, checkpoints and hf_steer.json"})
    base_model: str | None = field(
        default=None, metadata={"help": "base model: a folder, a .gguf file or a Hub id (default: the bundled SmolLM2-135M-Instruct)"}
    )
    load_in_4bit: bool = field(default=False, metadata={"help": "load the base model in 4-bit nf4 (QLoRA)"})
    gated: bool = field(default=True, metadata={"help": "source-gated units (the abc adapter); --no-gated trains a plain LoRA baseline"})
    fixed_mixture: list[float] | None = field(
        default=None, metadata={"help": "every row drawn from this mixture (e.g. 1 0: a single-source specialist)"}
    )
    r: int = field(default=16, metadata={"help": "LoRA rank of every adapted layer"})
    unit_size: int = field(default=1, metadata={"help": "rank components per gated unit (they share one source position m)"})
    lora_alpha: float = field(default=32.0, metadata={"help": "LoRA scaling numerator (update scaled by lora_alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's input"})
    target_modules: list[str] = field(
        default_factory=lambda: list(LLAMA_LINEAR), metadata={"help": "linear layers to adapt (names), or all-linear"}
    )
    layers: str | None = field(
        default="15-29",
        metadata={"help": "block indices to adapt, e.g. 15-29 or 0,5,9; 'all' for every block. Training back-propagates "
                          "only down to the lowest adapted block, so upper blocks train faster"},
    )
    gate_function: Literal["cos2", "gaussian"] = field(default="cos2", metadata={"help": "spotlight shape"})
    gate_width: float = field(default=0.35, metadata={"help": "Gaussian gate width"})
    gate_floor: float = field(default=0.0, metadata={"help": "least any gate lets through, in [0, 1)"})
    gate_normalize: bool = field(
        default=True,
        metadata={"help": "divide each row's gates by their mean over all units (same rank on at every alpha); "
                          "--no-gate-normalize: the plain spotlight"},
    )
    balanced_positions: bool = field(
        default=False,
        metadata={"help": "as many units of every layer lean to each source, each still drawn from the U-shaped law "
                          "(measured no better at 80 steps: docs/abc_adapter.md)"},
    )
    concentration: float = field(default=0.5, metadata={"help": "Dirichlet concentration of the training dial (0.5: Beta(½, ½))"})
    vertex_fraction: float = field(
        default=0.0,
        metadata={"help": "share of rows whose dial is set to the vertex of the source they were drawn from (alpha "
                          "exactly 0 or 1), after the usual draw; the rest keep their Dirichlet dial (0: plain Beta(½, ½), "
                          "abcGPT's own schedule; 0.25 helped only with 8 rows a step, docs/abc_adapter.md)"},
    )
    block_size: int = field(default=64, metadata={"help": "tokens per training window"})
    batch_size: int = field(default=16, metadata={
        "help": "windows per optimizer step (16: the bench's abc adapter on two sources, the rows of its two 8-window "
                "specialists together)"})
    steps: int = field(default=80, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=2e-3, metadata={"help": "peak AdamW learning rate"})
    warmup_steps: int = field(default=5, metadata={"help": "linear warm-up steps"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decay ends at this fraction of the peak"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    val_fraction: float = field(default=0.1, metadata={"help": "held-out END of each source file (never trained on)"})
    eval_windows: int = field(default=8, metadata={"help": "held-out windows per source and alpha for the card's alpha curves (0: none)"})
    save_steps: int = field(default=20, metadata={"help": "checkpoint every N steps (0: none)"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every N steps"})
    seed: int = field(default=0, metadata={"help": "seed of the rows drawn, the adapter init and the units' source positions"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint in output_dir"})
    progress: bool = field(default=False, metadata={"help": "show the Trainer's progress bar"})

    def __post_init__(self) -> None:
        _check_numbers(self)
        if self.seed < 0:
            raise HfSteerError(f"seed is {self.seed}: use 0 or more")
        if len(self.sources) < 2 and self.fixed_mixture is None:
            raise HfSteerError(f"{len(self.sources)} source(s) given: the dial needs two or more, e.g. --source tinystories --source shakespeare")
        if not self.output_dir:
            raise HfSteerError("output_dir is empty: give a folder for the adapter, e.g. --output-dir runs/dial")
        for key in ("r", "unit_size", "block_size", "batch_size", "steps"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise HfSteerError(f"{key} is {value!r}: use a positive integer")
        for key in ("warmup_steps", "eval_windows", "save_steps", "logging_steps"):
            if getattr(self, key) < 0:
                raise HfSteerError(f"{key} is {getattr(self, key)}: use 0 or more")
        if self.r % self.unit_size:
            raise HfSteerError(f"unit_size {self.unit_size} does not divide r={self.r}: use a divisor, e.g. 1")
        if not self.learning_rate > 0:
            raise HfSteerError(f"learning_rate is {self.learning_rate}: use a positive number such as 2e-3")
        if not 0.0 < self.val_fraction < 0.5:
            raise HfSteerError(f"val_fraction is {self.val_fraction}: use a fraction in (0, 0.5), e.g. 0.1")
        if not self.concentration > 0:
            raise HfSteerError(f"concentration is {self.concentration}: use a positive number such as 0.5")
        if not self.lora_alpha > 0 or not self.gate_width > 0:
            raise HfSteerError(f"lora_alpha ({self.lora_alpha}) and gate_width ({self.gate_width}) must be positive")
        if not 0.0 <= self.vertex_fraction <= 1.0:
            raise HfSteerError(f"vertex_fraction is {self.vertex_fraction}: use a fraction in [0, 1], e.g. 0.25")
        if not 0.0 <= self.gate_floor < 1.0 or not 0.0 <= self.lora_dropout < 1.0:
            raise HfSteerError(f"gate_floor ({self.gate_floor}) and lora_dropout ({self.lora_dropout}) must lie in [0, 1)")
        if self.weight_decay < 0:
            raise HfSteerError(f"weight_decay is {self.weight_decay}: use 0 or more")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise HfSteerError(f"min_lr_ratio is {self.min_lr_ratio}: use a fraction in [0, 1]")
        if self.fixed_mixture is not None:
            w = [float(x) for x in self.fixed_mixture]
            if len(w) != len(self.sources) or any(not 0 <= x <= 1 for x in w) or abs(sum(w) - 1) > 1e-6:
                raise HfSteerError(
                    f"fixed_mixture is {self.fixed_mixture}: give {len(self.sources)} non-negative weights summing to 1"
                )
            self.fixed_mixture = w
        self.layer_indices()  # checked here, used when the adapter is built

    def layer_indices(self) -> list[int] | None:
        """``layers`` as a list of block indices (``None``: every block)."""
        text = (self.layers or "all").strip().lower()
        if text == "all":
            return None
        out: list[int] = []
        try:
            for part in filter(None, (p.strip() for p in text.split(","))):
                lo, sep, hi = part.partition("-")
                out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
        except ValueError:
            raise HfSteerError(f"layers {self.layers!r} is not a list of block indices: write e.g. 15-29, 0,4,8 or all") from None
        if not out or min(out) < 0:
            raise HfSteerError(f"layers {self.layers!r} names no block: write e.g. 15-29, 0,4,8 or all")
        return sorted(set(out))


def _train_default(name: str):
    return field(default=AbcAdaptConfig.__dataclass_fields__[name].default,
                 metadata=AbcAdaptConfig.__dataclass_fields__[name].metadata)


_SHARED = ("steps", "r", "unit_size", "layers", "block_size", "batch_size", "learning_rate", "gate_function",
           "gate_width", "gate_floor", "gate_normalize", "balanced_positions", "concentration", "vertex_fraction")


@dataclass
class AbcAdapterBenchConfig:
    """Settings of ``hf-steer abc adapt bench``: the training settings shared by its four runs (defaults from
    :class:`AbcAdaptConfig`) and what the evaluation measures."""

    steps: int = _train_default("steps")
    r: int = _train_default("r")
    unit_size: int = _train_default("unit_size")
    layers: str | None = _train_default("layers")
    block_size: int = _train_default("block_size")
    batch_size: int = field(default=8, metadata={
        "help": "windows per optimizer step of each single-source LoRA; the abc adapter and the mixture LoRA take this "
                "times the number of sources with --pooled-rows"})
    pooled_rows: bool = field(default=True, metadata={
        "help": "the abc adapter and the mixture LoRA (one adapter for every source) see batch_size x sources windows "
                "per step, the rows of all the specialists together; --no-pooled-rows: batch_size, as one specialist"})
    learning_rate: float = _train_default("learning_rate")
    gate_function: Literal["cos2", "gaussian"] = _train_default("gate_function")
    gate_width: float = _train_default("gate_width")
    gate_floor: float = _train_default("gate_floor")
    gate_normalize: bool = _train_default("gate_normalize")
    balanced_positions: bool = _train_default("balanced_positions")
    concentration: float = _train_default("concentration")
    vertex_fraction: float = _train_default("vertex_fraction")
    sources: dict[str, str] | None = field(
        default=None, metadata={"help": "exactly two sources, name -> text file (default: the bundled tinystories and shakespeare)"}
    )
    heldout_windows: int = field(default=16, metadata={"help": "held-out windows per source (and per alpha)"})
    n_samples: int = field(default=16, metadata={"help": "samples per alpha and sampling seed for the source score"})
    score_seeds: int = field(
        default=2,
        metadata={"help": "sampling seeds for the source score (seed, seed+1, ...; the same seeds at every alpha): "
                          "n_samples x score_seeds samples per alpha"},
    )
    sample_length: int = field(default=48, metadata={"help": "tokens per sample"})
    sample_prompt: str = field(default="\n", metadata={"help": "what the samples continue"})
    chat_tokens: int = field(default=20, metadata={"help": "tokens per chat answer"})
    speed_new_tokens: int = field(default=32, metadata={"help": "tokens per timed generation"})
    speed_rounds: int = field(default=5, metadata={"help": "timed rounds (median), after one warm-up"})
    parts: list[str] = field(default_factory=lambda: ["quality", "speed"],
                             metadata={"help": "quality (four trainings, every figure) and/or speed (generation timing only)"})
    work_dir: str | None = field(default=None, metadata={"help": "where the four runs live (default: beside the JSON); resumable"})
    jobs: int = field(
        default=2,
        metadata={"help": "processes at once for the four trainings and the source score's seeds, each with one torch "
                          "thread (they are independent; 2 fits a 2-core machine); 1: all in this process"},
    )

    def __post_init__(self) -> None:
        _check_numbers(self)
        AbcAdaptConfig(sources={"a": "", "b": ""}, output_dir="-", **{k: getattr(self, k) for k in _SHARED})  # same checks
        self.parts = list(self.parts)
        if not self.parts or set(self.parts) - {"quality", "speed"}:
            raise HfSteerError(f"parts {self.parts!r}: use quality, speed or both")
        for key in ("jobs", "score_seeds", "heldout_windows", "n_samples", "sample_length", "chat_tokens", "speed_new_tokens", "speed_rounds"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise HfSteerError(f"{key} is {getattr(self, key)!r}: use a positive integer")
        if self.sources is not None and len(self.sources) != 2:
            raise HfSteerError(f"the bench takes exactly two sources, got {len(self.sources)}: the source score compares two specialists")
        if not self.sample_prompt:
            raise HfSteerError("sample_prompt is empty: give at least one character, e.g. a newline")
