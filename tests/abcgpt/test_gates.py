"""The gate math on plain tensors: the N-source formula reduces to the scalar spotlight at N=2."""

import math

import pytest
import torch

from hf_steer.abcgpt.gates import draw_source_positions, gate_values


def scalar_spotlight(a: float, mu: float) -> float:
    return math.cos(math.pi / 2 * min(abs(a - mu) / max(mu, 1 - mu), 1.0)) ** 2


def test_two_sources_reduce_to_the_scalar_cos2_spotlight():
    mus = torch.tensor([0.0, 0.03, 0.2, 0.5, 0.77, 1.0])
    m = torch.stack([1 - mus, mus], dim=1)
    for a in [0.0, 0.1, 0.3, 0.5, 0.9, 1.0]:
        got = gate_values(torch.tensor([[1 - a, a]]), m)[0]
        want = torch.tensor([scalar_spotlight(a, mu.item()) for mu in mus])
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_gate_is_one_at_its_own_position_and_zero_at_the_far_vertex():
    m = draw_source_positions((50,), 3, torch.Generator().manual_seed(0))
    assert torch.allclose(gate_values(m, m).diagonal(), torch.ones(50))
    # A unit sitting at vertex 0 is silenced at every other vertex.
    corner = torch.tensor([[1.0, 0.0, 0.0]])
    g = gate_values(torch.eye(3), corner)[:, 0]
    torch.testing.assert_close(g, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_gaussian_gate_is_smooth_and_wider_with_width():
    m = torch.tensor([[1.0, 0.0]])
    alpha = torch.tensor([[0.6, 0.4]])
    narrow = gate_values(alpha, m, "gaussian", 0.2).item()
    wide = gate_values(alpha, m, "gaussian", 0.6).item()
    assert 0 < narrow < wide < 1
    assert math.isclose(narrow, math.exp(-(0.4**2) / (2 * 0.2**2)), rel_tol=1e-5)


def test_positions_are_u_shaped_on_the_simplex_and_seeded():
    g = torch.Generator().manual_seed(1)
    m = draw_source_positions((20000,), 2, g)
    assert torch.allclose(m.sum(-1), torch.ones(20000))
    mu = m[:, 1]
    # arcsine law (= sin²(πu/2)): P(mu < 0.1) = 2/π·asin(√0.1) ≈ 0.205, the middle fifth holds only ≈ 0.128
    assert abs((mu < 0.1).float().mean().item() - 2 / math.pi * math.asin(math.sqrt(0.1))) < 0.015
    assert ((mu > 0.4) & (mu < 0.6)).float().mean().item() < 0.15
    again = draw_source_positions((20000,), 2, torch.Generator().manual_seed(1))
    assert torch.equal(m, again)


def test_balanced_positions_split_every_layer_evenly_and_keep_the_law():
    # 16 units a layer, 2000 layers: each layer has exactly 8 units on each side of ½ ...
    m = draw_source_positions((2000, 16), 2, torch.Generator().manual_seed(3), balanced=True)
    assert torch.allclose(m.sum(-1), torch.ones(2000, 16))
    assert ((m[..., 1] < 0.5).sum(-1) == 8).all()
    # ... while each unit still follows the arcsine law of m[..., 1] (the law is symmetric about ½)
    mu = m[..., 1].flatten()
    assert abs((mu < 0.1).float().mean().item() - 2 / math.pi * math.asin(math.sqrt(0.1))) < 0.015
    unbalanced = draw_source_positions((2000, 16), 2, torch.Generator().manual_seed(3))
    assert (unbalanced[..., 1] < 0.5).sum(-1).unique().numel() > 5  # independent draws: 3..13 of 16 on a side
    # three sources: unit i leans to source i mod 3
    m3 = draw_source_positions((10, 9), 3, torch.Generator().manual_seed(0), balanced=True)
    assert torch.equal(m3.argmax(-1), (torch.arange(9) % 3).expand(10, 9))


def test_gate_floor_lifts_every_gate_affinely():
    m = draw_source_positions((40,), 2, torch.Generator().manual_seed(1))
    mix = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    plain, floored = gate_values(mix, m), gate_values(mix, m, floor=0.2)
    torch.testing.assert_close(floored, 0.2 + 0.8 * plain)
    assert floored.min() >= 0.2 and floored.max() <= 1.0


def test_gate_floor_is_saved_in_the_config_and_checked():
    from hf_steer.abcgpt import AbcGPTConfig

    assert AbcGPTConfig(gate_floor=0.2).to_dict()["gate_floor"] == 0.2
    with pytest.raises(ValueError, match="gate_floor is 1.0"):
        AbcGPTConfig(gate_floor=1.0)


def test_gate_math_and_samplers_import_on_their_own():
    """gates.py (torch only) and sampling.py (numpy only) load without transformers, for reuse outside the model."""
    import subprocess
    import sys

    code = ("import sys, hf_steer.abcgpt.gates, hf_steer.abcgpt.sampling; "
            "print(sorted(m for m in ('transformers', 'accelerate', 'hf_steer.abcgpt.modeling_abcgpt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_alpha_to_mixture_checks_the_dial_with_the_callers_error_type():
    from hf_steer.abcgpt.gates import alpha_to_mixture

    torch.testing.assert_close(alpha_to_mixture(0.3, ["a", "b"], 2), torch.tensor([[0.7, 0.3], [0.7, 0.3]]))
    torch.testing.assert_close(alpha_to_mixture(None, ["a", "b", "c"], 1), torch.full((1, 3), 1 / 3))

    class DialError(ValueError):
        pass

    with pytest.raises(DialError, match=r"alpha is 2.0: it must lie in \[0, 1\] \(0 = a, 1 = b\)"):
        alpha_to_mixture(2.0, ["a", "b"], 1, error=DialError)
