"""Held-out losses along the dial, the likelihood-ratio source score, and the α-curve plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..plotting import pyplot, save_figure

ALPHA_GRID = [round(i / 10, 1) for i in range(11)]


def val_windows(ids: torch.Tensor, block_size: int, n_windows: int) -> torch.Tensor:
    """``n_windows`` evenly spaced windows over the held-out ids (deterministic: same windows for every model)."""
    last = len(ids) - block_size
    starts = np.linspace(0, last, num=n_windows).astype(int)
    return torch.stack([ids[s : s + block_size] for s in starts])


@torch.no_grad()
def evaluate_loss(model, ids: torch.Tensor, alpha, block_size: int, n_batches: int = 4, batch_size: int = 16) -> float:
    """Mean next-character loss (nats) of ``model`` at dial ``alpha`` over held-out ``ids``."""
    model.eval()
    windows = val_windows(ids, block_size, n_batches * batch_size).to(model.device)
    total, count = 0.0, 0
    for chunk in windows.split(batch_size):
        out = model(input_ids=chunk, alpha=alpha, labels=chunk, use_cache=False)
        n = chunk[:, 1:].numel()
        total += out.loss.item() * n
        count += n
    return total / count


def mixture_path(names: list[str], k: int, t: float) -> list[float]:
    """With two sources, just α=t. With N>2: the point a fraction t of the way from the centre to source k."""
    n = len(names)
    return [(1 - t) / n + (t if j == k else 0.0) for j in range(n)]


def loss_by_alpha(model, corpus, block_size: int, n_batches: int = 4, batch_size: int = 16, grid=ALPHA_GRID) -> dict:
    """{source: [held-out loss at each α of ``grid``]}.

    Two sources: α runs 0→1 (first source → second). N sources: for each source k, the dial walks from the
    centre (equal parts) to source k, so the last value is source k's loss at its own vertex.
    """
    curves = {}
    names = corpus.names
    for k, name in enumerate(names):
        if len(names) == 2:
            alphas = list(grid)
        else:
            alphas = [mixture_path(names, k, t) for t in grid]
        curves[name] = [round(evaluate_loss(model, corpus.val[name], a, block_size, n_batches, batch_size), 5) for a in alphas]
    return curves


def plot_alpha_curves(curves: dict, path: str | Path, title: str, specialist: dict | None = None,
                      mixture: dict | None = None, grid=ALPHA_GRID) -> Path:
    """Held-out loss per source along the dial, with specialist / ungated-mixture levels as dashed lines."""
    fig, ax = pyplot().subplots(figsize=(6, 4))
    for i, (name, ys) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(grid, ys, marker="o", color=color, label=f"{name} (gated)")
        if specialist and name in specialist:
            ax.axhline(specialist[name], color=color, linestyle="--", linewidth=1, label=f"{name} specialist")
        if mixture and name in mixture:
            ax.axhline(mixture[name], color=color, linestyle=":", linewidth=1, label=f"{name} ungated mix")
    xlabel = "α" if len(curves) == 2 else "t (centre → that source's vertex)"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("held-out loss (nats/char)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


@torch.no_grad()
def sample(model, tokenizer, alpha, n_samples: int, length: int, prompt: str = "\n", temperature: float = 1.0,
           seed: int = 0) -> torch.Tensor:
    """``n_samples`` continuations of ``prompt`` at dial ``alpha`` (ids, prompt included), through ``generate``."""
    model.eval()
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
    torch.manual_seed(seed)
    return model.generate(
        ids.repeat(n_samples, 1), alpha=alpha, do_sample=True, temperature=temperature, top_k=None, top_p=None,
        max_new_tokens=length, min_new_tokens=length, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=None,
    )


@torch.no_grad()
def mean_logprob(model, ids: torch.Tensor) -> torch.Tensor:
    """Per-row mean log-probability of ids[:, 1:] under ``model`` (one number per sample)."""
    model.eval()
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
    lp = -F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    return lp.mean(-1)


def source_score(samples: torch.Tensor, specialist_a, specialist_b) -> dict:
    """Likelihood-ratio score: mean over samples of log p_b(x) − log p_a(x) per character.

    Positive = reads like source b, negative = like source a. ``fraction_b`` is the share of samples
    the ratio assigns to b.
    """
    llr = mean_logprob(specialist_b, samples) - mean_logprob(specialist_a, samples)
    return {"score": round(llr.mean().item(), 5), "fraction_b": round((llr > 0).float().mean().item(), 4)}


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties), no scipy needed."""

    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = v.argsort()
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for val in np.unique(v):
            tie = v == val
            r[tie] = r[tie].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
