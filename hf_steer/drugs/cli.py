"""``hf-steer drugs``: generate, vergence, explore, bench. Thin: parse, call the API, print."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import HfSteerError

HELP_DOSE = "TYPE=THETA, repeatable: H (hidden in), Q, K, V, A (head outputs); θ in radians, e.g. A=0.3"


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise HfSteerError(f"{name} {text!r} is not a comma-separated list of numbers: e.g. 0.1,0.2") from None
    if not values:
        raise HfSteerError(f"{name} is empty: give at least one number")
    return values


def _ranges(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        low, sep, high = part.partition("-")
        try:
            pair = (float(low), float(high))
        except ValueError:
            pair = None
        if not sep or pair is None or not 0 <= pair[0] < pair[1] <= 1:
            raise HfSteerError(f"range {part!r} is malformed: write LOW-HIGH depths in [0, 1], e.g. 0.33-0.67")
        out.append(pair)
    return out


def _type_thetas(items: list[str] | None) -> dict[str, list[float]] | None:
    if not items:
        return None
    out = {}
    for item in items:
        letter, sep, values = item.partition("=")
        if not sep:
            raise HfSteerError(f"--thetas {item!r} is malformed: write TYPE=θ1,θ2,..., e.g. A=0.15,0.3")
        out[letter.strip().upper()] = _floats(values, f"--thetas {letter}")
    return out


def _load(args):
    from ..models import load_model

    return load_model(args.model, dtype=args.dtype, attn_implementation=args.attn_implementation)


def _add_model_args(parser):
    parser.add_argument("--model", default=None, help="model folder, .gguf or Hub id (default: bundled SmolLM2)")
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    parser.add_argument("--attn-implementation", default=None, help="eager | sdpa (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (noise and sampling)")


def register(subparsers) -> None:
    group = subparsers.add_parser("drugs", help="DRµGS: noise inside the layers, then greedy decoding")
    sub = group.add_subparsers(dest="drugs_command", metavar="SUBCOMMAND", required=True)

    gen = sub.add_parser("generate", help="generate with DRµGS, streaming the text")
    _add_model_args(gen)
    gen.add_argument("--prompt", required=True, help="the user message (or raw text with --no-chat)")
    gen.add_argument("--dose", action="append", default=[], metavar="TYPE=THETA", help=HELP_DOSE)
    gen.add_argument("--depth", type=float, default=None, help="centre of the injected layers, 0..1 (default: all layers)")
    gen.add_argument("--spread", type=float, default=0.1, help="half-width of the full-dose band around --depth")
    gen.add_argument("--method", default="ceil", help="ceil | floor | interpolate (between profile points)")
    gen.add_argument("--sinks", type=int, default=4, help="first positions never dosed")
    gen.add_argument("--dose-prompt", action="store_true", help="dose the prompt too (default: read it sober)")
    gen.add_argument("--persist-kv", action="store_true", help="keep K/V noise in the cache")
    gen.add_argument("--cold-shower-every", type=int, default=None, help="recompute the cache sober every N tokens")
    gen.add_argument("--seeds", type=int, default=1, help="how many generations (seeds --seed, --seed+1, ...)")
    gen.add_argument("--max-new-tokens", type=int, default=80)
    gen.add_argument("--temperature", type=float, default=None, help="sample on top of the noise at this temperature")
    gen.add_argument("--min-p", type=float, default=None, help="min-p when sampling")
    gen.add_argument("--no-chat", action="store_true", help="do not wrap the prompt in the chat template")
    gen.set_defaults(func=cmd_generate)

    ver = sub.add_parser("vergence", help="PNG of per-layer divergence vs θ for each type and injection range")
    _add_model_args(ver)
    ver.add_argument("--prompt", action="append", default=None, help="prompt(s) to measure at (repeatable)")
    ver.add_argument("--types", default="HQKVA")
    ver.add_argument("--thetas", default="0.05,0.1,0.2,0.4", help="comma-separated θ values")
    ver.add_argument("--ranges", default="0-0.33,0.33-0.67,0.67-1", help="injection depth ranges LOW-HIGH,...")
    ver.add_argument("--samples", type=int, default=4, help="noise draws per prompt")
    ver.add_argument("--output", default="drugs_vergence.png", help="PNG path (a JSON is written beside it)")
    ver.set_defaults(func=cmd_vergence)

    exp = sub.add_parser("explore", help="one self-contained HTML page of generations to browse")
    _add_model_args(exp)
    exp.add_argument("--prompt", action="append", default=None, help="prompt(s) (repeatable; default: 3 built-in)")
    exp.add_argument("--types", default="HQKVA")
    exp.add_argument("--thetas", default="0.1,0.3", help="comma-separated θ values")
    exp.add_argument("--depth", type=float, default=0.5)
    exp.add_argument("--spread", type=float, default=0.17)
    exp.add_argument("--samples", type=int, default=3, help="generations per prompt × type × θ")
    exp.add_argument("--max-new-tokens", type=int, default=48)
    exp.add_argument("--output", default="drugs_explore.html")
    exp.set_defaults(func=cmd_explore)

    ben = sub.add_parser("bench", help="speed ratio and variety-vs-coherence curves against temperature/min-p")
    ben.add_argument("--output-json", required=True, help="JSON path (a PNG is written beside it)")
    ben.add_argument("--model", default=None, help="generator (default: bundled SmolLM2)")
    ben.add_argument("--judge", default="auto", help="auto (Gemma-3-270M if installed) | gemma | none | model path")
    ben.add_argument("--prompts", type=int, default=8, help="creative prompts (max 12)")
    ben.add_argument("--seeds", type=int, default=8, help="continuations per prompt")
    ben.add_argument("--max-new-tokens", type=int, default=24)
    ben.add_argument("--thetas", action="append", default=None, metavar="TYPE=θ1,θ2",
                     help="θ sweep for one type (repeatable; default: a built-in sweep for all five)")
    ben.add_argument("--depths", default="0.5", help="comma-separated injection depths to sweep")
    ben.add_argument("--spread", type=float, default=0.17)
    ben.add_argument("--temperatures", default="0.3,0.5,0.7,1.0")
    ben.add_argument("--min-ps", default="0.2,0.1,0.05")
    ben.add_argument("--min-p-temperature", type=float, default=1.5)
    ben.add_argument("--speed-rounds", type=int, default=4)
    ben.add_argument("--speed-tokens", type=int, default=32)
    ben.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (1 is often faster on a machine shared with other jobs)")
    ben.add_argument("--seed", type=int, default=0)
    ben.set_defaults(func=cmd_bench)


def cmd_generate(args) -> int:
    from transformers import TextStreamer

    from .dose import DrugsConfig
    from .explore import chat_inputs
    from .injection import inject

    if not args.dose:
        raise HfSteerError("no --dose given: add e.g. --dose A=0.3 (types H, Q, K, V, A)")
    if args.seeds < 1:
        raise HfSteerError(f"--seeds {args.seeds} is not a count >= 1: give how many generations to make")
    config = DrugsConfig.from_flags(
        args.dose, depth=args.depth, spread=args.spread, method=args.method, sinks=args.sinks,
        dose_prompt=args.dose_prompt, persist_kv=args.persist_kv, cold_shower_every=args.cold_shower_every,
    )
    model, tokenizer = _load(args)
    inject(model, config)
    enc = chat_inputs(tokenizer, [args.prompt], not args.no_chat, model.device)
    sampling = {}
    if args.temperature is not None:
        sampling = dict(do_sample=True, temperature=args.temperature, top_k=None, top_p=None, min_p=args.min_p)
    for i in range(args.seeds):
        if args.seeds > 1:
            print(f"--- seed {args.seed + i} ---", flush=True)
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        model.Dgenerate(**enc, max_new_tokens=args.max_new_tokens, seed=args.seed + i, streamer=streamer,
                        pad_token_id=tokenizer.pad_token_id, **sampling)
        print(flush=True)
    return 0


def cmd_vergence(args) -> int:
    from ..utils import atomic_write_json
    from .dose import TYPES
    from .vergence import measure_vergence, plot_vergence

    types = args.types.upper()
    if not types or any(t not in TYPES for t in types):
        raise HfSteerError(f"--types {args.types!r} has an unknown type letter: use letters from {TYPES}")
    thetas = _floats(args.thetas, "--thetas")
    if any(t < 0 for t in thetas):
        raise HfSteerError(f"--thetas {args.thetas!r} has a negative angle: give θ >= 0")
    ranges = _ranges(args.ranges)
    prompts = args.prompt or ["Write the opening line of a story about a lighthouse keeper.",
                              "Describe a dragon in two sentences."]
    model, tokenizer = _load(args)
    result = measure_vergence(model, tokenizer, prompts, types=types, thetas=thetas, ranges=ranges,
                              samples=args.samples, seed=args.seed)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    plot_vergence(result, output)
    atomic_write_json(output.with_suffix(".json"), result)
    print(f"wrote {output} and {output.with_suffix('.json')}")
    return 0


def cmd_explore(args) -> int:
    from ..utils import atomic_write_text
    from .bench import PROMPTS
    from .dose import TYPES
    from .explore import explore, render_html

    types = args.types.upper()
    if not types or any(t not in TYPES for t in types):
        raise HfSteerError(f"--types {args.types!r} has an unknown type letter: use letters from {TYPES}")
    thetas = _floats(args.thetas, "--thetas")
    prompts = args.prompt or PROMPTS[:3]
    model, tokenizer = _load(args)
    rows = explore(model, tokenizer, prompts, types=types, thetas=thetas, depth=args.depth, spread=args.spread,
                   samples=args.samples, max_new_tokens=args.max_new_tokens, seed=args.seed,
                   progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    description = (f"{model.config.name_or_path}: depth {args.depth:g} ± {args.spread:g}, "
                   f"{args.samples} samples each (one batch, seed {args.seed}), greedy, {args.max_new_tokens} new tokens.")
    atomic_write_text(args.output, render_html(rows, description))
    print(f"wrote {args.output} ({len(rows)} generations)")
    return 0


def cmd_bench(args) -> int:
    from ..utils import atomic_write_json
    from .bench import plot_bench, run_bench

    if args.threads is not None:
        if args.threads < 1:
            raise HfSteerError(f"--threads {args.threads} is not a count >= 1: give how many CPU threads torch may use")
        import torch

        torch.set_num_threads(args.threads)
    result = run_bench(
        args.model, prompts=args.prompts, seeds=args.seeds, max_new_tokens=args.max_new_tokens,
        thetas=_type_thetas(args.thetas), depths=_floats(args.depths, "--depths"), spread=args.spread,
        temperatures=_floats(args.temperatures, "--temperatures"), min_ps=_floats(args.min_ps, "--min-ps"),
        min_p_temperature=args.min_p_temperature, speed_tokens=args.speed_tokens, speed_rounds=args.speed_rounds,
        judge=args.judge, seed=args.seed, log=lambda msg: print(msg, flush=True),
    )
    output = Path(args.output_json)
    atomic_write_json(output, result)  # creates the folder
    plot_bench(result, output.with_suffix(".png"))
    print(f"tokens_per_s_ratio {result['tokens_per_s_ratio']:.3f}; verdict {result['verdict']}")
    print(f"wrote {output} and {output.with_suffix('.png')} in {result['seconds']:.0f} s")
    return 0


