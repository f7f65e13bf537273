"""Islanded-bus figures (T2, T8, T10): pure functions, arrays in, numbers out.

Time zero is the trigger of the capture (the event under test). Voltages and currents are
positive-sequence values over sliding one-cycle windows (as in bench/ride_through.py), the
frequency is the rotation rate of the positive-sequence voltage phasor, averaged over one
cycle. On an island the frequency is whatever the grid former's droop makes it, so every
deviation and recovery here is measured against the bus's own initial and final values, not
against nominal, unless a name says otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from bench.analysis import (DampedOscillation, damping_ratio_and_frequency, frequency_from_phasors,
                            per_cycle_phasor, sequence_components)
from bench.ride_through import WINDOW_STEP_FRACTION, mean_between, ride_through_signals

# Below this the bus is dead: its phasor angle (and so its frequency) means nothing.
DEAD_BUS_PU = 0.1


@dataclass(frozen=True)
class BusSignals:
    t_s: np.ndarray          # window centres, s from the trigger
    v_pu: np.ndarray         # positive-sequence voltage, pu of nominal line-to-neutral
    v1: np.ndarray           # positive-sequence voltage phasor (complex, V rms), nominal-frequency frame
    f_hz: np.ndarray         # bus frequency (NaN where the bus is dead)
    i_pu: np.ndarray         # positive-sequence current magnitude, pu of rated current
    p_w: np.ndarray
    q_var: np.ndarray


def bus_signals(t_s: np.ndarray, v_abc: np.ndarray, i_abc: np.ndarray, *, sample_rate_hz: float,
                f_nominal_hz: float, v_ln_nom_v: float, i_rated_a: float) -> BusSignals:
    """v_abc, i_abc: (3, n) volts and amperes; the current is the one the figures are about
    (PCS output, or the load's current)."""
    sig = ride_through_signals(t_s, v_abc, i_abc, sample_rate_hz=sample_rate_hz, f_nominal_hz=f_nominal_hz,
                               v_ln_nom_v=v_ln_nom_v, i_rated_a=i_rated_a)
    phasors = per_cycle_phasor(v_abc, sample_rate_hz, f_nominal_hz, step_fraction=WINDOW_STEP_FRACTION,
                               t0_s=float(t_s[0]))
    v1 = sequence_components(*phasors.phasor).positive
    f = frequency_from_phasors(phasors.t_s, v1, f_nominal_hz)
    f_hz = np.interp(phasors.t_s, f.t_s, f.f_hz)
    # one-cycle average: the one-step angle differences carry the sampling noise
    per_cycle = max(int(round(1.0 / WINDOW_STEP_FRACTION)), 1)
    f_hz = uniform_filter1d(f_hz, per_cycle, mode="nearest")
    f_hz[sig.v_pu < DEAD_BUS_PU] = np.nan
    return BusSignals(sig.t_s, sig.v_pu, v1, f_hz, sig.i_pu, sig.p_w, sig.q_var)


def time_back_within(t_s: np.ndarray, y: np.ndarray, target: float, band: float, after_s: float,
                     until_s: float) -> float | None:
    """Time from after_s until y enters and stays within target ± band up to until_s
    (0.0 if it never left); None if it is still outside at until_s."""
    mask = (t_s >= after_s) & (t_s <= until_s)
    times, values = t_s[mask], y[mask]
    outside = ~(np.abs(values - target) <= band)      # NaN counts as outside
    if not outside.any():
        return 0.0
    if outside[-1]:
        return None
    last = int(np.flatnonzero(outside)[-1])
    return float(times[last + 1] - after_s)


# ------------------------------------------------------------------ energising (black start)

@dataclass(frozen=True)
class EnergisingFigures:
    energised_at_s: float | None     # first window above the dead-bus level
    peak_v_pu: float                 # highest positive-sequence voltage while energising
    overshoot_pu: float              # peak above nominal (>= 0), pu of nominal
    rise_time_s: float | None        # energised_at -> first reach of 90 % of nominal
    settled_v_pu: float              # mean over the last `settled_window_s`
    settled_f_hz: float


def energising_figures(sig: BusSignals, *, end_s: float, settled_window_s: float) -> EnergisingFigures:
    before_end = sig.t_s <= end_s
    live = np.flatnonzero((sig.v_pu >= DEAD_BUS_PU) & before_end)
    energised_at = float(sig.t_s[live[0]]) if live.size else None
    peak = float(np.max(sig.v_pu[before_end]))
    rise = None
    if energised_at is not None:
        reached = np.flatnonzero((sig.v_pu >= 0.9) & (sig.t_s >= energised_at) & before_end)
        rise = float(sig.t_s[reached[0]] - energised_at) if reached.size else None
    settled_v = mean_between(sig.t_s, sig.v_pu, end_s - settled_window_s, end_s)
    settled_f = float(np.nanmean(sig.f_hz[(sig.t_s >= end_s - settled_window_s) & before_end]))
    return EnergisingFigures(energised_at, peak, max(peak - 1.0, 0.0), rise, settled_v, settled_f)


# ------------------------------------------------------------------ load steps on an island

@dataclass(frozen=True)
class LoadStepFigures:
    v_initial_pu: float
    f_initial_hz: float
    v_final_pu: float
    f_final_hz: float
    v_dip_pu: float                  # lowest V after the step minus v_initial (<= 0)
    v_rise_pu: float                 # highest V after the step minus v_initial (>= 0)
    f_dip_hz: float                  # lowest f after the step minus f_initial (<= 0)
    f_rise_hz: float                 # highest f after the step minus f_initial (>= 0)
    v_recovery_s: float | None       # back within ± v_band_pu of v_final for good
    f_recovery_s: float | None       # back within ± f_band_hz of f_final for good
    oscillation: DampedOscillation | None   # fit of V after the step (None: nothing to fit)

    @property
    def settling_s(self) -> float | None:
        """Both voltage and frequency settled (None if either never did)."""
        if self.v_recovery_s is None or self.f_recovery_s is None:
            return None
        return max(self.v_recovery_s, self.f_recovery_s)


def load_step_figures(sig: BusSignals, *, step_at_s: float, end_s: float, pre_s: float, final_s: float,
                      v_band_pu: float, f_band_hz: float, fit_window_s: float,
                      window_s: float) -> LoadStepFigures:
    """step_at_s: the step instant; pre_s / final_s: averaging spans before the step and at
    the end of the record; window_s: one nominal cycle (the windows' length: the first
    window wholly after the step starts there, which is where the damping fit begins)."""
    v0 = mean_between(sig.t_s, sig.v_pu, step_at_s - pre_s, step_at_s - window_s)
    f0 = float(np.nanmean(sig.f_hz[(sig.t_s >= step_at_s - pre_s) & (sig.t_s <= step_at_s - window_s)]))
    v1 = mean_between(sig.t_s, sig.v_pu, end_s - final_s, end_s)
    f1 = float(np.nanmean(sig.f_hz[(sig.t_s >= end_s - final_s) & (sig.t_s <= end_s)]))
    after = (sig.t_s >= step_at_s) & (sig.t_s <= end_s)
    v_after, f_after = sig.v_pu[after], sig.f_hz[after]
    oscillation = None
    fit = (sig.t_s >= step_at_s + window_s) & (sig.t_s <= step_at_s + window_s + fit_window_s)
    if np.count_nonzero(fit) >= 8:
        try:
            oscillation = damping_ratio_and_frequency(sig.t_s[fit], sig.v_pu[fit])
        except ValueError:          # a flat record: no oscillation to speak of
            oscillation = None
    return LoadStepFigures(
        v_initial_pu=v0, f_initial_hz=f0, v_final_pu=v1, f_final_hz=f1,
        v_dip_pu=min(float(np.min(v_after)) - v0, 0.0), v_rise_pu=max(float(np.max(v_after)) - v0, 0.0),
        f_dip_hz=min(float(np.nanmin(f_after)) - f0, 0.0), f_rise_hz=max(float(np.nanmax(f_after)) - f0, 0.0),
        v_recovery_s=time_back_within(sig.t_s, sig.v_pu, v1, v_band_pu, step_at_s, end_s),
        f_recovery_s=time_back_within(sig.t_s, sig.f_hz, f1, f_band_hz, step_at_s, end_s),
        oscillation=oscillation)


# ------------------------------------------------------------------ grid loss and island transfer

@dataclass(frozen=True)
class TransferFigures:
    grid_lost_at_s: float | None     # grid-feeder current gone (start of the first window without it)
    v_pre_pu: float
    v_min_pu: float                  # lowest load voltage in the transfer window
    dip_duration_s: float            # total time the load voltage spent below dip_below_pu
    f_min_hz: float
    f_max_hz: float
    f_excursion_hz: float            # largest |f - f_pre| in the transfer window
    i_load_pre_pu: float
    i_load_min_fraction: float       # lowest load current / pre-loss load current
    load_interrupted_s: float        # total time the load current spent below interrupted_below_fraction


def _time_where(t_s: np.ndarray, condition: np.ndarray) -> float:
    step = float(np.median(np.diff(t_s))) if t_s.size > 1 else 0.0
    return float(np.count_nonzero(condition) * step)


def grid_feeder_open_at_s(t_s: np.ndarray, grid_i_pu: np.ndarray, *, after_s: float, open_below_pu: float,
                          window_s: float) -> float | None:
    """Start of the first one-cycle window, after after_s, in which the grid feeder carries no
    current (the window centre minus half a cycle)."""
    idx = np.flatnonzero((t_s >= after_s) & (grid_i_pu < open_below_pu))
    return float(t_s[idx[0]] - window_s / 2) if idx.size else None


def transfer_figures(load: BusSignals, grid_i_pu: np.ndarray, *, after_s: float, pre_s: float,
                     transfer_window_s: float, open_below_pu: float, dip_below_pu: float,
                     interrupted_below_fraction: float, window_s: float) -> TransferFigures:
    """load: the bus voltage with the load's own current (PCS + grid feeder); grid_i_pu: the
    grid-feeder current magnitude on the same windows."""
    lost = grid_feeder_open_at_s(load.t_s, grid_i_pu, after_s=after_s, open_below_pu=open_below_pu,
                                 window_s=window_s)
    ref_s = lost if lost is not None else after_s
    v_pre = mean_between(load.t_s, load.v_pu, ref_s - pre_s, ref_s - window_s)
    f_pre = float(np.nanmean(load.f_hz[(load.t_s >= ref_s - pre_s) & (load.t_s <= ref_s - window_s)]))
    i_pre = mean_between(load.t_s, load.i_pu, ref_s - pre_s, ref_s - window_s)
    span = (load.t_s >= ref_s - window_s) & (load.t_s <= ref_s + transfer_window_s)
    v, f, i = load.v_pu[span], load.f_hz[span], load.i_pu[span]
    t = load.t_s[span]
    f_dev = np.nan_to_num(np.abs(f - f_pre), nan=np.inf)   # a dead bus has no frequency at all
    i_fraction = i / i_pre if i_pre > 0 else np.zeros_like(i)
    return TransferFigures(
        grid_lost_at_s=lost, v_pre_pu=v_pre, v_min_pu=float(np.min(v)),
        dip_duration_s=_time_where(t, v < dip_below_pu),
        f_min_hz=float(np.nanmin(f)) if np.isfinite(f).any() else math.nan,
        f_max_hz=float(np.nanmax(f)) if np.isfinite(f).any() else math.nan,
        f_excursion_hz=float(np.max(f_dev)), i_load_pre_pu=i_pre,
        i_load_min_fraction=float(np.min(i_fraction)),
        load_interrupted_s=_time_where(t, i_fraction < interrupted_below_fraction))


# ------------------------------------------------------------------ re-synchronised closing

@dataclass(frozen=True)
class ClosingFigures:
    closed_at_s: float | None        # grid-feeder current back (start of its first window)
    angle_deg: float | None          # island bus phase minus grid-connected bus phase at closing
    slip_hz: float | None            # island bus frequency minus the grid's, just before closing
    voltage_difference_pu: float | None   # |V1| island minus |V1| grid connected


def _angle_line(t_s: np.ndarray, v1: np.ndarray) -> tuple[float, float]:
    """(slope rad/s, intercept rad at t = 0) of the unwrapped phasor angle, least squares."""
    slope, intercept = np.polyfit(t_s, np.unwrap(np.angle(v1)), 1)
    return float(slope), float(intercept)


def closing_figures(bus: BusSignals, grid_i_pu: np.ndarray, *, after_s: float, closed_above_pu: float,
                    pre_s: float, post_from_s: float, post_to_s: float, window_s: float) -> ClosingFigures:
    """The grid side's phase is the bus's own once the breaker has closed and the transient
    has passed (post_from_s..post_to_s after closing), extrapolated back to the closing
    instant; the island's, the bus's over the last pre_s before it, carried forward. Their
    difference is the phase step the closing imposed (it includes the small angle across the
    bench impedance after closing)."""
    idx = np.flatnonzero((bus.t_s >= after_s) & (grid_i_pu > closed_above_pu))
    if not idx.size:
        return ClosingFigures(None, None, None, None)
    closed = float(bus.t_s[idx[0]] - window_s / 2)
    pre = (bus.t_s >= closed - pre_s) & (bus.t_s <= closed - window_s / 2)
    post = (bus.t_s >= closed + post_from_s) & (bus.t_s <= closed + post_to_s)
    if np.count_nonzero(pre) < 3 or np.count_nonzero(post) < 3:
        return ClosingFigures(closed, None, None, None)
    w_pre, a_pre = _angle_line(bus.t_s[pre], bus.v1[pre])
    w_post, a_post = _angle_line(bus.t_s[post], bus.v1[post])
    d_angle = (w_pre - w_post) * closed + (a_pre - a_post)
    angle_deg = math.degrees((d_angle + math.pi) % (2 * math.pi) - math.pi)
    v_pre = float(np.mean(bus.v_pu[pre]))
    v_post = float(np.mean(bus.v_pu[post]))
    return ClosingFigures(closed, angle_deg, (w_pre - w_post) / (2 * math.pi), v_pre - v_post)
