"""``hf-steer drugs``: generate, vergence, explore, bench, export. Thin: parse, call the API, print.

Every flag comes from a dataclass field (:mod:`hf_steer.drugs.config`, :class:`~hf_steer.drugs.DrugsConfig`)
through :mod:`hf_steer.cli_args`, so its default and help live once, in the field.
"""

from __future__ import annotations

import sys

from ..cli_args import add_config_arguments, add_threads_argument, apply_threads, config_from_args
from .config import (
    BenchConfig,
    DoseArguments,
    ExploreArguments,
    ExportArguments,
    GenerateArguments,
    RunArguments,
    VergenceArguments,
    parse_ranges,
)
from .dose import DrugsConfig


def register(subparsers) -> None:
    group = subparsers.add_parser("drugs", help="DRµGS: noise inside the layers, then greedy decoding")
    sub = group.add_subparsers(dest="drugs_command", metavar="SUBCOMMAND", required=True)

    gen = sub.add_parser("generate", help="generate with DRµGS, streaming the text")
    add_config_arguments(gen, GenerateArguments, required=["prompt"])
    add_config_arguments(gen, DoseArguments)
    add_config_arguments(gen, DrugsConfig, exclude=["doses"])
    add_config_arguments(gen, RunArguments)
    add_threads_argument(gen)
    gen.set_defaults(func=cmd_generate)

    ver = sub.add_parser("vergence", help="PNG of per-layer divergence vs θ for each type and injection range")
    add_config_arguments(ver, VergenceArguments)
    add_config_arguments(ver, RunArguments)
    add_threads_argument(ver)
    ver.set_defaults(func=cmd_vergence)

    exp = sub.add_parser("explore", help="one self-contained HTML page of generations to browse")
    add_config_arguments(exp, ExploreArguments)
    add_config_arguments(exp, RunArguments)
    add_threads_argument(exp)
    exp.set_defaults(func=cmd_explore)

    ben = sub.add_parser("bench", help="speed ratio and variety-vs-coherence curves against temperature/min-p")
    ben.add_argument("--output-json", required=True, help="JSON path (a PNG is written beside it)")
    add_config_arguments(ben, RunArguments, include=["model", "seed"])
    add_config_arguments(ben, BenchConfig)
    add_threads_argument(ben)
    ben.set_defaults(func=cmd_bench)

    ex = sub.add_parser("export", help="write DRµGS as a transformers custom_generate repo folder (runs without "
                        "hf_steer: model.generate(custom_generate=..., drugs={...}))")
    ex.add_argument("output_dir", help="folder to write (README.md, hf_steer.json, custom_generate/); publish it "
                    "with `hf-steer push OUTPUT_DIR user/name`")
    add_config_arguments(ex, ExportArguments)
    ex.set_defaults(func=cmd_export)


def cmd_generate(args) -> int:
    settings = config_from_args(GenerateArguments, args)
    run = config_from_args(RunArguments, args)
    doses = config_from_args(DoseArguments, args)
    config = doses.to_config(sinks=args.sinks, dose_prompt=args.dose_prompt, persist_kv=args.persist_kv)
    apply_threads(args.threads)

    from transformers import TextStreamer

    from .explore import chat_inputs
    from .injection import inject

    model, tokenizer = run.load()
    inject(model, config)
    enc = chat_inputs(tokenizer, [settings.prompt], settings.chat, model.device)
    sampling = {}
    if settings.temperature is not None:
        sampling = dict(do_sample=True, temperature=settings.temperature, top_k=None, top_p=None,
                        min_p=settings.min_p)
    for i in range(settings.seeds):
        if settings.seeds > 1:
            print(f"--- seed {run.seed + i} ---", flush=True)
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        model.Dgenerate(**enc, max_new_tokens=settings.max_new_tokens, seed=run.seed + i, streamer=streamer,
                        cold_shower_every=settings.cold_shower_every, pad_token_id=tokenizer.pad_token_id, **sampling)
        print(flush=True)
    return 0


def cmd_vergence(args) -> int:
    settings = config_from_args(VergenceArguments, args)
    run = config_from_args(RunArguments, args)
    apply_threads(args.threads)

    from pathlib import Path

    from ..utils import atomic_write_json
    from .vergence import measure_vergence, plot_vergence

    prompts = settings.prompt or ["Write the opening line of a story about a lighthouse keeper.",
                                  "Describe a dragon in two sentences."]
    model, tokenizer = run.load()
    result = measure_vergence(model, tokenizer, prompts, types=settings.types, thetas=settings.thetas,
                              ranges=parse_ranges(settings.ranges), samples=settings.samples, seed=run.seed)
    output = Path(settings.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    plot_vergence(result, output)
    atomic_write_json(output.with_suffix(".json"), result)
    print(f"wrote {output} and {output.with_suffix('.json')}")
    return 0


def cmd_explore(args) -> int:
    settings = config_from_args(ExploreArguments, args)
    run = config_from_args(RunArguments, args)
    apply_threads(args.threads)

    from ..utils import atomic_write_text
    from .bench import PROMPTS
    from .explore import explore, render_html

    prompts = settings.prompt or PROMPTS[:3]
    model, tokenizer = run.load()
    rows = explore(model, tokenizer, prompts, types=settings.types, thetas=settings.thetas, depth=settings.depth,
                   spread=settings.spread, samples=settings.samples, max_new_tokens=settings.max_new_tokens,
                   seed=run.seed, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    description = (f"{model.config.name_or_path}: depth {settings.depth:g} ± {settings.spread:g}, "
                   f"{settings.samples} samples each (one batch, seed {run.seed}), greedy, "
                   f"{settings.max_new_tokens} new tokens.")
    atomic_write_text(settings.output, render_html(rows, description))
    print(f"wrote {settings.output} ({len(rows)} generations)")
    return 0


def cmd_bench(args) -> int:
    from .config import check_output_path

    settings = config_from_args(BenchConfig, args)
    run = config_from_args(RunArguments, args)
    output = check_output_path("output-json", args.output_json, ".json")
    apply_threads(args.threads)

    from .bench import run_bench

    result = run_bench(output, model=run.model, seed=run.seed, log=lambda msg: print(msg, flush=True),
                       **vars(settings))
    speed = result.get("speed") or {}
    if speed:
        low, high = speed["ratio_ci95"]
        print(f"tokens/s ratio (dosed / plain greedy) {speed['ratio']:.3f}, 95% interval {low:.3f}-{high:.3f}; "
              f"CPU-time ratio {speed['cpu_ratio']:.3f}, 95% interval {speed['cpu_ratio_ci95'][0]:.3f}-"
              f"{speed['cpu_ratio_ci95'][1]:.3f}")
    for name, data in result["prompt_sets"].items():
        best = data["frontier"]["best"]
        if best is None:
            print(f"{name} prompts: no DRµGS setting reached distinct-2 {data['frontier']['threshold']:g}")
        else:
            print(f"{name} prompts: best DRµGS setting at distinct-2 >= {data['frontier']['threshold']:g}: "
                  f"{best['setting']} (distinct-2 {best['distinct2']:.3f}, {data['frontier']['nll']} margin over "
                  f"temperature {best['margin_temperature']}, over min-p {best['margin_min_p']})")
    print(f"wrote {output} and {output.with_suffix('.png')} in {result['seconds']:.0f} s")
    return 0


def cmd_export(args) -> int:
    settings = config_from_args(ExportArguments, args)

    from .export import export_custom_generate

    folder = export_custom_generate(args.output_dir, overwrite=settings.overwrite, repo_id=settings.repo_id)
    print(f"wrote {folder}: model.generate(..., custom_generate={str(folder)!r}, trust_remote_code=True, "
          "drugs={'A': 0.3, 'depth': 0.5}); publish with `hf-steer push " + f"{folder} user/name`")
    return 0
