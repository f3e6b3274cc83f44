"""Register abcGPT with transformers' Auto classes (imported before any public name of the package).

``model_type: "abcgpt"`` folders then load with ``AutoModelForCausalLM`` without ``trust_remote_code``
while hf_steer is imported, and bad-α errors become :class:`~hf_steer.errors.HfSteerError`. The model
file itself stays free of hf_steer imports: it travels with saved folders as remote code.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from ..errors import HfSteerError
from .configuration_abcgpt import AbcGPTConfig
from .modeling_abcgpt import AbcGPTForCausalLM, AbcGPTPreTrainedModel

AutoConfig.register("abcgpt", AbcGPTConfig, exist_ok=True)
AutoModelForCausalLM.register(AbcGPTConfig, AbcGPTForCausalLM, exist_ok=True)
# Inside hf_steer, input errors use our one-line error type (still a ValueError).
AbcGPTPreTrainedModel.input_error = HfSteerError
