"""LoRA memory: learn a conversation as stacked micro-adapters -- remember, stack, roll up, forget, retrieve.

One folder per idea: ``catalog`` (files on disk), ``augment`` (chunk -> training texts), ``train``
(one adapter, fast), ``memory`` (the ``LoraMemory`` object over one PeftModel), ``retrieval``
(embeddings + top-k), ``worker`` (background training process), ``bench`` and ``cli``.
"""

from .catalog import Catalog
from .memory import LoraMemory
from .train import PRESETS, TrainPreset

__all__ = ["Catalog", "LoraMemory", "PRESETS", "TrainPreset"]
