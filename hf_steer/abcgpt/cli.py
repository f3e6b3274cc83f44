"""``hf-steer abc {train,generate,bench}``: parse, call the abcgpt API, print.

The flags come from the fields of :mod:`hf_steer.abcgpt.config` (help and default written once, there);
only what has no field of its own is added here: ``--source``, ``--gates``/``--ungated``, ``--model``,
``--output-json`` and ``--threads``.
"""

from __future__ import annotations

import argparse
import json

from ..cli_args import add_config_arguments, add_threads_argument, apply_threads, config_from_args
from .config import (
    BUNDLED_SOURCES,
    GATE_FAMILIES,
    BenchConfig,
    GenerateConfig,
    TrainConfig,
    check_model_folder,
    parse_source_specs,
)

# The TrainConfig fields that set a model's size and gates: `train` and `bench` both take them.
SIZE_FIELDS = ["steps", "n_embd", "n_layer", "n_head", "block_size", "batch_size", "learning_rate",
               "gate_function", "gate_width", "gate_floor", "seed"]
TRAIN_FIELDS = ["output_dir", *SIZE_FIELDS, "resume", "save_every", "keep_checkpoints", "log_every", "eval_batches",
                "warmup_steps", "min_lr_ratio", "weight_decay", "grad_clip", "dropout", "concentration",
                "val_fraction", "lowercase", "fixed_mixture"]
BENCH_FIELDS = ["n_samples", "sample_length", "eval_batches", "throughput_rounds", "work_dir"]


def _add_source_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--source", action="append", metavar="NAME=PATH", help=help_text)


def _add_gate_flags(p: argparse.ArgumentParser, ungated: bool) -> None:
    """``--gates a,b`` sets the gate_* fields; ``--ungated`` (train only) clears ``gated``."""
    defaults = TrainConfig.__dataclass_fields__
    on = [f for f in GATE_FAMILIES if defaults[f"gate_{f}"].default]
    p.add_argument("--gates", default=",".join(on),
                   help=f"gated unit families, comma-separated from {','.join(GATE_FAMILIES)} (default: {','.join(on)})")
    if ungated:
        p.add_argument("--ungated", dest="gated", action="store_false", default=defaults["gated"].default,
                       help="train the plain GPT baseline (default: gated, as --gates says)")


def _gates(text: str) -> dict[str, bool]:
    from ..errors import HfSteerError

    families = {g.strip() for g in text.split(",") if g.strip()}
    unknown = families - set(GATE_FAMILIES)
    if unknown or not families:
        raise HfSteerError(f"--gates {text!r} is not a list of residual,mlp,heads: e.g. --gates mlp,heads (or --ungated)")
    return {f"gate_{f}": f in families for f in GATE_FAMILIES}


def _sources(args) -> dict[str, str] | None:
    return {k: str(v) for k, v in parse_source_specs(args.source).items()} if args.source else None


def cmd_train(args) -> int:
    # Every setting is checked before torch is imported: a bad value costs no seconds.
    sources = _sources(args) or {n: str(BUNDLED_SOURCES[n]) for n in ("tinystories", "shakespeare")}
    cfg = config_from_args(TrainConfig, args, sources=sources, **_gates(args.gates))
    apply_threads(args.threads)
    from .training import train

    result = train(cfg)
    if result.is_main_process:
        print(f"saved {result.output_dir} ({result.tokens_per_second:.0f} tokens/s, final train loss {result.final_train_loss:.3f})")
    return 0


def cmd_generate(args) -> int:
    prompt = args.prompt.replace("\\n", "\n").replace("\\t", "\t")
    config = config_from_args(GenerateConfig, args, prompt=prompt)
    check_model_folder(args.model)  # before torch is imported: a mistyped path costs no seconds
    apply_threads(args.threads)
    from .generation import generate_text, load_abcgpt

    model, tokenizer = load_abcgpt(args.model)
    texts = generate_text(model, tokenizer, config)
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1}")
        print(text)
    return 0


def cmd_bench(args) -> int:
    wanted = (set(SIZE_FIELDS) | set(BENCH_FIELDS)) - {"seed"}
    settings = {k: v for k, v in vars(args).items() if k in wanted}
    settings.update(_gates(args.gates))
    if args.source:
        settings["sources"] = _sources(args)
    apply_threads(args.threads)
    from .bench import run_bench

    report = run_bench(args.output_json, seed=args.seed, **settings)
    keys = ["loss_by_alpha", "specialist_loss", "mixture_loss", "spearman", "throughput_ratio", "goals"]
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    print(f"wrote {args.output_json} and {report['plot']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("abc", help="abcGPT: a GPT with a source dial α")
    sub = p.add_subparsers(dest="abc_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("train", help="train an abcGPT on two or more sources")
    _add_source_flag(t, "a training source (repeat; a bare bundled name works: tinystories, shakespeare, names). "
                        "Default: tinystories and shakespeare")
    add_config_arguments(t, TrainConfig, include=TRAIN_FIELDS, required=["output_dir"])
    _add_gate_flags(t, ungated=True)
    add_threads_argument(t)
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="write text at a dial setting")
    g.add_argument("--model", required=True, help="folder written by `hf-steer abc train` (or a Hub id)")
    dial = g.add_mutually_exclusive_group(required=True)
    add_config_arguments(dial, GenerateConfig, include=["alpha", "mix"])
    # The command line spells the default newline prompt as the escape it decodes.
    add_config_arguments(g, GenerateConfig, include=["prompt", "max_new_tokens", "temperature", "num_samples", "seed"],
                         defaults={"prompt": "\\n"})
    add_threads_argument(g)
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("bench", help="gated vs ungated vs specialists: the dial benchmark (JSON + PNG)")
    b.add_argument("--output-json", required=True, help="where to write the figures; the PNG goes beside it")
    _add_source_flag(b, "exactly two sources (default: tinystories and shakespeare, bundled)")
    add_config_arguments(b, TrainConfig, include=SIZE_FIELDS)
    _add_gate_flags(b, ungated=False)
    add_config_arguments(b, BenchConfig, include=BENCH_FIELDS)
    add_threads_argument(b)
    b.set_defaults(func=cmd_bench)

    from .adapter.cli import register_adapt  # the abc adapter: the dial on a pretrained model

    register_adapt(sub)
