"""Integration on the bundled SmolLM2-135M-Instruct: a remembered fact is recalled, forgetting restores the
base; a personal chat with a correction is answered with the newest value by the default path."""

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


@pytest.mark.slow
def test_a_personal_chat_with_a_correction_on_the_default_path(bundled, tmp_path):
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, tok = bundled
    mem = LoraMemory(model, tok, folder=tmp_path)
    mem.remember("user: Hi! I'm Ansel. My sister Liv lives in Harwick.\nassistant: Nice to meet you, Ansel!")
    row = mem.remember("user: Actually, Liv moved to Tamsford last week.\nassistant: Thanks, Tamsford then.")
    assert row["supersedes"] and "Your sister Liv lives in Tamsford." in row["statements"]
    res = mem.answer("Where does my sister live?", max_new_tokens=16)
    assert "Tamsford" in res["answer"] and "Harwick" not in res["answer"], res
    assert res["notes"] and all("Harwick" not in n for n in res["notes"])
    assert mem.ask("What is the capital of France?", max_new_tokens=16) == mem.ask(
        "What is the capital of France?", adapters=False, retrieve=False, max_new_tokens=16)
