"""`hf-steer elarablate {train, merge, auto, find, bench, bench-stories, bench-original, library}`: parse, call the API, print.

Flags come from the config dataclasses (``hf_steer.cli_args``): a default and its help live once, in the
field. Nothing heavy is imported at module level (``hf-steer --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json

from ..cli_args import add_config_arguments, add_threads_argument, apply_threads, config_from_args

# ElarablationConfig fields a training command shows (a TrainingArguments subclass has ~150).
TRAIN_FIELDS = ["loss_type", "learning_rate", "num_train_epochs", "per_device_train_batch_size", "top_k",
                "max_threshold", "min_threshold", "temperature", "tether_weight", "tether_centred", "margin_cap", "bad_ratio", "tree_depth", "tree_width",
                "min_path_prob", "first_token_push", "train_deeper_rows", "keep_weight", "neutral_weight", "within_class", "auto_keep", "anchor_weight", "context_weight", "let_go_beginnings", "hold_let_go_words",
                "load_in_4bit", "bf16",
                "seed"]
TRAIN_ALIASES = {"num_train_epochs": ["--epochs"], "per_device_train_batch_size": ["--batch-size"]}


def _add_model(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--model", default=None, required=required,
                   help="model folder, .gguf file or Hub id (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--chat-template", default=None,
                   help="for a model without a chat template: gemma, chatml or a Jinja file")
    add_threads_argument(p)


def _add_training(p: argparse.ArgumentParser, exclude: tuple[str, ...] = (), lora: type | None = None) -> None:
    """The training flags; ``exclude`` drops the ones another settings class of the command already has; ``lora``:
    the adapter's settings class (default ``LoraArguments``; ``auto``'s has its own layers)."""
    from .arguments import ElarablationArguments, LoraArguments

    add_config_arguments(p, ElarablationArguments, include=TRAIN_FIELDS, aliases=TRAIN_ALIASES, exclude=exclude)
    add_config_arguments(p, lora or LoraArguments)


def _config(args: argparse.Namespace, output_dir: str = "elarablation-output", **overrides):
    from .config import ElarablationConfig

    return config_from_args(ElarablationConfig, args, output_dir=output_dir, **overrides)


def _lora(args: argparse.Namespace, lora: type | None = None):
    from .arguments import LoraArguments

    return config_from_args(lora or LoraArguments, args)


def run_train(args: argparse.Namespace) -> int:
    from .pipeline import train

    apply_threads(args.threads)
    config = _config(args, args.output_dir, save_strategy=args.save_strategy)
    result = train(args.contexts, args.output_dir, args.model, config=config, lora=_lora(args),
                   resume_from_checkpoint=args.resume or None, chat_template=args.chat_template)
    final = result["final"]
    print(f"trained {result['steps']} steps in {result['train_seconds']:.1f} s; last step: top-1 p="
          f"{final.get('top1_prob', float('nan')):.3f}, bad mass={final.get('bad_mass', float('nan')):.3f}"
          + (f", kept name p={final['keep_p']:.3f}" if "keep_p" in final else ""))
    print(f"adapter saved in {result['output_dir']} (push it with `hf-steer push {result['output_dir']} USER/NAME`)")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from .pipeline import merge

    apply_threads(args.threads)
    out = merge(args.adapter, args.output, scale=args.scale)
    print(f"merged model (LoRA scale {args.scale}) saved in {out}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from .arguments import BenchArguments
    from .bench import run_bench as bench

    apply_threads(args.threads)
    settings = vars(config_from_args(BenchArguments, args))
    config = _config(args)
    figures = bench(args.output_json, model=args.model, seed=args.seed, chat_template=args.chat_template,
                    config=config, lora=_lora(args), **settings)
    print(json.dumps({k: figures[k] for k in figures["summary_keys"]}, indent=2))
    print(f"goals: {json.dumps(figures['goals'])}")
    print(f"wrote {args.output_json} and {figures['plot']}")
    return 0


def run_bench_original(args: argparse.Namespace) -> int:
    from .bench_original import run_original_bench

    apply_threads(args.threads)
    config = _config(args)
    figures = run_original_bench(args.output_json, folder=args.folder, model=args.model, seed=args.seed,
                                 chat_template=args.chat_template, config=config, lora=_lora(args))
    print(f"{figures['lowered']} of {figures['files']} readable files: bad mass lowered by training on the file alone"
          + (f"; {len(figures['nothing_to_train'])} with nothing to train on this model (unchanged, as the original)"
             if figures["nothing_to_train"] else "")
          + (f"; {len(figures['unreadable'])} not readable" if figures["unreadable"] else ""))
    print(f"wrote {args.output_json} and {figures['plot']}")
    return 0


def run_find(args: argparse.Namespace) -> int:
    from .arguments import FindArguments
    from .discover import find

    apply_threads(args.threads)
    settings = config_from_args(FindArguments, args)
    report = find(args.output, model=args.model, settings=settings, chat_template=args.chat_template)
    for line in report["summary"]:
        print(line)
    loops = f" and {report['loop_contexts']} loop contexts" if report["loop_contexts"] else ""
    print(f"wrote {report['contexts']} contexts for {len(report['patterns'])} patterns{loops} to {args.output}")
    return 0


def run_auto(args: argparse.Namespace) -> int:
    from .arguments import AutoArguments, AutoLoraArguments
    from .auto import run_auto as auto

    apply_threads(args.threads)
    settings = config_from_args(AutoArguments, args)
    report = auto(args.work_dir, model=args.model, settings=settings, config=_config(args, "unused"),
                  lora=_lora(args, AutoLoraArguments), chat_template=args.chat_template)
    for line in report["summary"]:
        print(line)
    return 0


def run_bench_stories(args: argparse.Namespace) -> int:
    from .arguments import AutoArguments, AutoLoraArguments
    from .bench_stories import run_story_bench

    apply_threads(args.threads)
    settings = config_from_args(AutoArguments, args)
    figures = run_story_bench(args.output_json, model=args.model, seed=args.seed, settings=settings,
                              config=_config(args, "unused"), lora=_lora(args, AutoLoraArguments),
                              chat_template=args.chat_template,
                              judge=args.judge)
    for line in figures["summary"]:
        print(line)
    print(f"wrote {args.output_json} and {figures['plot']}")
    return 0


def run_library(args: argparse.Namespace) -> int:
    from .contexts import list_library, load_contexts

    for name in list_library():
        train = load_contexts(name)
        heldout = load_contexts(name, split="heldout")
        keep = sum(1 for r in train if r["kind"] == "keep")
        print(f"  {name:16} {len(train) - keep:3} train  {keep:3} keep  {len(heldout):3} held-out  "
              f"e.g. {train[0]['text']!r}")
    return 0


def register(sub) -> None:
    from .arguments import AutoArguments, AutoLoraArguments, BenchArguments, FindArguments

    p = sub.add_parser("elarablate", help="Elarablation: train slop tokens (Elara, ...) out of a model")
    group = p.add_subparsers(dest="elarablate_command", metavar="SUBCOMMAND", required=True)

    t = group.add_parser("train", help="train a LoRA adapter on context files / library families")
    t.add_argument("contexts", nargs="+", help="YAML/JSONL files (ours or original elarablate), folders, library names")
    t.add_argument("--output-dir", required=True, help="where the adapter (+ hf_steer.json) goes")
    _add_model(t)
    _add_training(t)
    t.add_argument("--save-strategy", default="no", choices=["no", "steps", "epoch"],
                   help="checkpoints: no, steps or epoch (default: no)")
    t.add_argument("--resume", default=None, help="checkpoint folder to resume from")
    t.set_defaults(func=run_train)

    m = group.add_parser("merge", help="merge an adapter into its base model, LoRA scaled")
    m.add_argument("--adapter", required=True, help="adapter folder from `train`")
    m.add_argument("--scale", type=_positive_float, default=2.0,
                   help="LoRA scale at merge (default: 2.0, the original recipe)")
    m.add_argument("--output", required=True, help="folder for the merged model")
    add_threads_argument(m)
    m.set_defaults(func=run_merge)

    a = group.add_parser("auto", help="the whole loop on your model: stories -> over-used patterns -> contexts "
                         "-> training -> stories again (resumable)")
    a.add_argument("--work-dir", required=True, help="folder for every stage's output (an interrupted run resumes here)")
    _add_model(a)
    add_config_arguments(a, AutoArguments)
    # one --seed and hold: AutoArguments'
    _add_training(a, exclude=("seed", "context_weight", "hold_let_go_words"), lora=AutoLoraArguments)
    a.set_defaults(func=run_auto)

    f = group.add_parser("find", help="sample stories, rank over-used words/names/phrases, write a context file")
    f.add_argument("--output", required=True, help="YAML context file to write (edit it, then `train` on it)")
    _add_model(f)
    add_config_arguments(f, FindArguments)
    f.set_defaults(func=run_find)

    b = group.add_parser("bench", help="slot bench: name contexts (held out), back-references, drift: JSON + PNG")
    b.add_argument("--output-json", required=True, help="where the figures go (a PNG is written beside it)")
    _add_model(b)
    add_config_arguments(b, BenchArguments)
    _add_training(b)
    b.set_defaults(func=run_bench)

    s = group.add_parser("bench-stories", help="story bench: `auto` on training prompts, then held-out prompts "
                         "before/after (patterns, slop index, distinct-2, loops, judge perplexity): JSON + PNG")
    s.add_argument("--output-json", required=True, help="where the figures go (a PNG is written beside it)")
    s.add_argument("--judge", default="auto", help="auto (Gemma-3-270M if installed) | gemma | none | model path (default: %(default)s)")
    _add_model(s)
    add_config_arguments(s, AutoArguments)
    _add_training(s, exclude=("seed", "context_weight", "hold_let_go_words"), lora=AutoLoraArguments)
    s.set_defaults(func=run_bench_stories)

    o = group.add_parser("bench-original", help="train on each original elarablate context file alone: does "
                         "its bad mass fall? JSON + PNG")
    o.add_argument("--folder", required=True, help="folder of original elarablate YAML files (searched recursively)")
    o.add_argument("--output-json", required=True, help="where the figures go (a PNG is written beside it)")
    _add_model(o)
    _add_training(o)
    o.set_defaults(func=run_bench_original)

    lib = group.add_parser("library", help="list the built-in context families")
    lib.set_defaults(func=run_library)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value
