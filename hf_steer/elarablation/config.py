"""ElarablationConfig: the TrainingArguments of the Elarablation trainer (TRL style)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from ..errors import HfSteerError
from .loss import LOSS_TYPES


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


@dataclass
class ElarablationConfig(TrainingArguments):
    r"""
    Configuration class for the [`ElarablationTrainer`].

    Only the parameters specific to Elarablation are listed here; see [`~transformers.TrainingArguments`] for the
    rest. Defaults differ from TrainingArguments where Elarablation needs it: one optimisation step sees each
    context once (one forward per batch, loss at the last position), so the defaults are many short epochs with
    a LoRA-sized learning rate; on a machine without an accelerator the config turns to CPU and fp32 by itself.

    Parameters:
        > Parameters that control which tokens are punished and rewarded

        loss_type (`str`, *optional*, defaults to `"margin"`):
            `"elarablate"` (the original: +log p punished, -log p rewarded), `"unlikelihood"` (-log(1-p) for
            punished) or `"margin"` (bounded hinges plus a tether to the reference logits of all other tokens).
        top_k (`int`, *optional*, defaults to `50`):
            How many of the most likely next tokens are classified at each step (rows may override).
        max_threshold (`float`, *optional*, defaults to `0.02`):
            Any candidate above this probability is punished, good or not.
        min_threshold (`float`, *optional*, defaults to `0.015`):
            Good candidates below this probability are rewarded.
        temperature (`float`, *optional*, defaults to `1.0`):
            Temperature at which probabilities are read against the thresholds.
        tether_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the reference-logit tether (`margin` only).
        margin_cap (`float`, *optional*, defaults to `4.0`):
            Largest value in nats of one hinge term (`margin` only).
        tree_depth (`int`, *optional*, defaults to `1`):
            `2` also trains one position deeper: each good first token is appended to its context and the next
            token is trained with the same rules, seen on the whole word so far (" E" + "lara" is " Elara").
        tree_width (`int`, *optional*, defaults to `8`):
            How many good first tokens (most likely first) are extended per context when `tree_depth=2`.
        next_max_threshold (`float`, *optional*, defaults to `0.5`):
            `max_threshold` at depth 2 (continuations are naturally peaked: only a dominant one is punished).
        next_min_threshold (`float`, *optional*, defaults to `0.005`):
            `min_threshold` at depth 2.

        keep_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the loss at *keep* slots (a name introduced earlier must come back): KL to the reference
            there plus a floor on the expected name (see `loss.keep_loss`).

        anchor_weight (`float`, *optional*, defaults to `100.0`):
            Weight of the anchor term: KL(reference || model) of the next-token distributions over ordinary text
            (`anchor_text`), so the step changes the slop point and not the rest of the model. `0` turns it off.
        anchor_tokens (`int`, *optional*, defaults to `96`):
            How many tokens of the anchor text are read each step.

        > Parameters that control the model

        load_in_4bit (`bool`, *optional*, defaults to `False`):
            Load a model given by name in 4-bit nf4 (QLoRA; combine with `peft_config`).
    """

    loss_type: str = field(
        default="margin",
        metadata={"help": "Loss variant.", "choices": list(LOSS_TYPES)},
    )
    top_k: int = field(default=50, metadata={"help": "How many most likely next tokens are classified per step."})
    max_threshold: float = field(default=0.02, metadata={"help": "Candidates above this probability are punished."})
    min_threshold: float = field(default=0.015, metadata={"help": "Good candidates below this probability are rewarded."})
    temperature: float = field(default=1.0, metadata={"help": "Temperature at which probabilities are compared."})
    tether_weight: float = field(default=1.0, metadata={"help": "Weight of the reference-logit tether (margin)."})
    margin_cap: float = field(default=4.0, metadata={"help": "Largest value in nats of one hinge term (margin)."})
    tree_depth: int = field(default=1, metadata={"help": "1: train the slop point; 2: also one token deeper."})
    tree_width: int = field(default=8, metadata={"help": "Good first tokens extended per context at depth 2."})
    next_max_threshold: float = field(default=0.5, metadata={"help": "max_threshold at depth 2."})
    next_min_threshold: float = field(default=0.005, metadata={"help": "min_threshold at depth 2."})
    keep_weight: float = field(
        default=1.0, metadata={"help": "Weight of the loss at keep slots (an introduced name must come back)."}
    )
    anchor_weight: float = field(
        default=100.0, metadata={"help": "Weight of KL(reference || model) over ordinary anchor text; 0 turns it off."}
    )
    anchor_tokens: int = field(default=96, metadata={"help": "Tokens of anchor text read each step."})
    load_in_4bit: bool = field(default=False, metadata={"help": "Load a model given by name in 4-bit nf4 (QLoRA)."})

    # TrainingArguments defaults that suit Elarablation.
    learning_rate: float = field(default=2e-3, metadata={"help": "The initial learning rate for AdamW."})
    num_train_epochs: float = field(default=8.0, metadata={"help": "Passes over the contexts."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Contexts per forward pass."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "The scheduler type to use."})
    warmup_steps: float = field(default=0, metadata={"help": "Linear warmup steps."})
    logging_steps: float = field(default=1, metadata={"help": "Log every X update steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoint strategy: no, steps or epoch."})
    report_to: str | list[str] | None = field(default="none", metadata={"help": "Integrations to report to."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep the rule columns: the trainer prepares its own inputs."}
    )
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision; default: on where the accelerator supports it."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed."})

    def __post_init__(self):
        if not _has_accelerator():
            # TrainingArguments would otherwise try bf16 / an accelerator that is not there.
            self.use_cpu = True
            if self.bf16 is None:
                self.bf16 = False
        elif self.bf16 is None:
            self.bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if self.loss_type not in LOSS_TYPES:
            raise HfSteerError(f"loss_type {self.loss_type!r} is unknown: use one of {', '.join(LOSS_TYPES)}")
        if self.top_k < 1:
            raise HfSteerError(f"top_k={self.top_k} is out of range: use a value >= 1")
        for name in ("max_threshold", "min_threshold", "next_max_threshold", "next_min_threshold"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise HfSteerError(f"{name}={value} is not a probability: use a value in [0, 1]")
        if self.min_threshold >= self.max_threshold:
            raise HfSteerError(
                f"min_threshold={self.min_threshold} is not below max_threshold={self.max_threshold}: "
                "rewarding above the punishing line would fight itself; lower min_threshold"
            )
        if self.next_min_threshold >= self.next_max_threshold:
            raise HfSteerError(
                f"next_min_threshold={self.next_min_threshold} is not below next_max_threshold="
                f"{self.next_max_threshold}: lower next_min_threshold"
            )
        if self.keep_weight < 0:
            raise HfSteerError(f"keep_weight={self.keep_weight} is negative: use 0 (off) or more")
        if self.anchor_weight < 0 or self.anchor_tokens < 2:
            raise HfSteerError("anchor_weight must be >= 0 and anchor_tokens >= 2: fix the config")
        if self.tree_depth not in (1, 2):
            raise HfSteerError(f"tree_depth={self.tree_depth} is not supported: use 1 or 2")
        super().__post_init__()
