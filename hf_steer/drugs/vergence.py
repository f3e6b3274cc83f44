"""Vergence: how far the noise pushes each layer's hidden state at the predicted token.

For a prompt we read the hidden state after every layer at the last position (the one that predicts
the next token), sober and dosed, and report ``1 - cos`` between them per layer. Dosing only that last
position (the context stays sober) isolates what one step of DRµGS does. Sweeping θ and the injection
range shows the author's picture: noise injected early is mostly absorbed, noise in the middle layers
spikes and propagates, and the top prediction changes while staying reasonable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .dose import TYPES, Dose, DosePoint, DrugsConfig
from .injection import inject, remove, sober, sober_before

DEFAULT_RANGES = ((0.0, 0.33), (0.33, 0.67), (0.67, 1.0))
DEFAULT_THETAS = (0.05, 0.1, 0.2, 0.4)


def range_profile(low: float, high: float) -> list[DosePoint]:
    """Full dose on layers with depth in [low, high], none elsewhere."""
    points = []
    if low > 0:
        points.append(DosePoint(max(low - 1e-9, 0.0), 0.0))
    points += [DosePoint(low, 1.0), DosePoint(high, 1.0)]
    if high < 1:
        points.append(DosePoint(min(high + 1e-9, 1.0), 0.0))
    return points


def _last_hidden(model, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer hidden states ``(layers, batch, hidden)`` and next-token ids at the last position."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hidden = torch.stack([h[:, -1].float() for h in out.hidden_states[1:]])
    return hidden, out.logits[:, -1].argmax(-1)


@torch.no_grad()
def measure_vergence(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    types: str = TYPES,
    thetas: Sequence[float] = DEFAULT_THETAS,
    ranges: Sequence[tuple[float, float]] = DEFAULT_RANGES,
    samples: int = 4,
    seed: int = 0,
    sinks: int = 4,
    chat: bool = True,
) -> dict:
    """Mean per-layer ``1 - cos`` divergence for every type × injection range × θ.

    Returns ``{"layers": n, "thetas": [...], "ranges": [...], "divergence": {type: {range: {θ: [per
    layer]}}}, "top_changed": {type: {range: {θ: fraction}}}}``. ``samples`` noise draws per prompt
    run as one batch. The model is injected for the measurement and sobered up after (if it was
    already dosed, its dose is restored).
    """
    previous = getattr(model, "_drugs_state", None)
    previous_config = previous.config if previous is not None else None
    batches = []
    for prompt in prompts:
        text = (
            tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            if chat and tokenizer.chat_template
            else prompt
        )
        enc = tokenizer([text] * samples, return_tensors="pt").to(model.device)
        batches.append(enc)

    inject(model, DrugsConfig())
    try:
        model._drugs_state.seed(seed)
        sober_states = []
        with sober(model):
            for enc in batches:
                sober_states.append(_last_hidden(model, enc["input_ids"], enc["attention_mask"]))
        num_layers = sober_states[0][0].shape[0]
        divergence: dict = {}
        changed: dict = {}
        for letter in types:
            for low, high in ranges:
                label = f"{low:g}-{high:g}"
                for theta in thetas:
                    config = DrugsConfig(doses={letter: Dose(theta, range_profile(low, high), "floor")}, sinks=sinks)
                    inject(model, config)
                    total = torch.zeros(num_layers)
                    flips = 0.0
                    for enc, (ref_hidden, ref_top) in zip(batches, sober_states):
                        with sober_before(model, enc["input_ids"].shape[1] - 1):
                            hidden, top = _last_hidden(model, enc["input_ids"], enc["attention_mask"])
                        cos = torch.nn.functional.cosine_similarity(hidden, ref_hidden, dim=-1)  # (layers, batch)
                        total += (1 - cos).mean(-1).cpu()
                        flips += (top != ref_top).float().mean().item()
                    divergence.setdefault(letter, {}).setdefault(label, {})[str(theta)] = (total / len(batches)).tolist()
                    changed.setdefault(letter, {}).setdefault(label, {})[str(theta)] = flips / len(batches)
    finally:
        if previous_config is not None:
            inject(model, previous_config)
        else:
            remove(model)
    return {
        "layers": num_layers,
        "thetas": list(thetas),
        "ranges": [f"{low:g}-{high:g}" for low, high in ranges],
        "samples": samples,
        "prompts": list(prompts),
        "divergence": divergence,
        "top_changed": changed,
    }


def plot_vergence(result: dict, path) -> None:
    """One panel per type (rows) × injection range (columns): divergence per layer, one line per θ."""
    from ..plotting import pyplot, save_figure

    plt = pyplot()

    types = list(result["divergence"])
    ranges = result["ranges"]
    fig, axes = plt.subplots(len(types), len(ranges), figsize=(3.2 * len(ranges), 2.2 * len(types)),
                             sharex=True, sharey=True, squeeze=False)
    layers = list(range(result["layers"]))
    colors = plt.cm.viridis([i / max(len(result["thetas"]) - 1, 1) for i in range(len(result["thetas"]))])
    for row, letter in enumerate(types):
        for col, label in enumerate(ranges):
            ax = axes[row][col]
            low, high = (float(x) for x in label.split("-"))
            ax.axvspan(low * (len(layers) - 1), high * (len(layers) - 1), color="0.92")
            for color, theta in zip(colors, result["thetas"]):
                values = result["divergence"][letter][label][str(theta)]
                flips = result["top_changed"][letter][label][str(theta)]
                ax.plot(layers, [max(v, 1e-7) for v in values], color=color, label=f"θ={theta:g} (top Δ {flips:.0%})")
            ax.set_yscale("log")
            if row == 0:
                ax.set_title(f"injected at depth {label}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{letter}: 1 − cos", fontsize=9)
            if row == len(types) - 1:
                ax.set_xlabel("layer", fontsize=9)
            ax.legend(fontsize=6, loc="upper left")
    fig.suptitle("DRµGS vergence: hidden-state divergence at the predicted token", fontsize=11)
    save_figure(fig, path)
