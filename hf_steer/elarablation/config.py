"""ElarablationConfig: the TrainingArguments of the Elarablation trainer (TRL style).

Its own fields live in :class:`~hf_steer.elarablation.arguments.ElarablationArguments` (a plain dataclass
the CLI reads without importing torch); this class adds them to ``TrainingArguments``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import TrainingArguments

from .arguments import ElarablationArguments


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


@dataclass
class ElarablationConfig(ElarablationArguments, TrainingArguments):
    r"""
    Configuration class for the [`ElarablationTrainer`]: [`~hf_steer.elarablation.arguments.ElarablationArguments`]
    (its parameters are listed there) plus [`~transformers.TrainingArguments`].

    Defaults differ from TrainingArguments where Elarablation needs it: one optimisation step sees each context
    once (one forward per batch, loss at the last position), so the defaults are many short epochs with a
    LoRA-sized learning rate; on a machine without an accelerator the config turns to CPU and fp32 by itself.
    """

    def __post_init__(self):
        if not _has_accelerator():
            # TrainingArguments would otherwise try bf16 / an accelerator that is not there.
            self.use_cpu = True
            if self.bf16 is None:
                self.bf16 = False
        elif self.bf16 is None:
            self.bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if self.disable_tqdm is None:  # a progress bar, whatever transformers' log level (hf_steer quiets it to errors)
            self.disable_tqdm = False
        super().__post_init__()  # ElarablationArguments' checks, then TrainingArguments'
