"""Auto-discovery: which words and phrases does a model over-use, and where would we train them out?

``find()`` samples stories from the model, counts words and known slop phrases, ranks words by how
much more often the model uses them than human text does (a smoothed frequency ratio against word
counts of TinyStories + Shakespeare, boosted when the word is on the antislop list of over-used
words), and writes a context file (our YAML) with, for each top offender, the sampled text right up
to where the model wrote it, and a rule that marks the word's first token bad.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..utils import atomic_write_text, set_seed

DATA_DIR = Path(__file__).parent / "data"
PROMPTS = [
    "Write a short fantasy story about an elf who meets a stranger.",
    "Write a short story about a young woman who discovers a secret door.",
    "Write a short story about a knight and a dragon.",
    "Write a short science fiction story about a starship captain.",
]
_WORD = re.compile(r"[A-Za-z']+")
_STOP = {"the", "a", "an", "and", "to", "of", "in", "was", "her", "his", "she", "he", "it", "i", "you", "that"}


def over_representation(model_counts: Counter, reference: dict[str, int], reference_total: int,
                        slop_words: dict[str, int], min_count: int = 2) -> list[dict[str, Any]]:
    """Rank words by (model rate + ε) / (human rate + ε), doubled for words on the slop list."""
    model_total = sum(model_counts.values()) or 1
    eps = 1.0 / max(reference_total, 1)
    ranked = []
    for word, count in model_counts.items():
        if count < min_count or word in _STOP:
            continue
        ratio = (count / model_total + eps) / (reference.get(word, 0) / reference_total + eps)
        if word in slop_words:
            ratio *= 2
        ranked.append({"kind": "word", "text": word, "count": count, "ratio": ratio, "slop_list": word in slop_words})
    return sorted(ranked, key=lambda e: -e["ratio"])


def phrase_hits(texts: list[str], slop_phrases: list[list]) -> list[dict[str, Any]]:
    """Known over-used phrases (antislop list) found in the samples, most frequent first."""
    joined = "\n".join(t.lower() for t in texts)
    hits = []
    for phrase, weight in slop_phrases:
        count = joined.count(phrase)
        if count:
            hits.append({"kind": "phrase", "text": phrase, "count": count, "ratio": float(count * weight) ** 0.5,
                         "slop_list": True})
    return sorted(hits, key=lambda e: -e["count"])


def contexts_for(word: str, texts: list[str], limit: int = 4, max_chars: int = 160) -> list[str]:
    """Text right before each use of ``word`` (a few per word), cut to the last ``max_chars`` characters."""
    out = []
    pattern = re.compile(rf"(?<![A-Za-z']){re.escape(word)}(?![A-Za-z'])", re.IGNORECASE)
    for text in texts:
        for match in pattern.finditer(text):
            before = text[: match.start()].rstrip(" ")
            if len(before) < 20:
                continue
            before = before[-max_chars:]
            out.append(before[before.find(" ") + 1:] if len(before) == max_chars else before)
            break
        if len(out) >= limit:
            break
    return out


def write_candidates(path: str | os.PathLike, offenders: list[dict[str, Any]], texts: list[str]) -> int:
    """Our YAML, one document per offender with training contexts; returns how many contexts."""
    import yaml

    docs, n = [], 0
    for entry in offenders:
        first = entry["text"].split()[0]
        contexts = contexts_for(first, texts)
        if not contexts:
            continue
        is_name = first[:1].isupper() or any(t.find(" " + first.capitalize()) >= 0 for t in texts)
        good = ['^ [A-Z][a-z]*[,.!?"]*$'] if is_name else ["^ [a-z]+[,.]?$"]
        docs.append({
            "family": f"found_{re.sub(r'[^a-z]+', '_', entry['text'].lower())}",
            "description": f"auto-discovered: {entry['kind']} {entry['text']!r}, {entry['ratio']:.0f}x human rate",
            "rules": {"good": good, "bad": [f"(?i)^ ?{re.escape(first[:3])}"] if len(first) >= 3 else [f"^ ?{re.escape(first)}\\b"]},
            "hyperparameters": {"top_k": 50, "max_threshold": 0.02 if is_name else 0.3,
                                "min_threshold": 0.015 if is_name else 0.01},
            "train": contexts,
        })
        n += len(contexts)
    atomic_write_text(path, yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True, width=120))
    return n


@torch.no_grad()
def sample_stories(model, tokenizer, samples: int, max_new_tokens: int, seed: int) -> list[str]:
    """``samples`` stories at T=1 (prompts cycled), batched, as chat replies."""
    set_seed(seed)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(samples)]
    if getattr(tokenizer, "chat_template", None):
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True) for p in prompts]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    else:
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
    batch = batch.to(next(model.parameters()).device)
    out = model.generate(**batch, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                         max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def find(output: str | os.PathLike, model: Any = None, tokenizer=None, samples: int = 16,
         max_new_tokens: int = 96, top: int = 10, seed: int = 0) -> dict[str, Any]:
    """Sample, rank offenders, write candidate contexts to ``output`` (YAML). Returns the ranking."""
    from ..models import load_model

    if model is None or isinstance(model, (str, os.PathLike)):
        model, tokenizer = load_model(model)
    texts = sample_stories(model, tokenizer, samples, max_new_tokens, seed)
    reference = json.loads((DATA_DIR / "reference_word_counts.json").read_text())
    slop_words = dict(json.loads((DATA_DIR / "slop_words_2025-04-07.json").read_text()))
    slop_phrases = json.loads((DATA_DIR / "slop_phrases_2025-04-07.json").read_text())
    counts = Counter(w.lower() for t in texts for w in _WORD.findall(t))
    words = over_representation(counts, reference["counts"], reference["total"], slop_words)
    phrases = phrase_hits(texts, slop_phrases)
    offenders = (words[: top - min(len(phrases), top // 3)] + phrases[: top // 3])[:top]
    n = write_candidates(output, offenders, texts)
    return {"offenders": offenders, "contexts": n, "samples": texts}
