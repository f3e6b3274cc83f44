"""train: the fast training path gives the loss and gradients of a plain full forward, on tensors of a tiny model."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model

from hf_steer.memory.config import get_preset
from hf_steer.memory.train import (
    _collate,
    _decoder_parts,
    _FullForward,
    _PrefixCache,
    length_groups,
    lora_config,
    step_loss,
)


def _rows(lengths, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(1, vocab, (n,), generator=g).tolist()
        prompt = n // 2  # the first half is the question (no loss), the rest the answer
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def _lora_model(arch="llama", top_layers=2, **overrides):
    from peft import get_peft_model

    model = make_tiny_model(arch, num_hidden_layers=4, **overrides)
    preset = get_preset("fast-cpu", r=4, alpha=8.0, top_layers=top_layers)
    peft = get_peft_model(model, lora_config(preset, 4, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                         "up_proj", "down_proj"}))
    torch.manual_seed(1)
    for name, p in peft.named_parameters():
        if "lora_B" in name:  # B starts at zero: give it values so the adapter changes the forward
            p.data.normal_(0, 0.2)
    peft.train()
    return peft


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_cached_bottom_and_length_groups_give_the_full_forwards_loss_and_gradients(arch):
    peft = _lora_model(arch)
    rows = _rows([5, 23, 9, 17, 24, 6, 12])
    batch = _collate(rows, pad_id=0)
    full = peft(**batch, use_cache=False).loss  # transformers' own causal-LM loss on one padded batch
    full.backward()
    want = _grads(peft)
    assert want and all("lora" in n for n in want)
    peft.zero_grad(set_to_none=True)

    groups = length_groups([len(r["input_ids"]) for r in rows])
    assert len(groups) > 1
    parts = _decoder_parts(peft)
    pieces = [_PrefixCache(peft, parts, 2, _collate([rows[i] for i in g], 0)) for g in groups]
    supervised = sum(sum(label != -100 for label in r["labels"][1:]) for r in rows)
    got = step_loss(pieces, supervised)
    assert got == pytest.approx(float(full.detach()), abs=1e-5)
    grads = _grads(peft)
    assert grads.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(grads[name], want[name], atol=1e-5, rtol=1e-4)

    peft.zero_grad(set_to_none=True)  # the fallback (whole model each step) agrees too
    assert step_loss([_FullForward(peft, _collate([rows[i] for i in g], 0)) for g in groups],
                     supervised) == pytest.approx(float(full.detach()), abs=1e-5)


def test_sliding_window_layers_train_with_whole_forwards():
    """Gemma-3's local layers need their own mask: the piecewise run (one captured mask) would give the wrong loss."""
    sliding = _lora_model("gemma3_text", layer_types=["sliding_attention", "full_attention"] * 2)  # window 16
    assert _decoder_parts(sliding, max_length=30) is None  # -> _FullForward, exact
    assert _decoder_parts(sliding, max_length=16) is not None  # texts within the window: one mask fits every layer
    assert _decoder_parts(_lora_model("llama")) is not None
    rows = _rows([30, 24, 12])
    batch = _collate(rows, pad_id=0)
    full = float(sliding(**batch, use_cache=False).loss)
    supervised = sum(sum(label != -100 for label in r["labels"][1:]) for r in rows)
    with torch.no_grad():
        assert float(_FullForward(sliding, batch).loss_sum()) / supervised == pytest.approx(full, abs=1e-5)
        # what the piecewise run gave before: another loss, since layer 3 got layer 2's local mask
        wrong = float(_PrefixCache(sliding, _decoder_parts(sliding, 16), 2, batch).loss_sum()) / supervised
    assert abs(wrong - full) > 1e-4


def test_length_groups_keep_every_text_once_and_pad_little():
    lengths = [84, 22, 30, 61, 65, 28, 27, 84, 40, 36, 29, 63]
    groups = length_groups(lengths, slack=1.25)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        longest = max(lengths[i] for i in g)
        assert all(lengths[i] * 1.25 >= longest for i in g)
    padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    assert padded < 1.15 * sum(lengths) < len(lengths) * max(lengths)
    assert length_groups([7]) == [[0]]
