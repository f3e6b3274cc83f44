"""Load a trained abcGPT and write text at a dial setting: the Python side of ``hf-steer abc generate``."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import HfSteerError
from . import registration  # noqa: F401  (Auto classes; one-line α errors)
from .config import GenerateConfig, check_model_folder
from .modeling_abcgpt import AbcGPTForCausalLM


def load_abcgpt(path: str | Path, device: str | None = None):
    """(model, tokenizer) from a folder written by ``train`` (or pushed to the Hub); one line when it cannot."""
    from transformers import AutoTokenizer

    folder = check_model_folder(path)
    if folder is not None:
        source, hub_kwargs = str(folder), {}
    else:
        from ..models import hub_model_kwargs  # a Hub id: one line at once when neither cached nor reachable

        source, hub_kwargs = str(path), hub_model_kwargs(str(path))
    try:
        model = AbcGPTForCausalLM.from_pretrained(source, **hub_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
    except (OSError, ValueError) as e:
        if isinstance(e, HfSteerError):
            raise
        raise HfSteerError(f"abcGPT {path} cannot be loaded: {str(e).strip().splitlines()[0]}") from None
    if device:
        model.to(device)
    return model.eval(), tokenizer


def validate_alpha(alpha: float, source_names: list[str]) -> float:
    """A scalar dial for a two-source model, checked with one clear error line."""
    if len(source_names) != 2:
        raise HfSteerError(
            f"--alpha needs a two-source model but this one has {len(source_names)} ({', '.join(source_names)}): "
            "use --mix NAME=WEIGHT,..."
        )
    if alpha is None or not isinstance(alpha, (int, float)) or math.isnan(alpha):
        raise HfSteerError(f"alpha is {alpha!r}: pass a number in [0, 1]")
    if not 0.0 <= alpha <= 1.0:
        raise HfSteerError(
            f"alpha is {alpha}: it must lie in [0, 1] (0 = {source_names[0]}, 1 = {source_names[1]})"
        )
    return float(alpha)


def parse_mix(mix: str | dict, source_names: list[str]) -> list[float]:
    """``"shakespeare=0.7,tinystories=0.3"`` -> weights in the model's source order (unnamed sources get 0)."""
    if isinstance(mix, str):
        items = {}
        for part in filter(None, (p.strip() for p in mix.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise HfSteerError(f"--mix part {part!r} is not NAME=WEIGHT: write e.g. shakespeare=0.7,tinystories=0.3")
            try:
                items[name.strip()] = float(value)
            except ValueError as e:
                raise HfSteerError(f"--mix weight {value!r} for {name!r} is not a number: write e.g. {name}=0.3") from e
    else:
        items = {str(k): float(v) for k, v in mix.items()}
    if not items:
        raise HfSteerError("--mix is empty: write NAME=WEIGHT pairs, e.g. shakespeare=0.7,tinystories=0.3")
    unknown = [n for n in items if n not in source_names]
    if unknown:
        raise HfSteerError(f"--mix names unknown source {unknown[0]!r}: this model's sources are {', '.join(source_names)}")
    weights = [items.get(n, 0.0) for n in source_names]
    if any(math.isnan(w) or w < 0 or w > 1 for w in weights):
        raise HfSteerError(f"--mix weights {weights} must each lie in [0, 1]: use non-negative weights summing to 1")
    if abs(sum(weights) - 1.0) > 1e-3:
        raise HfSteerError(f"--mix weights sum to {sum(weights):.4g}, not 1: divide each weight by their sum")
    return weights


@torch.no_grad()
def generate_text(model, tokenizer, config: GenerateConfig | None = None, **settings) -> list[str]:
    """Sampled continuations of ``prompt`` at the dial given by ``alpha`` (two sources) or ``mix`` (any N).

    ``settings`` are :class:`~hf_steer.abcgpt.config.GenerateConfig` fields (``prompt``, ``alpha``, ``mix``,
    ``max_new_tokens``, ``temperature``, ``num_samples``, ``seed``), or pass a whole ``config``. Text longer
    than the model's context is written with a sliding window (see ``AbcGPTForCausalLM.prepare_inputs_for_generation``).
    """
    if config is None:
        config = GenerateConfig(**settings)
    elif settings:
        raise HfSteerError("generate_text got both a config and settings: put the settings in the GenerateConfig")
    names = list(model.config.source_names)
    dial = validate_alpha(config.alpha, names) if config.mix is None else parse_mix(config.mix, names)
    if isinstance(dial, list) and len(names) == 2:
        dial = dial[1]  # a two-source mixture is the scalar dial; a list of two would read as one α per row
    ids = tokenizer(config.prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
    torch.manual_seed(config.seed)
    out = model.generate(
        ids.repeat(config.num_samples, 1),
        alpha=dial,
        do_sample=True,
        temperature=config.temperature,
        top_k=None,
        top_p=None,
        max_new_tokens=config.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=None,
    )
    return [tokenizer.decode(row, skip_special_tokens=True) for row in out]
