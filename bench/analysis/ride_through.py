"""Threshold, band and curve checks for ride-through and tolerance-band assertions.

Crossing times are interpolated linearly between samples, so durations read from
per-cycle RMS series are not quantised to the cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "BelowThreshold",
    "BandViolation",
    "FollowsReferenceResult",
    "RideThroughRegion",
    "RideThroughCurve",
    "time_below",
    "first_time_reaching",
    "current_ceased",
    "mandatory_region_duration",
    "stays_within_band",
    "follows_reference",
]


@dataclass(frozen=True)
class BelowThreshold:
    first_crossing_s: float | None  # when y first goes below the threshold (None: never)
    longest_duration_s: float  # longest continuous time below
    longest_start_s: float | None
    total_duration_s: float  # all time below, summed


@dataclass(frozen=True)
class BandViolation:
    t_s: float
    value: float
    bound: float  # the lower or upper bound that was crossed
    side: str  # "below" | "above"


@dataclass(frozen=True)
class FollowsReferenceResult:
    passed: bool
    worst_deviation: float  # signed y - reference at the worst point
    worst_t_s: float
    allowed_at_worst: float  # tolerance at that point
    worst_ratio: float  # |deviation| / allowed at the worst point (> 1 means violated)
    first_violation_t_s: float | None
    max_abs_deviation: float


@dataclass(frozen=True)
class RideThroughRegion:
    """Operation is mandatory for ``duration_s`` when v_low_pu <= V <= v_high_pu.

    With ``duration_at_high_s`` set, the duration varies linearly from ``duration_s`` at
    v_low_pu to ``duration_at_high_s`` at v_high_pu. Curves quoted as "3 s at 0.65 rising
    to 5 s at 0.88" are of this kind.
    """

    v_low_pu: float
    v_high_pu: float
    duration_s: float
    duration_at_high_s: float | None = None

    def duration_at(self, v_pu: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mandatory duration at each voltage; NaN outside this region."""
        inside = (v_pu >= self.v_low_pu) & (v_pu <= self.v_high_pu)
        if self.duration_at_high_s is None:
            d = np.full(v_pu.shape, float(self.duration_s))
        else:
            span = self.v_high_pu - self.v_low_pu
            frac = (v_pu - self.v_low_pu) / span if span > 0 else np.zeros_like(v_pu)
            d = self.duration_s + frac * (self.duration_at_high_s - self.duration_s)
        return np.where(inside, d, np.nan)


@dataclass(frozen=True)
class RideThroughCurve:
    """Mandatory-operation regions of a ride-through curve (e.g. one IEEE 1547 category)."""

    regions: tuple[RideThroughRegion, ...]

    @classmethod
    def from_points(cls, points: Iterable[Sequence[float] | RideThroughRegion]) -> "RideThroughCurve":
        """From [(v_low_pu, v_high_pu, duration_s), ...]; a 4th value gives the duration at v_high_pu."""
        regions = []
        for p in points:
            if isinstance(p, RideThroughRegion):
                regions.append(p)
            elif len(p) in (3, 4):
                regions.append(RideThroughRegion(*(float(v) for v in p)))
            else:
                raise ValueError(f"curve point must be (v_low_pu, v_high_pu, duration_s[, duration_at_high_s]), got {p!r}")
        for r in regions:
            if r.v_low_pu > r.v_high_pu or r.duration_s < 0:
                raise ValueError(f"invalid ride-through region {r}")
        return cls(tuple(regions))

    def mandatory_duration_s(self, v_pu: ArrayLike) -> float | NDArray[np.float64]:
        """Duration of mandatory operation at the residual voltage(s) v_pu, or 0 outside every region.

        Bounds are inclusive. A voltage on a shared boundary gets the longer of the two
        durations, the stricter reading of a curve.
        """
        v = np.asarray(v_pu, dtype=np.float64)
        if not self.regions:
            durations = np.zeros(v.shape)
        else:
            stacked = np.stack([r.duration_at(v) for r in self.regions])  # NaN outside a region
            durations = np.where(np.isnan(stacked), 0.0, stacked).max(axis=0)
        return float(durations) if durations.ndim == 0 else durations


def mandatory_region_duration(
    curve_points: RideThroughCurve | Iterable[Sequence[float] | RideThroughRegion],
    v_pu: ArrayLike,
) -> float | NDArray[np.float64]:
    """How long operation is mandatory at residual voltage v_pu; 0.0 outside the curve's regions.

    ``curve_points`` is a :class:`RideThroughCurve` or [(v_low_pu, v_high_pu, duration_s), ...],
    e.g. IEEE 1547 Cat III: [(0.88, 1.10, inf), (0.70, 0.88, 20.0), (0.50, 0.70, 10.0)].
    """
    curve = curve_points if isinstance(curve_points, RideThroughCurve) else RideThroughCurve.from_points(curve_points)
    return curve.mandatory_duration_s(v_pu)


def _check_series(t_s: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t = np.asarray(t_s, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or t.shape != yv.shape or t.size < 1:
        raise ValueError("need matching non-empty 1-D time and value arrays")
    if np.any(np.diff(t) <= 0):
        raise ValueError("time stamps must increase")
    return t, yv


def _crossing_times(
    t: NDArray[np.float64], y: NDArray[np.float64], level: float, before_idx: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Interpolated time at which y crosses ``level`` between samples i-1 and i (i = before_idx)."""
    i = before_idx
    y0, y1 = y[i - 1], y[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(y1 != y0, (level - y0) / (y1 - y0), 1.0)
    return t[i - 1] + np.clip(frac, 0.0, 1.0) * (t[i] - t[i - 1])


def time_below(t_s: ArrayLike, y: ArrayLike, threshold: float) -> BelowThreshold:
    """Runs of y < threshold: the first crossing, the longest run and the total time below.

    A run that starts at the first sample (or ends at the last) is counted from (or to)
    that sample, since what happened outside the record is unknown.
    """
    t, yv = _check_series(t_s, y)
    below = yv < threshold
    if not below.any():
        return BelowThreshold(None, 0.0, None, 0.0)
    edges = np.diff(below.astype(np.int8))
    run_starts = np.flatnonzero(edges == 1) + 1
    run_ends = np.flatnonzero(edges == -1) + 1  # first index back at/above
    if below[0]:
        run_starts = np.insert(run_starts, 0, 0)
    if below[-1]:
        run_ends = np.append(run_ends, t.size)
    t_start = np.empty(run_starts.size)
    inner = run_starts > 0
    t_start[~inner] = t[0]
    t_start[inner] = _crossing_times(t, yv, threshold, run_starts[inner])
    t_end = np.empty(run_ends.size)
    inner = run_ends < t.size
    t_end[~inner] = t[-1]
    t_end[inner] = _crossing_times(t, yv, threshold, run_ends[inner])
    durations = t_end - t_start
    k = int(np.argmax(durations))
    return BelowThreshold(
        first_crossing_s=float(t_start[0]),
        longest_duration_s=float(durations[k]),
        longest_start_s=float(t_start[k]),
        total_duration_s=float(durations.sum()),
    )


def first_time_reaching(t_s: ArrayLike, y: ArrayLike, target: float, after_s: float) -> float | None:
    """First time at or after ``after_s`` at which y reaches ``target`` (interpolated), or None.

    The direction follows the value at ``after_s``: from below, y must rise to the target;
    from above, it must fall to it.
    """
    t, yv = _check_series(t_s, y)
    idx = np.flatnonzero(t >= after_s)
    if idx.size == 0:
        return None
    i0 = int(idx[0])
    seg = yv[i0:]
    reached = seg >= target if seg[0] < target else seg <= target
    if not reached.any():
        return None
    i = i0 + int(np.argmax(reached))
    if i == i0:
        return float(t[i])
    return float(_crossing_times(t, yv, target, np.array([i]))[0])


def current_ceased(
    t_s: ArrayLike,
    i_rms: ArrayLike,
    threshold_a: float,
    after_s: float,
    *,
    min_duration_s: float = 0.0,
) -> float | None:
    """Time at which the RMS current first falls to ``threshold_a`` or below at or after ``after_s``.

    With ``min_duration_s``, the current must then stay at or below the threshold for
    that long, so a brief dip during a transient is not taken for cessation. A dip that
    lasts to the end of the record counts, because the current has not come back.
    Returns None if the current never ceases.
    """
    t, iv = _check_series(t_s, i_rms)
    mask = (t >= after_s) & (iv <= threshold_a)
    if not mask.any():
        return None
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    # A run lasts until the next sample above the threshold. A run still going at the
    # end of the record counts: the current did not come back within the record.
    reaches_end = ends >= t.size
    run_end_t = np.where(reaches_end, t[-1], t[np.minimum(ends, t.size - 1)])
    ok = (run_end_t - t[starts] >= min_duration_s) | reaches_end
    if not ok.any():
        return None
    s = int(starts[np.argmax(ok)])
    if s == 0:
        return float(t[0])
    crossing = float(_crossing_times(t, iv, threshold_a, np.array([s]))[0])
    return max(crossing, float(after_s))


def stays_within_band(
    t_s: ArrayLike, y: ArrayLike, lower: ArrayLike, upper: ArrayLike
) -> BandViolation | None:
    """First sample outside [lower, upper] (bounds scalar or per-sample), or None if y stays inside."""
    t, yv = _check_series(t_s, y)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), yv.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), yv.shape)
    outside = (yv < lo) | (yv > hi)
    if not outside.any():
        return None
    i = int(np.argmax(outside))
    if yv[i] < lo[i]:
        return BandViolation(t_s=float(t[i]), value=float(yv[i]), bound=float(lo[i]), side="below")
    return BandViolation(t_s=float(t[i]), value=float(yv[i]), bound=float(hi[i]), side="above")


def follows_reference(
    t_s: ArrayLike,
    y: ArrayLike,
    reference: ArrayLike,
    tolerance_abs: float = 0.0,
    tolerance_rel: float = 0.0,
) -> FollowsReferenceResult:
    """Check that y stays within ``tolerance_abs + tolerance_rel*|reference|`` of the reference.

    The worst point is the one closest to (or furthest past) its own tolerance,
    i.e. the largest |deviation| / allowed. That point is what a report should show.
    """
    t, yv = _check_series(t_s, y)
    ref = np.broadcast_to(np.asarray(reference, dtype=np.float64), yv.shape)
    if tolerance_abs < 0 or tolerance_rel < 0 or (tolerance_abs == 0 and tolerance_rel == 0):
        raise ValueError("give a positive tolerance_abs and/or tolerance_rel")
    deviation = yv - ref
    allowed = tolerance_abs + tolerance_rel * np.abs(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(allowed > 0, np.abs(deviation) / allowed, np.where(deviation == 0, 0.0, np.inf))
    k = int(np.argmax(ratio))
    violated = ratio > 1.0
    first = float(t[int(np.argmax(violated))]) if violated.any() else None
    return FollowsReferenceResult(
        passed=not violated.any(),
        worst_deviation=float(deviation[k]),
        worst_t_s=float(t[k]),
        allowed_at_worst=float(allowed[k]),
        worst_ratio=float(ratio[k]),
        first_violation_t_s=first,
        max_abs_deviation=float(np.max(np.abs(deviation))),
    )
