"""`hf-steer elarablate {train, merge, bench, find, library}`: parse, call the API, print."""

from __future__ import annotations

import argparse
import json

from ..errors import HfSteerError


def _layers(text: str | None) -> list[int] | None:
    """``"15-29"`` or ``"3,5,7"`` -> layer indices."""
    if not text:
        return None
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise HfSteerError(f"--lora-layers {text!r} is not a range: use e.g. 15-29 or 20,21,22") from None


def _train_config(args: argparse.Namespace) -> dict:
    return dict(loss_type=args.loss_type, learning_rate=args.lr, num_train_epochs=args.epochs, top_k=args.top_k,
                max_threshold=args.max_threshold, min_threshold=args.min_threshold, tree_depth=args.tree_depth,
                anchor_weight=args.anchor_weight, seed=args.seed)


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model folder, .gguf or Hub id (default: bundled SmolLM2-135M-Instruct)")
    p.add_argument("--loss-type", default="margin", choices=["elarablate", "unlikelihood", "margin"],
                   help="loss variant (default: margin; see docs/elarablation.md)")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (default: 2e-3)")
    p.add_argument("--epochs", type=float, default=8, help="passes over the contexts (default: 8)")
    p.add_argument("--top-k", type=int, default=50, help="candidates classified per step (default: 50)")
    p.add_argument("--max-threshold", type=float, default=0.02, help="punish any candidate above this (default: 0.02)")
    p.add_argument("--min-threshold", type=float, default=0.015, help="reward good candidates below this (default: 0.015)")
    p.add_argument("--tree-depth", type=int, default=1, choices=[1, 2], help="2: also train one token deeper")
    p.add_argument("--anchor-weight", type=float, default=100.0, help="KL anchor on ordinary text (default: 100; 0: off)")
    p.add_argument("--seed", type=int, default=0, help="random seed")


def run_train(args: argparse.Namespace) -> int:
    from .pipeline import train

    result = train(args.contexts, args.output_dir, args.model, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                   lora_layers=_layers(args.lora_layers), load_in_4bit=args.load_in_4bit,
                   resume_from_checkpoint=args.resume or None, save_strategy=args.save_strategy,
                   **_train_config(args))
    final = result["final"]
    print(f"trained {result['steps']} steps in {result['train_seconds']:.1f} s; last step: top-1 p="
          f"{final.get('top1_prob', float('nan')):.3f}, bad mass={final.get('bad_mass', float('nan')):.3f}")
    print(f"adapter saved in {result['output_dir']} (push it with `hf-steer push {result['output_dir']} USER/NAME`)")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from .pipeline import merge

    out = merge(args.adapter, args.output, scale=args.scale)
    print(f"merged model (LoRA scale {args.scale}) saved in {out}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench as bench

    figures = bench(args.output_json, model=args.model, samples=args.samples,
                    samples_reference=args.samples_reference, repetition=args.repetition, **_train_config(args))
    keys = ["incidence_before", "incidence_after", "effective_names_before", "effective_names_after",
            "top_name_share_before", "top_name_share_after", "named_rate_before", "named_rate_after",
            "reference_kept_before", "reference_kept_after", "kl_unrelated_nats", "ppl_change_pct",
            "train_seconds", "peak_rss_mb"]
    print(json.dumps({k: figures[k] for k in keys}, indent=2))
    print(f"goals: {json.dumps(figures['goals'])}")
    print(f"wrote {args.output_json} and {figures['plot']}")
    return 0


def run_find(args: argparse.Namespace) -> int:
    from .discover import find

    report = find(args.output, model=args.model, samples=args.samples, top=args.top, seed=args.seed,
                  max_new_tokens=args.max_new_tokens)
    for entry in report["offenders"]:
        print(f"  {entry['kind']:6} {entry['text']!r:32} x{entry['ratio']:.0f} over reference ({entry['count']} times)")
    print(f"wrote {report['contexts']} candidate contexts to {args.output}")
    return 0


def run_library(args: argparse.Namespace) -> int:
    from .contexts import list_library, load_contexts

    for name in list_library():
        train = load_contexts(name)
        heldout = load_contexts(name, split="heldout")
        print(f"  {name:16} {len(train):3} train  {len(heldout):3} held-out  e.g. {train[0]['text']!r}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("elarablate", help="Elarablation: train slop tokens (Elara, ...) out of a model")
    group = p.add_subparsers(dest="elarablate_command", metavar="SUBCOMMAND", required=True)

    t = group.add_parser("train", help="train a LoRA adapter on context files / library families")
    t.add_argument("contexts", nargs="+", help="YAML/JSONL files (ours or original elarablate), folders, library names")
    t.add_argument("--output-dir", required=True, help="where the adapter (+ hf_steer.json) goes")
    _add_train_options(t)
    t.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default: 8)")
    t.add_argument("--lora-alpha", type=int, default=16, help="LoRA alpha (default: 16)")
    t.add_argument("--lora-layers", default=None, help="layer range, e.g. 15-29 (default: upper half)")
    t.add_argument("--load-in-4bit", action="store_true", help="QLoRA: load the model in 4-bit nf4")
    t.add_argument("--save-strategy", default="no", choices=["no", "steps", "epoch"], help="checkpoints (default: no)")
    t.add_argument("--resume", default=None, help="checkpoint folder to resume from")
    t.set_defaults(func=run_train)

    m = group.add_parser("merge", help="merge an adapter into its base model, LoRA scaled")
    m.add_argument("--adapter", required=True, help="adapter folder from `train`")
    m.add_argument("--scale", type=float, default=2.0, help="LoRA scale at merge (default: 2.0, the original recipe)")
    m.add_argument("--output", required=True, help="folder for the merged model")
    m.set_defaults(func=run_merge)

    b = group.add_parser("bench", help="train on 8 name contexts, measure held-out names, KL, ppl: JSON + PNG")
    b.add_argument("--output-json", required=True, help="where the figures go (a PNG is written beside it)")
    b.add_argument("--samples", type=int, default=200, help="samples per held-out context and temperature (default: 200)")
    b.add_argument("--samples-reference", type=int, default=50, help="samples per back-reference context (default: 50)")
    b.add_argument("--repetition", action="store_true",
                   help="also measure looping continuations (compare --tree-depth 1 and 2)")
    _add_train_options(b)
    b.set_defaults(func=run_bench)

    f = group.add_parser("find", help="sample the model, rank over-represented words/phrases, write candidate contexts")
    f.add_argument("--output", required=True, help="YAML file of candidate contexts")
    f.add_argument("--model", default=None, help="model (default: bundled)")
    f.add_argument("--samples", type=int, default=16, help="stories sampled (default: 16)")
    f.add_argument("--max-new-tokens", type=int, default=96, help="tokens per story (default: 96)")
    f.add_argument("--top", type=int, default=10, help="offenders to write contexts for (default: 10)")
    f.add_argument("--seed", type=int, default=0, help="random seed")
    f.set_defaults(func=run_find)

    lib = group.add_parser("library", help="list the built-in context families")
    lib.set_defaults(func=run_library)
