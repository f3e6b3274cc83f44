"""DRµGS doses abcGPT like any other decoder: found through the attention interface, θ=0 is exactly sober,
θ>0 changes the output, remove() restores it exactly (eager and SDPA, forward and generate with α)."""

from __future__ import annotations

import pytest
import torch

from hf_steer.abcgpt.modeling_abcgpt import AbcGPTAttention
from hf_steer.drugs import DrugsConfig, find_attention_modules, inject, remove

from .conftest import tiny_model

TYPES = ("H", "Q", "K", "V", "A")


def perturbed(implementation: str, **overrides):
    """A tiny abcGPT with weights larger than init, so that small rotations show in the logits."""
    model = tiny_model(**overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.set_attn_implementation(implementation)
    return model


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_zero_dose_is_sober_a_dose_changes_and_remove_restores(implementation):
    model = perturbed(implementation)
    x = torch.randint(1, 40, (2, 12))
    mask = torch.ones_like(x)
    mask[0, :3] = 0  # left padding goes through the same mask function
    alpha = torch.tensor([0.2, 0.8])
    with torch.no_grad():
        base = model(x, attention_mask=mask, alpha=alpha).logits

        assert find_attention_modules(model) == [block.attn for block in model.transformer.h]
        assert all(isinstance(m, AbcGPTAttention) for m in find_attention_modules(model))

        inject(model, DrugsConfig(doses={t: 0.0 for t in TYPES}, sinks=0))
        assert model.config._attn_implementation == f"drugs+{implementation}"
        assert torch.equal(model(x, attention_mask=mask, alpha=alpha).logits, base)

        inject(model, DrugsConfig(doses={t: 0.5 for t in TYPES}, sinks=1))
        dosed = model(x, attention_mask=mask, alpha=alpha).logits
        real = mask.bool()
        change = (dosed - base).abs().amax(-1)
        assert change[1, 1:].min() > 1e-4 and change[0, 4:].min() > 1e-4  # every non-sink real position
        torch.testing.assert_close(dosed[1, 0], base[1, 0])  # the sink is left alone

        remove(model)
        assert type(model).__name__ == "AbcGPTForCausalLM"
        assert model.config._attn_implementation == implementation
        assert torch.equal(model(x, attention_mask=mask, alpha=alpha).logits, base)
        assert torch.isfinite(dosed[real]).all()


@pytest.mark.parametrize("letter", TYPES)
def test_each_type_alone_reaches_abcgpt(letter):
    model = perturbed("sdpa")
    x = torch.randint(1, 40, (1, 10))
    with torch.no_grad():
        base = model(x, alpha=0.5).logits
        inject(model, DrugsConfig(doses={letter: 0.5}, sinks=0))
        assert not torch.allclose(model(x, alpha=0.5).logits, base, atol=1e-4)
        remove(model)
        assert torch.equal(model(x, alpha=0.5).logits, base)


def test_dosed_generation_keeps_the_dial_and_slides_the_window():
    model = perturbed("sdpa", n_positions=16)
    x = torch.randint(1, 40, (1, 4))
    greedy = dict(max_new_tokens=30, do_sample=False, pad_token_id=0, eos_token_id=None)  # 34 > 16: slides
    with torch.no_grad():
        sober_at = {a: model.generate(x, alpha=a, **greedy) for a in (0.0, 1.0)}
        assert not torch.equal(sober_at[0.0], sober_at[1.0])  # the dial matters for these weights

        inject(model, DrugsConfig(doses={t: 0.0 for t in TYPES}))
        for a, want in sober_at.items():
            assert torch.equal(model.Dgenerate(x, alpha=a, seed=0, **greedy), want)

        inject(model, DrugsConfig(doses={"A": 0.6, "V": 0.6}, sinks=0))
        # This tiny model soon repeats one token, so a single seed's noise may leave every argmax alone:
        # among a few seeds, one must change the text.
        dosed = [model.Dgenerate(x, alpha=0.0, seed=seed, **greedy) for seed in range(4)]
        assert all(d.shape == (1, 34) for d in dosed)
        assert any(not torch.equal(d, sober_at[0.0]) for d in dosed)
        for seed in range(4):  # seeded noise repeats
            assert torch.equal(model.Dgenerate(x, alpha=0.0, seed=seed, **greedy), dosed[seed])

        remove(model)
        assert torch.equal(model.generate(x, alpha=0.0, **greedy), sober_at[0.0])


def test_a_cold_shower_keeps_the_dial():
    model = perturbed("sdpa", n_positions=48)
    x = torch.randint(1, 40, (1, 4))
    greedy = dict(max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        want = model.generate(x, alpha=0.0, **greedy)
        inject(model, DrugsConfig(doses={t: 0.0 for t in TYPES}))
        # θ=0 and a sober re-encoding every 5 tokens must still give the sober tokens at α=0.
        assert torch.equal(model.Dgenerate(x, alpha=0.0, seed=0, cold_shower_every=5, **greedy), want)
