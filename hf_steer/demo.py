"""`hf-steer demo`: the slop problem on the bundled model, and Elarablation fixing it, in one run.

1. before: the next-token distribution after an elf's introduction, and a handful of sampled names;
2. training on the 8 name contexts of the built-in library (Trainer's progress bar);
3. after: the same distribution and names on the trained model;
4. the adapter saved (push-ready, with hf_steer.json) and a PNG of the top-20 probabilities before/after.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

DEMO_CONTEXT = 'The elf girl nods. "My name is'
__all__ = ["DEMO_CONTEXT", "next_token_table", "sample_names", "run", "register"]


def next_token_table(model, tokenizer, context: str, k: int = 15) -> list[tuple[str, float]]:
    """The top-``k`` next tokens after ``context`` with their probabilities."""
    import torch

    ids = tokenizer(context, return_tensors="pt").to(next(model.parameters()).device)
    with torch.no_grad():
        probs = model(**ids).logits[0, -1].float().softmax(-1)
    values, indices = probs.topk(k)
    return [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, indices)]


def sample_names(model, tokenizer, context: str, n: int = 20, temperature: float = 1.0, seed: int = 0) -> Counter:
    """Sample ``n`` continuations and count the first name in each (``None`` = no name)."""
    import torch

    from .elarablation.sampling import name_counts, sample_continuations

    generator = torch.Generator().manual_seed(seed)
    samples = sample_continuations(model, tokenizer, context, n=n, temperature=temperature, generator=generator)
    return name_counts(samples)


def print_table(rows: list[tuple[str, float]], title: str) -> None:
    print(title)
    for token, p in rows:
        print(f"  {token!r:>12}  {p:6.3f}  {'#' * round(p * 50)}")


def print_names(names: Counter, title: str) -> None:
    total = sum(names.values())
    el = sum(c for n, c in names.items() if n and n.startswith("El"))
    print(f"{title}: {len(names)} different, {el}/{total} start with 'El' (×N = said N times)")
    print("  " + ", ".join(f"{n or '(no name)'}×{c}" for n, c in names.most_common()))


def run(args: argparse.Namespace) -> int:
    import torch

    from .elarablation.contexts import load_contexts
    from .elarablation.pipeline import train
    from .elarablation.plots import plot_token_probs
    from .models import load_model
    from .utils import set_seed

    set_seed(args.seed)
    print(f"Loading {args.model or 'the bundled SmolLM2-135M-Instruct'} ...")
    model, tokenizer = load_model(args.model, device="cpu" if not torch.cuda.is_available() else None)
    print(f"\nContext: {DEMO_CONTEXT}\n")
    before_rows = next_token_table(model, tokenizer, DEMO_CONTEXT, k=20)
    print_table(before_rows[:10], "BEFORE: top-10 next tokens")
    print_names(sample_names(model, tokenizer, DEMO_CONTEXT, n=args.samples, seed=args.seed),
                f"BEFORE: {args.samples} sampled names (T=1)")

    contexts = load_contexts("female_names")
    print(f"\nElarablation: {len(contexts)} contexts from the library (never the demo context itself), "
          f"{args.epochs:g} epochs, one forward per step ...")
    result = train(contexts, args.output_dir, model, tokenizer=tokenizer, num_train_epochs=args.epochs,
                   seed=args.seed, logging_steps=max(1, int(args.epochs)))
    tuned = result["trainer"].model
    tuned.eval()
    print(f"trained in {result['train_seconds']:.1f} s\n")

    after_rows = next_token_table(tuned, tokenizer, DEMO_CONTEXT, k=20)
    print_table(after_rows[:10], "AFTER: top-10 next tokens")
    print_names(sample_names(tuned, tokenizer, DEMO_CONTEXT, n=args.samples, seed=args.seed),
                f"AFTER: {args.samples} sampled names (T=1)")

    plot = plot_token_probs(before_rows, after_rows, Path(args.output_dir) / "before_after.png",
                            title=DEMO_CONTEXT)
    print(f"\nadapter saved in {args.output_dir}/ (hf_steer.json: push it with `hf-steer push {args.output_dir} USER/NAME`)")
    print(f"plot of the top-20 token probabilities before/after: {plot}")
    return 0


def register(sub) -> None:
    from .cli_args import positive

    p = sub.add_parser("demo", help="show the slop problem and its fix (Elarablation) on the bundled model")
    p.add_argument("--model", default=None, help="model folder or Hub id (default: bundled SmolLM2-135M-Instruct)")
    p.add_argument("--samples", type=positive(int), default=20, help="how many names to sample before and after (default: 20)")
    p.add_argument("--epochs", type=positive(float), default=8, help="training epochs over the 8 contexts (default: 8)")
    p.add_argument("--output-dir", default="elarablation-demo", help="where the adapter and PNG go (default: elarablation-demo)")
    p.add_argument("--seed", type=positive(int, allow_zero=True), default=0, help="random seed for training and sampling (default: 0)")
    p.set_defaults(func=run)
