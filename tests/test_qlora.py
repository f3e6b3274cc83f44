"""QLoRA on a CPU is correct: LoRA gradients over an nf4 base equal those over the same weights in fp32.

bitsandbytes has two CPU paths for a 4-bit layer:

* the plain one (every CPU): dequantize the nf4 weight, matmul in the compute dtype, with autograd;
* a packed one (only CPUs with AVX512-BF16, only in eval mode without gradients): weights repacked
  for a fused bf16 ``gemv_4bit`` kernel that has no autograd and rejects narrow layers.

``hf_steer.models.keep_4bit_weights_unpacked`` keeps every layer we load on the plain path (see its
docstring for why). These tests check the gradients on the plain path on every machine, check the
guard by pretending the CPU has AVX512-BF16 (so the packed path would be taken here too), and, on a
CPU that really has it, exercise the packed kernel itself.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model, make_tokenizer

from hf_steer.benchmarking import cpu_flags
from hf_steer.models import keep_4bit_weights_unpacked, load_model

bnb = pytest.importorskip("bitsandbytes")

HAS_AVX512_BF16 = bool(bnb.functional.has_avx512bf16())
# 64 wide (one quantization block) and multiples of 32: shapes every bitsandbytes CPU kernel accepts.
SHAPES = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)
# Both sides compute in fp32 from identical dequantized weights; what is left is summation order.
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


def _save_tiny(folder, **shapes):
    make_tiny_model("llama", **(shapes or SHAPES)).save_pretrained(folder)
    make_tokenizer("bytelevel").save_pretrained(folder)
    return folder


def _linear4bit_layers(model):
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def _dequantized_fp32_copy(folder, quantized):
    """The fp32 model from ``folder`` with every 4-bit layer's weight replaced by its dequantized nf4 weight."""
    plain = load_model(folder, device="cpu", with_tokenizer=False)
    plain_modules = dict(plain.named_modules())
    for name, module in quantized.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
            plain_modules[name].weight.data.copy_(weight.float())
    return plain


def _lora(model, seed: int = 0):
    """The same LoRA on every projection, with non-zero B so A gets gradients too."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                             "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    for name, param in sorted(peft_model.named_parameters()):
        if "lora_" in name:
            param.data.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return peft_model


def _lora_grads(peft_model, ids):
    peft_model.train()
    peft_model.zero_grad()
    peft_model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def test_qlora_gradients_equal_the_dequantized_fp32_gradients(tmp_path):
    folder = _save_tiny(tmp_path / "tiny")
    quantized = load_model(folder, device="cpu", load_in_4bit=True, with_tokenizer=False)
    assert len(_linear4bit_layers(quantized)) == 2 * 7  # two layers x seven projections
    reference = _dequantized_fp32_copy(folder, quantized)
    q_lora, r_lora = _lora(quantized), _lora(reference)
    ids = torch.tensor([[5, 17, 42, 9, 77, 3, 120, 64]])

    # An inference pass first, as a chat or a bench does before training: on an AVX512-BF16 CPU this
    # is what repacks a layer for the gradient-less kernel unless the guard holds.
    with torch.no_grad():
        q_lora.eval()
        q_lora.generate(ids, max_new_tokens=2, do_sample=False, pad_token_id=0)

    q_grads, r_grads = _lora_grads(q_lora, ids), _lora_grads(r_lora, ids)
    assert q_grads.keys() == r_grads.keys() and len(q_grads) == 2 * 7 * 2
    for name, grad in q_grads.items():
        assert grad.abs().sum() > 0, f"{name} got no gradient"
        torch.testing.assert_close(grad, r_grads[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=name)


def test_the_guard_keeps_layers_off_the_packed_path_even_on_an_avx512_bf16_cpu(tmp_path, monkeypatch):
    """Pretend the CPU has AVX512-BF16 (as some CI machines do): a 32-wide tiny model used to crash there
    with "shape '[32, 0]' is invalid" on its first no-grad forward."""
    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)
    folder = _save_tiny(tmp_path / "tiny32", hidden_size=32, intermediate_size=64)
    model = load_model(folder, device="cpu", load_in_4bit=True, with_tokenizer=False)
    layers = _linear4bit_layers(model)
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)


@pytest.mark.skipif(not HAS_AVX512_BF16, reason="the packed 4-bit CPU kernel needs a CPU with avx512_bf16")
def test_packed_avx512_bf16_kernel_matches_the_plain_path(tmp_path):
    """On a CPU that has the packed path, check what it computes (bf16) against the plain path."""
    folder = _save_tiny(tmp_path / "tiny")
    model = load_model(folder, device="cpu", load_in_4bit=True, with_tokenizer=False)
    ids = torch.tensor([[5, 17, 42, 9]])
    with torch.no_grad():
        plain = model(ids).logits
        assert keep_4bit_weights_unpacked(model) > 0
        for m in _linear4bit_layers(model):
            m.support_avx512bf16_for_cpu = True  # allow packing for this check only
        packed = model(ids).logits
    assert any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in _linear4bit_layers(model))
    torch.testing.assert_close(packed, plain, rtol=0.05, atol=0.05)  # bf16 compute


def test_cpu_flags_are_read():
    flags = cpu_flags()
    assert isinstance(flags, set)
    if flags:  # Linux: the flags bitsandbytes' own probe agrees with
        assert ("avx512_bf16" in flags) == HAS_AVX512_BF16
