"""The random rotation at the heart of DRµGS: turn each vector by a random angle in a random direction.

For a vector ``x`` the rotated vector is ``cos(a) x + sin(a) |x| u`` where

* ``a ~ U[0, θ)`` is the angle (θ may differ per vector, e.g. per layer or masked to 0),
* ``u`` is a unit vector orthogonal to ``x`` with an *isotropic* direction: a standard Gaussian
  sample with its component along ``x`` removed. (The original drew ``u`` from a uniform [0, 1)
  cube, which points mostly along the all-ones diagonal; a Gaussian has no preferred direction.)

Because ``u ⟂ x`` the result has exactly the norm of ``x`` and makes exactly the angle ``a`` with it.
We still rescale to ``|x|`` at the end so rounding never lets the norm drift.

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
    xf = x.to(compute_dtype)
    norm = xf.norm(dim=-1, keepdim=True)
    unit = xf / norm.clamp_min(_TINY)

    noise = torch.randn(x.shape, generator=generator, dtype=compute_dtype, device=x.device)
    # Gram-Schmidt: keep only the part of the Gaussian sample orthogonal to x.
    noise = noise - (noise * unit).sum(dim=-1, keepdim=True) * unit
    direction = noise / noise.norm(dim=-1, keepdim=True).clamp_min(_TINY)

    theta = torch.as_tensor(theta, dtype=compute_dtype, device=x.device)
    angle = torch.rand(x.shape[:-1], generator=generator, dtype=compute_dtype, device=x.device) * theta
    angle = angle.unsqueeze(-1)
    rotated = torch.cos(angle) * xf + torch.sin(angle) * norm * direction
    # Exact norm: cos²+sin² = 1 only up to rounding.
    rotated = rotated * (norm / rotated.norm(dim=-1, keepdim=True).clamp_min(_TINY))
    return rotated.to(x.dtype)


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians between vectors along the last dim (for tests and vergence)."""
    a, b = a.double(), b.double()
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(_TINY)
    return torch.arccos(cos.clamp(-1.0, 1.0))
