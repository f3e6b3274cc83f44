"""Injection on every tiny architecture, eager and SDPA: noise gets in, the mask stays, removal is exact."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hf_steer.drugs import DrugsConfig, dosed, inject, remove, sober
from hf_steer.errors import HfSteerError

from .conftest import ALL, IMPLEMENTATIONS, TINY_ARCHS, tiny


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_inject_changes_output_and_remove_restores_it_exactly(arch, implementation, prompt):
    model = tiny(arch, implementation)
    with torch.no_grad():
        base = model(**prompt).logits
        # Every position sober (sinks beyond the prompt): the wrapper runs, and with the causal mask
        # intact it must change nothing (an unregistered mask name would silently drop the mask).
        inject(model, DrugsConfig(doses=ALL, sinks=1000))
        torch.testing.assert_close(model(**prompt).logits, base, rtol=1e-5, atol=1e-5)
        cls = type(model)
        inject(model, DrugsConfig(doses=ALL, sinks=1))
        assert type(model) is cls and callable(model.Dgenerate)  # the class stays; Dgenerate is added
        assert model.config._attn_implementation == f"drugs+{implementation}"
        dosed_logits = model(**prompt).logits
        # Every position past the sink is dosed; the sink itself is untouched.
        assert (dosed_logits - base).abs().amax(-1)[0, 1:].min() > 1e-4
        torch.testing.assert_close(dosed_logits[:, 0], base[:, 0], rtol=1e-5, atol=1e-5)
        remove(model)
        assert type(model) is cls and not hasattr(model, "Dgenerate") and not hasattr(model, "_drugs_state")
        assert model.config._attn_implementation == implementation
        assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())
        assert torch.equal(model(**prompt).logits, base)


@pytest.mark.parametrize("letter", list(ALL))
def test_each_type_alone_changes_the_output(letter, prompt):
    model = tiny("llama")
    with torch.no_grad():
        base = model(**prompt).logits
        with dosed(model, DrugsConfig(doses={letter: 0.5}, sinks=0)):
            assert not torch.allclose(model(**prompt).logits, base, atol=1e-4)
        assert torch.equal(model(**prompt).logits, base)


def test_sober_context_and_zero_dose_are_exact(prompt):
    model = tiny("qwen2")
    with torch.no_grad():
        base = model(**prompt).logits
        inject(model, A=0.3, H=0.3)
        with sober(model):
            assert torch.equal(model(**prompt).logits, base)
        assert not torch.equal(model(**prompt).logits, base)
        inject(model, DrugsConfig())  # re-dosing an injected model just changes the dose
        assert torch.equal(model(**prompt).logits, base)


def test_two_models_keep_their_own_state(prompt):
    first = tiny("llama")
    second = copy.deepcopy(first)
    with torch.no_grad():
        base = first(**prompt).logits
        inject(first, DrugsConfig(doses={"A": 0.5}, sinks=0))
        inject(second, DrugsConfig(doses={"A": 0.0}, sinks=0))
        assert torch.equal(second(**prompt).logits, base)
        assert not torch.allclose(first(**prompt).logits, base, atol=1e-4)
        remove(first)
        assert torch.equal(first(**prompt).logits, base)
        assert second.config._attn_implementation == "drugs+sdpa"  # untouched by removing the first


def test_seeded_noise_is_repeatable(prompt):
    model = inject(tiny("mistral"), DrugsConfig(doses={"Q": 0.5, "V": 0.5}, sinks=0))
    with torch.no_grad():
        model._drugs_state.seed(3)
        a = model(**prompt).logits
        model._drugs_state.seed(3)
        b = model(**prompt).logits
        c = model(**prompt).logits
    assert torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.parametrize("persist, same", [(False, True), (True, False)])
def test_kv_noise_reaches_the_cache_only_when_persisted(persist, same, prompt):
    model = tiny("llama")
    with torch.no_grad():
        sober_cache = model(**prompt, use_cache=True).cache
        inject(model, DrugsConfig(doses={"K": 0.5, "V": 0.5}, sinks=0, persist_kv=persist))
        out = model(**prompt, use_cache=True)
    # Layer 0's K/V come from the (undosed) embeddings: only persisting the noise can change them.
    layer, sober_layer = out.cache.layers[0], sober_cache.layers[0]
    assert torch.equal(layer.keys, sober_layer.keys) is same
    assert torch.equal(layer.values, sober_layer.values) is same


class MyAttention(nn.Module):
    def __init__(self, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        return torch.softmax(x @ x.transpose(-1, -2), -1) @ self.proj(x)


class HomeMadeLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(MyAttention(i) for i in range(2))


def test_unreachable_attention_names_the_module_class():
    with pytest.raises(HfSteerError, match="attention module MyAttention of HomeMadeLM does not go through"):
        inject(HomeMadeLM(), A=0.1)
    with pytest.raises(HfSteerError, match="model Linear has no attention module"):
        inject(nn.Linear(2, 2), A=0.1)


def test_bad_doses_fail_at_inject():
    with pytest.raises(HfSteerError, match="injection type 'Z' is unknown"):
        inject(tiny("llama"), Z=0.1)
    with pytest.raises(HfSteerError, match="theta -1 is not a number >= 0"):
        inject(tiny("llama"), A=-1)


def test_save_pretrained_of_a_dosed_model_saves_the_sober_original(tmp_path, prompt):
    from transformers import AutoModelForCausalLM

    model = tiny("llama")
    with torch.no_grad():
        base = model(**prompt).logits
    inject(model, DrugsConfig(doses=ALL, sinks=0))
    model.save_pretrained(tmp_path)
    config_text = (tmp_path / "config.json").read_text()
    assert '"LlamaForCausalLM"' in config_text and "drugs" not in config_text.lower()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(reloaded(**prompt).logits, base)
        assert not torch.allclose(model(**prompt).logits, base, atol=1e-4)  # the original stays dosed
    assert reloaded.config._attn_implementation == "sdpa"


def test_peft_model_is_dosed_through_its_base_and_removed_exactly(prompt):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(tiny("llama"), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    peft_model.eval()
    with torch.no_grad():
        base = peft_model(**prompt).logits
        plain = peft_model.generate(**prompt, max_new_tokens=4, do_sample=False)
        inject(peft_model, DrugsConfig(doses={"A": 0.8, "H": 0.8}, sinks=1))
        host = peft_model.get_base_model()
        assert host.config._attn_implementation == "drugs+sdpa" and host._drugs_state is peft_model._drugs_state
        assert not torch.allclose(peft_model(**prompt).logits, base, atol=1e-4)
        runs = [peft_model.Dgenerate(**prompt, max_new_tokens=4, seed=s, return_dict_in_generate=True,
                                     output_scores=True) for s in (1, 1)]
        assert torch.equal(runs[0].sequences, runs[1].sequences) and torch.equal(runs[0].scores[0], runs[1].scores[0])
        remove(peft_model)
        assert not hasattr(host, "_drugs_state") and host.config._attn_implementation == "sdpa"
        assert torch.equal(peft_model(**prompt).logits, base)
        assert torch.equal(peft_model.generate(**prompt, max_new_tokens=4, do_sample=False), plain)


def test_each_dosed_layer_gets_its_own_draw_from_one_per_forward():
    """The noise of every dosed layer is drawn once per forward; each layer's slice is its own rotation."""
    from hf_steer.drugs.injection import DrugsState, _ForwardInfo
    from hf_steer.drugs.rotation import angle_between

    state = DrugsState(DrugsConfig(doses={"A": 0.4}), num_layers=3)
    state.seed(0)
    x = torch.randn(1, 6, 4, 16)
    state.forward_info = _ForwardInfo(offset=0, q_len=6, positions=None)
    out = [state.rotate("A", layer, x, None) for layer in range(3)]
    assert len(state.forward_info.noise) == 1  # one draw served all three layers
    for y in out:
        torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
        assert (angle_between(x, y) < 0.4 + 1e-4).all() and (angle_between(x, y) > 0).all()
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2])

    gate = torch.tensor([[True, False, True, False, True, False]])[:, :, None]  # (b, q, heads)
    masked = state.rotate("A", 1, x, gate)
    assert torch.equal(masked[:, 1::2], x[:, 1::2]) and not torch.equal(masked[:, ::2], x[:, ::2])

    state.forward_info = None  # outside a model forward: a call draws its own noise
    alone = state.rotate("A", 0, x, None)
    torch.testing.assert_close(alone.norm(dim=-1), x.norm(dim=-1))
    assert not torch.equal(alone, x)
