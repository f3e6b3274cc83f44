"""The abc adapter as a PEFT method: get_peft_model / save_pretrained / PeftModel.from_pretrained, the gate
arithmetic, the dial in forward and generate, merging, and one-line errors (tiny random models)."""

import json

import pytest
import torch
from conftest import make_tiny_model
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file

from hf_steer.abcgpt.adapter import AbcAdapterConfig
from hf_steer.abcgpt.adapter.dial import alpha_to_mixture
from hf_steer.abcgpt.adapter.layer import AbcAdapterLayer
from hf_steer.abcgpt.gates import gate_values
from hf_steer.errors import HfSteerError

from .conftest import tiny_abc

IDS = torch.randint(3, 300, (3, 12), generator=torch.Generator().manual_seed(0))


def logits(model, ids=IDS, **kwargs):
    with torch.no_grad():
        return model(input_ids=ids, **kwargs).logits


def test_fresh_adapter_is_a_no_op_and_only_a_b_train():
    base = make_tiny_model("llama")
    expected = logits(base)
    model = get_peft_model(base, AbcAdapterConfig(r=8, source_names=["stories", "plays"], target_modules="all-linear"))
    assert type(model).__name__ == "PeftModelForCausalLM" and model.peft_config["default"].peft_type == "ABC_ADAPTER"
    for alpha in (0.0, 0.5, [0.0, 0.3, 1.0]):
        assert torch.equal(logits(model, alpha=alpha), expected)  # B starts at zero, as LoRA's
    trainable = {n.split(".")[-3] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"abc_A", "abc_B"}
    from peft import LoraConfig

    lora = get_peft_model(make_tiny_model("llama"), LoraConfig(r=8, target_modules="all-linear"))
    # Same rank budget as LoRA: the gates and positions m add no trainable parameter.
    assert model.get_nb_trainable_parameters() == lora.get_nb_trainable_parameters()


def test_each_rank_component_is_scaled_by_its_spotlight_gate():
    model = tiny_abc(unit_size=2, gate_floor=0.1)
    config = model.peft_config["default"]
    layer = model.base_model.model.model.layers[1].self_attn.q_proj
    assert isinstance(layer, AbcAdapterLayer) and layer.abc_m["default"].shape == (4, 2)  # r=8, 2 components per unit
    x = torch.randn(2, 5, 32)
    alpha = [0.1, 0.8]
    model(input_ids=IDS[:2], alpha=alpha)  # sets the dial the layer holds
    mixture = alpha_to_mixture(alpha, config.source_names)
    gate = gate_values(mixture, layer.abc_m["default"], "cos2", 0.35, 0.1).repeat_interleave(2, dim=1)
    A, B = layer.abc_A["default"].weight, layer.abc_B["default"].weight
    expected = layer.base_layer(x) + ((x @ A.T) * gate[:, None, :] * config.scaling) @ B.T
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-6)


def test_normalized_gates_keep_the_same_rank_on_at_every_alpha():
    """gate_normalize: each row's gates are divided by their mean over every unit of the adapter, so an end of
    the dial has as much gate on as the middle; without it an end has far less (cos², two sources)."""
    plain, normed = tiny_abc(r=64, target_modules="all-linear"), tiny_abc(r=64, target_modules="all-linear", gate_normalize=True)
    config = normed.peft_config["default"]
    alpha = [0.0, 0.5, 1.0]

    def factors(model):
        model(input_ids=IDS, alpha=alpha)
        layers = [m for m in model.modules() if isinstance(m, AbcAdapterLayer)]
        return torch.cat([m._abc_gates["default"][0][:, 0, :] for m in layers], dim=1)  # (rows, all components)

    raw, norm = factors(plain) / config.scaling, factors(normed) / config.scaling
    assert raw[0].mean() < 0.5 < raw[1].mean() and raw[2].mean() < 0.5  # an end has less than half the gate on
    assert torch.allclose(norm.mean(1), torch.ones(3), atol=1e-5)  # normalized: the same mean at every alpha
    assert torch.allclose(norm, raw / raw.mean(1, keepdim=True), atol=1e-5)  # same units on, rescaled
    # the normalized gate goes through the layers, merging and saving like any other
    merged_at_0 = logits(normed, alpha=0.0)
    with normed.set_alpha(0.0):
        assert torch.allclose(normed.merge_and_unload()(input_ids=IDS).logits, merged_at_0, atol=1e-4)


def test_positions_follow_the_u_shaped_law_and_are_frozen():
    model = tiny_abc(r=64, target_modules="all-linear")
    mu = torch.cat([m.abc_m["default"][:, 1] for m in model.modules() if isinstance(m, AbcAdapterLayer)])
    assert mu.numel() == 64 * 14 and not any("abc_m" in n for n, _ in model.named_parameters())
    # m = sin²(πu/2): P(m < 0.1) = (2/π)·asin(√0.1) = 0.205, the same near 1; the middle fifth holds 0.13.
    assert abs((mu < 0.1).float().mean() - 0.205) < 0.04 and abs((mu > 0.9).float().mean() - 0.205) < 0.04
    assert abs(((mu > 0.4) & (mu < 0.6)).float().mean() - 0.128) < 0.04
    again = tiny_abc(r=64, target_modules="all-linear")
    assert all(torch.equal(a.abc_m["default"], b.abc_m["default"]) for a, b in zip(
        [m for m in model.modules() if isinstance(m, AbcAdapterLayer)],
        [m for m in again.modules() if isinstance(m, AbcAdapterLayer)]))


def test_balanced_positions_give_every_layer_as_many_units_per_source(tmp_path):
    model = tiny_abc(r=16, target_modules="all-linear", balanced_positions=True)
    layers = [m for m in model.modules() if isinstance(m, AbcAdapterLayer)]
    assert all(int((m.abc_m["default"][:, 1] < 0.5).sum()) == 8 for m in layers)
    plain = [m for m in tiny_abc(r=16, target_modules="all-linear").modules() if isinstance(m, AbcAdapterLayer)]
    assert {int((m.abc_m["default"][:, 1] < 0.5).sum()) for m in plain} != {8}
    model.save_pretrained(tmp_path)  # the flag is saved; the positions travel in the weights either way
    assert json.loads((tmp_path / "adapter_config.json").read_text())["balanced_positions"] is True


def test_dial_forms_agree_and_rows_are_independent():
    model = tiny_abc()
    at0, at1, mid = logits(model, alpha=0.0), logits(model, alpha=1.0), logits(model, alpha=0.5)
    assert (at0 - at1).abs().max() > 1e-2 and (at0 - mid).abs().max() > 1e-3
    rows = logits(model, alpha=[0.0, 1.0, 0.5])
    assert torch.allclose(rows[0], at0[0], atol=1e-5) and torch.allclose(rows[1], at1[1], atol=1e-5)
    assert torch.allclose(rows[2], mid[2], atol=1e-5)
    assert torch.allclose(logits(model, alpha={"plays": 1.0}), at1, atol=1e-6)
    assert torch.allclose(logits(model, alpha="stories=0.5,plays=0.5"), mid, atol=1e-6)
    assert torch.allclose(logits(model), mid, atol=1e-6)  # no dial set: equal parts


def test_set_alpha_persists_and_restores_as_a_context_manager():
    model = tiny_abc()
    at0, at1 = logits(model, alpha=0.0), logits(model, alpha=1.0)
    model.set_alpha(1.0)
    assert model.get_alpha() == 1.0 and torch.allclose(logits(model), at1, atol=1e-6)
    with model.set_alpha(0.0):
        assert torch.allclose(logits(model), at0, atol=1e-6)
        assert torch.allclose(logits(model, alpha=1.0), at1, atol=1e-6)  # a call's alpha wins
        assert torch.allclose(logits(model), at0, atol=1e-6)  # ... for that call only
    assert model.get_alpha() == 1.0 and torch.allclose(logits(model), at1, atol=1e-6)
    with model.disable_adapter():
        assert torch.equal(logits(model), logits(model.get_base_model()))


def test_generate_uses_the_dial_at_every_step():
    model = tiny_abc()
    prompt = IDS[:2, :4]
    kwargs = dict(do_sample=False, max_new_tokens=6, min_new_tokens=6, pad_token_id=0, attention_mask=torch.ones_like(prompt))
    a0 = model.generate(input_ids=prompt, alpha=0.0, **kwargs)
    a1 = model.generate(input_ids=prompt, alpha=1.0, **kwargs)
    with model.set_alpha(1.0):
        assert torch.equal(model.generate(input_ids=prompt, **kwargs), a1)
    rows = model.generate(input_ids=prompt, alpha=[0.0, 1.0], **kwargs)
    assert torch.equal(rows[0], a0[0]) and torch.equal(rows[1], a1[1])
    # beams repeat each row (and so its dial) in place
    beams = dict(kwargs, num_beams=2, num_return_sequences=2)
    both = model.generate(input_ids=prompt, alpha=[0.0, 1.0], **beams)
    beams["attention_mask"] = beams["attention_mask"][:1]
    first = model.generate(input_ids=prompt[:1], alpha=0.0, **beams)
    second = model.generate(input_ids=prompt[1:], alpha=1.0, **beams)
    assert both.shape[0] == 4 and torch.equal(both[:2], first) and torch.equal(both[2:], second)
    # greedy tokens of a step equal the argmax of a full forward at that dial
    full = logits(model, ids=a1[:, :-1], alpha=1.0)
    assert torch.equal(full[:, -1].argmax(-1), a1[:, -1])


def test_save_and_load_round_trip(tmp_path):
    model = tiny_abc(unit_size=2)
    before = {a: logits(model, alpha=a) for a in (0.0, 0.3, 1.0)}
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "ABC_ADAPTER" and config["source_names"] == ["stories", "plays"]
    assert config["base_fingerprint"]["model_type"] == "llama" and config["unit_size"] == 2
    weights = load_file(tmp_path / "adapter_model.safetensors")
    positions = {k: v for k, v in weights.items() if k.endswith("abc_m")}
    assert positions and all(v.shape == (4, 2) and v.dtype == torch.float32 for v in positions.values())
    # the saved m wins over the seed: loading restores them even with another m_seed in memory
    key = next(iter(positions))
    weights[key] = weights[key].flip(-1)
    from safetensors.torch import save_file

    save_file(weights, tmp_path / "adapter_model.safetensors")
    loaded = PeftModel.from_pretrained(make_tiny_model("llama"), tmp_path)
    layer = dict(loaded.named_modules())[key.rsplit(".", 1)[0]]
    assert torch.equal(layer.abc_m["default"], weights[key])
    layer.abc_m["default"].copy_(layer.abc_m["default"].flip(-1))  # back to the trained m (in place)
    for a, expected in before.items():
        assert torch.allclose(logits(loaded, alpha=a), expected, atol=1e-6)


def test_loading_on_another_base_model_is_one_clear_error(tmp_path):
    tiny_abc().save_pretrained(tmp_path)
    with pytest.raises(HfSteerError) as info:
        PeftModel.from_pretrained(make_tiny_model("llama", seed=5), tmp_path)
    message = str(info.value)
    assert "was trained on base model" in message and "load it on the base model it was trained on" in message
    assert "\n" not in message
    # the same weights in bfloat16 are the same base
    PeftModel.from_pretrained(make_tiny_model("llama").to(torch.bfloat16), tmp_path)
    with pytest.raises(HfSteerError, match="hidden 64"):
        PeftModel.from_pretrained(make_tiny_model("llama", hidden_size=64), tmp_path)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_merge_and_unload_at_a_dial_equals_the_adapter(arch):
    model = tiny_abc(arch, target_modules=None)  # PEFT's LoRA default targets (gpt2: Conv1D c_attn)
    model.set_alpha(0.7)
    expected = logits(model)
    merged = model.merge_and_unload()
    assert not any(isinstance(m, AbcAdapterLayer) for m in merged.modules())
    assert torch.allclose(logits(merged), expected, atol=1e-5)


def test_merging_needs_one_dial():
    model = tiny_abc()
    model.set_alpha([0.0, 1.0])
    with pytest.raises(HfSteerError, match="merging needs one dial for every row"):
        model.merge_and_unload()


def test_three_sources_and_bad_dials_in_forward():
    model = tiny_abc(source_names=["stories", "plays", "names"])
    corner = logits(model, alpha=[0.0, 0.0, 1.0])
    assert torch.allclose(logits(model, alpha={"names": 1.0}), corner, atol=1e-6)
    assert not torch.allclose(logits(model, alpha=[1.0, 0.0, 0.0]), corner, atol=1e-3)
    for bad, needle in [(0.3, "pass a mixture of 3 weights"), ({"poems": 1.0}, "unknown source 'poems'"),
                        ([0.5, 0.4, 0.2], "does not sum to 1"), ([[1.0, 0, 0]] * 2, "alpha gives 2 rows but the batch has 3")]:
        with pytest.raises(HfSteerError, match=None) as info:
            logits(model, alpha=bad)
        assert needle in str(info.value)


def test_bad_config_values_are_one_line_errors():
    for kwargs, needle in [(dict(r=8, unit_size=3), "unit_size is 3"), (dict(source_names=["a"]), "two or more distinct"),
                           (dict(source_names=["a", "a"]), "two or more distinct"), (dict(gate_floor=1.0), "gate_floor is 1.0"),
                           (dict(gate_function="box"), "gate_function is 'box'")]:
        with pytest.raises(HfSteerError, match=None) as info:
            AbcAdapterConfig(**kwargs)
        assert needle in str(info.value)


def test_a_second_adapter_gets_its_own_units_and_dial():
    model = tiny_abc()
    first = logits(model, alpha=1.0)
    model.add_adapter("three", AbcAdapterConfig(r=4, source_names=["a", "b", "c"], m_seed=9))
    model.set_adapter("three")
    assert torch.equal(logits(model, alpha=[0.0, 0.0, 1.0]), logits(model.get_base_model()))  # fresh B = 0
    with pytest.raises(HfSteerError, match="pass a mixture of 3 weights"):
        logits(model, alpha=0.3)  # every adapter checks the dial against its own sources
    model.set_adapter("default")
    model.delete_adapter("three")
    assert torch.allclose(logits(model, alpha=1.0), first, atol=1e-6)


def test_gradients_with_per_row_dials_survive_gradient_checkpointing():
    def grads(checkpointing: bool):
        model = tiny_abc()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        model(input_ids=IDS, labels=IDS, alpha=[0.0, 0.4, 1.0]).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain, recomputed = grads(False), grads(True)
    assert plain.keys() == recomputed.keys() and all(g.abs().sum() > 0 for g in plain.values())
    for name in plain:
        assert torch.allclose(plain[name], recomputed[name], atol=1e-6), name
