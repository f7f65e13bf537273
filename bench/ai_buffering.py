"""AI-load buffering (T4/T5): grid-side power from a two-wattmeter connection, the ideal
ramp-limited IT load, and the figures a buffering test is judged on.

Pure analysis: arrays in, numbers out; bases and rates are arguments. What is compared with
what (the definitions the T4 plan and its profile clauses rely on):

* IT load P_it(t): the power the AI load draws at the PCC.
* grid-side power P_grid(t): the power the grid feeder delivers into the PCC.
* the ideal ramp-limited IT load P_ideal(t): P_it passed through a rate limiter (what the grid
  would see behind a perfect buffer that holds that ramp), starting from the grid-side power
  at the start of the record. Its ramp is the one the buffer actually holds: the rate, at
  most the permitted one, whose ideal fits P_grid best (least squares). Whether that ramp is
  allowed is the ramp clause's business; tracking judges how faithfully the grid side follows
  a clean ramp-limited copy of the IT load (no lag, overshoot, offset, or load steps passed
  through). A buffer that ramps gently on purpose (a margin under its setting) is not
  charged for it; one that lets the IT load through is, whatever ramp fits.
  The ideal at the permitted ramp itself is reported too.
* grid-side ramp rate: the largest change of P_grid between the ends of any window of
  ``ramp_window_s``, divided by the window and by the IT-load base: "fraction of the IT load
  per second".
* tracking error: the largest |P_grid - P_ideal|, both averaged over ``tracking_window_s``
  (the aggregation interval: sub-cycle and few-cycle transients at each load edge belong to
  the oscillation bands, not to tracking), as a fraction of the IT-load base.
* residual oscillation: the in-band amplitude of P_grid (the sinusoid with the same in-band
  energy, see bench.analysis.band_oscillation_amplitude) per band, as a fraction of the
  IT-load base.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scipy.optimize import minimize_scalar

from bench.analysis import band_oscillation_amplitude, per_cycle_power, ramp_rate_at, tracking_error

# the held ramp is searched between this fraction of the permitted ramp and the permitted ramp
HELD_RAMP_SEARCH_FLOOR = 0.05


@dataclass(frozen=True)
class CyclePower:
    """Active power per window of whole nominal cycles; ``t_s`` = window centres."""

    t_s: NDArray[np.float64]
    p_w: NDArray[np.float64]


def two_wattmeter_power_w(va_v: ArrayLike, vb_v: ArrayLike, vc_v: ArrayLike, ia_a: ArrayLike, ib_a: ArrayLike, *,
                          sample_rate_hz: float, f_nominal_hz: float, window_cycles: float = 1.0,
                          t0_s: float = 0.0) -> CyclePower:
    """Three-phase active power from two line currents (Aron connection), per cycle window.

    p = v_ac * i_a + v_bc * i_b. It equals v_a*i_a + v_b*i_b + v_c*i_c exactly when
    i_a + i_b + i_c = 0, i.e. on a three-wire feeder (no neutral current, no zero sequence),
    whatever the voltages' own zero sequence. Phase voltages (to any common reference) go in.
    """
    va, vb, vc = (np.asarray(v, dtype=np.float64) for v in (va_v, vb_v, vc_v))
    zeros = np.zeros_like(va)
    # the third "wattmeter" sees no current: per_cycle_power's mean of sum(v*i) is then Aron's sum
    power = per_cycle_power(va - vc, vb - vc, zeros, ia_a, ib_a, zeros, sample_rate_hz, f_nominal_hz,
                            window_cycles=window_cycles, t0_s=t0_s)
    return CyclePower(t_s=power.t_s, p_w=power.p_w)


def ramp_limited_w(t_s: ArrayLike, p_w: ArrayLike, ramp_w_per_s: float, initial_w: float | None = None) -> NDArray[np.float64]:
    """``p_w`` through a rate limiter of ``ramp_w_per_s``, starting at ``initial_w`` (default p_w[0])."""
    t = np.asarray(t_s, dtype=np.float64)
    p = np.asarray(p_w, dtype=np.float64)
    if t.ndim != 1 or t.shape != p.shape or t.size == 0:
        raise ValueError("need matching, non-empty 1-D time and power arrays")
    if ramp_w_per_s <= 0:
        raise ValueError("ramp_w_per_s must be positive")
    out = np.empty_like(p)
    out[0] = p[0] if initial_w is None else float(initial_w)
    max_step_w = ramp_w_per_s * np.diff(t)
    for i in range(1, p.size):  # a recursion: each sample depends on the previous output
        out[i] = out[i - 1] + min(max(p[i] - out[i - 1], -max_step_w[i - 1]), max_step_w[i - 1])
    return out


def held_ramp_w_per_s(t_s: ArrayLike, grid_p_w: ArrayLike, it_load_p_w: ArrayLike, *, permitted_w_per_s: float,
                      initial_w: float) -> float:
    """The rate limiter (at most ``permitted_w_per_s``) whose ramp-limited IT load fits the
    grid-side power best in the least-squares sense: the ramp the buffer holds."""
    grid = np.asarray(grid_p_w, dtype=np.float64)

    def misfit(rate_w_per_s: float) -> float:
        return float(np.mean((grid - ramp_limited_w(t_s, it_load_p_w, rate_w_per_s, initial_w)) ** 2))

    best = minimize_scalar(misfit, bounds=(HELD_RAMP_SEARCH_FLOOR * permitted_w_per_s, permitted_w_per_s),
                           method="bounded", options={"xatol": 1e-3 * permitted_w_per_s})
    # the bounded search never evaluates the bound itself: a buffer at the limit fits there
    return permitted_w_per_s if misfit(permitted_w_per_s) <= best.fun else float(best.x)


def moving_average(t_s: ArrayLike, y: ArrayLike, window_s: float) -> NDArray[np.float64]:
    """Centred moving average over ``window_s`` of a uniformly sampled series (ends: shorter windows)."""
    t = np.asarray(t_s, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    n = max(int(round(window_s / float(np.median(np.diff(t))))), 1)
    kernel = np.ones(n)
    return np.convolve(yv, kernel, mode="same") / np.convolve(np.ones_like(yv), kernel, mode="same")


@dataclass(frozen=True)
class BandAmplitude:
    band_hz: tuple[float, float]
    amplitude_fraction: float     # of the IT-load base


@dataclass(frozen=True)
class BufferingFigures:
    ramp_fraction_per_s: float    # largest grid-side ramp, fraction of the IT-load base per second
    ramp_at_s: float              # start of the window where it occurs
    held_ramp_fraction_per_s: float      # the ramp of the best-fitting ideal (see the module docstring)
    tracking_error_fraction: float       # against the ideal at the held ramp, averaged
    tracking_error_at_s: float
    tracking_error_at_permitted_fraction: float  # against the ideal at the permitted ramp, averaged
    it_load_ramp_fraction_per_s: float   # the same window measure on the IT load (the stimulus)
    bands: tuple[BandAmplitude, ...]
    ideal_w: NDArray[np.float64]         # the ideal at the held ramp, on the record's time axis
    ideal_at_permitted_w: NDArray[np.float64]


def buffering_figures(t_s: ArrayLike, grid_p_w: ArrayLike, it_load_p_w: ArrayLike, *, it_base_w: float,
                      ramp_w_per_s: float, ramp_window_s: float, tracking_window_s: float,
                      bands_hz: Sequence[Sequence[float]], initial_grid_w: float | None = None) -> BufferingFigures:
    """The buffering figures of one record (see the module docstring for the definitions).

    ``t_s`` is uniform (per-cycle windows), ``it_base_w`` the IT-load base that turns watts
    into fractions, ``ramp_w_per_s`` the permitted grid-side ramp, ``initial_grid_w`` the
    grid-side power the ideal starts from (default: the first grid sample).
    """
    t = np.asarray(t_s, dtype=np.float64)
    grid = np.asarray(grid_p_w, dtype=np.float64)
    it_load = np.asarray(it_load_p_w, dtype=np.float64)
    if it_base_w <= 0:
        raise ValueError("it_base_w must be positive")
    ramp = ramp_rate_at(t, grid, ramp_window_s)
    it_ramp = ramp_rate_at(t, it_load, ramp_window_s)
    start_w = float(grid[0] if initial_grid_w is None else initial_grid_w)
    held_w_per_s = held_ramp_w_per_s(t, grid, it_load, permitted_w_per_s=ramp_w_per_s, initial_w=start_w)
    ideal = ramp_limited_w(t, it_load, held_w_per_s, start_w)
    ideal_at_permitted = ramp_limited_w(t, it_load, ramp_w_per_s, start_w)
    averaged_grid = moving_average(t, grid, tracking_window_s)
    error = tracking_error(averaged_grid, moving_average(t, ideal, tracking_window_s), base=it_base_w)
    error_at_permitted = tracking_error(averaged_grid, moving_average(t, ideal_at_permitted, tracking_window_s),
                                        base=it_base_w)
    bands = tuple(BandAmplitude((float(lo), float(hi)), band_oscillation_amplitude(t, grid, lo, hi) / it_base_w)
                  for lo, hi in bands_hz)
    return BufferingFigures(ramp_fraction_per_s=abs(ramp.rate_per_s) / it_base_w, ramp_at_s=ramp.t_start_s,
                            held_ramp_fraction_per_s=held_w_per_s / it_base_w,
                            tracking_error_fraction=float(error.max_fraction), tracking_error_at_s=float(t[error.index_of_max]),
                            tracking_error_at_permitted_fraction=float(error_at_permitted.max_fraction),
                            it_load_ramp_fraction_per_s=abs(it_ramp.rate_per_s) / it_base_w, bands=bands,
                            ideal_w=ideal, ideal_at_permitted_w=ideal_at_permitted)


@dataclass(frozen=True)
class ListProfile:
    """A piecewise-constant IT-load profile as an AC load's list mode plays it."""

    times_s: tuple[float, ...]
    powers_w: tuple[float, ...]
    end_s: float


def training_list(*, base_w: float, swing_w: float, period_s: float, compute_fraction: float,
                  duration_s: float) -> ListProfile:
    """Synchronous training iterations: compute at base_w + swing_w, communicate at base_w."""
    n = int(round(duration_s / period_s))
    times, powers = [], []
    for k in range(n):
        times += [k * period_s, (k + compute_fraction) * period_s]
        powers += [base_w + swing_w, base_w]
    return ListProfile(tuple(times), tuple(powers), n * period_s)


def step_list(*, base_w: float, step_w: float, at_s: float, duration_s: float) -> ListProfile:
    """base_w until at_s, then base_w + step_w."""
    return ListProfile((0.0, at_s), (base_w, base_w + step_w), duration_s)


def checkpoint_dip_list(*, base_w: float, dip_w: float, at_s: float, dip_s: float, duration_s: float) -> ListProfile:
    """base_w, a checkpoint dip to base_w - dip_w for dip_s from at_s, base_w again."""
    return ListProfile((0.0, at_s, at_s + dip_s), (base_w, base_w - dip_w, base_w), duration_s)
