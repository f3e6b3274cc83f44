"""`hf-steer memory ...`: remember, list, stack, rollup, forget, regenerate, ask, merge, chat, bench.

Flags come from the config dataclasses in :mod:`hf_steer.memory.config` (help, default and range live
there, once). Every value is checked before a model is loaded: a bad one is one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli_args import add_config_arguments, add_threads_argument, apply_threads, config_from_args
from ..errors import HfSteerError
from .config import (
    PRESET_FLAGS,
    PRESETS,
    AskConfig,
    BenchConfig,
    ChatConfig,
    MemoryConfig,
    RollupConfig,
    TrainPreset,
    check_seed,
    finite_weights,
    get_preset,
)

ROLLUP_METHODS = ("cat", "svd", "ties", "dare_ties", "linear", "retrain")


# -- shared flags ---------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, train: bool = False) -> None:
    add_config_arguments(p, MemoryConfig)
    add_threads_argument(p)
    if train:
        g = p.add_argument_group("training (each flag overrides the preset's value)")
        g.add_argument("--preset", default=TrainPreset.name, choices=list(PRESETS),
                       help=f"training preset (default: {TrainPreset.name})")
        add_config_arguments(g, TrainPreset, include=list(PRESET_FLAGS), defaults={f: None for f in PRESET_FLAGS})


def _preset(args) -> TrainPreset:
    return get_preset(getattr(args, "preset", TrainPreset.name), **{f: getattr(args, f, None) for f in PRESET_FLAGS})


def _make_folder(path: Path, flag: str) -> None:
    """Create ``path`` (a folder the command writes into anyway), or say in one line why it cannot be."""
    if path.exists() and not path.is_dir():
        raise HfSteerError(f"{flag} {path} is a file: pass a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HfSteerError(f"{flag} {path} cannot be created ({e.strerror or type(e).__name__}): pass a writable "
                           "folder") from None


def _folder_arg(cfg: MemoryConfig, create: bool) -> Path:
    from .catalog import require_profile
    from .memory import default_folder

    folder = Path(cfg.folder).expanduser() if cfg.folder else default_folder()
    if folder.exists() and not folder.is_dir():
        raise HfSteerError(f"--folder {folder} is a file: pass a folder for the memory")
    if create:
        _make_folder(folder / cfg.profile, "--folder")
    else:
        require_profile(folder, cfg.profile)
    return folder


def _check_model(cfg: MemoryConfig) -> None:
    from ..models import resolve_model_path

    if cfg.model is not None:
        path = Path(cfg.model).expanduser()
        if path.is_file() and path.suffix != ".gguf":
            raise HfSteerError(f"--model {path} is a file: pass a model folder, a .gguf file or a Hub id")
        resolve_model_path(cfg.model)  # a missing folder or a malformed name: one line, before any loading


def _prepare(args, create: bool = False) -> dict:
    """Check every memory flag (one line each, nothing loaded yet); the keyword arguments of LoraMemory."""
    cfg = config_from_args(MemoryConfig, args)
    preset = _preset(args) if hasattr(args, "preset") else get_preset(TrainPreset.name)
    _check_model(cfg)
    apply_threads(args.threads)
    return dict(base_model=cfg.model, profile=cfg.profile, preset=preset, load_in_4bit=cfg.load_in_4bit,
                embedder="default" if cfg.retrieval else None, seed=cfg.seed, route_threshold=cfg.route_threshold,
                note_threshold=cfg.note_threshold, personal_note_threshold=cfg.personal_note_threshold,
                create=create, _cfg=cfg)


def _memory(args, create: bool = False, prepared: dict | None = None):
    """The command's LoraMemory, opened after every flag was checked; only ``remember``/``chat`` create a profile."""
    kwargs = dict(prepared or _prepare(args, create))
    folder = _folder_arg(kwargs.pop("_cfg"), kwargs["create"])  # a typo in --profile answers in a second
    from .memory import LoraMemory

    return LoraMemory(folder=folder, **kwargs)


def _read_chunk(args) -> list[dict] | str:
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise HfSteerError(f"--file {path} {what}: pass a text file of 'user: ...' lines or a JSON list of turns")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise HfSteerError(f"--file {path} cannot be read as UTF-8 text ({type(e).__name__}): pass a text file") from None
        if path.suffix == ".json":
            try:
                return json.loads(text)
            except ValueError as e:
                raise HfSteerError(f"--file {path} is not valid JSON ({e}): pass a JSON list of turns") from None
        return text
    return args.text or ""


# -- commands -------------------------------------------------------------------------------------------


def cmd_remember(args) -> int:
    from . import augment

    chunk = _read_chunk(args)
    augment.check_chunk(chunk)  # nothing to learn: one line before any model is loaded
    mem = _memory(args, create=True)
    row = mem.remember(chunk, name=args.name)
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
        print(f"{'*' if r['active'] else ' '} {r['name']:<8} {r['kind']:<9} r={r['r']:<3} {r['created']}  {what}")
    for name, job in mem.queued().items():
        print(f"  {name:<8} {'queued':<9}       not learned yet ({len(job.get('turns', []))} turns)")
    return 0


def cmd_stack(args) -> int:
    mem = _memory(args)
    print("active:", ", ".join(mem.stack(args.names or None)))
    return 0


def cmd_rollup(args) -> int:
    cfg = config_from_args(RollupConfig, args)
    weights = finite_weights(args.weights)
    mem = _memory(args)
    row = mem.rollup(args.names or None, method=cfg.method, weights=weights, name=args.name,
                     svd_rank=cfg.svd_rank, density=cfg.density)
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
    without = [int(w) if w.isdigit() else w for w in args.without]
    mem = _memory(args)
    row = mem.regenerate(args.name, without=without)
    print(f"regenerated {row['name']} without {row['regenerated']['turns_removed']} turn(s): "
          f"{len(row['statements'])} statements" + (f"; rebuilt {', '.join(row['rebuilt'])}" if row["rebuilt"] else ""))
    for note in row["copies_left"]:
        print(f"note: {note}")
    return 0


def cmd_ask(args) -> int:
    ask = config_from_args(AskConfig, args)
    mem = _memory(args)
    res = mem.answer(args.question, adapters=ask.adapters, retrieve=ask.retrieve and mem.embedder is not None,
                     route=ask.route, recite=ask.recite, k=ask.k, max_new_tokens=ask.max_new_tokens)
    print(res["answer"])
    if not args.quiet:
        print(describe_answer(res))
    return 0


def describe_answer(res: dict) -> str:
    """The line under an answer that says what answered it (``--quiet`` hides it)."""
    parts = [f"adapters: {', '.join(res['adapters'])}" if res["adapters"] else "no adapter"]
    parts.append(f"notes: {' | '.join(res['notes'])}" if res["notes"] else "no note")
    if res.get("recited"):
        parts.append(f"generated: {res['recited']!r}, which recites another statement: answered with the best note")
    if res.get("draft"):
        parts.append(f"draft: {res['draft']!r}, reshaped by the behaviour adapters")
    return "[" + "; ".join(parts) + "]"


def cmd_merge(args) -> int:
    prepared = _prepare(args)
    out = Path(args.output).expanduser()
    if out.exists() and not out.is_dir():
        raise HfSteerError(f"--output {out} is a file: pass a folder for the merged model")
    _folder_arg(prepared["_cfg"], create=False)
    _make_folder(out, "--output")
    mem = _memory(args, prepared=prepared)
    res = mem.save_merged(out, dtype=args.dtype, names=args.names or None)
    for note in res["notes"]:
        print(f"note: {note}")
    print(f"merged {', '.join(res['adapters'])} into {res['folder']}")
    _print_check(res["recall_check"], "merged")
    return 0


def cmd_chat(args) -> int:
    from .offload import check_address

    chat = config_from_args(ChatConfig, args)
    check_address(chat.ray_address)  # a malformed address: one line before any model is loaded
    ask = config_from_args(AskConfig, args, max_new_tokens=chat.max_new_tokens)
    mem = _memory(args, create=True)
    from .chat import run_chat

    return run_chat(mem, chat=chat, ask=ask)


def cmd_bench(args) -> int:
    from .bench import run_bench

    settings = config_from_args(BenchConfig, args)
    check_seed(args.seed)
    out = Path(args.output_json).expanduser()
    if out.is_dir():
        raise HfSteerError(f"--output-json {out} is a folder: pass a file name such as bench.json")
    if args.model is not None:
        _check_model(MemoryConfig(model=args.model))
    apply_threads(args.threads)
    _make_folder(out.parent, "--output-json's folder")
    try:
        probe = out.with_name(f".{out.name}.probe")
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise HfSteerError(f"--output-json {out} cannot be written ({e.strerror}): pass a writable path") from None
    result = run_bench(out, model=args.model, seed=args.seed, log=lambda s: print(s, file=sys.stderr, flush=True),
                       **settings.to_dict())
    print(json.dumps({k: result[k] for k in result.get("summary_keys", []) if k in result}, indent=1))
    return 0


# -- the parser -----------------------------------------------------------------------------------------


def register(subparsers) -> None:
    group = subparsers.add_parser("memory", help="LoRA memory: learn conversations as stacked micro-adapters")
    sub = group.add_subparsers(dest="memory_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("remember", help="learn one chunk of conversation as a new adapter")
    _common(p, train=True)
    p.add_argument("--text", help="the chunk: free text or 'user: ...' / 'assistant: ...' lines")
    p.add_argument("--file", help="a text file of such lines, or a .json list of {role, content} turns")
    p.add_argument("--name", default=None, help="adapter name (default: next m001-style name)")
    p.set_defaults(func=cmd_remember)

    p = sub.add_parser("list", help="show the catalog of a profile (and chunks still queued)")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("stack", help="activate exactly these adapters at once (default: all, roll-ups for their members)")
    _common(p)
    p.add_argument("names", nargs="*", help="adapter names")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("rollup", help="combine adapters into one new adapter (PEFT add_weighted_adapter or retrain)")
    _common(p)
    p.add_argument("names", nargs="*", help="chunk adapters (default: every active chunk adapter)")
    add_config_arguments(p, RollupConfig)
    for action in p._actions:  # the method's choices come from the memory itself
        if action.dest == "method":
            action.choices = list(ROLLUP_METHODS)
    p.add_argument("--weights", type=float, nargs="*", default=None, help="one weight per adapter (default: 1 each)")
    p.add_argument("--name", default=None, help="name of the roll-up (must be new)")
    p.set_defaults(func=cmd_rollup)

    p = sub.add_parser("forget", help="forget an adapter everywhere on disk; rebuild roll-ups without it")
    _common(p)
    p.add_argument("name", help="adapter (or queued chunk) name")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("regenerate", help="retrain a chunk adapter without some turns (they leave every file)")
    _common(p, train=True)
    p.add_argument("name", help="chunk adapter name")
    p.add_argument("--without", nargs="+", required=True, help="turn indices or text: turns containing it are dropped")
    p.set_defaults(func=cmd_regenerate)

    p = sub.add_parser("ask", help="answer one question (retrieved notes + routed adapters by default)")
    _common(p)
    p.add_argument("question", help="the question")
    add_config_arguments(p, AskConfig, aliases={"k": ["-k"]})
    p.add_argument("--quiet", action="store_true", help="print the answer only, not which adapters and notes answered")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("merge", help="write base + adapters merged into a 16-bit copy (also for 4-bit bases)")
    _common(p)
    p.add_argument("names", nargs="*", help="adapters to merge (default: the active ones; a roll-up replaces its members)")
    p.add_argument("--output", required=True, help="folder for the merged model")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                   help="weights' dtype (default: bfloat16)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("chat", help="chat; every N turns (and on /remember) learn them in the background")
    _common(p, train=True)
    add_config_arguments(p, ChatConfig)
    add_config_arguments(p, AskConfig, include=["retrieve", "route", "recite", "k"], aliases={"k": ["-k"]})
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("bench", help="recall / locality / corrections / behaviour / speed benchmark (JSON + PNG)")
    p.add_argument("--output-json", required=True, help="where the figures go (a PNG of the same name beside it)")
    p.add_argument("--model", default=None, help="base model (default: the bundled SmolLM2-135M-Instruct)")
    add_config_arguments(p, BenchConfig)
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default: 0)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_bench)
