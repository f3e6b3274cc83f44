"""``hf-steer drugs bench``: speed, and variety against coherence, for DRµGS and for ordinary sampling.

* ``speed`` (D1): DRµGS greedy tokens/s over plain greedy tokens/s on the same prompts, timed in
  interleaved rounds in one process (alternating which goes first), because on a shared machine two
  separate runs would measure the neighbours, not the method. Reported as the geometric mean of the
  per-round ratios with its 95% interval, wall time and CPU time side by side.
* Curves, one point per knob value: generate ``seeds`` continuations of every creative prompt, then
  - variety = distinct-2 across the continuations of one prompt (unique word bigrams / all word
    bigrams, pooled over its seeds), averaged over prompts;
  - coherence = mean per-token NLL of the continuations under a *judge* model that is not the
    generator (Gemma-3-270M when installed), with the generator's own NLL beside it.
  Methods: ``temperature`` (a temperature sweep), ``min_p`` (min-p sweep at a high temperature) and
  ``drugs-H`` ... ``drugs-A`` (θ sweep per type, greedy; θ=0 is plain greedy). Lower-right is better:
  more variety for the same NLL.

All seeds of all prompts run as one left-padded batch per knob value, so the default bench stays
within minutes on a laptop CPU. ``run_bench(output_json, *, model=None, seed=0, log=print, **settings)``
writes the JSON (with the machine block) and the PNG beside it through
:func:`hf_steer.benchmarking.write_report`; ``settings`` are :class:`~hf_steer.drugs.config.BenchConfig`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict

import torch

from ..benchmarking import Timer, load_judge, mean_ci95, write_report
from ..errors import HfSteerError
from .config import BenchConfig, check_output_path, parse_recipe, parse_type_thetas
from .dose import TYPES, Dose, DrugsConfig, depth_profile
from .explore import chat_inputs
from .injection import inject, remove, sober

PROMPTS = [
    "Write the opening line of a story about a lighthouse keeper.",
    "Describe a dragon in two sentences.",
    "Invent a name for a new planet and say what lives there.",
    "Write a short poem about the sea at night.",
    "Tell me a one-paragraph fairy tale about a clever fox.",
    "Describe a city built inside a giant tree.",
    "Write the first sentence of a mystery novel.",
    "Describe the taste of a fruit that does not exist.",
    "Write a haiku about autumn leaves.",
    "Tell me about a robot who learns to paint.",
    "Describe a strange dream in three sentences.",
    "Write a two-line dialogue between a knight and a ghost.",
]

# Written for the frontier check and never used to choose a setting: the recipes were tuned on PROMPTS.
HELDOUT_PROMPTS = [
    "Write the first line of a letter from a sailor to his sister.",
    "Describe an old library at midnight.",
    "Invent a holiday and explain how people celebrate it.",
    "Write a short poem about a train crossing the mountains.",
    "Tell me a short story about a cat who wants to fly.",
    "Describe a market in a city on the moon.",
    "Write the opening sentence of an adventure in the desert.",
    "Describe the sound of a language nobody speaks anymore.",
    "Write a limerick about a forgetful wizard.",
    "Tell me about a clock that runs backwards.",
    "Describe a storm from the point of view of a tree.",
    "Write a two-line exchange between a baker and a dragon.",
]
# Written on 2026-12-03 after the default recipes were chosen on PROMPTS (and checked on HELDOUT_PROMPTS), before
# any generation on them: a set nothing was chosen on, run once to see whether the frontier holds.
SEALED_PROMPTS = [
    "Write the opening line of a ghost story set on a farm.",
    "Describe a musical instrument made of ice.",
    "Invent a sport played on the back of whales and explain the rules.",
    "Write a short poem about a lantern in the fog.",
    "Tell me a short story about a mouse who becomes a mayor.",
    "Describe a bakery that only opens at night.",
    "Write the first sentence of a story about a lost map.",
    "Describe the smell of a forest after a thunderstorm.",
    "Write a riddle whose answer is a shadow.",
    "Tell me about a bridge that remembers everyone who crosses it.",
    "Describe a festival of lights in a mountain village.",
    "Write a two-line conversation between a pirate and a parrot.",
]
PROMPT_SETS = {"bench": PROMPTS, "heldout": HELDOUT_PROMPTS, "sealed": SEALED_PROMPTS}

DEFAULT_THETAS = {"H": (0.15, 0.3), "Q": (0.4, 0.8), "K": (0.4, 0.8), "V": (0.25, 0.5), "A": (0.2, 0.4)}
DEFAULT_TEMPERATURES = (0.3, 0.5, 0.7, 1.0)
DEFAULT_MIN_PS = (0.2, 0.1, 0.05)


# --- metrics --------------------------------------------------------------------------------------


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Unique word n-grams over all word n-grams, pooled over ``texts`` (0 when there are none)."""
    grams = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def continuation_nll(model, tokenizer, contexts: Sequence[str], continuations: Sequence[str], batch_size: int = 8,
                     add_bos: bool = False) -> float:
    """Mean per-token NLL of each continuation given its context text, pooled over all tokens."""
    rows = continuation_nll_rows(model, tokenizer, contexts, continuations, batch_size, add_bos)
    count = sum(n for _, n in rows)
    return sum(total for total, _ in rows) / count if count else float("nan")


@torch.no_grad()
def continuation_nll_rows(model, tokenizer, contexts: Sequence[str], continuations: Sequence[str],
                          batch_size: int = 8, add_bos: bool = False) -> list[tuple[float, int]]:
    """``(summed NLL, tokens)`` of each continuation given its context text (``(0.0, 0)`` for an empty one).

    Rows are left-padded (with matching ``position_ids``) so every continuation ends at the last
    position, and only the last positions' logits are computed: a judge with a 262k vocabulary would
    otherwise need gigabytes for logits of the context it never scores.
    """
    out: list[tuple[float, int]] = [(0.0, 0)] * len(continuations)
    pairs = [(i, c, t) for i, (c, t) in enumerate(zip(contexts, continuations)) if t.strip()]
    bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(pairs), batch_size):
        rows, lengths = [], []
        for _, context, text in pairs[start : start + batch_size]:
            cont = tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append(bos + tokenizer(context, add_special_tokens=False)["input_ids"] + cont)
            lengths.append(len(cont))
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        keep = max(lengths) + 1  # the logits that predict the continuation tokens
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                       position_ids=positions.to(model.device), logits_to_keep=keep).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).cpu()
        targets = ids[:, width - keep + 1 :]
        token_nll = -logprobs.gather(-1, targets[..., None]).squeeze(-1)
        for i, n in enumerate(lengths):
            out[pairs[start + i][0]] = (token_nll[i, keep - 1 - n :].sum().item(), n)
    return out


# --- the judge ------------------------------------------------------------------------------------


def judge_context(prompt: str) -> str:
    """The judge has no chat template: show it the request as plain text."""
    return f"Request: {prompt}\nResponse:"


# --- the bench ------------------------------------------------------------------------------------


def _prompt_cache(model, tokenizer, texts: Sequence[str], seeds: int):
    """Read each prompt once, sober, up to its last token; every seed's row starts from that cache.

    The prompt is read sober anyway (only its last position is dosed), so the rows of one prompt share
    this prefix exactly; computing it once instead of ``seeds`` times is most of the bench's cost.
    """
    from transformers import DynamicCache

    unique = chat_inputs(tokenizer, texts, True, model.device)
    ids, mask = unique["input_ids"], unique["attention_mask"]
    cache = DynamicCache(config=model.config)
    with sober(model), torch.no_grad():
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=(mask[:, :-1].cumsum(-1) - 1).clamp_min(0),
              cache=cache, use_cache=True, logits_to_keep=1)
    enc = {"input_ids": ids.repeat_interleave(seeds, 0), "attention_mask": mask.repeat_interleave(seeds, 0)}
    return enc, cache


def _generate(model, tokenizer, enc, max_new_tokens: int, seed: int, prefix=None, **kwargs) -> list[str]:
    if prefix is not None:  # a fresh copy per run: generate() appends to the cache it is given
        kwargs["cache"] = copy.deepcopy(prefix)
        kwargs["cache"].batch_repeat_interleave(enc["input_ids"].shape[0] // prefix.layers[0].keys.shape[0])
    out = model.Dgenerate(**enc, max_new_tokens=max_new_tokens, seed=seed, pad_token_id=tokenizer.pad_token_id,
                          **kwargs)
    start = enc["input_ids"].shape[1]
    return [tokenizer.decode(row[start:], skip_special_tokens=True).strip() for row in out]


def _greedy_seconds(model, enc, tokens: int, pad_token_id, dosed: bool) -> Timer:
    kwargs = dict(max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=pad_token_id)
    with Timer() as timer:
        if dosed:
            model.Dgenerate(**enc, seed=0, **kwargs)
        else:
            model.generate(**enc, do_sample=False, temperature=None, top_p=None, top_k=None, **kwargs)
    return timer


def measure_speed(model, tokenizer, prompts: Sequence[str], config: DrugsConfig, tokens: int = 32,
                  rounds: int = 30) -> dict:
    """D1: dosed greedy tokens/s over plain greedy tokens/s, with its 95% interval.

    ``rounds`` pairs, interleaved (plain then dosed, then dosed then plain, ...) after one untimed
    warm-up of each, so a neighbour's load hits both sides alike. The ratio is the geometric mean of
    the per-round ratios with a t-interval on their logs; CPU seconds (this process) are measured
    beside wall seconds, so a busy machine shows as wall time the process did not get.
    """
    pad = tokenizer.pad_token_id
    previous = getattr(model, "_drugs_state", None)
    previous_config = previous.config if previous is not None else None
    per_round = []
    try:
        for r in range(-1, rounds):  # round -1 warms both paths up and is not kept
            enc = chat_inputs(tokenizer, [prompts[r % len(prompts)]], True, model.device)
            times = {}
            for kind in (("plain", "dosed") if r % 2 == 0 else ("dosed", "plain")):
                if kind == "plain":
                    remove(model)
                else:
                    inject(model, config)
                times[kind] = _greedy_seconds(model, enc, tokens, pad, dosed=kind == "dosed")
            if r >= 0:
                per_round.append({"plain_wall": times["plain"].wall, "dosed_wall": times["dosed"].wall,
                                  "plain_cpu": times["plain"].cpu, "dosed_cpu": times["dosed"].cpu})
    finally:
        if previous_config is not None:
            inject(model, previous_config)
        else:
            remove(model)
    if not per_round:
        return {}

    def ratio(kind: str) -> tuple[float, list[float]]:
        logs = [math.log(x[f"plain_{kind}"] / x[f"dosed_{kind}"]) for x in per_round]
        mean, low, high = mean_ci95(logs)
        return math.exp(mean), [math.exp(low), math.exp(high)]

    wall, wall_ci = ratio("wall")
    cpu, cpu_ci = ratio("cpu")
    plain_wall = sum(x["plain_wall"] for x in per_round)
    dosed_wall = sum(x["dosed_wall"] for x in per_round)
    return {
        "tokens": tokens,
        "rounds": len(per_round),
        "dose": {k: {"theta": d.theta, "profile": [vars(p) for p in d.profile or ()]} for k, d in config.doses.items()},
        "plain_tokens_per_s": len(per_round) * tokens / plain_wall,
        "dosed_tokens_per_s": len(per_round) * tokens / dosed_wall,
        "ratio": wall,
        "ratio_ci95": wall_ci,
        "cpu_ratio": cpu,
        "cpu_ratio_ci95": cpu_ci,
        "cpu_per_wall": sum(x["plain_cpu"] + x["dosed_cpu"] for x in per_round) / (plain_wall + dosed_wall),
        "per_round": per_round,
    }


def run_bench(
    output_json: str | os.PathLike,
    *,
    model: str | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
    **settings,
) -> dict:
    """Run the whole benchmark, write ``output_json`` and its PNG, and return the figures.

    ``settings`` are the fields of :class:`~hf_steer.drugs.config.BenchConfig` (sizes and sweeps).
    """
    from ..models import load_model
    from ..utils import set_seed

    try:
        config = BenchConfig(**settings)
    except TypeError as e:
        raise HfSteerError(f"bad bench setting ({e}): use the fields of BenchConfig") from None
    output_json = check_output_path("output_json", output_json, ".json")
    thetas = parse_type_thetas(config.thetas) if config.thetas else {k: list(v) for k, v in DEFAULT_THETAS.items()}
    set_seed(seed)
    with Timer() as total:
        generator, tokenizer = load_model(model)
        texts = PROMPTS[: config.prompts]
        result: dict = {
            "model": model or "SmolLM2-135M-Instruct (bundled)",
            "settings": {**asdict(config), "seed": seed},
        }

        log(f"speed: plain vs DRµGS greedy, {config.speed_rounds} interleaved rounds")
        speed_config = DrugsConfig(doses={"A": Dose(0.3, depth_profile(0.5, config.spread))})
        result["speed"] = measure_speed(generator, tokenizer, texts, speed_config, config.speed_tokens,
                                        config.speed_rounds)
        if result["speed"]:
            sp = result["speed"]
            log(f"  tokens/s plain {sp['plain_tokens_per_s']:.1f}, DRµGS {sp['dosed_tokens_per_s']:.1f}, ratio "
                f"{sp['ratio']:.3f} (95% {sp['ratio_ci95'][0]:.3f}-{sp['ratio_ci95'][1]:.3f}); CPU-time ratio "
                f"{sp['cpu_ratio']:.3f}")
        write_report(result, output_json, partial=True)
        if config.curves:
            result.update(_curves(generator, tokenizer, config, thetas, seed, log))
        else:
            result.update({"judge": None, "prompt_sets": {}})
    result["seconds"] = round(total.wall, 1)
    result["cpu_seconds"] = round(total.cpu, 1)
    write_report(result, output_json, plot=plot_bench)
    return result


def _generate_set(model, tokenizer, texts, config: BenchConfig, thetas: dict, recipes, seed: int, log,
                  sweeps: bool) -> list[dict]:
    """Every knob value of every method on one prompt set: ``[{method, knob, texts, distinct2, ...}]``."""
    prompts, seeds, max_new_tokens = len(texts), config.seeds, config.max_new_tokens
    inject(model, DrugsConfig())
    enc, prefix = _prompt_cache(model, tokenizer, texts, seeds)
    runs: list[dict] = []

    def record(method: str, knob: float, outputs: list[str], **extra):
        by_prompt = [distinct_n(outputs[i * seeds : (i + 1) * seeds]) for i in range(prompts)]
        d2 = sum(by_prompt) / prompts
        runs.append({"method": method, "knob": knob, "distinct2": d2, "texts": outputs,
                     "per_prompt": {"distinct2": [round(x, 4) for x in by_prompt]}, **extra})
        log(f"  {method:12s} knob={knob:<6g} {' '.join(f'{k}={v}' for k, v in extra.items())} distinct-2 {d2:.3f}")

    sample = dict(do_sample=True, top_k=None, top_p=None)
    greedy = _generate(model, tokenizer, enc, max_new_tokens, seed, prefix)
    # Both baselines reach greedy at one end (temperature -> 0, min-p = 1 keeps only the top token):
    # anchoring them there lets low-variety DRµGS points be compared at equal distinct-2.
    record("temperature", 0.0, greedy)
    record("min_p", 1.0, greedy)
    for t in config.temperatures:
        record("temperature", t, _generate(model, tokenizer, enc, max_new_tokens, seed, prefix, temperature=t,
                                             **sample))
    for p in config.min_ps:
        record("min_p", p, _generate(model, tokenizer, enc, max_new_tokens, seed, prefix,
                                       temperature=config.min_p_temperature, min_p=p, **sample))
    if sweeps:
        for letter, values in thetas.items():
            record(f"drugs-{letter}", 0.0, greedy, depth=None)
            for depth in config.depths:
                for theta in values:
                    inject(model, DrugsConfig(doses={letter: Dose(theta, depth_profile(depth, config.spread))}))
                    record(f"drugs-{letter}", theta, _generate(model, tokenizer, enc, max_new_tokens, seed, prefix),
                           depth=depth)
    for text, (drugs, sampling) in recipes.items():
        inject(model, drugs)
        extra = {**sample, **sampling} if sampling else {}
        record("recipes", 0.0, _generate(model, tokenizer, enc, max_new_tokens, seed, prefix, **extra), recipe=text)
    remove(model)
    return runs


def _score(runs: list[dict], model, tokenizer, texts, seeds: int, key: str, judge: bool, memo: dict) -> None:
    """Mean per-token NLL of every run's texts under ``model`` (the generator itself, or the judge)."""
    if judge:
        contexts = [judge_context(p) for p in texts for _ in range(seeds)]
    else:
        contexts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                  add_generation_prompt=True) for p in texts for _ in range(seeds)]
    for run in runs:
        memo_key = (key, tuple(texts), tuple(run["texts"]))
        if memo_key not in memo:  # the greedy texts appear in every curve: score each list once
            continuations = [" " + t for t in run["texts"]] if judge else run["texts"]
            memo[memo_key] = continuation_nll_rows(model, tokenizer, contexts, continuations,
                                                   batch_size=8 if judge else 16, add_bos=judge)
        rows = memo[memo_key]
        count = sum(n for _, n in rows)
        run[key] = sum(t for t, _ in rows) / count if count else float("nan")
        # Per prompt (its seeds pooled): what the bootstrap over prompts resamples.
        run["per_prompt"][f"{key}_sum"] = [round(sum(t for t, _ in rows[i * seeds : (i + 1) * seeds]), 4)
                                           for i in range(len(texts))]
        run["per_prompt"][f"{key}_tokens"] = [sum(n for _, n in rows[i * seeds : (i + 1) * seeds])
                                              for i in range(len(texts))]


def _curves(model, tokenizer, config: BenchConfig, thetas: dict, seed: int, log) -> dict:
    """Generate on every prompt set, then score variety and coherence (self NLL, then the judge's)."""
    recipes = {text: parse_recipe(text) for text in config.recipes}
    sets = {name: PROMPT_SETS[name][: config.prompts] for name in config.prompt_sets}
    runs: dict[str, list[dict]] = {}
    for name, texts in sets.items():
        log(f"generating on the {name} prompts: {len(texts)} prompts x {config.seeds} seeds x "
            f"{config.max_new_tokens} tokens per knob value")
        runs[name] = _generate_set(model, tokenizer, texts, config, thetas, recipes, seed, log, sweeps=name == "bench")
    memo: dict = {}
    log("scoring: self-judged NLL")
    for name, texts in sets.items():
        _score(runs[name], model, tokenizer, texts, config.seeds, "self_nll", False, memo)
    judge_pair = load_judge(config.judge, log, without="reporting self-judged NLL only")
    judge_name = None
    if judge_pair is not None:
        judge_model, judge_tokenizer = judge_pair
        judge_name = judge_model.config.name_or_path
        log(f"scoring: judge NLL ({judge_name})")
        for name, texts in sets.items():
            _score(runs[name], judge_model, judge_tokenizer, texts, config.seeds, "judge_nll", True, memo)
    out: dict = {"judge": judge_name, "prompt_sets": {}}
    for name, texts in sets.items():
        curves: dict[str, list[dict]] = {}
        for run in runs[name]:
            point = {"knob": run["knob"], "distinct2": round(run["distinct2"], 4),
                     "judge_nll": _round(run.get("judge_nll")), "self_nll": _round(run["self_nll"])}
            for extra in ("depth", "recipe", "per_prompt"):
                if extra in run:
                    point[extra] = run[extra]
            curves.setdefault(run["method"], []).append(point)
        samples = {(run.get("recipe") or f"{run['method']}@{run['knob']:g}"): run["texts"][: min(config.seeds, 3)]
                   for run in runs[name]}
        out["prompt_sets"][name] = {"prompts": texts, "curves": curves, "verdict": verdict(curves),
                                    "frontier": frontier(curves), "samples_first_prompt": samples}
    return out


def _round(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 4)


FRONTIER_DISTINCT2 = 0.8  # temperature 0.7's variety: where the one-type θ sweeps stopped short


def _nll_key(curves: dict[str, list[dict]]) -> str:
    return "judge_nll" if any(p.get("judge_nll") is not None for c in curves.values() for p in c) else "self_nll"


def interpolate(curve: list[dict], d2: float, key: str) -> float | None:
    """A baseline's NLL at distinct-2 ``d2``, linear between its two neighbouring points (None outside)."""
    pts = sorted((p["distinct2"], p[key]) for p in curve if p.get(key) is not None)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= d2 <= x1 and x1 > x0:
            return y0 + (y1 - y0) * (d2 - x0) / (x1 - x0)
    return None


def verdict(curves: dict[str, list[dict]], key: str | None = None) -> dict:
    """Per DRµGS type: at each of its points, the NLL temperature/min-p need for that variety.

    Baseline curves are interpolated linearly in distinct-2. ``margin`` > 0 means the DRµGS point has
    lower NLL than the baseline at equal variety (better); points outside a baseline's range are left out.
    """
    key = key or _nll_key(curves)
    out = {"nll": key}
    for method, curve in curves.items():
        if not method.startswith("drugs-"):
            continue
        margins = {}
        for base in ("temperature", "min_p"):
            points = [p for p in curve if p["knob"] > 0 and p.get(key) is not None]
            diffs = [(b - p[key]) for p in points if (b := interpolate(curves.get(base, []), p["distinct2"], key)) is not None]
            margins[base] = round(sum(diffs) / len(diffs), 4) if diffs else None
        out[method] = margins
    return out


def _label(method: str, point: dict) -> str:
    if point.get("recipe"):
        return point["recipe"]
    depth = f",depth={point['depth']:g}" if point.get("depth") is not None else ""
    return f"{method.removeprefix('drugs-')}={point['knob']:g}{depth}"


def _bootstrap_margins(curves: dict[str, list[dict]], point: dict, key: str, resamples: int = 2000,
                       seed: int = 0) -> dict:
    """95% intervals of a point's margins, resampling the prompts (every curve with the same prompts)."""
    import numpy as np

    def arrays(p):
        pp = p["per_prompt"]
        return np.array(pp["distinct2"]), np.array(pp[f"{key}_sum"]), np.array(pp[f"{key}_tokens"])

    prompts = len(point["per_prompt"]["distinct2"])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, prompts, size=(resamples, prompts))
    d2, sums, tokens = arrays(point)
    own_d2 = d2[picks].mean(1)
    own_nll = sums[picks].sum(1) / np.maximum(tokens[picks].sum(1), 1)
    out = {}
    for base in ("temperature", "min_p"):
        curve = [p for p in curves.get(base, []) if "per_prompt" in p and f"{key}_sum" in p["per_prompt"]]
        if len(curve) < 2:
            continue
        stats = [arrays(p) for p in curve]
        base_d2 = np.stack([s[0][picks].mean(1) for s in stats], 1)  # (resamples, points)
        base_nll = np.stack([s[1][picks].sum(1) / np.maximum(s[2][picks].sum(1), 1) for s in stats], 1)
        margins = []
        for r in range(resamples):
            order = np.argsort(base_d2[r])
            xs, ys = base_d2[r][order], base_nll[r][order]
            if xs[0] <= own_d2[r] <= xs[-1]:
                margins.append(float(np.interp(own_d2[r], xs, ys)) - own_nll[r])
        if len(margins) >= resamples // 2:  # the point lies inside the baseline's range in most resamples
            low, high = np.percentile(margins, [2.5, 97.5])
            out[f"margin_{base}_ci95"] = [round(float(low), 4), round(float(high), 4)]
    return out


def frontier(curves: dict[str, list[dict]], threshold: float = FRONTIER_DISTINCT2, key: str | None = None) -> dict:
    """The DRµGS settings at distinct-2 >= ``threshold``, each with its NLL margin over temperature and min-p.

    A margin is the baseline's NLL interpolated at the setting's distinct-2 minus the setting's NLL
    (> 0: more coherent at equal variety). ``goal_met``: some setting is at or below both baselines.
    ``best``: the setting whose smaller margin is largest.
    """
    key = key or _nll_key(curves)
    points = []
    for method, curve in curves.items():
        if not (method.startswith("drugs-") or method == "recipes"):
            continue
        for p in curve:
            if p["distinct2"] < threshold or p.get(key) is None:
                continue
            margins = {}
            for base in ("temperature", "min_p"):
                b = interpolate(curves.get(base, []), p["distinct2"], key)
                margins[f"margin_{base}"] = None if b is None else round(b - p[key], 4)
            if "per_prompt" in p and f"{key}_sum" in p["per_prompt"]:
                margins.update(_bootstrap_margins(curves, p, key))
            points.append({"setting": _label(method, p), "distinct2": p["distinct2"], key: p[key], **margins})

    def worst(point):
        values = [point["margin_temperature"], point["margin_min_p"]]
        return min(v if v is not None else -math.inf for v in values)

    best = max(points, key=worst) if points else None
    return {"nll": key, "threshold": threshold, "points": sorted(points, key=worst, reverse=True), "best": best,
            "goal_met": best is not None and worst(best) >= 0}


def plot_bench(result: dict, path) -> None:
    """distinct-2 (x) vs NLL (y), one panel per prompt set (judge NLL, else self NLL)."""
    from ..plotting import pyplot, save_figure

    plt = pyplot()

    sets = result["prompt_sets"]
    key = "judge_nll" if result.get("judge") else "self_nll"
    if not sets:  # --no-curves: the per-round speed ratios instead
        plot_speed(result, path)
        return
    fig, axes = plt.subplots(1, len(sets), figsize=(7 * len(sets), 5.5), squeeze=False)
    colors = {"temperature": "black", "min_p": "0.5", "recipes": "tab:red",
              **{f"drugs-{t}": c for t, c in zip(TYPES, plt.cm.tab10.colors)}}
    for ax, (name, data) in zip(axes[0], sets.items()):
        for method, curve in data["curves"].items():
            pts = sorted((p["distinct2"], p[key], _label(method, p) if method == "recipes" else f"{p['knob']:g}")
                         for p in curve if p[key] is not None)
            if not pts:
                continue
            xs, ys, labels = zip(*pts)
            if method == "recipes":
                ax.plot(xs, ys, "*", markersize=11, color=colors["recipes"], label="DRµGS recipes")
            else:
                style = "--" if method in ("temperature", "min_p") else "-"
                ax.plot(xs, ys, style, marker="o", markersize=4, color=colors.get(method), label=method, alpha=0.8)
            for x, y, label in zip(xs, ys, labels):
                ax.annotate(label, (x, y), fontsize=5.5, xytext=(2, 2), textcoords="offset points")
        ax.axvline(data["frontier"]["threshold"], color="0.8", lw=0.8)
        ax.set_xlabel("variety: distinct-2 across seeds (higher = more varied)")
        ax.set_ylabel(f"{key.replace('_', ' ')} per token (lower = more coherent)")
        met = data["frontier"]["goal_met"]
        ax.set_title(f"{name} prompts — judge {result.get('judge') or '-'}"
                     f"\nat distinct-2 ≥ {data['frontier']['threshold']:g}: DRµGS {'beats' if met else 'does not beat'} "
                     "both baselines", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    speed = result.get("speed") or {}
    title = "DRµGS vs sampling"
    if speed:
        title += (f" — greedy tokens/s ratio {speed['ratio']:.3f} "
                  f"(95% {speed['ratio_ci95'][0]:.3f}–{speed['ratio_ci95'][1]:.3f})")
    fig.suptitle(title)
    save_figure(fig, path)


def plot_speed(result: dict, path) -> None:
    """The per-round dosed/plain ratios (wall and CPU time) with the geometric mean and its 95% interval."""
    from ..plotting import pyplot, save_figure

    plt = pyplot()
    speed = result["speed"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, color in (("wall", "tab:blue"), ("cpu", "tab:orange")):
        ratios = [r[f"plain_{kind}"] / r[f"dosed_{kind}"] for r in speed["per_round"]]
        mean = speed["ratio" if kind == "wall" else "cpu_ratio"]
        low, high = speed["ratio_ci95" if kind == "wall" else "cpu_ratio_ci95"]
        ax.plot(range(1, len(ratios) + 1), ratios, "o", color=color, alpha=0.6, label=f"{kind} time per round")
        ax.axhline(mean, color=color, label=f"{kind}: {mean:.3f} (95% {low:.3f}-{high:.3f})")
        ax.axhspan(low, high, color=color, alpha=0.15)
    ax.axhline(0.95, color="0.5", ls="--", lw=0.8, label="goal 0.95")
    ax.set_xlabel("interleaved round")
    ax.set_ylabel("dosed / plain greedy tokens per second")
    ax.set_title(f"DRµGS speed: {speed['rounds']} rounds x {speed['tokens']} tokens", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
