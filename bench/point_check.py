"""SCADA point-to-point figures (plan C1): declared ranges, write-test values, and the bench's
reference for what the PCS's telemetry points measure.

Pure functions. `reference_readings` turns one steady three-phase capture into the quantities
a PCS reports (P, Q, S, PF, per-phase and line-to-line rms voltage, per-phase rms current,
frequency) with bench.analysis; the plan compares them with the PCS's telemetry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.analysis import frequency_hz, per_cycle_power, per_cycle_rms
from dut.pointmap import VendorPoint


def range_problem(point: VendorPoint, value: Any) -> str | None:
    """Why a value read from a point is outside what its map declares; None when it is inside."""
    if point.point_type == "enum16":
        if not isinstance(value, str):
            allowed = ", ".join(f"{raw} {name}" for raw, name in point.values.items())
            return f"raw value {value} is not in its enumeration ({allowed})"
        return None
    if point.point_type == "string" or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    if point.minimum is not None and value < point.minimum - 1e-9:
        return f"{value:g} is below its declared minimum {point.minimum:g}"
    if point.maximum is not None and value > point.maximum + 1e-9:
        return f"{value:g} is above its declared maximum {point.maximum:g}"
    return None


def write_test_value(point: VendorPoint, present: Any, step_registers: int) -> Any:
    """A valid value other than `present` to write into a setting: for an enumeration the next
    symbol; for a number `step_registers` register steps away, towards the middle of its
    declared range (so the value stays inside it)."""
    if point.point_type == "enum16":
        symbols = list(point.values.values())
        if present not in symbols:
            return symbols[0]
        return symbols[(symbols.index(present) + 1) % len(symbols)]
    step = step_registers * (point.scale if point.scale is not None else 1.0)
    low = point.minimum if point.minimum is not None else -math.inf
    high = point.maximum if point.maximum is not None else math.inf
    middle = (low + high) / 2.0 if math.isfinite(low) and math.isfinite(high) else (
        high if math.isfinite(high) else math.inf)
    direction = 1.0 if middle >= present else -1.0
    candidate = min(max(present + direction * step, low), high)
    if abs(candidate - present) < 1e-12:
        candidate = min(max(present - direction * step, low), high)
    if point.scale is not None:
        candidate = round(candidate / point.scale) * point.scale
    return round(candidate, 9) if isinstance(candidate, float) else candidate


def same_point_value(point: VendorPoint, a: Any, b: Any) -> bool:
    """Equal as the register holds them (half a register step for scaled numbers)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 0.5 * (point.scale if point.scale is not None else 1.0) + 1e-12
    return a == b


@dataclass(frozen=True)
class ReferenceReadings:
    """The bench's measurement of the quantities a PCS reports, over one capture."""

    p_w: float
    q_var: float
    s_va: float
    pf: float
    v_ln_rms_v: tuple[float, float, float]
    v_ll_rms_v: float                  # mean of the three line-to-line rms voltages
    i_rms_a: tuple[float, float, float]
    freq_hz: float


def reference_readings(v_abc_v: np.ndarray, i_abc_a: np.ndarray, *, sample_rate_hz: float,
                       f_nominal_hz: float) -> ReferenceReadings:
    """Means over whole cycles of a steady capture; v_abc_v, i_abc_a: (3, n), current out of the PCS."""
    power = per_cycle_power(*v_abc_v, *i_abc_a, sample_rate_hz=sample_rate_hz, f_nominal_hz=f_nominal_hz)
    p_w, q_var = float(np.mean(power.p_w)), float(np.mean(power.q_var))
    s_va = math.hypot(p_w, q_var)
    v_rms = per_cycle_rms(v_abc_v, sample_rate_hz, f_nominal_hz).rms.mean(axis=1)
    i_rms = per_cycle_rms(i_abc_a, sample_rate_hz, f_nominal_hz).rms.mean(axis=1)
    va, vb, vc = v_abc_v
    v_ll = per_cycle_rms(np.vstack([va - vb, vb - vc, vc - va]), sample_rate_hz, f_nominal_hz).rms.mean()
    f = frequency_hz(va, vb, vc, sample_rate_hz, f_nominal_hz)
    return ReferenceReadings(p_w, q_var, s_va, p_w / s_va if s_va > 0 else 1.0,
                             tuple(float(v) for v in v_rms), float(v_ll), tuple(float(i) for i in i_rms),
                             float(np.mean(f.f_hz)))


def error_pct_of_reading(reported: float | None, reference: float) -> float | None:
    """(reported − reference) in % of the reference reading; None when nothing was reported."""
    if reported is None or reference == 0.0:
        return None
    return 100.0 * (reported - reference) / abs(reference)


def error_pct_of_base(reported: float | None, reference: float, base: float) -> float | None:
    """(reported − reference) in % of a fixed base (nominal or rated value)."""
    return None if reported is None else 100.0 * (reported - reference) / base
