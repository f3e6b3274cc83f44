"""Shared fixtures: tiny random models and tokenizers built in-process, and the bundled real model.

Nothing here touches a network. Tiny models are random (hidden size 32, 2-4 layers) and fast; the
bundled SmolLM2-135M-Instruct is loaded once per session for integration tests (marked ``slow``).
"""

from __future__ import annotations

import copy

import pytest
import torch

CORPUS = [
    "The elf girl nods. \"My name is Elara,\" she says softly.",
    "Once upon a time there was a little dog named Max who loved to play in the park.",
    "Her voice was barely above a whisper, and shivers ran down her spine.",
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer.",
    "The dwarf grunted. \"They call me Thorin Oakenshield, son of Thrain.\"",
    "A mix of fear and excitement filled the room as Lyra and Aria walked in.",
] * 4

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer(kind: str = "bytelevel", vocab_size: int = 300, chat_template: bool = True):
    """A small BPE tokenizer trained on ``CORPUS``: ``bytelevel`` (Ġ markers, GPT-2 style) or ``metaspace`` (▁)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token=None if kind == "bytelevel" else "<unk>"))
    if kind == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    elif kind == "metaspace":
        specials.append("<unk>")
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet = []
    else:
        raise ValueError(kind)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        unk_token="<unk>" if kind == "metaspace" else None, padding_side="left",
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_model(arch: str = "llama", vocab_size: int = 300, seed: int = 0, **overrides):
    """A tiny random causal LM of the given architecture (hidden 32, 2 layers, 4 heads)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=0, eos_token_id=0, pad_token_id=0)
    per_arch = {
        "llama": {},
        "mistral": {"sliding_window": None},
        "qwen2": {},
        "qwen3": {"head_dim": 8},
        "gemma3_text": {"head_dim": 8, "sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"]},
        "phi3": {},
        "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256},
        "gpt_neox": {"rotary_pct": 0.5},
    }
    kwargs = {**common, **per_arch[arch], **overrides}
    if arch == "gpt2":
        kwargs = {k: v for k, v in kwargs.items() if k not in common or k in ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")}
    config = AutoConfig.for_model(arch, **kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    return model


TINY_ARCHS = ["llama", "mistral", "qwen2", "qwen3", "gemma3_text", "phi3", "gpt2", "gpt_neox"]


@pytest.fixture
def tiny_tokenizer():
    return make_tokenizer("bytelevel")


@pytest.fixture
def tiny_llama():
    return make_tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A saved tiny random llama + byte-level chat tokenizer: what ``--model`` and ``load_model`` take."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model("llama").save_pretrained(folder)
    make_tokenizer("bytelevel").save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bundled_path():
    """Folder of the converted bundled SmolLM2-135M-Instruct (converted once per cache)."""
    from hf_steer.models import bundled_model_path

    return bundled_model_path()


@pytest.fixture(scope="session")
def _bundled_pair(bundled_path):
    from hf_steer.models import load_model

    return load_model(bundled_path)


@pytest.fixture
def bundled(_bundled_pair):
    """``(model, tokenizer)`` of the bundled model; the model is a fresh copy each test may modify."""
    model, tokenizer = _bundled_pair
    return copy.deepcopy(model), tokenizer


@pytest.fixture
def bundled_readonly(_bundled_pair):
    """``(model, tokenizer)`` shared across tests: do not modify the model."""
    return _bundled_pair
