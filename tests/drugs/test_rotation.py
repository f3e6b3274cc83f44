"""Properties of the random rotation: exact norm, angle below θ, isotropic direction."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_steer.drugs.rotation import angle_between, random_rotation

vectors = st.integers(2, 64).flatmap(
    lambda d: st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=d, max_size=d)
).filter(lambda v: math.sqrt(sum(x * x for x in v)) > 1e-3)


@settings(max_examples=60, deadline=None)
@given(v=vectors, theta=st.floats(0.0, math.pi / 2), seed=st.integers(0, 2**31))
def test_norm_preserved_and_angle_bounded(v, theta, seed):
    x = torch.tensor(v, dtype=torch.float32).repeat(8, 1)
    y = random_rotation(x, theta, generator=torch.Generator().manual_seed(seed))
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=1e-6)
    assert (angle_between(x, y) <= theta + 2e-3).all()


def test_angle_is_uniform_below_theta():
    x = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    angles = angle_between(x, random_rotation(x, 0.4, generator=torch.Generator().manual_seed(1)))
    assert angles.max() < 0.4 + 1e-4
    # U[0, θ): mean θ/2, variance θ²/12
    assert abs(angles.mean().item() - 0.2) < 0.005
    assert abs(angles.var().item() - 0.4**2 / 12) < 0.001


def test_direction_is_isotropic_in_the_orthogonal_complement():
    d, n = 8, 40000
    x = torch.zeros(n, d, dtype=torch.float64)
    x[:, 0] = 3.0  # one fixed vector: every direction orthogonal to it should be equally likely
    y = random_rotation(x, 1.0, generator=torch.Generator().manual_seed(2))
    step = y - x * (y * x).sum(-1, keepdim=True) / 9.0
    unit = step / step.norm(dim=-1, keepdim=True)
    assert unit[:, 0].abs().max() < 1e-6  # orthogonal to x
    assert unit[:, 1:].mean(0).abs().max() < 0.02  # no preferred direction (uniform [0,1) noise fails this)
    cov = unit[:, 1:].T @ unit[:, 1:] / n
    torch.testing.assert_close(cov, torch.eye(d - 1, dtype=torch.float64) / (d - 1), atol=0.01, rtol=0)


def test_zero_theta_and_zero_vector_are_untouched():
    x = torch.randn(5, 6)
    torch.testing.assert_close(random_rotation(x, 0.0), x)
    zero = torch.zeros(3, 6)
    assert torch.equal(random_rotation(zero, 0.5), zero)


def test_per_vector_theta_and_low_precision():
    x = torch.randn(4, 32, dtype=torch.bfloat16)
    theta = torch.tensor([0.0, 0.1, 0.0, 0.1])
    y = random_rotation(x, theta, generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.bfloat16
    assert torch.equal(y[0], x[0]) and torch.equal(y[2], x[2])
    assert not torch.equal(y[1], x[1])


def test_same_generator_seed_same_rotation():
    x = torch.randn(3, 10)
    a = random_rotation(x, 0.3, generator=torch.Generator().manual_seed(7))
    b = random_rotation(x, 0.3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
