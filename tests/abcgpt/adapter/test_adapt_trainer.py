"""Training through Trainer with abcGPT's dial schedule, resuming, and the pushable folder (tiny models)."""

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model, make_tokenizer
from safetensors.torch import load_file
from transformers import TrainerCallback

from hf_steer.abcgpt.adapter import AbcAdaptConfig, load_adapter, train_adapter
from hf_steer.abcgpt.adapter.adapt_trainer import DialRows, prepare_corpus
from hf_steer.abcgpt.training import sample_batch
from hf_steer.errors import HfSteerError


def tiny_config(sources, output_dir, **overrides):
    kwargs = dict(sources=sources, output_dir=str(output_dir), r=4, layers="all", block_size=24, batch_size=4,
                  steps=6, save_steps=0, logging_steps=2, eval_windows=2, learning_rate=1e-2, warmup_steps=1)
    kwargs.update(overrides)
    return AbcAdaptConfig(**kwargs)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def test_rows_are_abcgpts_sampler_in_order(tiny_sources, tmp_path, tokenizer):
    cfg = tiny_config(tiny_sources, tmp_path, seed=4, vertex_fraction=0.0)  # abcGPT's rows, untouched
    corpus = prepare_corpus(cfg, tokenizer)
    rows = DialRows(corpus, cfg)
    assert len(rows) == cfg.steps * cfg.batch_size
    for step in (0, 3):
        ids, mixtures, sources = sample_batch(corpus, np.random.default_rng([4, 0, step]), 4, 24)
        for r in range(4):
            item = rows[step * 4 + r]
            assert torch.equal(item["input_ids"], ids[r]) and torch.equal(item["labels"], ids[r])
            assert torch.equal(item["alpha"], mixtures[r])
    # windows come from the training part only: never from the held-out end of a file
    train_text = {n: corpus.train[n].tolist() for n in corpus.names}
    item = rows[5]["input_ids"].tolist()
    assert any(item == seq[i:i + 24] for seq in train_text.values() for i in range(len(seq) - 23))
    specialist = DialRows(corpus, tiny_config(tiny_sources, tmp_path, fixed_mixture=[0, 1]), with_alpha=False)
    _, mixtures, sources = specialist.batch(2)
    assert "alpha" not in specialist[0] and set(sources.tolist()) == {1}


def test_vertex_rows_move_only_the_dial_to_their_source(tiny_sources, tmp_path, tokenizer):
    corpus = prepare_corpus(tiny_config(tiny_sources, tmp_path), tokenizer)
    plain = DialRows(corpus, tiny_config(tiny_sources, tmp_path, batch_size=16, seed=2, vertex_fraction=0.0))
    half = DialRows(corpus, tiny_config(tiny_sources, tmp_path, batch_size=16, seed=2, vertex_fraction=0.5))
    every = DialRows(corpus, tiny_config(tiny_sources, tmp_path, batch_size=16, seed=2, vertex_fraction=1.0))
    moved = 0
    for step in range(4):
        ids, mixtures, sources = plain.batch(step)
        ids_half, mix_half, src_half = half.batch(step)
        _, mix_every, _ = every.batch(step)
        assert torch.equal(ids, ids_half) and np.array_equal(sources, src_half)  # the same windows and sources
        onehot = torch.nn.functional.one_hot(torch.as_tensor(sources), 2).float()
        assert torch.equal(mix_every, onehot)  # every row at the vertex of the source it was drawn from
        at_vertex = (mix_half == onehot).all(-1)
        assert torch.equal(mix_half[~at_vertex], mixtures[~at_vertex])  # the other rows keep their draw
        moved += int((at_vertex & ~(mixtures == onehot).all(-1)).sum())
    assert 16 <= moved <= 48  # about half of 64 rows
    assert torch.equal(half[3 * 16 + 5]["alpha"], mix_half[5])  # what the model sees (step 3, row 5)
    with pytest.raises(HfSteerError, match="vertex_fraction is 1.5"):
        tiny_config(tiny_sources, tmp_path, vertex_fraction=1.5)


def test_training_writes_a_pushable_adapter_folder(tiny_sources, tmp_path, tiny_base_folder, capsys):
    out = tmp_path / "run"
    cfg = tiny_config(tiny_sources, out, base_model=str(tiny_base_folder))
    model = train_adapter(cfg)
    meta = json.loads((out / "hf_steer.json").read_text())
    assert meta["method"] == "abc_adapter" and meta["artifact"] == "adapter" and meta["plots"] == ["alpha_curves.png"]
    assert (out / "alpha_curves.png").stat().st_size > 1000 and set(meta["metrics"]["alpha=0.5"]) == set(tiny_sources)
    assert meta["hyperparameters"]["r"] == 4 and meta["source_names"] == ["tinystories", "shakespeare"]
    log = json.loads((out / "training_log.json").read_text())
    assert [h["step"] for h in log["log"]] == [2, 4, 6]
    from hf_steer.hub import render_card

    card = str(render_card(out, "user/dial"))
    assert "![alpha_curves.png](alpha_curves.png)" in card and "abc_adapter" in card and "alpha=0.5" in card
    loaded, tok = load_adapter(out)
    ids = tok("Once upon a time", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for a in (0.0, 1.0):
            assert torch.allclose(loaded(input_ids=ids, alpha=a).logits, model(input_ids=ids, alpha=a).logits, atol=1e-5)


def test_plain_lora_baseline_uses_the_same_code(tiny_sources, tmp_path, tokenizer):
    out = tmp_path / "lora"
    model = train_adapter(tiny_config(tiny_sources, out, gated=False, fixed_mixture=[1, 0]), make_tiny_model("llama"), tokenizer)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and not (out / "hf_steer.json").exists()
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in model.named_parameters())


class _StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_resume_continues_exactly_where_it_stopped(tiny_sources, tmp_path, tokenizer):
    straight = tmp_path / "straight"
    train_adapter(tiny_config(tiny_sources, straight, eval_windows=0), make_tiny_model("llama"), tokenizer)
    broken = tmp_path / "broken"
    cfg = tiny_config(tiny_sources, broken, save_steps=2, eval_windows=0)
    with pytest.raises(KeyboardInterrupt):
        train_adapter(cfg, make_tiny_model("llama"), tokenizer, callbacks=[_StopAt(5)])
    assert (broken / "checkpoint-4").is_dir() and not (broken / "adapter_model.safetensors").exists()
    train_adapter(cfg.__class__(**{**cfg.__dict__, "resume": True}), make_tiny_model("llama"), tokenizer)
    assert json.loads((broken / "training_log.json").read_text())["resumed_from"].endswith("checkpoint-4")
    a, b = load_file(straight / "adapter_model.safetensors"), load_file(broken / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
