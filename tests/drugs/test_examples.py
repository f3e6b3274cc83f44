"""``examples/drugs_*.py`` run as a user runs them, on a tiny model standing in for the bundled one."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

from .conftest import tiny

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def chatty_tiny(tokenizer, monkeypatch):
    """A tiny model that always predicts ``<|im_end|>`` (and never stops on it), as ``load_model()``."""
    model = tiny("llama")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[im_end] = 10.0
    model.lm_head = head
    assert im_end != model.generation_config.eos_token_id
    monkeypatch.setattr("hf_steer.load_model", lambda *a, **k: (model, tokenizer))
    return model


def test_drugs_generate_example_prints_no_special_tokens(chatty_tiny, capsys):
    runpy.run_path(str(EXAMPLES / "drugs_generate.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.count("--- seed") == 3
    assert "<|im_end|>" not in out and "<|im_start|>" not in out
