"""Source sampling, held-out split, tokenizer, a tiny training run, resume, and the saved artifact."""

import json

import numpy as np
import pytest
import torch

from hf_steer.abcgpt import training
from hf_steer.abcgpt.tokenization_abcgpt import build_char_tokenizer, encode
from hf_steer.abcgpt.training import BUNDLED_SOURCES, sample_mixtures, sample_sources, split_text, train
from hf_steer.errors import HfSteerError

from .conftest import tiny_train_config


def test_alpha_is_arcsine_and_source_follows_alpha():
    rng = np.random.default_rng(0)
    mix = sample_mixtures(rng, 40000, 2)
    alpha = mix[:, 1]
    assert abs(alpha.mean() - 0.5) < 0.01
    assert abs(alpha.var() - 1 / 8) < 0.005  # Beta(½, ½) variance = 1/8
    src = sample_sources(rng, mix)
    # Bernoulli(α): rows with high α are mostly the second source, rows with low α mostly the first.
    assert src[alpha > 0.9].mean() > 0.9 and src[alpha < 0.1].mean() < 0.1
    assert abs(src.mean() - 0.5) < 0.02


def test_three_source_mixtures_are_dirichlet_and_categorical():
    rng = np.random.default_rng(1)
    mix = sample_mixtures(rng, 30000, 3)
    np.testing.assert_allclose(mix.sum(1), 1.0)
    src = sample_sources(rng, mix)
    assert set(np.unique(src)) == {0, 1, 2}
    for k in range(3):  # E[1{source=k}] = E[mixture_k] = 1/3, and rows pick the source their mixture favours
        assert abs((src == k).mean() - 1 / 3) < 0.02
        assert (src[mix[:, k] > 0.9] == k).mean() > 0.9


def test_validation_is_the_end_of_the_file():
    text = "".join(chr(65 + i % 26) for i in range(1000))
    tr, va = split_text(text, 0.1)
    assert tr + va == text and len(va) == 100 and text.endswith(va)


def test_char_tokenizer_keeps_case_and_round_trips(tmp_path):
    tok = build_char_tokenizer(["Once upon a time\nROMEO: Hi!"])
    text = "ROMEO: once\nOnce"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.convert_tokens_to_ids("R") != tok.convert_tokens_to_ids("r")
    assert tok.decode(tok("Zq", add_special_tokens=False)["input_ids"]) == "<unk><unk>"
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    lower = build_char_tokenizer(["Hello"], lowercase=True)
    assert lower.decode(lower("HeLLo", add_special_tokens=False)["input_ids"]) == "hello"


@pytest.mark.parametrize("lowercase", [False, True])
def test_fast_encode_gives_the_tokenizers_ids(lowercase):
    texts = [BUNDLED_SOURCES[n].read_text(encoding="utf-8")[:20000] for n in ("tinystories", "shakespeare", "names")]
    tok = build_char_tokenizer(texts[:2], lowercase=lowercase)
    for text in [*texts, "Ünïcode → ✓ and characters never seen: Ωж漢 \t\r\n"]:
        want = tok(text, add_special_tokens=False)["input_ids"]
        assert encode(tok, text).tolist() == want
    assert encode(tok, "").tolist() == []


def test_tiny_training_writes_a_pushable_folder(tiny_sources, tmp_path):
    result = train(tiny_train_config(tiny_sources, tmp_path / "run", steps=8))
    out = tmp_path / "run"
    log = json.loads((out / "training_log.json").read_text())
    assert log["log"][-1]["step"] == 8 and log["log"][-1]["train_loss"] < log["log"][0]["train_loss"]
    meta = json.loads((out / "hf_steer.json").read_text())
    assert meta["artifact"] == "custom_code_model" and meta["method"] == "abcgpt"
    assert meta["plots"] == ["alpha_curves.png"] and (out / "alpha_curves.png").stat().st_size > 1000
    assert len(meta["metrics"]) == 11 and set(meta["metrics"]["alpha=0.3"]) == {"tinystories", "shakespeare"}
    for name in ("modeling_abcgpt.py", "configuration_abcgpt.py", "tokenizer.json", "model.safetensors"):
        assert (out / name).is_file()
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"] == "modeling_abcgpt.AbcGPTForCausalLM"
    assert result.model.config.source_names == ["tinystories", "shakespeare"]

    from hf_steer.hub import render_card  # the foundation's card for `hf-steer push`

    card = str(render_card(out, "user/abc"))
    assert "![alpha_curves.png](alpha_curves.png)" in card and "custom_code" in card and "alpha=0.5" in card


def test_resume_continues_exactly_where_it_stopped(tiny_sources, tmp_path, monkeypatch):
    straight = train(tiny_train_config(tiny_sources, tmp_path / "a", steps=6, write_artifacts=False))

    # The interrupted run: killed during step 5 of 6, after checkpoint-4 was written ...
    real_lr = training._lr_at

    def killed_at_step_5(step, cfg):
        if step == 4:
            raise KeyboardInterrupt
        return real_lr(step, cfg)

    monkeypatch.setattr(training, "_lr_at", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_train_config(tiny_sources, tmp_path / "b", steps=6, save_every=2, write_artifacts=False))
    monkeypatch.setattr(training, "_lr_at", real_lr)
    assert [p.name for p in (tmp_path / "b").glob("checkpoint-*")] == ["checkpoint-4"]
    resumed = train(tiny_train_config(tiny_sources, tmp_path / "b", steps=6, save_every=2, resume=True,
                                      write_artifacts=False))
    # ... resumed at step 4 with its optimizer state and the same per-step data matches the straight run.
    assert [e["step"] for e in resumed.log] == [2, 4, 6]
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=name)


def test_a_finished_run_resumes_to_more_steps(tiny_sources, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_train_config(tiny_sources, out, steps=4, save_every=3, write_artifacts=False))
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]  # the last step is saved, not a stale 3
    more = train(tiny_train_config(tiny_sources, out, steps=6, save_every=3, resume=True, write_artifacts=False))
    assert "resumed from" in capsys.readouterr().out and more.log[-1]["step"] == 6
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-6"]
    assert json.loads((out / "training_log.json").read_text())["log"][-1]["step"] == 6

    with pytest.raises(HfSteerError, match=r"checkpoint-6 is already at step 6 of --steps 6: pass a larger --steps"):
        train(tiny_train_config(tiny_sources, out, steps=6, resume=True))
    with pytest.raises(HfSteerError, match=r"was trained with n_embd=16 \(now 32\)"):
        train(tiny_train_config(tiny_sources, out, steps=8, n_embd=32, resume=True))
    with pytest.raises(HfSteerError, match="already holds checkpoint-6 of an earlier run: pass --resume"):
        train(tiny_train_config(tiny_sources, out, steps=8))


def test_resume_without_a_checkpoint_says_so(tiny_sources, tmp_path, capsys):
    from hf_steer.cli import main

    for folder in (tmp_path / "empty", tmp_path / "never_made"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(HfSteerError, match=f"no checkpoint in {folder}: run once without --resume"):
            train(tiny_train_config(tiny_sources, folder, resume=True))
    capsys.readouterr()
    argv = ["abc", "train", "--output-dir", str(tmp_path / "empty"), "--resume"]
    for name, path in tiny_sources.items():
        argv += ["--source", f"{name}={path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hf-steer: error: no checkpoint in {tmp_path / 'empty'}") and err.count("\n") == 1
    assert not (tmp_path / "never_made").exists()  # a refused run leaves nothing behind


def test_a_model_too_big_for_this_machine_is_refused_before_anything_is_allocated(tiny_sources, tmp_path):
    cfg = tiny_train_config(tiny_sources, tmp_path / "huge", n_embd=1 << 16, n_head=1, n_layer=64)
    with pytest.raises(HfSteerError, match=r"a 64x65536 model with batch 4x24 needs about \d+\.\d GiB but"):
        train(cfg)
    assert not (tmp_path / "huge").exists()
