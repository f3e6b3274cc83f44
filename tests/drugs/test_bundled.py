"""Integration on the bundled SmolLM2-135M-Instruct (30 layers), eager and SDPA."""

from __future__ import annotations

import pytest
import torch

from hf_steer.drugs import DrugsConfig, dosed, inject, remove
from hf_steer.drugs.explore import chat_inputs

pytestmark = pytest.mark.slow

PROMPT = "Write the opening line of a story about a lighthouse keeper."
A_MID = DrugsConfig.from_flags(["A=0.3"], depth=0.5, spread=0.17)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_bundled_dose_and_exact_removal(bundled, implementation):
    model, tokenizer = bundled
    if implementation != model.config._attn_implementation:
        model.set_attn_implementation(implementation)
    enc = chat_inputs(tokenizer, [PROMPT], True, model.device)
    with torch.no_grad():
        base = model(**enc).logits
        with dosed(model, DrugsConfig(doses={"H": 0.1, "Q": 0.2, "K": 0.2, "V": 0.2, "A": 0.2})):
            assert model.config._attn_implementation == f"drugs+{implementation}"
            moved = model(**enc).logits
        assert torch.equal(model(**enc).logits, base)
    assert (moved - base).abs().max() > 1e-2


def test_bundled_generation_is_varied_repeatable_and_readable(bundled):
    model, tokenizer = bundled
    enc = chat_inputs(tokenizer, [PROMPT] * 4, True, model.device)
    start = enc["input_ids"].shape[1]
    plain = model.generate(**enc, max_new_tokens=16, do_sample=False, temperature=None, top_p=None, top_k=None)
    inject(model, A_MID)
    first = model.Dgenerate(**enc, max_new_tokens=16, seed=0)
    again = model.Dgenerate(**enc, max_new_tokens=16, seed=0)
    showered = model.Dgenerate(**enc, max_new_tokens=16, seed=0, cold_shower_every=4)
    assert torch.equal(first, again)
    texts = tokenizer.batch_decode(first[:, start:], skip_special_tokens=True)
    assert len(set(texts)) > 1  # four rows, four noise draws: not all the same
    assert any("light" in t.lower() for t in texts)  # still on topic
    assert showered.shape == first.shape
    remove(model)
    assert torch.equal(model.generate(**enc, max_new_tokens=16, do_sample=False, temperature=None, top_p=None,
                                      top_k=None), plain)
