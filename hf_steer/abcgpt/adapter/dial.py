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

from collections.abc import Mapping, Sequence

import torch

from ...errors import HfSteerError
from .. import gates


def alpha_to_mixture(alpha, source_names: Sequence[str]) -> torch.Tensor:
    """``alpha`` -> float32 CPU tensor (G, N): one mixture per row (G = 1 for one dial for every row).

    Numbers and tensors go through abcGPT's own check (:func:`hf_steer.abcgpt.gates.alpha_to_mixture`) with
    as many rows as the dial gives; names (a dict or ``"name=w,..."``) through :func:`~hf_steer.abcgpt.generation.parse_mix`.
    """
    names = list(source_names)
    if isinstance(alpha, (str, Mapping)):
        from ..generation import parse_mix

        try:
            weights = parse_mix(alpha, names)
        except HfSteerError as e:  # parse_mix speaks of --mix (its CLI flag); here the input is alpha
            raise HfSteerError(str(e).replace("--mix", "alpha mixture")) from None
        return torch.tensor([weights], dtype=torch.float32)
    if alpha is not None:
        try:
            alpha = torch.as_tensor(alpha, dtype=torch.float32).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise HfSteerError(
                f"alpha {alpha!r} is not a number, a list of numbers or a mixture: pass e.g. 0.3 or {{'{names[-1]}': 0.3}}"
            ) from None
        if alpha.numel() == 0:
            raise HfSteerError("alpha is an empty list: pass a number in [0, 1] or one per batch row")
    rows = 1
    if alpha is not None and ((len(names) == 2 and alpha.ndim == 1) or alpha.ndim == 2):
        rows = alpha.shape[0]
    return gates.alpha_to_mixture(alpha, names, rows, device="cpu", error=HfSteerError).contiguous()


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
