"""Tiny abc adapter fixtures: a tiny Llama (and its BPE tokenizer) saved as a base-model folder, and one thread.

One torch thread for every test here: on a busy 2-core machine two OpenMP threads wait on each other at
every op, and a tiny model's forward goes from milliseconds to tenths of a second.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model, make_tokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_abc(arch: str = "llama", seed: int = 0, **overrides):
    """A tiny base model wrapped in an abc adapter whose B matrices are random (so the dial changes outputs)."""
    from peft import get_peft_model

    from hf_steer.abcgpt.adapter import AbcAdapterConfig

    kwargs = dict(r=8, source_names=["stories", "plays"], m_seed=3)
    kwargs.update(overrides)
    model = get_peft_model(make_tiny_model(arch, seed=seed), AbcAdapterConfig(**kwargs))
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "abc_B" in name:
            torch.nn.init.normal_(p, std=0.3)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_base_folder(tmp_path_factory):
    """A saved tiny Llama + tokenizer: what `--base-model` / ``load_model`` take; treat as read-only."""
    folder = tmp_path_factory.mktemp("abc_adapter_base") / "tiny-llama"
    make_tiny_model("llama").save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def other_base_folder(tmp_path_factory):
    """The same architecture with other weights: an adapter trained on ``tiny_base_folder`` must refuse it."""
    folder = tmp_path_factory.mktemp("abc_adapter_other") / "tiny-llama-other"
    make_tiny_model("llama", seed=7).save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return folder
