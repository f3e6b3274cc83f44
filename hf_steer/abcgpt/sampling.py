"""How training draws the dial and the source of each row (numpy only, no model).

Each row draws its own mixture α ~ Dirichlet(c, …, c) (c = ½ by default, the same law as the units'
positions m) and then its source ~ Categorical(α). With two sources that is α ~ Beta(½, ½) and
source ~ Bernoulli(α), so Shakespeare rows mostly come with α near 1.
"""

from __future__ import annotations

import numpy as np


def sample_mixtures(rng: np.random.Generator, n_rows: int, n_sources: int, concentration: float = 0.5) -> np.ndarray:
    """(n_rows, N) mixtures ~ Dirichlet(concentration); for N=2, column 1 is α ~ Beta(c, c)."""
    return rng.dirichlet([concentration] * n_sources, size=n_rows)


def sample_sources(rng: np.random.Generator, mixtures: np.ndarray) -> np.ndarray:
    """One source index per row ~ Categorical(row's mixture); for N=2, Bernoulli(α)."""
    cdf = np.cumsum(mixtures, axis=1)
    u = rng.random((mixtures.shape[0], 1))
    return np.minimum((u > cdf).sum(axis=1), mixtures.shape[1] - 1)


__all__ = ["sample_mixtures", "sample_sources"]
