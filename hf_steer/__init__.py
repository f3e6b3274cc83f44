"""hf_steer: four ways to steer what a language model writes, on the Hugging Face stack."""

from .errors import HfSteerError
from .hub import push_to_hub
from .models import bundled_model_path, load_model, load_tokenizer

__version__ = "0.1.0"

__all__ = ["HfSteerError", "bundled_model_path", "load_model", "load_tokenizer", "push_to_hub"]
