"""SCADA point-to-point figures (plan C1): declared ranges, write-test values, and the bench's
reference for what the PCS's telemetry points measure.

Pure functions. `reference_readings` turns one steady three-phase capture into the quantities
a PCS reports (P, Q, S, PF, per-phase and line-to-line rms voltage, per-phase rms current,
frequency) with bench.analysis; the plan compares them with the PCS's telemetry. Where the
bench has a power analyzer, `with_analyzer` replaces every quantity the analyzer measures by
its readings' mean (the meter is the better reference) and says which ones it replaced.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bench.analysis import frequency_hz, per_cycle_power, per_cycle_rms
from dut.pointmap import VendorPoint
from instruments.power_analyzer import PowerReading


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


def with_analyzer(scope: ReferenceReadings, readings: Sequence[PowerReading]) -> tuple[ReferenceReadings, set[str]]:
    """The reference with every quantity the analyzer measures taken from the mean of its reads
    (P, Q, S, PF from the Σ; f; the per-phase voltages to neutral and currents its wiring gives),
    and which values it supplied: field names, per-phase ones as ``"i_rms_a[0]"``. The rest
    (line-to-line voltage, what the wiring does not measure) stays the scope's."""
    if not readings:
        raise ValueError("no power-analyzer readings to take the reference from")

    def mean(values: Sequence[float | None]) -> float | None:
        return None if any(v is None for v in values) else float(np.mean(values))

    p_w, q_var = mean([r.sigma.p_w for r in readings]), mean([r.sigma.q_var for r in readings])
    # S as the PCS reports it, √(P² + Q²) (the analyzer's Type 1 Σ S, a sum of U·I per element,
    # exceeds it under unbalance; the scope's reference uses √(P² + Q²) too)
    s_va = math.hypot(p_w, q_var)
    changes: dict[str, Any] = {"p_w": p_w, "q_var": q_var, "s_va": s_va, "pf": p_w / s_va if s_va > 0 else 1.0}
    supplied = set(changes)
    frequency = mean([r.freq_hz for r in readings])
    if frequency is not None:
        changes["freq_hz"] = frequency
        supplied.add("freq_hz")
    for field, per_phase in (("v_ln_rms_v", PowerReading.phase_voltages_ln_v),
                             ("i_rms_a", PowerReading.phase_currents_a)):
        measured = [per_phase(r) for r in readings]
        values = list(getattr(scope, field))
        for k, phase in enumerate("abc"):
            if all(phase in m for m in measured):
                values[k] = mean([m[phase] for m in measured])
                supplied.add(f"{field}[{k}]")
        changes[field] = tuple(values)
    return dataclasses.replace(scope, **changes), supplied


def error_pct_of_reading(reported: float | None, reference: float) -> float | None:
    """(reported − reference) in % of the reference reading; None when nothing was reported."""
    if reported is None or reference == 0.0:
        return None
    return 100.0 * (reported - reference) / abs(reference)


def error_pct_of_base(reported: float | None, reference: float, base: float) -> float | None:
    """(reported − reference) in % of a fixed base (nominal or rated value)."""
    return None if reported is None else 100.0 * (reported - reference) / base
