"""Generation on a dosed model: stock generate() features, sober prompt, cold showers, seeds."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    DynamicCache,
    LogitsProcessorList,
    MinPLogitsWarper,
    NoRepeatNGramLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from hf_steer.drugs import ColdShower, DrugsConfig, inject, remove
from hf_steer.errors import HfSteerError

from .conftest import TINY_ARCHS, tiny

STRONG = DrugsConfig(doses={"H": 0.8, "A": 0.8}, sinks=1)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_same_seed_same_text_and_seeds_differ(arch, prompt):
    # Eager vs SDPA injection is covered in test_inject; here one implementation per arch keeps it quick.
    model = inject(tiny(arch, "eager" if arch in ("gpt2", "phi3") else "sdpa"), STRONG)
    kwargs = dict(max_new_tokens=6, pad_token_id=0, return_dict_in_generate=True, output_scores=True)
    runs = [model.Dgenerate(**prompt, seed=s, **kwargs) for s in (1, 1, 2)]
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert all(torch.equal(a, b) for a, b in zip(runs[0].scores, runs[1].scores))
    # A random tiny model may keep its argmax, but the predictions themselves must move with the seed.
    assert not torch.equal(runs[0].scores[0], runs[2].scores[0])


def test_zero_dose_dgenerate_is_plain_greedy(prompt):
    model = tiny("llama")
    plain = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    inject(model, DrugsConfig())
    assert torch.equal(model.Dgenerate(**prompt, max_new_tokens=8, seed=0), plain)
    remove(model)
    assert torch.equal(model.generate(**prompt, max_new_tokens=8, do_sample=False), plain)


class Collect(BaseStreamer):
    def __init__(self):
        self.chunks = []

    def put(self, value):
        self.chunks.append(value.reshape(-1).tolist())

    def end(self):
        self.chunks.append("end")


class StopAfter(StoppingCriteria):
    def __init__(self, length):
        self.length = length

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), input_ids.shape[1] >= self.length, dtype=torch.bool)


def test_stock_processors_samplers_streamers_and_stopping_criteria(prompt):
    model = inject(tiny("qwen3"), STRONG)
    length = prompt["input_ids"].shape[1]
    streamer = Collect()
    out = model.Dgenerate(
        **prompt, max_new_tokens=12, seed=5, streamer=streamer,
        logits_processor=LogitsProcessorList([NoRepeatNGramLogitsProcessor(2)]),
        stopping_criteria=StoppingCriteriaList([StopAfter(length + 6)]),
    )
    assert out.shape[1] == length + 6  # our stopping criterion ended it
    streamed = [t for chunk in streamer.chunks[1:-1] for t in chunk]  # first chunk is the prompt
    assert streamed == out[0, length:].tolist() and streamer.chunks[-1] == "end"
    new = out[0, length:].tolist()
    pairs = list(zip(new, new[1:]))
    assert len(pairs) == len(set(pairs))  # no repeated bigram in the new tokens
    # Sampling with a stock warper on top of the noise, repeatable by seed.
    kwargs = dict(max_new_tokens=6, do_sample=True, temperature=1.5, seed=9,
                  logits_processor=LogitsProcessorList([MinPLogitsWarper(0.1)]))
    assert torch.equal(model.Dgenerate(**prompt, **kwargs), model.Dgenerate(**prompt, **kwargs))
    beams = model.generate(**prompt, max_new_tokens=4, num_beams=2, do_sample=False)
    assert beams.shape == (1, length + 4)


def test_left_padded_batch(tokenizer):
    batch = tokenizer(["Once upon a time", "Her voice was barely above a whisper, and"], return_tensors="pt",
                      padding=True)
    model = inject(tiny("gemma3_text"), STRONG)
    out = model.Dgenerate(**batch, max_new_tokens=5, seed=0)
    assert out.shape == (2, batch["input_ids"].shape[1] + 5)


def _sober_cache(model, ids):
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids, cache=cache, use_cache=True)
    return cache


def _same_cache(a, b, length):
    return all(torch.allclose(x.keys[..., :length, :], y.keys[..., :length, :], atol=1e-5)
               and torch.allclose(x.values[..., :length, :], y.values[..., :length, :], atol=1e-5)
               for x, y in zip(a.layers, b.layers))


@pytest.mark.parametrize("via", ["Dgenerate", "generate"])
@pytest.mark.parametrize("dose_prompt", [False, True])
def test_prompt_is_read_sober_unless_dosed(dose_prompt, via, prompt):
    model = tiny("llama", num_hidden_layers=3)
    ids = prompt["input_ids"]
    reference = _sober_cache(model, ids)
    inject(model, DrugsConfig(doses={"H": 0.8}, sinks=0, dose_prompt=dose_prompt))
    cache = DynamicCache(config=model.config)
    if via == "Dgenerate":
        model.Dgenerate(input_ids=ids, max_new_tokens=3, seed=0, cache=cache)
    else:  # stock generate on a dosed model reads the prompt the same way
        model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, cache=cache)
    # All prompt positions but the last (which predicts the first new token) are sober by default.
    assert _same_cache(cache, reference, ids.shape[1] - 1) is not dose_prompt


@pytest.mark.parametrize("every", [None, 1])
def test_cold_shower_during_generation_refeeds_a_sober_cache(every, prompt):
    model = inject(tiny("llama", num_hidden_layers=3), DrugsConfig(doses={"H": 0.8}, sinks=0))
    ids = prompt["input_ids"]
    cache = DynamicCache(config=model.config)
    out = model.Dgenerate(input_ids=ids, max_new_tokens=6, seed=0, cache=cache, cold_shower_every=every)
    # The cache holds every token but the newest; a shower after each new token leaves all of it sober.
    held = out[:, :-1]
    assert cache.get_seq_length() == held.shape[1]
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(model._drugs_state, "active", False)
        reference = _sober_cache(model, held)
    assert _same_cache(cache, reference, held.shape[1]) is (every == 1)


def test_cold_shower_processor_in_stock_generate_with_left_padding(tokenizer):
    batch = tokenizer(["Once upon a time", "Her voice was barely above a whisper, and"], return_tensors="pt",
                      padding=True)
    model = inject(tiny("llama", num_hidden_layers=3), DrugsConfig(doses={"H": 0.8}, sinks=0))
    cache = DynamicCache(config=model.config)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=5, do_sample=False, cache=cache,
                         logits_processor=LogitsProcessorList([ColdShower(model, every=2)]))
    # 5 new tokens, 4 read into the cache: washed after the 2nd and the 4th, so all of it is sober.
    held = out[:, :-1]
    mask = torch.cat([batch["attention_mask"], torch.ones(2, 4, dtype=torch.long)], dim=1)
    reference = DynamicCache(config=model.config)
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(model._drugs_state, "active", False)
        model(input_ids=held, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0), cache=reference)
    for layer, ref in zip(cache.layers, reference.layers):
        for row in range(2):
            real = mask[row].bool()  # padded positions hold nothing anyone reads
            torch.testing.assert_close(layer.keys[row][:, real], ref.keys[row][:, real], atol=1e-5, rtol=1e-5)
    with pytest.raises(HfSteerError, match="ColdShower every 0 is not a count"):
        ColdShower(model, 0)
    with pytest.raises(HfSteerError, match="is not dosed"):
        ColdShower(tiny("llama"), 2)


def test_cold_shower_between_turns(prompt):
    model = inject(tiny("phi3", num_hidden_layers=3), DrugsConfig(doses={"A": 0.8}, sinks=0))
    cache = DynamicCache(config=model.config)
    out = model.Dgenerate(**prompt, max_new_tokens=5, seed=0, cache=cache)
    held = out[:, :-1]  # the cache holds everything but the newest token
    assert cache.get_seq_length() == held.shape[1]
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(model._drugs_state, "active", False)
        reference = _sober_cache(model, held)
    assert not _same_cache(cache, reference, held.shape[1])
    assert model.cold_shower(cache, held) is cache
    assert _same_cache(cache, reference, held.shape[1])
    # The next turn continues from the washed cache.
    next_turn = torch.cat([out, prompt["input_ids"][:, :3]], dim=1)
    more = model.Dgenerate(input_ids=next_turn, max_new_tokens=3, seed=1, cache=cache)
    assert more.shape[1] == next_turn.shape[1] + 3


def test_cold_shower_schedule_and_errors(prompt):
    model = inject(tiny("llama"), A=0.3)
    model.cold_shower(every=2)
    assert model._drugs_state.shower_every == 2
    with pytest.raises(HfSteerError, match="cold shower every=0 is not a count >= 1"):
        model.cold_shower(every=0)
    with pytest.raises(HfSteerError, match="cold_shower needs the cache"):
        model.cold_shower()
