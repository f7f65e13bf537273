"""Generator-following figures (T9): pure functions, bus signals in, numbers out.

The bus is formed by a genset; the PCS follows it. For one recorded disturbance (a load step, a
load rejection, an AI-load profile) the figures are those ISO 8528-5 states a genset's
transient performance in, and the T9 stability check:

- transient frequency and voltage deviation: the extreme after the step minus the value before
  it, in % of the rated value (ISO 8528-5 relates them to rated frequency and voltage);
- recovery time: from the step until frequency (voltage) is back, for good, within a band
  around its settled value at the end of the record (the settled value is the droop's new
  operating point, not nominal);
- sustained oscillation: the content of the bus frequency and of the PCS's active power in a
  band (1-30 Hz) over the last seconds of the record, where a healthy set and PCS have settled:
  the amplitude of the sinusoid with the same in-band energy (bench/analysis/oscillation.py),
  and the strongest in-band component.

Signals are bench/islanded.py's `BusSignals` (positive-sequence voltage per cycle, bus
frequency, the PCS's power from its own currents); time 0 is the capture's trigger.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.analysis import band_oscillation, dominant_oscillation
from bench.islanded import BusSignals, time_back_within
from bench.ride_through import mean_between


@dataclass(frozen=True)
class SustainedOscillation:
    """In-band content over the judged window at the end of a record."""

    window_s: tuple[float, float]
    frequency_hz: float             # bus frequency: amplitude of the equivalent sinusoid, Hz
    pcs_power_pu: float             # PCS active power: amplitude, pu of the PCS rating
    dominant_hz: float              # strongest component of the bus frequency in the band
    dominant_pcs_hz: float          # strongest component of the PCS power in the band


@dataclass(frozen=True)
class GensetTransientFigures:
    f_initial_hz: float
    v_initial_pu: float
    f_final_hz: float
    v_final_pu: float
    f_dip_pct: float                # (lowest f after the step - f before) / rated, % (<= 0)
    f_rise_pct: float               # (highest f after - f before) / rated, % (>= 0)
    v_dip_pct: float                # (lowest V1 after - V1 before) / rated, % (<= 0)
    v_rise_pct: float
    f_recovery_s: float | None      # back within the band around f_final for good (None: never)
    v_recovery_s: float | None
    oscillation: SustainedOscillation


def sustained_oscillation(sig: BusSignals, *, start_s: float, end_s: float, band_hz: tuple[float, float],
                          pcs_rated_va: float) -> SustainedOscillation:
    """Band content of the bus frequency and the PCS's active power between start_s and end_s."""
    window = (sig.t_s >= start_s) & (sig.t_s <= end_s)
    t, f, p_pu = sig.t_s[window], sig.f_hz[window], sig.p_w[window] / pcs_rated_va
    if np.count_nonzero(np.isfinite(f)) < f.size:
        raise ValueError(f"the bus was dead within {start_s:g}..{end_s:g} s: no frequency to analyse")
    lo, hi = band_hz

    def strongest_hz(y: np.ndarray) -> float:
        # the peak's interpolation may step past a band edge when the content there is the
        # skirt of something outside the band: the strongest in-band component is at the edge
        return min(max(dominant_oscillation(t, y, lo, hi).frequency_hz, lo), hi)
    return SustainedOscillation(
        window_s=(float(t[0]), float(t[-1])),
        frequency_hz=band_oscillation(t, f, lo, hi).amplitude,
        pcs_power_pu=band_oscillation(t, p_pu, lo, hi).amplitude,
        dominant_hz=strongest_hz(f), dominant_pcs_hz=strongest_hz(p_pu))


def genset_transient_figures(sig: BusSignals, *, step_at_s: float, end_s: float, pre_s: float, final_s: float,
                             window_s: float, f_rated_hz: float, f_band_pct: float, v_band_pct: float,
                             oscillation_window_s: float, band_hz: tuple[float, float],
                             pcs_rated_va: float) -> GensetTransientFigures:
    """step_at_s: the step instant; pre_s / final_s: averaging spans before the step and at the
    end of the record; window_s: one nominal cycle (the last window that ends before the step);
    the oscillation window is the last oscillation_window_s of the record."""
    before = (sig.t_s >= step_at_s - pre_s) & (sig.t_s <= step_at_s - window_s)
    f0 = float(np.nanmean(sig.f_hz[before]))
    v0 = mean_between(sig.t_s, sig.v_pu, step_at_s - pre_s, step_at_s - window_s)
    f1 = float(np.nanmean(sig.f_hz[(sig.t_s >= end_s - final_s) & (sig.t_s <= end_s)]))
    v1 = mean_between(sig.t_s, sig.v_pu, end_s - final_s, end_s)
    after = (sig.t_s >= step_at_s) & (sig.t_s <= end_s)
    f_after, v_after = sig.f_hz[after], sig.v_pu[after]
    return GensetTransientFigures(
        f_initial_hz=f0, v_initial_pu=v0, f_final_hz=f1, v_final_pu=v1,
        f_dip_pct=min(float(np.nanmin(f_after)) - f0, 0.0) / f_rated_hz * 100.0,
        f_rise_pct=max(float(np.nanmax(f_after)) - f0, 0.0) / f_rated_hz * 100.0,
        v_dip_pct=min(float(np.min(v_after)) - v0, 0.0) * 100.0,
        v_rise_pct=max(float(np.max(v_after)) - v0, 0.0) * 100.0,
        f_recovery_s=time_back_within(sig.t_s, sig.f_hz, f1, f_band_pct / 100.0 * f_rated_hz, step_at_s, end_s),
        v_recovery_s=time_back_within(sig.t_s, sig.v_pu, v1, v_band_pct / 100.0, step_at_s, end_s),
        oscillation=sustained_oscillation(sig, start_s=end_s - oscillation_window_s, end_s=end_s,
                                          band_hz=band_hz, pcs_rated_va=pcs_rated_va))


__all__ = ["GensetTransientFigures", "SustainedOscillation", "genset_transient_figures", "sustained_oscillation"]
