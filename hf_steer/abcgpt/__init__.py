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

from .bench import run_bench  # noqa: E402  (after the registration above, which they rely on)
from .generation import generate_text, load_abcgpt, parse_mix  # noqa: E402
from .tokenization_abcgpt import build_char_tokenizer  # noqa: E402
from .training import TrainConfig, train  # noqa: E402

__all__ = [
    "AbcGPTConfig",
    "AbcGPTForCausalLM",
    "TrainConfig",
    "build_char_tokenizer",
    "generate_text",
    "load_abcgpt",
    "parse_mix",
    "run_bench",
    "train",
]
