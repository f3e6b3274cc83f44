"""LoRA memory: learn a conversation as stacked micro-adapters -- remember, stack, roll up, forget, retrieve.

One folder per idea: ``catalog`` (files on disk), ``augment`` (chunk -> training texts), ``train``
(one adapter, fast), ``memory`` (the ``LoraMemory`` object over one PeftModel), ``retrieval``
(embeddings + top-k), ``worker`` (background training process), ``bench`` and ``cli``.
"""

from ..utils import lazy_exports

# public name -> submodule that defines it (imported on first use: ``import hf_steer.<method>.cli`` stays cheap)
_EXPORTS = {
    "Catalog": ".catalog",
    "LoraMemory": ".memory",
    "AskConfig": ".config",
    "ChatConfig": ".config",
    "PRESETS": ".config",
    "TrainPreset": ".config",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
