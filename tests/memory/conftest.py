"""Fixtures for the memory tests: a tiny random Llama with a chat tokenizer, a fake embedder, a memory."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import make_tiny_model, make_tokenizer

CHUNK_A = [
    {"role": "user", "content": "Veltra Quosh was born in the town of Marbelin."},
    {"role": "assistant", "content": "Noted."},
]
CHUNK_B = [{"role": "user", "content": "Doran Pellick works as a lighthouse keeper in Tessomund."}]
CHUNK_C = ["The Glimmerfen Bridge was finished in 1873.", "Saffi Dunmore won the Harrowgate cup."]


def fake_embedder(texts):
    """Bag of hashed words: deterministic, instant, and good enough to rank chunks sharing names."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace("?", " ").replace(".", " ").split():
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
    return out


# Tiny runs: a few steps on the top layer only (the tiny model has 2 layers).
TINY = dict(steps=3, r=4, alpha=8.0, top_layers=1, max_length=160, anchors=2)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a busy CPU multi-thread ops stall badly."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_pair():
    return make_tiny_model("llama"), make_tokenizer("bytelevel")


@pytest.fixture
def memory(tiny_pair, tmp_path):
    from hf_steer.memory import LoraMemory
    from hf_steer.memory.train import get_preset

    model, tok = tiny_pair
    return LoraMemory(model, tok, base_model="tiny-llama", folder=tmp_path / "mem",
                      preset=get_preset("fast-cpu", **TINY), embedder=fake_embedder)
