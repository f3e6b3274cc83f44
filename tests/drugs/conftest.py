"""Helpers for the DRµGS tests: tiny models per (arch, attention implementation) and a prompt."""

from __future__ import annotations

import pytest
from conftest import TINY_ARCHS, make_tiny_model, make_tokenizer

IMPLEMENTATIONS = ["eager", "sdpa"]
ALL = {"H": 0.5, "Q": 0.5, "K": 0.5, "V": 0.5, "A": 0.5}


def tiny(arch: str = "llama", implementation: str = "sdpa", **overrides):
    return make_tiny_model(arch, attn_implementation=implementation, **overrides)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer("bytelevel")


@pytest.fixture(scope="module")
def prompt(tokenizer):
    return tokenizer(["Once upon a time there was a little dog named Max"], return_tensors="pt")


__all__ = ["ALL", "IMPLEMENTATIONS", "TINY_ARCHS", "tiny"]
