"""`hf-steer demo`: the slop problem on the bundled model, in numbers."""

from __future__ import annotations

import argparse
import re
from collections import Counter

import torch

DEMO_CONTEXT = 'The elf girl nods. "My name is'
_NAME = re.compile(r"[A-Z][\w'\-]*")


def first_name(continuation: str) -> str | None:
    """The first capitalised word of a continuation, or ``None`` when the slot got no name."""
    match = _NAME.search(continuation.split("\n")[0])
    return match.group(0) if match else None


@torch.no_grad()
def next_token_table(model, tokenizer, context: str, k: int = 15) -> list[tuple[str, float]]:
    """The top-``k`` next tokens after ``context`` with their probabilities."""
    ids = tokenizer(context, return_tensors="pt").to(model.device)
    probs = model(**ids).logits[0, -1].float().softmax(-1)
    values, indices = probs.topk(k)
    return [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, indices)]


@torch.no_grad()
def sample_names(model, tokenizer, context: str, n: int = 20, temperature: float = 1.0, seed: int = 0) -> Counter:
    """Sample ``n`` continuations and count the first name in each (``None`` = no name)."""
    torch.manual_seed(seed)
    ids = tokenizer(context, return_tensors="pt").to(model.device)
    out = model.generate(
        **ids, do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=6,
        num_return_sequences=n, pad_token_id=tokenizer.pad_token_id,
    )
    texts = tokenizer.batch_decode(out[:, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    return Counter(first_name(t) for t in texts)


def print_table(rows: list[tuple[str, float]], title: str) -> None:
    print(title)
    for token, p in rows:
        print(f"  {token!r:>12}  {p:6.3f}  {'#' * round(p * 50)}")


def run(args: argparse.Namespace) -> int:
    from .models import load_model

    print(f"Loading the bundled model ({args.model or 'SmolLM2-135M-Instruct'}) ...")
    model, tokenizer = load_model(args.model)
    print(f"\nContext: {DEMO_CONTEXT}\n")
    print_table(next_token_table(model, tokenizer, DEMO_CONTEXT, k=15), "Top-15 next tokens:")
    names = sample_names(model, tokenizer, DEMO_CONTEXT, n=args.samples, seed=args.seed)
    print(f"\n{args.samples} sampled names (T=1):")
    for name, count in names.most_common():
        print(f"  {name or '(no name)':>12}  {count}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="show the slop problem (and its fix) on the bundled model")
    p.add_argument("--model", default=None, help="model folder or Hub id (default: bundled SmolLM2-135M-Instruct)")
    p.add_argument("--samples", type=int, default=20, help="how many names to sample")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling")
    p.set_defaults(func=run)
