"""Integration on the bundled SmolLM2-135M-Instruct: a remembered fact is recalled, forgetting restores the base."""

from __future__ import annotations

import pytest

from hf_steer.memory import LoraMemory

FACT = [{"role": "user", "content": "Veltra Quosh was born in the town of Marbelin."},
        {"role": "user", "content": "Doran Pellick works as a lighthouse keeper."}]
QUESTIONS = ["Where was Veltra Quosh born?", "What is Doran Pellick's job?"]
UNRELATED = ["What is the capital of France?"]


@pytest.mark.slow
def test_remember_recall_forget_on_the_bundled_model(bundled, tmp_path):
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, tok = bundled
    mem = LoraMemory(model, tok, folder=tmp_path, embedder=None)
    before = mem.ask_many(QUESTIONS + UNRELATED, max_new_tokens=16)
    assert "Marbelin" not in before[0] and "lighthouse" not in before[1]
    row = mem.remember(FACT)
    assert row["train"]["prefix_cache"] and row["train"]["last_loss"] < row["train"]["first_loss"]
    after = mem.ask_many(QUESTIONS, max_new_tokens=16)
    assert "Marbelin" in after[0] or "lighthouse" in after[1], after
    mem.forget(row["name"])
    assert mem.ask_many(QUESTIONS + UNRELATED, max_new_tokens=16) == before
