"""abcGPT: a GPT with a source dial α, in transformers' own style.

Using any public name of this package registers ``AbcGPTConfig`` / ``AbcGPTForCausalLM`` with
``AutoConfig`` and ``AutoModelForCausalLM`` (see :mod:`.registration`), so ``model_type: "abcgpt"``
folders load without trust_remote_code while hf_steer is imported. Saved folders also carry the
modeling files, so they load anywhere with ``trust_remote_code=True``.
"""

from ..utils import lazy_exports

# public name -> submodule that defines it (imported on first use: ``import hf_steer.abcgpt.cli`` stays cheap)
_EXPORTS = {
    "AbcGPTConfig": ".configuration_abcgpt",
    "AbcGPTForCausalLM": ".modeling_abcgpt",
    "BenchConfig": ".config",
    "GenerateConfig": ".config",
    "TrainConfig": ".config",
    "build_char_tokenizer": ".tokenization_abcgpt",
    "generate_text": ".generation",
    "load_abcgpt": ".generation",
    "parse_mix": ".generation",
    "run_bench": ".bench",
    "train": ".training",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, before=".registration")
