"""Doses: how hard (θ) and how deep (a depth profile) to rotate each kind of vector.

Five injection types, named by one letter each:

* ``H`` - the hidden state entering an attention block (one rotation per token),
* ``Q``, ``K``, ``V`` - queries, keys and values (one rotation per head and token),
* ``A`` - the attention heads' outputs, before the output projection (one rotation per head and token).

A :class:`Dose` is θ (the largest rotation angle, in radians) times a *peak ratio* in [0, 1] that a
depth profile gives each layer. A profile is a list of points ``{"depth": 0..1, "peakratio": 0..1}``
over the layer stack (depth 0 = first layer, 1 = last). Between two points the ratio is their
``"interpolate"`` (linear), ``"ceil"`` (the larger of the two) or ``"floor"`` (the smaller); outside
the first/last point it stays at that point's ratio. No profile means full θ at every layer.

Everything here is pure: a config validates once, then :meth:`Dose.layer_thetas` turns it into one
number per layer, computed once at injection time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import HfSteerError

TYPES = "HQKVA"
METHODS = ("ceil", "floor", "interpolate")
DEFAULT_SPREAD = 0.17  # half-width of the usual full-dose band: the middle third of the layers
MAX_COUNT = 1_000_000  # sinks and cold-shower periods: larger is a typo (and overflows int64 masks)


@dataclass(frozen=True)
class DosePoint:
    """One point of a depth profile: at ``depth`` (0..1 of the layer stack) inject ``peakratio`` × θ."""

    depth: float
    peakratio: float = 1.0

    def __post_init__(self):
        for name, value in (("depth", self.depth), ("peakratio", self.peakratio)):
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise HfSteerError(f"dose profile {name} {value!r} is outside [0, 1]: give a number from 0 to 1")


def _as_point(point: DosePoint | Mapping | Sequence) -> DosePoint:
    if isinstance(point, DosePoint):
        return point
    if isinstance(point, Mapping):
        unknown = set(point) - {"depth", "peakratio"}
        if unknown or "depth" not in point:
            raise HfSteerError(
                f"dose profile point {dict(point)!r} is malformed: use {{'depth': 0..1, 'peakratio': 0..1}}"
            )
        return DosePoint(point["depth"], point.get("peakratio", 1.0))
    if isinstance(point, Sequence) and len(point) == 2:
        return DosePoint(*point)
    raise HfSteerError(f"dose profile point {point!r} is malformed: use {{'depth': 0..1, 'peakratio': 0..1}}")


@dataclass
class Dose:
    """θ and a depth profile for one injection type.

    Args:
        theta: largest rotation angle in radians (angles are drawn from U[0, θ)); 0 turns the type off.
        profile: depth points (``DosePoint`` or ``{"depth", "peakratio"}`` dicts), depths ascending;
            ``None`` means every layer gets full θ.
        method: how a layer between two points gets its ratio: ``"ceil"``, ``"floor"`` or ``"interpolate"``.
    """

    theta: float = 0.0
    profile: Sequence[DosePoint] | None = None
    method: str = "ceil"

    def __post_init__(self):
        if isinstance(self.theta, bool) or not isinstance(self.theta, (int, float)) or math.isnan(self.theta) \
                or self.theta < 0:
            raise HfSteerError(f"dose theta {self.theta!r} is not a number >= 0: give an angle in radians, e.g. 0.1")
        if self.theta > math.pi:
            # Angles are drawn from U[0, θ): past π a rotation only comes back towards where it started.
            raise HfSteerError(f"dose theta {self.theta!r} is above π: give an angle from 0 to 3.14159 radians")
        if self.method not in METHODS:
            raise HfSteerError(f"dose method {self.method!r} is unknown: use one of {', '.join(METHODS)}")
        if self.profile is not None:
            points = [_as_point(p) for p in self.profile]
            if not points:
                raise HfSteerError("dose profile is empty: give at least one {'depth', 'peakratio'} point or None")
            depths = [p.depth for p in points]
            if any(b < a for a, b in zip(depths, depths[1:])):
                raise HfSteerError(f"dose profile depths {depths} are not in ascending order: sort the points by depth")
            self.profile = tuple(points)

    def ratio_at(self, depth: float) -> float:
        """Peak ratio of the profile at ``depth`` (0..1)."""
        if self.profile is None:
            return 1.0
        points = self.profile
        if depth <= points[0].depth:
            return points[0].peakratio
        if depth >= points[-1].depth:
            return points[-1].peakratio
        for left, right in zip(points, points[1:]):
            if left.depth <= depth <= right.depth:
                if depth == left.depth:
                    return left.peakratio
                if depth == right.depth:
                    return right.peakratio
                if self.method == "ceil":
                    return max(left.peakratio, right.peakratio)
                if self.method == "floor":
                    return min(left.peakratio, right.peakratio)
                t = (depth - left.depth) / (right.depth - left.depth)
                return left.peakratio + t * (right.peakratio - left.peakratio)
        raise AssertionError("unreachable: the profile covers every depth")

    def layer_thetas(self, num_layers: int) -> list[float]:
        """θ for each of ``num_layers`` layers; layer ``i`` sits at depth ``i / (num_layers - 1)``."""
        if self.theta == 0:
            return [0.0] * num_layers
        denominator = max(num_layers - 1, 1)
        return [self.theta * self.ratio_at(i / denominator) for i in range(num_layers)]


def depth_profile(depth: float, spread: float = 0.0, ramp: float = 0.05) -> list[DosePoint]:
    """The usual bump: ramp up over ``ramp`` just before ``depth - spread``, peak until ``depth + spread``, cool down.

    With ``method="ceil"`` the ramp layers get the full peak; with ``"interpolate"`` they climb linearly.
    """
    for name, value in (("depth", depth), ("spread", spread), ("ramp", ramp)):
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
            raise HfSteerError(f"dose {name} {value!r} is outside [0, 1]: give a fraction of the layer stack")
    low, high = max(depth - spread, 0.0), min(depth + spread, 1.0)
    points = []
    if low - ramp > 0:
        points.append(DosePoint(low - ramp, 0.0))
    points += [DosePoint(low, 1.0), DosePoint(high, 1.0)]
    if high + ramp < 1:
        points.append(DosePoint(high + ramp, 0.0))
    return points


@dataclass
class DrugsConfig:
    """Everything :func:`~hf_steer.drugs.injection.inject` needs.

    Args:
        doses: one :class:`Dose` per type letter (``H``, ``Q``, ``K``, ``V``, ``A``); missing types are off.
        sinks: the first ``sinks`` positions of every sequence are never dosed (attention sinks carry
            no content but anchor attention; perturbing them derails everything).
        dose_prompt: when generating, dose the prompt too (default: read it sober, dose only from its
            last position, which predicts the first new token).
        persist_kv: write the noisy K/V of each new position into the KV cache (default: the noise
            touches the current forward only and the cache keeps the sober K/V).
    """

    doses: dict[str, Dose] = field(default_factory=dict, metadata={
        "help": "one Dose (or θ) per type letter H, Q, K, V, A; missing types are off"})
    sinks: int = field(default=4, metadata={"help": "first positions of every sequence never dosed"})
    dose_prompt: bool = field(default=False, metadata={
        "help": "dose the prompt too (off: the prompt is read sober, noise starts at its last position)"})
    persist_kv: bool = field(default=False, metadata={
        "help": "keep the K/V noise of each new position in the cache (off: it touches one step only)"})

    def __post_init__(self):
        doses = {}
        for letter, dose in dict(self.doses).items():
            key = str(letter).upper()
            if key not in TYPES or len(key) != 1:
                raise HfSteerError(f"injection type {letter!r} is unknown: use one of {', '.join(TYPES)}")
            if isinstance(dose, (int, float)):
                dose = Dose(theta=dose)
            elif isinstance(dose, Mapping):
                unknown = set(dose) - {"theta", "profile", "method"}
                if unknown:
                    raise HfSteerError(f"dose for type {key} has unknown keys {sorted(unknown)}: use theta, profile, method")
                dose = Dose(**dose)
            elif not isinstance(dose, Dose):
                raise HfSteerError(f"dose for type {key} is a {type(dose).__name__}: give a Dose or a θ number")
            doses[key] = dose
        self.doses = doses
        if isinstance(self.sinks, bool) or not isinstance(self.sinks, int) or not 0 <= self.sinks <= MAX_COUNT:
            raise HfSteerError(f"sinks {self.sinks!r} is not a count from 0 to {MAX_COUNT}: give how many first "
                               "tokens stay sober")

    def dose(self, letter: str) -> Dose:
        return self.doses.get(letter, Dose())

    def layer_thetas(self, num_layers: int) -> dict[str, list[float]]:
        """Per type, θ of every layer (resolved once at injection)."""
        return {letter: self.dose(letter).layer_thetas(num_layers) for letter in TYPES}

    @classmethod
    def from_dict(cls, drugs: Mapping) -> DrugsConfig:
        """Build from one flat mapping, the shape ``generate(..., drugs={...})`` takes.

        Type letters map to θ (a number, sharing the ``depth``/``spread``/``method`` bump) or to a full
        dose ``{"theta", "profile", "method"}``; ``sinks``, ``dose_prompt`` and ``persist_kv`` are the
        config's own fields::

            DrugsConfig.from_dict({"A": 0.3, "Q": 0.8, "depth": 0.5, "spread": 0.17})
        """
        if isinstance(drugs, DrugsConfig):
            return drugs
        if not isinstance(drugs, Mapping):
            raise HfSteerError(f"drugs is a {type(drugs).__name__}: give a dict such as {{'A': 0.3, 'depth': 0.5}}")
        bump_keys, config_keys = ("depth", "spread", "method"), ("sinks", "dose_prompt", "persist_kv")
        unknown = [k for k in drugs if str(k).upper() not in TYPES and k not in bump_keys + config_keys]
        if unknown:
            raise HfSteerError(f"drugs has unknown keys {unknown}: use type letters {', '.join(TYPES)} and "
                               f"{', '.join(bump_keys + config_keys)}")
        depth = drugs.get("depth")
        profile = depth_profile(depth, drugs.get("spread", DEFAULT_SPREAD)) if depth is not None else None
        method = drugs.get("method", "ceil")
        doses = {}
        for key, value in drugs.items():
            if str(key).upper() in TYPES:
                doses[key] = value if isinstance(value, (Dose, Mapping)) else Dose(value, profile, method)
        return cls(doses=doses, **{k: drugs[k] for k in config_keys if k in drugs})

    @classmethod
    def from_flags(
        cls,
        doses: Iterable[str] | Mapping[str, float],
        depth: float | None = None,
        spread: float = 0.0,
        method: str = "ceil",
        **kwargs,
    ) -> DrugsConfig:
        """Build from CLI-style ``["A=0.1", "H=0.05"]`` and one shared ``depth``/``spread`` bump."""
        if isinstance(doses, Mapping):
            pairs = dict(doses)
        else:
            pairs = {}
            for text in doses:
                letter, sep, value = str(text).partition("=")
                try:
                    theta = float(value)
                except ValueError:
                    theta = None
                if not sep or theta is None:
                    raise HfSteerError(f"dose {text!r} is malformed: write TYPE=THETA, e.g. A=0.1")
                pairs[letter.strip()] = theta
        profile = depth_profile(depth, spread) if depth is not None else None
        return cls(doses={k: Dose(theta=v, profile=profile, method=method) for k, v in pairs.items()}, **kwargs)
