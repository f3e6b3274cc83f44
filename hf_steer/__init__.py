"""hf_steer: four ways to steer what a language model writes, on the Hugging Face stack.

The shared pieces (loading, publishing) import eagerly; the four methods' entry points are imported
on first use, so ``import hf_steer`` does not pay for TRL, PEFT or sentence-transformers.
"""

from __future__ import annotations

import importlib

from .errors import HfSteerError
from .hub import push_to_hub
from .models import bundled_model_path, load_model, load_tokenizer

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "ElarablationConfig": "hf_steer.elarablation",
    "ElarablationTrainer": "hf_steer.elarablation",
    "DrugsConfig": "hf_steer.drugs",
    "inject": "hf_steer.drugs",
    "LoraMemory": "hf_steer.memory",
    "AbcGPTConfig": "hf_steer.abcgpt",
    "AbcGPTForCausalLM": "hf_steer.abcgpt",
}

__all__ = ["HfSteerError", "bundled_model_path", "load_model", "load_tokenizer", "push_to_hub", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hf_steer' has no attribute {name!r}")
