"""abcGPT: a GPT with a source dial α, in transformers' own style.

Importing this package registers ``AbcGPTConfig`` / ``AbcGPTForCausalLM`` with ``AutoConfig`` and
``AutoModelForCausalLM`` (so ``model_type: "abcgpt"`` folders load without trust_remote_code while
hf_steer is imported) and makes bad-α errors ``HfSteerError``. Saved folders also carry the modeling
files, so they load anywhere with ``trust_remote_code=True``.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from ..errors import HfSteerError
from .configuration_abcgpt import AbcGPTConfig
from .modeling_abcgpt import AbcGPTForCausalLM, AbcGPTPreTrainedModel

AutoConfig.register("abcgpt", AbcGPTConfig, exist_ok=True)
AutoModelForCausalLM.register(AbcGPTConfig, AbcGPTForCausalLM, exist_ok=True)
# The model file stays free of hf_steer imports (it travels as remote code); inside hf_steer its input
# errors use our one-line error type, which is still a ValueError.
AbcGPTPreTrainedModel.input_error = HfSteerError

__all__ = ["AbcGPTConfig", "AbcGPTForCausalLM"]
