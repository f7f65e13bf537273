"""Ride-through figures from a three-phase capture: pure functions, arrays in, numbers out.

Time zero is the start of the disturbance (the grid simulator's transient trigger). The
quantities are positive-sequence values over sliding one-cycle windows, so unbalanced
events are judged on the same footing as balanced ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.analysis import active_reactive_current_pu, per_cycle_phasor, sequence_components

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
                              currents.id_pu, currents.iq_pu, s_va.real, s_va.imag)


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
