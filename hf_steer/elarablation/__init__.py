"""Elarablation: train slop tokens out of a model at the exact point they would start.

Public names: :class:`ElarablationConfig`, :class:`ElarablationTrainer`, :func:`load_contexts`,
:func:`train` and :func:`merge` (the API behind ``hf-steer elarablate``).
"""

from .config import ElarablationConfig
from .contexts import list_library, load_contexts
from .loss import LOSS_TYPES, elarablation_loss
from .pipeline import merge, train
from .trainer import ElarablationTrainer

__all__ = [
    "LOSS_TYPES",
    "ElarablationConfig",
    "ElarablationTrainer",
    "elarablation_loss",
    "list_library",
    "load_contexts",
    "merge",
    "train",
]
