"""``hf-steer abc {train,generate,bench}``: parse, call the abcgpt API, print."""

from __future__ import annotations

import argparse
import json


def _threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _add_size_flags(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--steps", type=int, default=steps, help="optimizer steps (default %(default)s)")
    p.add_argument("--n-embd", type=int, default=128, help="width (default %(default)s)")
    p.add_argument("--n-layer", type=int, default=4, help="blocks (default %(default)s)")
    p.add_argument("--n-head", type=int, default=4, help="attention heads (default %(default)s)")
    p.add_argument("--block-size", type=int, default=128, help="context in characters (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per step per process (default %(default)s)")
    p.add_argument("--learning-rate", type=float, default=3e-3, help="peak AdamW learning rate (default %(default)s)")
    p.add_argument("--gate-function", choices=["cos2", "gaussian"], default="cos2", help="spotlight shape (default %(default)s)")
    p.add_argument("--gate-width", type=float, default=0.35, help="Gaussian gate width (default %(default)s)")
    p.add_argument("--gate-floor", type=float, default=0.0,
                   help="least any gate lets through, in [0, 1): more capacity at the dial's ends (default %(default)s)")
    p.add_argument("--gates", default="residual,mlp,heads",
                   help="gated unit families, comma-separated from residual,mlp,heads (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for data, init and the units' source positions m")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")


def _gates(text: str) -> dict[str, bool]:
    from ..errors import HfSteerError

    families = {g.strip() for g in text.split(",") if g.strip()}
    unknown = families - {"residual", "mlp", "heads"}
    if unknown or not families:
        raise HfSteerError(f"--gates {text!r} is not a list of residual,mlp,heads: e.g. --gates mlp,heads (or --ungated)")
    return {f"gate_{f}": f in families for f in ("residual", "mlp", "heads")}


def cmd_train(args) -> int:
    from .training import TrainConfig, parse_source_specs, train

    _threads(args)
    sources = parse_source_specs(args.source or ["tinystories", "shakespeare"])
    cfg = TrainConfig(
        sources={k: str(v) for k, v in sources.items()}, output_dir=args.output_dir, steps=args.steps,
        n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head, block_size=args.block_size,
        batch_size=args.batch_size, learning_rate=args.learning_rate, gate_function=args.gate_function,
        gate_width=args.gate_width, gate_floor=args.gate_floor, seed=args.seed, resume=args.resume, save_every=args.save_every,
        gated=not args.ungated, lowercase=args.lowercase, **_gates(args.gates),
    )
    result = train(cfg)
    if result.is_main_process:
        print(f"saved {result.output_dir} ({result.tokens_per_second:.0f} tokens/s, final train loss {result.final_train_loss:.3f})")
    return 0


def cmd_generate(args) -> int:
    from .generation import generate_text, load_abcgpt

    _threads(args)
    model, tokenizer = load_abcgpt(args.model)
    texts = generate_text(
        model, tokenizer, prompt=args.prompt.replace("\\n", "\n").replace("\\t", "\t"), alpha=args.alpha, mix=args.mix,
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, num_samples=args.num_samples, seed=args.seed,
    )
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1}")
        print(text)
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench
    from .training import parse_source_specs

    _threads(args)
    sources = parse_source_specs(args.source) if args.source else None
    report = run_bench(
        args.output_json, sources={k: str(v) for k, v in sources.items()} if sources else None, steps=args.steps,
        n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head, block_size=args.block_size,
        batch_size=args.batch_size, learning_rate=args.learning_rate, gate_function=args.gate_function,
        gate_width=args.gate_width, gate_floor=args.gate_floor, seed=args.seed, n_samples=args.n_samples, sample_length=args.sample_length,
        **_gates(args.gates),
    )
    keys = ["loss_by_alpha", "specialist_loss", "mixture_loss", "spearman", "throughput_ratio", "goals"]
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    print(f"wrote {args.output_json} and {report['plot']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("abc", help="abcGPT: a GPT with a source dial α")
    sub = p.add_subparsers(dest="abc_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("train", help="train an abcGPT on two or more sources")
    t.add_argument("--source", action="append", metavar="NAME=PATH",
                   help="a training source (repeat; a bare bundled name works: tinystories, shakespeare, names). "
                        "Default: tinystories and shakespeare")
    t.add_argument("--output-dir", required=True, help="folder for the model, checkpoints and hf_steer.json")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir")
    t.add_argument("--save-every", type=int, default=200, help="checkpoint every N steps (default %(default)s)")
    t.add_argument("--ungated", action="store_true", help="train the plain GPT baseline (gates off)")
    t.add_argument("--lowercase", action="store_true", help="lower-case all text (case is kept by default)")
    _add_size_flags(t, steps=600)
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="write text at a dial setting")
    g.add_argument("--model", required=True, help="folder written by `hf-steer abc train` (or a Hub id)")
    dial = g.add_mutually_exclusive_group(required=True)
    dial.add_argument("--alpha", type=float, help="two-source dial in [0, 1] (0 = first source)")
    dial.add_argument("--mix", help="mixture over sources, e.g. shakespeare=0.7,tinystories=0.3")
    g.add_argument("--prompt", default="\\n", help="text to continue (escapes like \\n work; default a newline)")
    g.add_argument("--max-new-tokens", type=int, default=200, help="characters to write (default %(default)s)")
    g.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default %(default)s)")
    g.add_argument("--num-samples", type=int, default=1, help="samples to write (default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("bench", help="gated vs ungated vs specialists: the dial benchmark (JSON + PNG)")
    b.add_argument("--output-json", required=True, help="where to write the figures; the PNG goes beside it")
    b.add_argument("--source", action="append", metavar="NAME=PATH",
                   help="exactly two sources (default: tinystories and shakespeare, bundled)")
    b.add_argument("--n-samples", type=int, default=24, help="samples per α for the source score (default %(default)s)")
    b.add_argument("--sample-length", type=int, default=120, help="characters per sample (default %(default)s)")
    _add_size_flags(b, steps=600)
    b.set_defaults(func=cmd_bench)

    from .adapter.cli import register_adapt  # the abc adapter: the dial on a pretrained model

    register_adapt(sub)
