"""State-of-charge figures for T11 (SOC management with competing missions): pure analysis.

The bench's own SOC is an energy count of the battery emulator (the DC source's voltage and
current readings, discharge > 0), referred to the battery's rated energy and started from the
PCS's own SOC estimate at the start of the duty: a bench has no absolute SOC of its own, so it
judges what the PCS's estimate gains or loses against the energy that really left the battery.
SOC figures are percentage points of the rated energy ("% SOC").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.ai_buffering import ListProfile, training_list

WH_PER_J = 1.0 / 3600.0


def dc_energy_wh(t_s: np.ndarray, v_v: np.ndarray, i_a: np.ndarray) -> np.ndarray:
    """Cumulative DC energy out of the battery (Wh, discharge > 0) at each sample, from
    voltage and current readings (trapezoids between samples; 0 at the first sample)."""
    t_s, p_w = np.asarray(t_s, float), np.asarray(v_v, float) * np.asarray(i_a, float)
    if t_s.size == 0:
        return np.zeros(0)
    steps_j = 0.5 * (p_w[1:] + p_w[:-1]) * np.diff(t_s)
    return np.concatenate(([0.0], np.cumsum(steps_j))) * WH_PER_J


def reference_soc_pct(t_s: np.ndarray, v_v: np.ndarray, i_a: np.ndarray, *, start_soc_pct: float,
                      capacity_wh: float) -> np.ndarray:
    """The bench's SOC at each DC sample: the starting SOC less the energy counted since."""
    if capacity_wh <= 0:
        raise ValueError(f"battery capacity must be > 0 Wh, got {capacity_wh:g}")
    return start_soc_pct - 100.0 * dc_energy_wh(t_s, v_v, i_a) / capacity_wh


@dataclass(frozen=True)
class BandFigures:
    excursion_pct: float          # furthest the SOC went outside [min, max] (0 when never)
    excursion_at_s: float | None  # when (None when never outside)
    time_outside_s: float         # total time outside the band (sample-and-hold)
    lowest_pct: float
    highest_pct: float


def band_figures(t_s: np.ndarray, soc_pct: np.ndarray, min_pct: float, max_pct: float) -> BandFigures:
    """How far and how long a SOC series left the band [min_pct, max_pct]."""
    t_s, soc_pct = np.asarray(t_s, float), np.asarray(soc_pct, float)
    if soc_pct.size == 0:
        raise ValueError("no SOC samples")
    outside_pct = np.maximum(np.maximum(min_pct - soc_pct, soc_pct - max_pct), 0.0)
    worst = int(np.argmax(outside_pct))
    dwell_s = np.diff(t_s, append=t_s[-1])
    return BandFigures(excursion_pct=float(outside_pct[worst]),
                       excursion_at_s=float(t_s[worst]) if outside_pct[worst] > 0 else None,
                       time_outside_s=float(np.sum(dwell_s[outside_pct > 0])),
                       lowest_pct=float(soc_pct.min()), highest_pct=float(soc_pct.max()))


def soc_drift_pct(pcs_soc_pct: float, reference_soc_pct_now: float) -> float:
    """The PCS's estimate minus the bench's count (> 0: the PCS believes it holds more)."""
    return float(pcs_soc_pct - reference_soc_pct_now)


def drift_series_pct(pcs_t_s: np.ndarray, pcs_soc_pct: np.ndarray, ref_t_s: np.ndarray,
                     ref_soc_pct: np.ndarray) -> np.ndarray:
    """The drift at each PCS telemetry sample (the bench's count interpolated to its time)."""
    return np.asarray(pcs_soc_pct, float) - np.interp(pcs_t_s, ref_t_s, ref_soc_pct)


def reserve_soc_pct(*, power_w: float, duration_s: float, capacity_wh: float, floor_pct: float) -> float:
    """The SOC that still holds power_w for duration_s above the floor the reserve may be
    drawn down to."""
    if capacity_wh <= 0:
        raise ValueError(f"battery capacity must be > 0 Wh, got {capacity_wh:g}")
    return floor_pct + 100.0 * power_w * duration_s * WH_PER_J / capacity_wh


def ai_duty_list(*, base_w: float, swing_w: float, period_s: float, compute_fraction: float, iterations: int,
                 checkpoint_dip_w: float, checkpoint_s: float) -> ListProfile:
    """One cycle of a mixed AI duty for the AC load's list: synchronous training iterations,
    then a checkpoint (GPUs idle while the model state is written out). Repeated by the load."""
    if iterations < 1 or checkpoint_s <= 0:
        raise ValueError("an AI duty cycle needs at least one iteration and a checkpoint of positive length")
    training = training_list(base_w=base_w, swing_w=swing_w, period_s=period_s,
                             compute_fraction=compute_fraction, duration_s=iterations * period_s)
    return ListProfile(training.times_s + (training.end_s,), training.powers_w + (base_w - checkpoint_dip_w,),
                       training.end_s + checkpoint_s)
