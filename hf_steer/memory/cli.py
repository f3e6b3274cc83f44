"""`hf-steer memory ...`: remember, list, stack, rollup, forget, regenerate, ask, merge, chat, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import HfSteerError


def _common(p: argparse.ArgumentParser, train: bool = False) -> None:
    p.add_argument("--model", default=None, help="base model folder or Hub id (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--folder", default=None, help="where profiles live (default: $HF_STEER_MEMORY or the hf_steer cache)")
    p.add_argument("--profile", default="default", help="catalog to use: one per behaviour (work, personal, ...)")
    p.add_argument("--4bit", dest="load_in_4bit", action="store_true", help="load the base in nf4 4-bit")
    p.add_argument("--no-retrieval", action="store_true", help="do not embed chunks (no sentence-transformers)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    if train:
        p.add_argument("--preset", default="fast-cpu", help="training preset: fast-cpu (default) or author")
        p.add_argument("--steps", type=int, default=None, help="override the preset's optimizer steps")
        p.add_argument("--r", type=int, default=None, help="override the preset's LoRA rank")
        p.add_argument("--lr", type=float, default=None, help="override the preset's learning rate")
        p.add_argument("--top-layers", type=int, default=None, help="adapt only the last N layers (0 = all)")


def _overrides(args) -> dict:
    return {k: getattr(args, k, None) for k in ("steps", "r", "lr", "top_layers")}


def _memory(args, create: bool = False):
    """The command's LoraMemory; only ``remember`` and ``chat`` may create a profile."""
    import torch

    from .catalog import require_profile
    from .memory import LoraMemory, default_folder
    from .train import get_preset

    if not create:  # before loading any model: a typo in --profile answers in a second
        require_profile(args.folder or default_folder(), args.profile)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(getattr(args, "preset", "fast-cpu"), **_overrides(args))
    return LoraMemory(base_model=args.model, folder=args.folder, profile=args.profile, preset=preset,
                      load_in_4bit=args.load_in_4bit, embedder=None if args.no_retrieval else "default", seed=args.seed,
                      create=create)


def _read_chunk(args) -> list[dict] | str:
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise HfSteerError(f"--file {path} does not exist: pass a text file of 'user: ...' lines or a JSON list of turns")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        return text
    return args.text or ""


def cmd_remember(args) -> int:
    mem = _memory(args, create=True)
    row = mem.remember(_read_chunk(args), name=args.name)
    print(f"remembered {row['name']}: {len(row['statements'])} statements, {row['train']['steps']} steps, "
          f"{row['train']['seconds']:.1f} s; active: {', '.join(mem.active)}")
    return 0


def cmd_list(args) -> int:
    mem = _memory(args)
    rows = mem.table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"profile {mem.profile}: no adapters")
    for r in rows:
        what = f"roll-up of {','.join(r['members'])}" if r["kind"] == "rollup" else r["summary"]
        print(f"{'*' if r['active'] else ' '} {r['name']:<8} {r['kind']:<6} r={r['r']:<3} {r['created']}  {what}")
    return 0


def cmd_stack(args) -> int:
    mem = _memory(args)
    print("active:", ", ".join(mem.stack(args.names or None)))
    return 0


def cmd_rollup(args) -> int:
    mem = _memory(args)
    row = mem.rollup(args.names or None, method=args.method, weights=args.weights, name=args.name,
                     svd_rank=args.svd_rank, density=args.density)
    print(f"rolled {', '.join(row['members'])} into {row['name']} ({row['method']}, r={row['r']})")
    _print_check(row.get("recall_check"), "rollup")
    return 0


def _print_check(check, what: str) -> None:
    if not check or not check.get("questions"):
        return
    print(f"probe recall: {what} {check[what]:.2f}, chunk adapters alone {check['members']:.2f} "
          f"({check['questions']} questions)")
    if check.get("warning"):
        print(f"warning: {check['warning']}", file=sys.stderr)


def cmd_forget(args) -> int:
    mem = _memory(args)
    res = mem.forget(args.name)
    print(f"forgot {args.name}" + (f"; rebuilt {', '.join(res['rebuilt'])}" if res["rebuilt"] else ""))
    for note in res["copies_left"]:
        print(f"note: {note}")
    return 0


def cmd_regenerate(args) -> int:
    mem = _memory(args)
    without = [int(w) if w.isdigit() else w for w in args.without]
    row = mem.regenerate(args.name, without=without)
    print(f"regenerated {row['name']} without {row['regenerated']['turns_removed']} turn(s): "
          f"{len(row['statements'])} statements" + (f"; rebuilt {', '.join(row['rebuilt'])}" if row["rebuilt"] else ""))
    for note in row["copies_left"]:
        print(f"note: {note}")
    return 0


def cmd_ask(args) -> int:
    mem = _memory(args)
    res = mem.answer(args.question, adapters=not args.no_adapters, retrieve=args.retrieve, k=args.k,
                     max_new_tokens=args.max_new_tokens)
    print(res["answer"])
    if not args.quiet:
        print(describe_answer(res))
    return 0


def describe_answer(res: dict) -> str:
    """The line under an answer that says what answered it (``--quiet`` hides it)."""
    parts = [f"adapters: {', '.join(res['adapters'])}" if res["adapters"] else "no adapter"]
    parts.append(f"notes: {' | '.join(res['notes'])}" if res["notes"] else "no note")
    return "[" + "; ".join(parts) + "]"


def cmd_merge(args) -> int:
    mem = _memory(args)
    res = mem.save_merged(args.output, dtype=args.dtype, names=args.names or None)
    for note in res["notes"]:
        print(f"note: {note}")
    print(f"merged {', '.join(res['adapters'])} into {res['folder']}")
    _print_check(res["recall_check"], "merged")
    return 0


def cmd_chat(args) -> int:
    from .chat import run_chat

    mem = _memory(args, create=True)
    return run_chat(mem, every=args.every, background=not args.inline, retrieve=args.retrieve,
                    learn_replies=args.learn_replies, max_new_tokens=args.max_new_tokens,
                    worker_threads=args.worker_threads)


def cmd_bench(args) -> int:
    import torch

    from .bench import run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_bench(model=args.model, n_facts=args.facts, facts_per_chunk=args.facts_per_chunk,
                       preset=args.preset, overrides=_overrides(args), svd_rank=args.svd_rank,
                       use_retrieval=not args.no_retrieval, max_new_tokens=args.max_new_tokens,
                       all_active_curve=args.all_active_curve, seed=args.seed,
                       output_json=args.output_json, log=lambda s: print(s, file=sys.stderr, flush=True))
    keys = ["seconds_per_chunk", "train_cpu_seconds_per_chunk", "base_recall", "recall", "reversed_recall",
            "locality", "recall_all_active", "locality_all_active", "kl_heldout_nats",
            "recall_after_stack", "recall_after_rollup_cat", "recall_after_rollup_svd", "recall_after_rollup_ties", "recall_after_rollup_retrain", "forgotten_recall",
            "others_after_forget", "retrieval_only_recall", "retrieval_adapters_recall"]
    print(json.dumps({k: result[k] for k in keys if k in result}, indent=1))
    return 0


def register(subparsers) -> None:
    group = subparsers.add_parser("memory", help="LoRA memory: learn conversations as stacked micro-adapters")
    sub = group.add_subparsers(dest="memory_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("remember", help="learn one chunk of conversation as a new adapter")
    _common(p, train=True)
    p.add_argument("--text", help="the chunk: free text or 'user: ...' / 'assistant: ...' lines")
    p.add_argument("--file", help="a text file of such lines, or a .json list of {role, content} turns")
    p.add_argument("--name", default=None, help="adapter name (default: next m001-style name)")
    p.set_defaults(func=cmd_remember)

    p = sub.add_parser("list", help="show the catalog of a profile")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("stack", help="activate exactly these adapters at once (default: all, roll-ups for their members)")
    _common(p)
    p.add_argument("names", nargs="*")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("rollup", help="combine adapters into one new adapter (PEFT add_weighted_adapter)")
    _common(p)
    p.add_argument("names", nargs="*", help="chunk adapters (default: every active chunk adapter)")
    p.add_argument("--method", default="cat", choices=["cat", "svd", "ties", "dare_ties", "linear", "retrain"],
                   help="cat/svd/ties/dare_ties/linear: PEFT weighted merge; retrain: one adapter trained on all members' turns")
    p.add_argument("--weights", type=float, nargs="*", default=None)
    p.add_argument("--name", default=None, help="name of the roll-up (must be new)")
    p.add_argument("--svd-rank", type=int, default=None)
    p.add_argument("--density", type=float, default=0.5, help="kept fraction for ties / dare_ties")
    p.set_defaults(func=cmd_rollup)

    p = sub.add_parser("forget", help="delete an adapter, its row and retrieval entry; rebuild roll-ups without it")
    _common(p)
    p.add_argument("name")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("regenerate", help="retrain a chunk adapter without some turns")
    _common(p, train=True)
    p.add_argument("name")
    p.add_argument("--without", nargs="+", required=True, help="turn indices or text: turns containing it are dropped")
    p.set_defaults(func=cmd_regenerate)

    p = sub.add_parser("ask", help="answer one question with the active adapters and/or retrieval")
    _common(p)
    p.add_argument("question")
    p.add_argument("--retrieve", action="store_true", help="add the top-k remembered chunks to the prompt")
    p.add_argument("--no-adapters", action="store_true", help="answer with the bare base (retrieval only)")
    p.add_argument("-k", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--quiet", action="store_true", help="print the answer only, not which adapters and notes answered")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("merge", help="write base + active adapters merged into a 16-bit copy (also for 4-bit bases)")
    _common(p)
    p.add_argument("names", nargs="*", help="adapters to merge (default: the active ones; a roll-up stands for its members)")
    p.add_argument("--output", required=True)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("chat", help="chat; every N turns (and on /remember) learn them in a background process")
    _common(p, train=True)
    p.add_argument("--every", type=int, default=4, help="user turns per adapter (default 4)")
    p.add_argument("--inline", action="store_true", help="train in this process (chat waits) instead of a worker")
    p.add_argument("--retrieve", action="store_true", help="also put the top-k remembered chunks in the prompt")
    p.add_argument("--learn-replies", action="store_true", help="learn the model's replies too, not only your turns")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--worker-threads", type=int, default=1, help="CPU threads of the training process")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("bench", help="recall / locality / stacking / roll-up / forgetting benchmark (JSON + PNG)")
    p.add_argument("--output-json", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--facts", type=int, default=20, help="number of built-in facts (<= 20)")
    p.add_argument("--facts-per-chunk", type=int, default=4, help="facts per conversation chunk (1 gives 20 adapters)")
    p.add_argument("--preset", default="fast-cpu")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--r", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--top-layers", type=int, default=None)
    p.add_argument("--svd-rank", type=int, default=None, help="rank of the svd roll-up (default: largest member rank)")
    p.add_argument("--no-retrieval", action="store_true")
    p.add_argument("--max-new-tokens", type=int, default=16, help="answer length (the expected word comes early)")
    p.add_argument("--all-active-curve", action="store_true", help="also measure the all-active recall after each adapter")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench)
