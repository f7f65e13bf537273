"""Frequency and rate of change of frequency (RoCoF) from the positive-sequence phasor.

The one-cycle DFT at nominal frequency turns an off-nominal positive-sequence set into a
phasor that rotates at 2*pi*(f - f_nominal). The phase-by-phase leakage image of the
DFT is a negative-sequence quantity, so taking the positive sequence removes it, and the
rotation rate between successive windows gives the frequency without the 2f ripple that
a single-phase estimate has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import savgol_filter

from .cycles import per_cycle_phasor
from .sequence import sequence_components

__all__ = [
    "FrequencySeries",
    "RocofSeries",
    "frequency_from_phasors",
    "frequency_hz",
    "rocof_hz_per_s",
]


@dataclass(frozen=True)
class FrequencySeries:
    t_s: NDArray[np.float64]
    f_hz: NDArray[np.float64]

    def __iter__(self) -> Iterator[NDArray[np.float64]]:
        return iter((self.t_s, self.f_hz))


@dataclass(frozen=True)
class RocofSeries:
    t_s: NDArray[np.float64]
    rocof_hz_per_s: NDArray[np.float64]

    def __iter__(self) -> Iterator[NDArray[np.float64]]:
        return iter((self.t_s, self.rocof_hz_per_s))


def frequency_from_phasors(
    t_s: ArrayLike, phasor: ArrayLike, f_nominal_hz: float
) -> FrequencySeries:
    """Frequency from the rotation of a phasor series taken at nominal frequency.

    Each estimate uses two successive phasors and is stamped at the midpoint of their
    times. The angle step is taken from V[k+1]*conj(V[k]), so it needs no unwrapping.
    It is unambiguous while |f - f_nominal| * dt < 0.5, e.g. within +-30 Hz for
    one-cycle steps at 60 Hz.
    """
    t = np.asarray(t_s, dtype=np.float64)
    v = np.asarray(phasor, dtype=np.complex128)
    if t.shape != v.shape or t.ndim != 1 or t.size < 2:
        raise ValueError("need matching 1-D time and phasor series with at least 2 points")
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise ValueError("phasor time stamps must increase")
    dphi = np.angle(v[1:] * np.conj(v[:-1]))
    return FrequencySeries(t_s=0.5 * (t[1:] + t[:-1]), f_hz=f_nominal_hz + dphi / (2.0 * np.pi * dt))


def frequency_hz(
    va_v: ArrayLike,
    vb_v: ArrayLike,
    vc_v: ArrayLike,
    sample_rate_hz: float,
    f_nominal_hz: float,
    *,
    window_cycles: float = 1.0,
    step_fraction: float = 1.0,
    t0_s: float = 0.0,
) -> FrequencySeries:
    """Per-cycle frequency of a three-phase set of sampled voltages (positive-sequence angle)."""
    phasors = per_cycle_phasor(
        (va_v, vb_v, vc_v),
        sample_rate_hz,
        f_nominal_hz,
        window_cycles=window_cycles,
        step_fraction=step_fraction,
        t0_s=t0_s,
    )
    positive = sequence_components(*phasors.phasor).positive
    return frequency_from_phasors(phasors.t_s, positive, f_nominal_hz)


def rocof_hz_per_s(t_s: ArrayLike, f_hz: ArrayLike, window_s: float) -> RocofSeries:
    """RoCoF as the slope of a least-squares line over a centred window of ``window_s``.

    The window should span several cycles: one-cycle frequency estimates are noisy, and
    their difference quotient amplifies that noise. Near the ends, the fit uses the
    nearest full window (the ``interp`` mode of the Savitzky-Golay filter).
    Values are given at the input time stamps.
    """
    t = np.asarray(t_s, dtype=np.float64)
    f = np.asarray(f_hz, dtype=np.float64)
    if t.shape != f.shape or t.ndim != 1 or t.size < 3:
        raise ValueError("need matching 1-D time and frequency series with at least 3 points")
    dt = np.diff(t)
    step = float(np.median(dt))
    if np.any(np.abs(dt - step) > 1e-6 * step + 1e-12):
        raise ValueError("rocof_hz_per_s needs uniformly spaced frequency estimates")
    n_window = int(round(window_s / step))
    n_window = max(3, n_window | 1)  # odd number of points, at least 3
    if n_window > t.size:
        raise ValueError(f"window of {window_s} s is longer than the series ({t.size * step:.3g} s)")
    slope = savgol_filter(f, n_window, polyorder=1, deriv=1, delta=step, mode="interp")
    return RocofSeries(t_s=t, rocof_hz_per_s=slope)
