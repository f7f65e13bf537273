"""Ride-through figures from a three-phase capture: pure functions, arrays in, numbers out.

Time zero is the start of the disturbance (the grid simulator's transient trigger). The
quantities are positive-sequence values over sliding one-cycle windows, so unbalanced
events are judged on the same footing as balanced ones. Voltage sags and swells, and the
grid events of T7 (frequency bands, RoCoF ramps, phase jumps; their bands read from the
profile here, the only part that is not arrays in, numbers out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.analysis import (FrequencySeries, RocofSeries, active_reactive_current_pu, per_cycle_phasor,
                            sequence_components, time_below)
from bench.profiles import CONFIDENCE_TAGS, REGION_KINDS, Clause, Profile, ProfileError

# Sliding windows advance by 1/8 cycle: fine enough to time a 2.5-cycle response.
WINDOW_STEP_FRACTION = 0.125


@dataclass(frozen=True)
class RideThroughSignals:
    t_s: np.ndarray       # window centres, s from the disturbance start
    v_pu: np.ndarray      # positive-sequence voltage, pu of nominal line-to-neutral
    i_pu: np.ndarray      # positive-sequence current magnitude, pu of rated current
    id_pu: np.ndarray     # active part of the current
    iq_pu: np.ndarray     # reactive part, > 0 supports the voltage
    p_w: np.ndarray
    q_var: np.ndarray
    v1: np.ndarray | None = None   # the positive-sequence voltage phasors (V, nominal-frequency frame)


def ride_through_signals(t_s: np.ndarray, v_abc: np.ndarray, i_abc: np.ndarray, *,
                         sample_rate_hz: float, f_nominal_hz: float, v_ln_nom_v: float,
                         i_rated_a: float) -> RideThroughSignals:
    """v_abc, i_abc: arrays of shape (3, n) in volts and amperes (current out of the PCS)."""
    v = per_cycle_phasor(v_abc, sample_rate_hz, f_nominal_hz, step_fraction=WINDOW_STEP_FRACTION,
                         t0_s=float(t_s[0]))
    i = per_cycle_phasor(i_abc, sample_rate_hz, f_nominal_hz, step_fraction=WINDOW_STEP_FRACTION,
                         t0_s=float(t_s[0]))
    v1 = sequence_components(*v.phasor).positive
    i1 = sequence_components(*i.phasor).positive
    currents = active_reactive_current_pu(v1, i1, i_rated_a)
    s_va = 3.0 * v1 * np.conj(i1)
    return RideThroughSignals(v.t_s, np.abs(v1) / v_ln_nom_v, np.abs(i1) / i_rated_a,
                              currents.id_pu, currents.iq_pu, s_va.real, s_va.imag, v1)


def mean_between(t_s: np.ndarray, y: np.ndarray, start_s: float, end_s: float) -> float:
    mask = (t_s >= start_s) & (t_s <= end_s)
    if not mask.any():
        raise ValueError(f"no samples between {start_s:g} s and {end_s:g} s")
    return float(np.mean(y[mask]))


def first_time(t_s: np.ndarray, condition: np.ndarray, after_s: float,
               hold_s: float = 0.0) -> float | None:
    """First time ≥ after_s from which condition holds for at least hold_s; None if never."""
    idx = np.flatnonzero(t_s >= after_s)
    if idx.size == 0:
        return None
    cond = condition[idx]
    times = t_s[idx]
    if hold_s <= 0:
        hits = np.flatnonzero(cond)
        return float(times[hits[0]]) if hits.size else None
    # Runs of True long enough.
    edges = np.diff(np.concatenate(([0], cond.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    for s, e in zip(starts, ends):
        if times[e] - times[s] >= hold_s:
            return float(times[s])
    return None


@dataclass(frozen=True)
class SagFigures:
    pre_p_w: float
    pre_iq_pu: float
    residual_v_pu: float            # measured at the PCC, mean over the sag's second half
    v_swing_pu: float               # half the peak-to-peak of V1 over the sag's second half
    current_ceased_at_s: float | None
    delta_iq_pu: float              # reactive current change, mean over the sag's second half
    iq_response_s: float | None     # time to 90 % of delta_iq_pu
    p_recovery_s: float | None      # after the voltage returns, to `recovery_fraction` of pre_p_w


def sag_figures(sig: RideThroughSignals, *, sag_duration_s: float, window_s: float,
                ceased_below_pu: float, recovery_fraction: float) -> SagFigures:
    """window_s: one nominal cycle, the averaging window of the signals."""
    pre_end_s = -window_s
    pre_start_s = sig.t_s[0] + window_s
    pre_p = mean_between(sig.t_s, sig.p_w, pre_start_s, pre_end_s)
    pre_iq = mean_between(sig.t_s, sig.iq_pu, pre_start_s, pre_end_s)
    half_s = max(sag_duration_s / 2, window_s)
    late_start_s = max(sag_duration_s - half_s, window_s)
    late_end_s = sag_duration_s - window_s / 2
    if late_end_s <= late_start_s:  # very short sag: use what there is
        late_start_s, late_end_s = window_s / 2, sag_duration_s
    residual = mean_between(sig.t_s, sig.v_pu, late_start_s, late_end_s)
    late = (sig.t_s >= late_start_s) & (sig.t_s <= late_end_s)
    v_swing = float(np.ptp(sig.v_pu[late]) / 2.0)
    delta_iq = mean_between(sig.t_s, sig.iq_pu, late_start_s, late_end_s) - pre_iq
    # Cessation: the current stays below the threshold for a whole cycle.
    ceased = first_time(sig.t_s, sig.i_pu < ceased_below_pu, 0.0, hold_s=window_s)
    response = None
    if abs(delta_iq) > 1e-3:
        reached = (sig.iq_pu - pre_iq) >= 0.9 * delta_iq if delta_iq > 0 else (sig.iq_pu - pre_iq) <= 0.9 * delta_iq
        response = first_time(sig.t_s, reached, 0.0)
    recovery = None
    if pre_p > 0:
        back = first_time(sig.t_s, sig.p_w >= recovery_fraction * pre_p, sag_duration_s, hold_s=window_s)
        recovery = None if back is None else back - sag_duration_s
    return SagFigures(pre_p, pre_iq, residual, v_swing, ceased, delta_iq, response, recovery)


# ====================================================================================
# Frequency, RoCoF and phase-jump ride-through (T7 grid events)
# ====================================================================================

@dataclass(frozen=True)
class FrequencyBand:
    """A frequency ride-through band of a profile: operate (kind) between f_min and f_max."""

    kind: str
    f_min_hz: float
    f_max_hz: float
    duration_s: float
    clause: Clause

    def contains(self, f_hz: float) -> bool:
        return self.f_min_hz <= f_hz < self.f_max_hz


def frequency_bands(profile: Profile, key: str) -> list[FrequencyBand]:
    """The profile's frequency bands (``[[frt.bands]]``: kind, f_min_hz, f_max_hz,
    duration_s, clause, confidence), each checked; ProfileError names the entry at fault."""
    bands: list[FrequencyBand] = []
    problems: list[str] = []
    for index, entry in enumerate(profile.setting(key)):
        where = f"{key}[{index}]"
        missing = [name for name in ("kind", "f_min_hz", "f_max_hz", "duration_s", "clause", "confidence")
                   if name not in entry]
        if missing:
            problems.append(f"key '{where}': missing {', '.join(missing)}")
            continue
        if entry["kind"] not in REGION_KINDS:
            problems.append(f"key '{where}.kind': {entry['kind']!r} is not one of {', '.join(REGION_KINDS)}")
        if entry["confidence"] not in CONFIDENCE_TAGS:
            problems.append(f"key '{where}.confidence': {entry['confidence']!r} is not one of "
                            f"{', '.join(CONFIDENCE_TAGS)}")
        if not float(entry["f_min_hz"]) < float(entry["f_max_hz"]):
            problems.append(f"key '{where}': f_min_hz {entry['f_min_hz']} must be below f_max_hz {entry['f_max_hz']}")
        if not float(entry["duration_s"]) > 0.0:
            problems.append(f"key '{where}.duration_s': {entry['duration_s']} must be > 0")
        clause = Clause(where, float(entry["duration_s"]), "s", entry["clause"], entry["confidence"], profile.id)
        bands.append(FrequencyBand(entry["kind"], float(entry["f_min_hz"]), float(entry["f_max_hz"]),
                                   float(entry["duration_s"]), clause))
    if problems:
        raise ProfileError(str(profile.path), problems)
    return bands


def frequency_watt_expected_pu(f_hz: float, f_nominal_hz: float, deadband_hz: float, droop_pct: float,
                               pre_p_pu: float) -> float:
    """Active power (pu of rating) a frequency droop settles at: outside the deadband the power
    falls by 1 pu per (droop % of nominal) Hz above nominal and rises likewise below, from
    the pre-event power, within the rating (a storage PCS may go on to charge)."""
    df = f_hz - f_nominal_hz
    excess = max(abs(df) - deadband_hz, 0.0)
    change = -np.sign(df) * excess / (droop_pct / 100.0 * f_nominal_hz)
    return float(min(max(pre_p_pu + change, -1.0), 1.0))


def mean_frequency_between(freq: FrequencySeries, start_s: float, end_s: float) -> float:
    return mean_between(freq.t_s, freq.f_hz, start_s, end_s)


def applied_rocof_hz_per_s(rocof: RocofSeries, ramp_start_s: float, ramp_end_s: float) -> float:
    """The rate the stimulus ramped at: the median |RoCoF| over the middle half of the ramp
    (its ends are where the estimate's window straddles the corners)."""
    quarter = (ramp_end_s - ramp_start_s) / 4.0
    return float(np.median(np.abs(rocof.rocof_hz_per_s[(rocof.t_s >= ramp_start_s + quarter)
                                                       & (rocof.t_s <= ramp_end_s - quarter)])))


def settling_time_s(t_s: np.ndarray, y: np.ndarray, start_s: float, end_s: float, final: float,
                    band: float) -> float | None:
    """Time after start_s from which y stays within ±band of final until end_s (0 if it never
    leaves); None if it is still outside at end_s: the response has not settled."""
    inside = (t_s >= start_s) & (t_s <= end_s)
    if not inside.any():
        raise ValueError(f"no samples between {start_s:g} s and {end_s:g} s")
    t, dev = t_s[inside], np.abs(y[inside] - final)
    outside = np.flatnonzero(dev > band)
    if outside.size == 0:
        return 0.0
    last = int(outside[-1])
    if last == t.size - 1:
        return None
    return float(t[last + 1] - start_s)


@dataclass(frozen=True)
class GridEventFigures:
    pre_p_w: float
    p_min_w: float                     # lowest active power from the event's start to its end
    current_ceased_at_s: float | None  # first cessation (current below the threshold a cycle)
    ceased_total_s: float              # all time the current spent below the threshold
    p_recovery_s: float | None         # after the event's end, to the recovery fraction of pre


def grid_event_figures(sig: RideThroughSignals, *, event_end_s: float, window_s: float,
                       ceased_below_pu: float, recovery_fraction: float) -> GridEventFigures:
    """Power and current through a frequency or phase event that starts at t = 0."""
    pre_p = mean_between(sig.t_s, sig.p_w, sig.t_s[0] + window_s, -window_s)
    during = (sig.t_s >= window_s / 2) & (sig.t_s <= event_end_s)
    p_min = float(np.min(sig.p_w[during])) if during.any() else pre_p
    ceased = first_time(sig.t_s, sig.i_pu < ceased_below_pu, 0.0, hold_s=window_s)
    below = time_below(sig.t_s[sig.t_s >= 0.0], sig.i_pu[sig.t_s >= 0.0], ceased_below_pu)
    recovery = None
    if pre_p > 0:
        back = first_time(sig.t_s, sig.p_w >= recovery_fraction * pre_p, event_end_s, hold_s=window_s)
        recovery = None if back is None else back - event_end_s
    return GridEventFigures(pre_p, p_min, ceased, below.total_duration_s, recovery)


def phase_change_deg(sig: RideThroughSignals, before: tuple[float, float], after: tuple[float, float]) -> float:
    """Angle of the positive-sequence voltage (mean phasor) over `after` against `before`, in
    degrees within ±180: the jump the PCC saw (at nominal frequency, no drift between them)."""
    if sig.v1 is None:
        raise ValueError("these signals carry no voltage phasors")
    a = np.mean(sig.v1[(sig.t_s >= before[0]) & (sig.t_s <= before[1])])
    b = np.mean(sig.v1[(sig.t_s >= after[0]) & (sig.t_s <= after[1])])
    return float(np.degrees(np.angle(b / a)))
