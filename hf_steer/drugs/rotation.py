"""The random rotation at the heart of DRµGS: turn each vector by a random angle in a random direction.

For a vector ``x`` the rotated vector is ``cos(a) x + sin(a) |x| u`` where

* ``a ~ U[0, θ)`` is the angle (θ may differ per vector, e.g. per layer or masked to 0),
* ``u`` is a unit vector orthogonal to ``x`` with an *isotropic* direction: a standard Gaussian
  sample with its component along ``x`` removed. (The original drew ``u`` from a uniform [0, 1)
  cube, which points mostly along the all-ones diagonal; a Gaussian has no preferred direction.)

Because ``u ⟂ x`` the result has the norm of ``x`` and makes exactly the angle ``a`` with it (up to
float rounding, ~1e-7 relative; the rescaling to ``|x|`` the first version ended with is gone: about
18 small ops instead of 27 per call, which is most of what a dose costs per token, see docs/drugs.md).
Tried and dropped (2026-12-02, 1 thread, a (1, 1, 9, 64) input, machine under load): rewriting the
result as ``(cos a - k c) x + k n`` with the dot products from ``torch.linalg.vecdot`` (129-179 µs a call
against this version's 125-161 µs), or from one Gram product of ``stack(x, n)`` (203-258 µs). At this
size every op costs its dispatch, not its arithmetic, and neither form has fewer ops.

Pure tensor code, no state: the caller passes the ``torch.Generator`` that makes runs repeatable.
"""

from __future__ import annotations

import torch

_TINY = 1e-12


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
    xf = x if x.dtype == compute_dtype else x.to(compute_dtype)
    square = (xf * xf).sum(-1, keepdim=True)  # |x|²

    noise = torch.randn(x.shape, generator=generator, dtype=compute_dtype, device=x.device)
    # Gram-Schmidt: keep only the part of the Gaussian sample orthogonal to x.
    perp = noise - (noise * xf).sum(-1, keepdim=True) / square.clamp_min(_TINY) * xf

    angle = torch.rand(x.shape[:-1], generator=generator, dtype=compute_dtype, device=x.device)
    angle = (angle * (theta if isinstance(theta, (int, float)) else theta.to(compute_dtype))).unsqueeze(-1)
    # sin(a)·|x|·perp/|perp|: perp ⟂ x, so the result has |x|'s norm up to rounding (no renormalisation:
    # it cost a third of the ops, and measured norms stay within 1e-6 relative, see tests).
    scale = torch.sin(angle) * (square / (perp * perp).sum(-1, keepdim=True).clamp_min(_TINY)).sqrt()
    rotated = torch.addcmul(scale * perp, torch.cos(angle), xf)
    return rotated if rotated.dtype == x.dtype else rotated.to(x.dtype)


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians between vectors along the last dim (for tests and vergence)."""
    a, b = a.double(), b.double()
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(_TINY)
    return torch.arccos(cos.clamp(-1.0, 1.0))
