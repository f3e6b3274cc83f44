"""`hf-steer demo`: the slop problem on the bundled model, and Elarablation fixing it, in one run.

1. before: the next-token distribution after an elf's introduction, and a handful of sampled names;
2. training on the 8 name contexts of the built-in library (Trainer's progress bar);
3. after: the same distribution and names on the trained model;
4. the adapter saved (push-ready, with hf_steer.json) and a PNG of the top-20 probabilities before/after.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DEMO_CONTEXT = 'The elf girl nods. "My name is'
__all__ = ["DEMO_CONTEXT", "DemoArguments", "next_token_table", "sample_names", "run", "register"]


@dataclass
class DemoArguments:
    """Settings of ``hf-steer demo`` (its flags and their defaults come from these fields)."""

    model: str | None = field(default=None, metadata={"help": "Model folder, .gguf or Hub id (default: the bundled "
                                                       "SmolLM2-135M-Instruct)."})
    samples: int = field(default=20, metadata={"help": "How many names to sample before and after."})
    epochs: float = field(default=8.0, metadata={"help": "Training epochs over the 8 contexts."})
    output_dir: str = field(default="elarablation-demo", metadata={"help": "Where the adapter and the PNG go."})
    seed: int = field(default=0, metadata={"help": "Random seed for training and sampling."})

    def __post_init__(self) -> None:
        from .errors import HfSteerError

        if self.samples < 1 or self.epochs <= 0 or self.epochs != self.epochs or self.epochs == float("inf"):
            raise HfSteerError("--samples must be 1 or more and --epochs a positive number: e.g. --samples 20 --epochs 8")
        if not 0 <= self.seed < 2**32:
            raise HfSteerError(f"--seed {self.seed} is out of range: use 0 .. 4294967295")


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

    from .cli_args import apply_threads, config_from_args

    config_from_args(DemoArguments, args)  # one clear line for a bad value, before the model loads
    apply_threads(args.threads)
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
                   seed=args.seed, logging_steps=max(1, int(args.epochs)), disable_tqdm=True)  # the demo's own lines only
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
    from .cli_args import add_config_arguments, add_threads_argument

    p = sub.add_parser("demo", help="show the slop problem and its fix (Elarablation) on the bundled model")
    add_config_arguments(p, DemoArguments)
    add_threads_argument(p)
    p.set_defaults(func=run)
