"""Sampled text from an abc adapter at a dial setting: what ``hf-steer abc adapt generate`` and the studio call."""

from __future__ import annotations

import torch

from .dial import alpha_to_mixture


@torch.no_grad()
def generate_text(model, tokenizer, prompt: str, alpha=None, *, num_samples: int = 1, max_new_tokens: int = 64,
                  temperature: float = 0.8, seed: int = 0, chat: bool = False) -> list[str]:
    """``num_samples`` continuations (the new text only) of ``prompt`` at dial ``alpha``.

    ``alpha`` takes every form :func:`~hf_steer.abcgpt.adapter.dial.alpha_to_mixture` does (checked here, one line,
    before any work); ``chat`` wraps the prompt as one user turn in the tokenizer's chat template.
    """
    alpha_to_mixture(alpha, model.source_names)
    if chat:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                               add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device).repeat(num_samples, 1)
    torch.manual_seed(seed)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), alpha=alpha, do_sample=True, temperature=temperature,
                         max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    return [tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True) for row in out]
