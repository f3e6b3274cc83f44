"""The source dial's math on plain tensors: unit positions m, the spotlight gate, and α → mixture.

Every gated unit (a residual channel, an MLP hidden unit, an attention head) owns a frozen source
position m: a point on the simplex over the N training sources. The dial α is a point on the same
simplex (a plain number in [0, 1] when there are two sources), and a gate in [floor, 1] lets through
the units whose m is near α and silences the far ones:

    d(α, m)     = ½·Σ_k |α_k − m_k|          total variation distance between two mixtures
    d_max(m)    = 1 − min_k m_k              the farthest any α can be from m (reached at a vertex)
    cos2:       gate = cos²(π/2 · min(d / d_max, 1))
    gaussian:   gate = exp(−(d / d_max)² / (2·width²))
    with a floor: gate = floor + (1 − floor)·gate

With two sources, α = (1−a, a) and m = (1−μ, μ) give d = |a − μ| and d_max = max(μ, 1 − μ): the scalar
spotlight cos²(π/2·min(|a−μ| / max(μ, 1−μ), 1)). Positions are m ~ Dirichlet(½, …, ½), the U-shaped law;
with two sources μ = sin²(πu/2) for u ~ U(0, 1).

Imports only torch: ``modeling_abcgpt.py`` imports it relatively, so ``save_pretrained`` copies it beside
the weights as remote code, and other code (a PEFT adapter with source-gated units) can reuse it.
"""

from __future__ import annotations

import math

import torch

GATE_FUNCTIONS = ("cos2", "gaussian")


def draw_source_positions(
    shape: tuple[int, ...], n_sources: int, generator: torch.Generator, balanced: bool = False
) -> torch.Tensor:
    """Source positions m ~ Dirichlet(½, …, ½), shape ``(*shape, n_sources)``.

    Gamma(½) is Z²/2 for a standard normal Z, so normalised squared Gaussians are a Dirichlet(½) draw
    using only a seeded ``randn``. For two sources m[..., 1] = sin²θ with θ uniform on [0, π/2], which
    is exactly sin²(πu/2), u ~ U(0, 1): most units sit near a source, a few in between.

    ``balanced``: along the last of ``shape`` (the units of one layer), unit i leans to source i mod N: the
    draw's largest weight is swapped onto that source. Dirichlet(½, …, ½) is symmetric, so every unit still
    follows the same law; only the luck of how many units lean to each source is gone (16 independent draws
    put 3 to 13 of them on one side of ½; balanced, exactly 8).
    """
    z = torch.randn(*shape, n_sources, generator=generator, dtype=torch.float64, device="cpu")
    sq = z.square().clamp_min(1e-30)
    m = sq / sq.sum(-1, keepdim=True)
    if balanced and len(shape) > 0:
        target = (torch.arange(shape[-1]) % n_sources).expand(*shape)[..., None]
        largest = m.argmax(-1, keepdim=True)
        at_target, at_largest = m.gather(-1, target), m.gather(-1, largest)
        m = m.scatter(-1, largest, at_target).scatter(-1, target, at_largest)
    return m.float()


def gate_values(
    mixture: torch.Tensor, m: torch.Tensor, function: str = "cos2", width: float = 0.35, floor: float = 0.0
) -> torch.Tensor:
    """Gate of every unit for every row: ``mixture`` (B, N), ``m`` (U, N) -> (B, U) in [floor, 1]."""
    distance = 0.5 * (mixture[:, None, :] - m[None, :, :]).abs().sum(-1)
    d_max = 1.0 - m.min(-1).values  # >= 1 - 1/N > 0
    r = (distance / d_max).clamp(max=1.0)
    if function == "cos2":
        gate = torch.cos(0.5 * math.pi * r).square()
    else:
        gate = torch.exp(-r.square() / (2.0 * width * width))
    return gate if floor == 0.0 else floor + (1.0 - floor) * gate


def _short(t: torch.Tensor) -> str:
    values = [round(v, 4) for v in t.flatten().tolist()[:6]]
    return str(values[0] if t.ndim == 0 else values)


def alpha_to_mixture(
    alpha, source_names: list[str], batch_size: int, device=None, error: type[Exception] = ValueError
) -> torch.Tensor:
    """Check ``alpha`` and return one mixture per row, shape (batch_size, N), float32 on ``device``.

    Two sources: a number a in [0, 1] (0 = first source, 1 = second), or one per row, shape (B,).
    N sources: a mixture of N weights summing to 1, shape (N,), or one per row, shape (B, N).
    ``None`` means the centre (equal parts of every source). A bad α raises ``error`` with one line.
    """
    n, names = len(source_names), source_names
    if alpha is None:
        return torch.full((batch_size, n), 1.0 / n, device=device)
    a = torch.as_tensor(alpha, dtype=torch.float32).to(device)
    if not torch.isfinite(a).all():
        raise error(f"alpha contains NaN or inf ({_short(a)}): pass numbers in [0, 1]")
    if n == 2 and a.ndim <= 1:
        if a.ndim == 1 and a.shape[0] not in (1, batch_size):
            raise error(
                f"alpha has shape {tuple(a.shape)} but the batch has {batch_size} rows: pass one number or one per row"
            )
        if (a < 0).any() or (a > 1).any():
            raise error(f"alpha is {_short(a)}: it must lie in [0, 1] (0 = {names[0]}, 1 = {names[1]})")
        a = a.reshape(-1, 1).expand(batch_size, 1)
        return torch.cat([1.0 - a, a], dim=1)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != n or a.shape[0] not in (1, batch_size):
        want = "a number or one per row, shape (B,), or a mixture of 2" if n == 2 else f"a mixture of {n} weights"
        raise error(
            f"alpha has shape {tuple(a.shape)}: pass {want} ({', '.join(names)}), shape ({n},) or ({batch_size}, {n})"
        )
    if (a < 0).any() or (a > 1).any():
        raise error(f"alpha mixture {_short(a)} has weights outside [0, 1]: use non-negative weights summing to 1")
    if ((a.sum(-1) - 1.0).abs() > 1e-4).any():
        raise error(f"alpha mixture {_short(a)} does not sum to 1: divide each weight by their sum")
    return a.expand(batch_size, n)


__all__ = ["GATE_FUNCTIONS", "alpha_to_mixture", "draw_source_positions", "gate_values"]
