"""What each ``hf-steer drugs`` command takes, one dataclass per command, so every default and its help
live in one place (the field) and the CLI is built from them (:mod:`hf_steer.cli_args`).

Every dataclass checks its own values in ``__post_init__`` and answers a bad one (negative, NaN,
infinite, huge, unknown) with one :class:`~hf_steer.errors.HfSteerError` line, whether it came from the
command line or from Python. Nothing here imports torch: ``hf-steer drugs --help`` stays fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ..errors import HfSteerError
from .dose import DEFAULT_SPREAD, TYPES, DrugsConfig, depth_profile

MAX_SEED = 2**32 - 1  # numpy's limit, and set_seed seeds numpy too
MAX_NEW_TOKENS = 8192
MAX_SAMPLES = 1024


def check_number(name: str, value, low: float, high: float, *, integer: bool = False, fix: str = "") -> None:
    """One line when ``value`` is not a (finite) number in ``[low, high]``."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)) or not low <= value <= high:
        hint = fix or f"use {kind} from {low:g} to {high:g}"
        raise HfSteerError(f"{name} {value!r} is out of range: {hint}")


def check_output_path(name: str, path: str | os.PathLike, suffix: str | None = None) -> Path:
    """An output file path that can be written: not a folder, under a folder that exists or can be made."""
    path = Path(path).expanduser()
    if str(path) in ("", "."):
        raise HfSteerError(f"{name} is empty: give a file path")
    if path.is_dir():
        raise HfSteerError(f"{name} {path} is a folder: give a file path, e.g. {path / ('out' + (suffix or ''))}")
    if suffix and path.suffix.lower() != suffix:
        raise HfSteerError(f"{name} {path} does not end in {suffix}: give a {suffix} path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise HfSteerError(f"{name} {path} cannot be written ({parent} is not a writable folder): choose another path")
    return path


def _check_types(types: str) -> str:
    letters = types.upper()
    if not letters or any(t not in TYPES for t in letters) or len(set(letters)) != len(letters):
        raise HfSteerError(f"types {types!r} is not a set of type letters: use letters from {TYPES}, e.g. HA")
    return letters


def _check_thetas(name: str, thetas) -> list[float]:
    if not thetas:
        raise HfSteerError(f"{name} is empty: give at least one angle in radians")
    for theta in thetas:
        check_number(name, theta, 0.0, math.pi, fix="give angles from 0 to π radians, e.g. 0.1 0.3")
    return [float(t) for t in thetas]


def parse_ranges(texts) -> list[tuple[float, float]]:
    """``["0-0.33", "0.33-0.67"]`` -> ``[(0.0, 0.33), (0.33, 0.67)]`` (depths in [0, 1], low < high)."""
    out = []
    for text in texts:
        for part in str(text).split(","):
            low, sep, high = part.partition("-")
            try:
                pair = (float(low), float(high))
            except ValueError:
                pair = None
            if not sep or pair is None or not 0 <= pair[0] < pair[1] <= 1:
                raise HfSteerError(f"range {part!r} is malformed: write LOW-HIGH depths in [0, 1], e.g. 0.33-0.67")
            out.append(pair)
    if not out:
        raise HfSteerError("ranges is empty: give at least one LOW-HIGH depth range, e.g. 0.33-0.67")
    return out


def parse_type_thetas(items) -> dict[str, list[float]]:
    """``["A=0.15,0.3", "H=0.1"]`` -> ``{"A": [0.15, 0.3], "H": [0.1]}``."""
    out: dict[str, list[float]] = {}
    for item in items:
        letter, sep, values = str(item).partition("=")
        letter = letter.strip().upper()
        try:
            thetas = [float(x) for x in values.split(",") if x.strip()]
        except ValueError:
            thetas = None
        if not sep or letter not in TYPES or len(letter) != 1 or not thetas:
            raise HfSteerError(f"thetas {item!r} is malformed: write TYPE=θ1,θ2,..., e.g. A=0.15,0.3 (types {TYPES})")
        out[letter] = _check_thetas(f"thetas {letter}", thetas)
    return out


# Chosen on the bench prompts from a grid of 12 (2026-12-03, docs/drugs.md "Frontier"): a light Q dose under
# temperature 0.6 reaches temperature-0.7 variety (distinct-2 0.82) at a lower judge NLL; Q=0.8 and H=0.3 under
# the same temperature were the next two.
DEFAULT_RECIPES: tuple[str, ...] = ("Q=0.4,depth=0.5,temperature=0.6", "Q=0.8,depth=0.5,temperature=0.6",
                                    "H=0.3,depth=0.5,temperature=0.6")


PromptSet = Literal["bench", "heldout", "sealed"]  # the keys of drugs.bench.PROMPT_SETS


def parse_recipe(text: str) -> tuple[DrugsConfig, dict]:
    """``"K=1.2,depth=0.5,temperature=0.5"`` -> ``(DrugsConfig, sampling kwargs for generate)``."""
    drugs: dict = {}
    sampling: dict = {}
    for item in str(text).replace(";", ",").split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        try:
            number = float(value) if key != "method" else value.strip()
        except ValueError:
            number = None
        if not sep or number is None:
            raise HfSteerError(f"recipe {text!r} has a malformed item {item!r}: write KEY=VALUE, e.g. "
                               "A=0.3,depth=0.5,temperature=0.5")
        if key in ("temperature", "min_p"):
            sampling[key] = number
        elif key.upper() in TYPES or key in ("depth", "spread", "method"):
            drugs[key.upper() if key.upper() in TYPES else key] = number
        else:
            raise HfSteerError(f"recipe {text!r} has an unknown key {key!r}: use H, Q, K, V, A, depth, spread, "
                               "method, temperature, min_p")
    if not any(k in TYPES for k in drugs):
        raise HfSteerError(f"recipe {text!r} doses nothing: give at least one TYPE=θ, e.g. A=0.3")
    config = DrugsConfig.from_dict(drugs)
    if "temperature" in sampling:
        check_number("recipe temperature", sampling["temperature"], 1e-3, 100.0)
    if "min_p" in sampling:
        check_number("recipe min_p", sampling["min_p"], 0.0, 1.0)
        if "temperature" not in sampling:
            raise HfSteerError(f"recipe {text!r} sets min_p without a temperature: add temperature=T")
    return config, sampling


@dataclass
class RunArguments:
    """Which model, loaded how, and the seed."""

    model: str | None = field(default=None, metadata={
        "help": "model folder, .gguf file or Hub id (default: the bundled SmolLM2-135M-Instruct)"})
    dtype: Literal["float32", "bfloat16", "float16"] = field(default="float32", metadata={
        "help": "weights' dtype"})
    attn_implementation: Literal["eager", "sdpa"] | None = field(default=None, metadata={
        "help": "attention implementation DRµGS wraps (default: the model's own)"})
    seed: int = field(default=0, metadata={"help": "random seed of the noise (and of sampling)"})

    def __post_init__(self):
        check_number("seed", self.seed, 0, MAX_SEED, integer=True)

    def load(self):
        from ..models import load_model

        return load_model(self.model, dtype=self.dtype, attn_implementation=self.attn_implementation)


@dataclass
class DoseArguments:
    """How hard and where to dose: ``TYPE=THETA`` pairs sharing one depth bump."""

    dose: list[str] = field(default_factory=list, metadata={
        "help": "TYPE=THETA, repeatable: H (hidden state in), Q, K, V (queries, keys, values), "
                "A (head outputs); θ in radians, e.g. --dose A=0.3 --dose H=0.1"})
    depth: float | None = field(default=None, metadata={
        "help": "centre of the dosed layers, 0 (first) .. 1 (last) (default: every layer)"})
    spread: float = field(default=DEFAULT_SPREAD, metadata={
        "help": "half-width of the full-dose band around --depth, as a fraction of the layers"})
    method: Literal["ceil", "floor", "interpolate"] = field(default="ceil", metadata={
        "help": "θ of a layer between two profile points: the larger, the smaller, or linear"})

    def __post_init__(self):
        if self.depth is not None:
            check_number("depth", self.depth, 0.0, 1.0)
        check_number("spread", self.spread, 0.0, 1.0)

    def to_config(self, **config_fields) -> DrugsConfig:
        """The :class:`DrugsConfig` these doses (plus ``sinks``, ``dose_prompt``... fields) describe."""
        if not self.dose:
            raise HfSteerError("no dose given: add e.g. --dose A=0.3 (types H, Q, K, V, A)")
        return DrugsConfig.from_flags(self.dose, depth=self.depth, spread=self.spread, method=self.method,
                                      **config_fields)


@dataclass
class GenerateArguments:
    """``hf-steer drugs generate``."""

    prompt: str = field(default="", metadata={"help": "the user message (raw text with --no-chat)"})
    seeds: int = field(default=1, metadata={"help": "how many generations (seeds --seed, --seed+1, ...)"})
    max_new_tokens: int = field(default=80, metadata={"help": "new tokens per generation"})
    temperature: float | None = field(default=None, metadata={
        "help": "sample at this temperature on top of the noise (default: greedy)"})
    min_p: float | None = field(default=None, metadata={"help": "min-p when sampling (needs --temperature)"})
    chat: bool = field(default=True, metadata={"help": "wrap the prompt in the model's chat template"})
    cold_shower_every: int | None = field(default=None, metadata={
        "help": "recompute the KV cache sober every this many new tokens (default: never)"})

    def __post_init__(self):
        if not self.prompt.strip():
            raise HfSteerError("prompt is empty: give the text to answer with --prompt")
        check_number("seeds", self.seeds, 1, MAX_SAMPLES, integer=True)
        check_number("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS, integer=True)
        if self.cold_shower_every is not None:
            check_number("cold_shower_every", self.cold_shower_every, 1, MAX_NEW_TOKENS, integer=True)
        if self.temperature is not None:
            check_number("temperature", self.temperature, 1e-3, 100.0)
        if self.min_p is not None:
            check_number("min_p", self.min_p, 0.0, 1.0)
            if self.temperature is None:
                raise HfSteerError("min_p needs sampling: add --temperature, e.g. --temperature 1.5 --min-p 0.1")


@dataclass
class VergenceArguments:
    """``hf-steer drugs vergence``."""

    prompt: list[str] = field(default_factory=list, metadata={
        "help": "prompt(s) to measure at, repeatable (default: two built-in creative prompts)"})
    types: str = field(default=TYPES, metadata={"help": "injection types to measure, e.g. HA"})
    thetas: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.4], metadata={
        "help": "θ values in radians"})
    ranges: list[str] = field(default_factory=lambda: ["0-0.33", "0.33-0.67", "0.67-1"], metadata={
        "help": "injection depth ranges LOW-HIGH (fractions of the layer stack)"})
    samples: int = field(default=4, metadata={"help": "noise draws per prompt"})
    output: str = field(default="drugs_vergence.png", metadata={"help": "PNG path (a JSON is written beside it)"})

    def __post_init__(self):
        self.types = _check_types(self.types)
        self.thetas = _check_thetas("thetas", self.thetas)
        parse_ranges(self.ranges)
        check_number("samples", self.samples, 1, MAX_SAMPLES, integer=True)
        check_output_path("output", self.output, ".png")


@dataclass
class ExploreArguments:
    """``hf-steer drugs explore``."""

    prompt: list[str] = field(default_factory=list, metadata={
        "help": "prompt(s), repeatable (default: three of the bench's creative prompts)"})
    types: str = field(default=TYPES, metadata={"help": "injection types to try, e.g. HA"})
    thetas: list[float] = field(default_factory=lambda: [0.1, 0.3], metadata={"help": "θ values in radians"})
    depth: float = field(default=0.5, metadata={"help": "centre of the dosed layers, 0..1"})
    spread: float = field(default=DEFAULT_SPREAD, metadata={"help": "half-width of the full-dose band, 0..1"})
    samples: int = field(default=3, metadata={"help": "generations per prompt × type × θ"})
    max_new_tokens: int = field(default=48, metadata={"help": "new tokens per generation"})
    output: str = field(default="drugs_explore.html", metadata={"help": "HTML page to write"})

    def __post_init__(self):
        self.types = _check_types(self.types)
        self.thetas = _check_thetas("thetas", self.thetas)
        depth_profile(self.depth, self.spread)  # checks both
        check_number("samples", self.samples, 1, MAX_SAMPLES, integer=True)
        check_number("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS, integer=True)
        check_output_path("output", self.output, ".html")


@dataclass
class BenchConfig:
    """``hf-steer drugs bench``: the sizes and sweeps of :func:`hf_steer.drugs.bench.run_bench`."""

    judge: str = field(default="auto", metadata={
        "help": "judge of coherence: auto (Gemma-3-270M if installed), gemma (required), none, or a model path"})
    prompts: int = field(default=8, metadata={"help": "creative prompts of each prompt set (max 12)"})
    seeds: int = field(default=8, metadata={"help": "continuations per prompt"})
    max_new_tokens: int = field(default=24, metadata={"help": "new tokens per continuation"})
    thetas: list[str] = field(default_factory=list, metadata={
        "help": "θ sweep of one type, TYPE=θ1,θ2,..., repeatable (default: a built-in sweep of all five)"})
    depths: list[float] = field(default_factory=lambda: [0.5], metadata={"help": "injection depths to sweep"})
    spread: float = field(default=DEFAULT_SPREAD, metadata={"help": "half-width of the dosed band around each depth"})
    temperatures: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], metadata={
        "help": "temperature baseline sweep"})
    min_ps: list[float] = field(default_factory=lambda: [0.3, 0.2, 0.15, 0.1, 0.05], metadata={
        "help": "min-p baseline sweep"})
    recipes: list[str] = field(default_factory=lambda: list(DEFAULT_RECIPES), metadata={
        "help": "DRµGS settings beyond the one-type sweeps, each TYPE=θ,...[,depth=D,spread=S][,temperature=T"
                "[,min_p=P]], e.g. K=1.2,depth=0.5 or A=0.3,temperature=0.5 (a stock sampler on top)"})
    prompt_sets: list[PromptSet] = field(default_factory=lambda: ["bench", "heldout"], metadata={
        "help": "prompt sets to measure on: bench (the sweeps and recipes were chosen on it), heldout (never tuned on: "
                "baselines and recipes only) and sealed (written after the default recipes were chosen)"})
    min_p_temperature: float = field(default=1.5, metadata={"help": "temperature of the min-p baseline"})
    speed_rounds: int = field(default=30, metadata={
        "help": "interleaved plain/dosed rounds of the speed ratio (more rounds: a tighter 95%% interval)"})
    speed_tokens: int = field(default=32, metadata={"help": "greedy tokens per speed round"})
    curves: bool = field(default=True, metadata={
        "help": "measure the variety/coherence curves (--no-curves: the speed ratio alone, e.g. under flock -x)"})

    def __post_init__(self):
        check_number("prompts", self.prompts, 1, 12, integer=True)
        check_number("seeds", self.seeds, 2, MAX_SAMPLES, integer=True,
                     fix="use 2 or more (distinct-2 across seeds needs at least 2)")
        check_number("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS, integer=True)
        parse_type_thetas(self.thetas)
        if not self.depths:
            raise HfSteerError("depths is empty: give at least one depth from 0 to 1")
        for depth in self.depths:
            check_number("depths", depth, 0.0, 1.0)
        check_number("spread", self.spread, 0.0, 1.0)
        for t in self.temperatures:
            check_number("temperatures", t, 1e-3, 100.0)
        for p in self.min_ps:
            check_number("min_ps", p, 0.0, 1.0)
        check_number("min_p_temperature", self.min_p_temperature, 1e-3, 100.0)
        for recipe in self.recipes:
            parse_recipe(recipe)
        if not self.prompt_sets or len(set(self.prompt_sets)) != len(self.prompt_sets) or \
                not set(self.prompt_sets) <= set(get_args(PromptSet)):
            raise HfSteerError(f"prompt_sets {self.prompt_sets!r} must name bench, heldout and/or sealed, once each")
        check_number("speed_rounds", self.speed_rounds, 0, 10_000, integer=True)
        check_number("speed_tokens", self.speed_tokens, 1, MAX_NEW_TOKENS, integer=True)
        if not self.curves and not self.speed_rounds:
            raise HfSteerError("nothing to measure: --no-curves needs --speed-rounds 1 or more")
        if self.judge not in ("auto", "gemma", "none"):
            from ..artifacts import hub_model_id

            if not Path(str(self.judge)).expanduser().exists() and hub_model_id(self.judge) is None:
                raise HfSteerError(f"judge {self.judge!r} is neither auto, gemma, none, an existing model folder "
                                   "nor a Hub id: check the path")


EXAMPLE_REPO_ID = "your-name/drugs"


@dataclass
class ExportArguments:
    """``hf-steer drugs export OUTPUT_DIR``."""

    overwrite: bool = field(default=False, metadata={
        "help": "replace a previous export in OUTPUT_DIR (files an export does not write are never touched)"})
    repo_id: str = field(default=EXAMPLE_REPO_ID, metadata={
        "help": "repo id the README's usage shows (hf-steer push renders the card again with the real one)"})

    def __post_init__(self):
        from ..artifacts import hub_model_id

        if hub_model_id(self.repo_id) != self.repo_id or "/" not in self.repo_id:
            raise HfSteerError(f"repo_id {self.repo_id!r} is not a Hub repo id: write it as user/name")
