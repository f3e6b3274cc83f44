"""``hf-steer abc adapt {train,generate,bench}``: parse, call the abc adapter API, print.

Registered under ``hf-steer abc`` by :func:`register_adapt`; imports nothing heavy at module level (the flags
come from the torch-free :class:`~.adapt_config.AbcAdaptConfig`).
"""

from __future__ import annotations

import json

from ...cli_args import (
    add_config_arguments,
    add_threads_argument,
    apply_threads,
    config_from_args,
    number,
    positive,
)
from .adapt_config import AbcAdaptConfig, AbcAdapterBenchConfig

SOURCE_HELP = ("a training source NAME=PATH (repeat; a bare bundled name works: tinystories, shakespeare, names). "
               "Default: tinystories and shakespeare")


def cmd_train(args) -> int:
    from ..training import parse_source_specs
    from .adapt_trainer import train_adapter

    apply_threads(args.threads)
    sources = parse_source_specs(args.source or ["tinystories", "shakespeare"])
    cfg = config_from_args(AbcAdaptConfig, args, sources={k: str(v) for k, v in sources.items()})
    train_adapter(cfg)
    print(f"saved {cfg.output_dir} (adapter_config.json, adapter_model.safetensors, hf_steer.json)")
    return 0


def cmd_generate(args) -> int:
    from .adapt_trainer import load_adapter
    from .generation import generate_text

    apply_threads(args.threads)
    model, tokenizer = load_adapter(args.adapter, base_model=args.base_model)
    prompt = args.prompt.replace("\\n", "\n").replace("\\t", "\t")
    texts = generate_text(model, tokenizer, prompt, args.alpha if args.mix is None else args.mix,
                          num_samples=args.num_samples, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, seed=args.seed, chat=args.chat)
    for i, text in enumerate(texts):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        print(text if args.chat else prompt + text)
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    apply_threads(args.threads)
    from ..training import parse_source_specs

    sources = {k: str(v) for k, v in parse_source_specs(args.source).items()} if args.source else None
    settings = vars(config_from_args(AbcAdapterBenchConfig, args, sources=sources))
    report = run_bench(args.output_json, model=args.base_model, seed=args.seed, **settings)
    keys = ["endpoint_gap_vs_specialist", "middle_gap_vs_mixture_lora", "spearman", "monotone", "reversals_beyond_noise",
            "max_step_fraction",
            "kl_at_alpha_0.5", "chat_correct", "generation_speed_ratio", "wall_seconds", "cpu_seconds", "goals"]
    print(json.dumps({k: report[k] for k in keys if k in report}, indent=2))
    print(f"wrote {args.output_json}" + (f" and {report['plot']}" if "plot" in report else ""))
    return 0


def register_adapt(subparsers) -> None:
    """Add ``adapt`` (with ``train``, ``generate``, ``bench``) to the ``hf-steer abc`` subcommands."""
    p = subparsers.add_parser("adapt", help="the α dial on a pretrained model: a source-gated LoRA (abc adapter)")
    sub = p.add_subparsers(dest="adapt_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("train", help="train an abc adapter on two or more text sources")
    t.add_argument("--source", action="append", metavar="NAME=PATH", help=SOURCE_HELP)
    add_config_arguments(t, AbcAdaptConfig, exclude=["sources"], required=["output_dir"])
    add_threads_argument(t)
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="write text with an abc adapter at a dial setting")
    g.add_argument("--adapter", required=True, help="folder written by `hf-steer abc adapt train`")
    g.add_argument("--base-model", default=None, help="base model (default: the one the adapter records)")
    dial = g.add_mutually_exclusive_group(required=True)
    dial.add_argument("--alpha", type=number(float), help="two-source dial in [0, 1] (0 = first source)")
    dial.add_argument("--mix", help="mixture over sources, e.g. shakespeare=0.7,tinystories=0.3")
    g.add_argument("--prompt", default="\\n", help="text to continue (escapes like \\n work; default a newline)")
    g.add_argument("--chat", action="store_true", help="send the prompt as a chat message (chat template)")
    g.add_argument("--max-new-tokens", type=positive(int), default=60, help="tokens to write (default %(default)s)")
    g.add_argument("--temperature", type=positive(float), default=0.8, help="sampling temperature (default %(default)s)")
    g.add_argument("--num-samples", type=positive(int), default=1, help="samples to write (default %(default)s)")
    g.add_argument("--seed", type=positive(int, allow_zero=True), default=0, help="sampling seed (default %(default)s)")
    add_threads_argument(g)
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("bench", help="abc adapter vs specialist and mixture LoRAs on the bundled model (JSON + PNG)")
    b.add_argument("--output-json", required=True, help="where to write the figures; the PNG goes beside it")
    b.add_argument("--base-model", default=None, help="base model (default: the bundled SmolLM2-135M-Instruct)")
    b.add_argument("--seed", type=positive(int, allow_zero=True), default=0,
                   help="seed of rows, inits, positions m and samples (default %(default)s)")
    b.add_argument("--source", action="append", metavar="NAME=PATH",
                   help="exactly two sources (default: the bundled tinystories and shakespeare)")
    add_config_arguments(b, AbcAdapterBenchConfig, exclude=["sample_prompt", "sources"])
    add_threads_argument(b)
    b.set_defaults(func=cmd_bench)
