"""The dial α as a user gives it -> one mixture per row, checked with one-line errors (pure, tested on tensors).

Accepted, as abcGPT's own ``forward(alpha=)`` accepts them:

* two sources: a number a in [0, 1] (0 = the first source, 1 = the second), or one per batch row, shape (B,);
* N sources: a mixture of N weights in [0, 1] summing to 1, shape (N,), or one per row, shape (B, N);
* any N: ``{"shakespeare": 0.7, "tinystories": 0.3}`` or ``"shakespeare=0.7,tinystories=0.3"`` (unnamed sources
  get 0), parsed by abcGPT's :func:`~hf_steer.abcgpt.generation.parse_mix`;
* ``None``: the centre (equal parts of every source).

With two sources a 1-D list is one α per row (as in abcGPT); write a two-source mixture as a dict or a
(1, 2) nested list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ...errors import HfSteerError


def _short(t: torch.Tensor) -> str:
    values = [round(v, 4) if math.isfinite(v) else v for v in t.flatten().tolist()[:6]]
    return str(values[0] if t.ndim == 0 else values)


def alpha_to_mixture(alpha, source_names: Sequence[str]) -> torch.Tensor:
    """``alpha`` -> float32 CPU tensor (G, N): one mixture per row (G = 1 for one dial for every row)."""
    names = list(source_names)
    n = len(names)
    if alpha is None:
        return torch.full((1, n), 1.0 / n)
    if isinstance(alpha, (str, Mapping)):
        from ..generation import parse_mix

        try:
            weights = parse_mix(alpha, names)
        except HfSteerError as e:  # parse_mix speaks of --mix (its CLI flag); here the input is alpha
            raise HfSteerError(str(e).replace("--mix", "alpha mixture")) from None
        return torch.tensor([weights], dtype=torch.float32)
    try:
        a = torch.as_tensor(alpha, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise HfSteerError(
            f"alpha {alpha!r} is not a number, a list of numbers or a mixture: pass e.g. 0.3 or {{'{names[-1]}': 0.3}}"
        ) from None
    if not torch.isfinite(a).all():
        raise HfSteerError(f"alpha contains NaN or inf ({_short(a)}): pass numbers in [0, 1]")
    if n == 2 and a.ndim <= 1:
        if a.ndim == 1 and a.shape[0] == 0:
            raise HfSteerError("alpha is an empty list: pass a number in [0, 1] or one per batch row")
        if (a < 0).any() or (a > 1).any():
            raise HfSteerError(f"alpha is {_short(a)}: it must lie in [0, 1] (0 = {names[0]}, 1 = {names[1]})")
        a = a.reshape(-1, 1)
        return torch.cat([1.0 - a, a], dim=1)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != n or a.shape[0] == 0:
        want = "a number, one per row (B,), or a mixture (1, 2)" if n == 2 else f"a mixture of {n} weights"
        raise HfSteerError(
            f"alpha has shape {tuple(a.shape)}: pass {want} over ({', '.join(names)}), shape ({n},) or (B, {n})"
        )
    if (a < 0).any() or (a > 1).any():
        raise HfSteerError(f"alpha mixture {_short(a)} has weights outside [0, 1]: use non-negative weights summing to 1")
    if ((a.sum(-1) - 1.0).abs() > 1e-4).any():
        raise HfSteerError(f"alpha mixture {_short(a)} does not sum to 1: divide each weight by their sum")
    return a.contiguous()


def rows_for_batch(gate: torch.Tensor, batch: int) -> torch.Tensor:
    """Gates for ``batch`` rows from G rows: G=1 broadcasts, G=batch is used as is, and a batch that is a multiple
    of G (``generate`` with ``num_return_sequences`` or beams repeats each row) repeats each row's gate."""
    rows = gate.shape[0]
    if rows == 1 or rows == batch:
        return gate
    if batch % rows:
        raise HfSteerError(
            f"alpha gives {rows} rows but the batch has {batch}: pass one alpha, or one per batch row"
        )
    return gate.repeat_interleave(batch // rows, dim=0)
