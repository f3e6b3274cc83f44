"""Dose profiles: per-layer θ from a depth profile, and one clear error per bad input."""

from __future__ import annotations

import math

import pytest

from hf_steer.drugs import Dose, DosePoint, DrugsConfig, depth_profile
from hf_steer.errors import HfSteerError

BUMP = [{"depth": 0.2, "peakratio": 0.0}, {"depth": 0.4, "peakratio": 1.0}, {"depth": 0.6, "peakratio": 1.0},
        {"depth": 0.8, "peakratio": 0.0}]


def test_no_profile_is_flat_theta():
    assert Dose(0.1).layer_thetas(4) == [0.1] * 4
    assert Dose(0.0).layer_thetas(3) == [0.0] * 3


@pytest.mark.parametrize(
    "method, expected",
    [("ceil", [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]),
     ("floor", [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]),
     ("interpolate", [0, 0, 0, 0.5, 1, 1, 1, 0.5, 0, 0, 0])],
)
def test_profile_methods_between_points(method, expected):
    thetas = Dose(2.0, BUMP, method).layer_thetas(11)  # layer i at depth i/10
    assert thetas == pytest.approx([2.0 * e for e in expected])


def test_profile_outside_points_keeps_end_ratios():
    dose = Dose(1.0, [{"depth": 0.5, "peakratio": 0.3}, {"depth": 0.7, "peakratio": 0.6}])
    assert dose.ratio_at(0.0) == 0.3 and dose.ratio_at(1.0) == 0.6


def test_depth_profile_bump():
    points = depth_profile(0.4, 0.1, ramp=0.05)
    assert [p.depth for p in points] == pytest.approx([0.25, 0.3, 0.5, 0.55])
    assert [p.peakratio for p in points] == [0.0, 1.0, 1.0, 0.0]
    thetas = Dose(1.0, points, "interpolate").layer_thetas(21)
    assert thetas[7] == pytest.approx(1.0) and thetas[10] == pytest.approx(1.0)
    assert thetas[0] == 0.0 and thetas[20] == 0.0 and thetas[11] == 0.0
    assert Dose(1.0, points, "interpolate").ratio_at(0.525) == pytest.approx(0.5)


def test_config_from_flags():
    config = DrugsConfig.from_flags(["A=0.1", "h=0.05"], depth=0.5, spread=0.1)
    assert set(config.doses) == {"A", "H"}
    thetas = config.layer_thetas(11)
    assert thetas["A"][5] == pytest.approx(0.1) and thetas["A"][0] == 0.0
    assert thetas["Q"] == [0.0] * 11


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: Dose(-0.1), "theta -0.1 is not a number >= 0"),
        (lambda: Dose(math.nan), "theta nan is not a number >= 0"),
        (lambda: Dose(0.1, [{"depth": 1.5}]), "depth 1.5 is outside [0, 1]"),
        (lambda: Dose(0.1, [{"depth": 0.5, "peakratio": -1}]), "peakratio -1 is outside [0, 1]"),
        (lambda: Dose(0.1, [DosePoint(0.6), DosePoint(0.2)]), "not in ascending order"),
        (lambda: Dose(0.1, method="round"), "method 'round' is unknown"),
        (lambda: DrugsConfig(doses={"X": 0.1}), "injection type 'X' is unknown: use one of H, Q, K, V, A"),
        (lambda: DrugsConfig.from_flags(["A0.1"]), "dose 'A0.1' is malformed"),
        (lambda: depth_profile(1.2), "depth 1.2 is outside [0, 1]"),
        (lambda: DrugsConfig(sinks=-1), "sinks -1 is not a count from 0"),
        (lambda: DrugsConfig(doses={"A": {"theta": 0.1, "depth": 0.5}}), "unknown keys ['depth']"),
        (lambda: Dose(4.0), "theta 4.0 is above π"),
    ],
)
def test_bad_input_is_one_clear_line(make, fragment):
    with pytest.raises(HfSteerError) as info:
        make()
    message = str(info.value)
    assert fragment in message and "\n" not in message and ":" in message
