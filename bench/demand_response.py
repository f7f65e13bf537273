"""Demand-response dispatch figures: pure functions, arrays in, numbers out.

Time zero is the dispatch: the instant the new setpoint is sent. Response time is the
IEEE 1547 open-loop response time (first reach of 90 % of the commanded change), taken
against the commanded target, not against wherever the PCS happened to end up, so a PCS
that stops short is not credited with a fast response.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.analysis import step_response


def dispatch_ramp_w_per_s(from_w: float, to_w: float, commanded_time_s: float) -> float:
    """The ramp rate that brings the PCS from one setpoint to the other in the commanded time."""
    if commanded_time_s <= 0:
        raise ValueError("commanded_time_s must be positive")
    return abs(to_w - from_w) / commanded_time_s


def record_segments_s(total_s: float, longest_s: float) -> list[float]:
    """Lengths of consecutive records that cover total_s, none longer than longest_s."""
    if total_s <= 0 or longest_s <= 0:
        raise ValueError("total_s and longest_s must be positive")
    count = math.ceil(total_s / longest_s - 1e-9)
    return [longest_s] * (count - 1) + [total_s - longest_s * (count - 1)]


@dataclass(frozen=True)
class DispatchFigures:
    initial_w: float               # mean before the dispatch
    target_w: float                # the dispatched setpoint
    response_time_s: float | None  # first reach of 90 % of the commanded change; None if never
    settled_w: float               # mean over the settled window
    settled_error_pct: float       # (settled − target) / |target|, % of reading


def dispatch_figures(t_s: np.ndarray, p_w: np.ndarray, *, target_w: float,
                     settled_from_s: float, settled_to_s: float) -> DispatchFigures:
    """Response time and settled error of one dispatch from a P series (t = 0 at the dispatch)."""
    t = np.asarray(t_s, dtype=np.float64)
    p = np.asarray(p_w, dtype=np.float64)
    before = t < 0.0
    settled = (t >= settled_from_s) & (t <= settled_to_s)
    if not before.any():
        raise ValueError("no samples before the dispatch to read the starting power from")
    if not settled.any():
        raise ValueError(f"no samples between {settled_from_s:g} s and {settled_to_s:g} s to read the settled power from")
    if target_w == 0.0:
        raise ValueError("an error of reading needs a non-zero target")
    initial_w = float(np.mean(p[before]))
    metrics = step_response(t, p, 0.0, y_initial=initial_w, y_final=target_w)
    settled_w = float(np.mean(p[settled]))
    return DispatchFigures(initial_w, target_w, metrics.response_time_s, settled_w,
                           100.0 * (settled_w - target_w) / abs(target_w))
