"""hf_steer: four ways to steer what a language model writes, on the Hugging Face stack.

Every public name is imported on first use, so ``import hf_steer`` (and ``hf-steer --help``) does not
pay for torch, TRL, PEFT or sentence-transformers.
"""

from __future__ import annotations

from .errors import HfSteerError
from .utils import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_model": ".models",
    "load_tokenizer": ".models",
    "bundled_model_path": ".models",
    "push_to_hub": ".hub",
    "Artifact": ".artifacts",
    "ElarablationConfig": ".elarablation",
    "ElarablationTrainer": ".elarablation",
    "DrugsConfig": ".drugs",
    "inject": ".drugs",
    "LoraMemory": ".memory",
    "AbcGPTConfig": ".abcgpt",
    "AbcGPTForCausalLM": ".abcgpt",
}

__all__ = ["HfSteerError", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
