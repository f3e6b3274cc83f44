"""The random rotation at the heart of DRµGS: turn each vector by a random angle in a random direction.

For a vector ``x`` the rotated vector is ``cos(a) x + sin(a) |x| u`` where

* ``a ~ U[0, θ)`` is the angle (θ may differ per vector, e.g. per layer or masked to 0),
* ``u`` is a unit vector orthogonal to ``x`` with an *isotropic* direction: a standard Gaussian
  sample with its component along ``x`` removed. (The original drew ``u`` from a uniform [0, 1)
  cube, which points mostly along the all-ones diagonal; a Gaussian has no preferred direction.)

Because ``u ⟂ x`` the result has the norm of ``x`` and makes exactly the angle ``a`` with it (up to
float rounding, ~1e-7 relative; the rescaling to ``|x|`` the first version ended with is gone).

Two functions: :func:`rotate` is the arithmetic, given the Gaussian sample and ``cos a``/``sin a``;
:func:`random_rotation` draws them and calls it. A dosed model draws every dosed layer's samples of
one forward in one call and hands each layer its slice (``DrugsState.rotate`` in injection.py): at
decode size, a (1, 1, 9, 64) input, every op costs its Python dispatch (3-5 µs), not its arithmetic,
so the count of ops is the cost. Measured 2026-12-02 on the idle 2-core machine, 1 thread:
``random_rotation`` 100 µs a call, ``rotate`` 56 µs (13 ops instead of 22: the draws, ``angle·θ``,
``sin``, ``cos`` and ``unsqueeze`` move into the one draw per forward, 131 µs for 18 layers, and
``n - c·x`` is one ``addcmul``). Tried and dropped: |x| and |perp| from ``torch.linalg.vector_norm``
(69 µs: the extra ``r·r`` and division cost more than the sums they save), dot products from
``torch.linalg.vecdot`` (91 µs; each needs an ``unsqueeze``), and earlier (under load) one Gram
product of ``stack(x, n)`` (203-258 µs).
"""

from __future__ import annotations

import torch

_TINY = 1e-12


def rotate(x: torch.Tensor, noise: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn every vector of ``x`` by the angle whose ``cos``/``sin`` are given, toward ``noise`` made orthogonal to it.

    Args:
        x: ``(..., d)`` vectors (any float dtype; the math runs in float32 or better).
        noise: ``(..., d)`` standard Gaussian samples in the compute dtype (the direction, before
            Gram-Schmidt), broadcastable to ``x``.
        cos, sin: ``(..., 1)`` cosine and sine of each vector's angle (``cos`` 1, ``sin`` 0 leaves it).

    Returns:
        A tensor like ``x``: same shape, dtype and per-vector norm.
    """
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    xf = x if x.dtype == compute_dtype else x.to(compute_dtype)
    square = (xf * xf).sum(-1, keepdim=True)  # |x|²
    # Gram-Schmidt: keep only the part of the Gaussian sample orthogonal to x.
    perp = torch.addcmul(noise, (noise * xf).sum(-1, keepdim=True) / square.clamp_min(_TINY), xf, value=-1)
    # sin(a)·|x|·perp/|perp|: perp ⟂ x, so the result has |x|'s norm up to rounding (no renormalisation:
    # it cost a third of the ops, and measured norms stay within 1e-6 relative, see tests).
    scale = sin * (square / (perp * perp).sum(-1, keepdim=True).clamp_min(_TINY)).sqrt()
    rotated = torch.addcmul(scale * perp, cos, xf)
    return rotated if rotated.dtype == x.dtype else rotated.to(x.dtype)


def random_rotation(
    x: torch.Tensor,
    theta: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate every vector along the last dim of ``x`` by an angle ~ U[0, θ) in an isotropic direction.

    Args:
        x: ``(..., d)`` vectors (any float dtype; the math runs in float32 or better).
        theta: largest angle in radians, a number or a tensor broadcastable to ``x.shape[:-1]``
            (0 leaves a vector unchanged, which is how masks are applied).
        generator: random source (``None``: torch's global RNG, so ``torch.manual_seed`` applies).

    Returns:
        A tensor like ``x``: same shape, dtype and per-vector norm.
    """
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    noise = torch.randn(x.shape, generator=generator, dtype=compute_dtype, device=x.device)
    angle = torch.rand((*x.shape[:-1], 1), generator=generator, dtype=compute_dtype, device=x.device)
    angle = angle * (theta if isinstance(theta, (int, float)) else theta.to(compute_dtype).unsqueeze(-1))
    return rotate(x, noise, angle.cos(), angle.sin())


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians between vectors along the last dim (for tests and vergence)."""
    a, b = a.double(), b.double()
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(_TINY)
    return torch.arccos(cos.clamp(-1.0, 1.0))
