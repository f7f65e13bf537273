"""Per-cycle RMS and fundamental phasors of sampled waveforms.

Every window is exactly ``window_cycles / f_nominal_hz`` seconds long, even when the
sample rate is not a multiple of the nominal frequency (e.g. 10 kHz at 60 Hz is
166.67 samples per cycle). The signal is treated as the straight line through its
samples, and each window is the integral of that line from one fractional sample
position to another. Rounding the window to whole samples instead would leave an
error of about half a sample out of 167, which is too much for a 0.5 % class check.

The integrals come from per-block sums (``np.add.reduceat``) taken chunk by chunk, so
10 M samples never need a 10 M temporary array. That avoids the page-fault cost of
large allocations and keeps the work in cache. Nothing loops over samples in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PerCycleRms",
    "PerCyclePhasor",
    "per_cycle_rms",
    "per_cycle_phasor",
    "window_starts",
]

# Samples per chunk: small enough that a chunk and its temporaries stay in L2 cache,
# large enough that the per-chunk Python overhead stays small (measured on the bench PC).
_CHUNK_SAMPLES = 1 << 16


@dataclass(frozen=True)
class PerCycleRms:
    """One RMS value per window; ``t_s`` is the centre of each window."""

    t_s: NDArray[np.float64]
    rms: NDArray[np.float64]  # shape (n_windows,) or (n_channels, n_windows)

    def __iter__(self) -> Iterator[NDArray]:  # allows ``t_s, rms = per_cycle_rms(...)``
        return iter((self.t_s, self.rms))


@dataclass(frozen=True)
class PerCyclePhasor:
    """Complex RMS phasors of the fundamental; ``t_s`` is the centre of each window.

    The angle is measured against ``cos(2*pi*f_nominal_hz*t)`` with t = 0 at the first
    sample (plus ``t0_s``), so a signal at exactly nominal frequency has a constant
    phasor, and an off-nominal signal has a phasor that rotates at 2*pi*(f - f_nominal).
    """

    t_s: NDArray[np.float64]
    phasor: NDArray[np.complex128]  # shape (n_windows,) or (n_channels, n_windows)

    def __iter__(self) -> Iterator[NDArray]:
        return iter((self.t_s, self.phasor))


def _as_channels(
    x: ArrayLike | Sequence[ArrayLike],
) -> tuple[list[NDArray[np.float64]], bool]:
    """Split input into 1-D float64 channels, without copying when possible.

    Accepts one 1-D array, a 2-D (channel, sample) array, or a list/tuple of 1-D
    arrays (e.g. three phases held separately; they are not stacked, to avoid a copy).
    """
    if isinstance(x, (list, tuple)) and x and np.ndim(x[0]) == 1:
        channels = [np.ascontiguousarray(c, dtype=np.float64) for c in x]
        if any(c.ndim != 1 or c.size != channels[0].size for c in channels):
            raise ValueError("all channels must be 1-D arrays of the same length")
        return channels, True
    arr = np.asarray(x)
    if arr.ndim == 1:
        return [np.ascontiguousarray(arr, dtype=np.float64)], False
    if arr.ndim == 2:
        return [np.ascontiguousarray(row, dtype=np.float64) for row in arr], True
    raise ValueError(f"expected samples as a 1-D or 2-D (channel, sample) array, got shape {arr.shape}")


def window_starts(
    n_samples: int, samples_per_window: float, step_samples: float
) -> NDArray[np.float64]:
    """Fractional start positions of all windows that fit into ``n_samples`` samples.

    A window covers positions [start, start + samples_per_window] on the line
    through the samples, so the last usable end position is n_samples - 1.
    """
    if samples_per_window < 2.0:
        raise ValueError(f"a window must span at least 2 samples, got {samples_per_window:.3g}")
    if step_samples <= 0.0:
        raise ValueError("window step must be positive")
    span = (n_samples - 1) - samples_per_window
    if span < -1e-9:
        raise ValueError(
            f"record of {n_samples} samples is shorter than one window "
            f"({samples_per_window:.2f} samples)"
        )
    # The small tolerance keeps a window that ends exactly on the last sample despite rounding.
    n_windows = int(np.floor(max(span, 0.0) / step_samples + 1e-9)) + 1
    return np.arange(n_windows, dtype=np.float64) * step_samples


def _window_integrals(
    channels: Sequence[NDArray[np.float64]],
    starts: NDArray[np.float64],
    length: float,
    *,
    square: bool = False,
    omega_rad_per_sample: float | None = None,
) -> NDArray:
    """Integral of y over [start, start + length] (in sample units) for every channel.

    y is x, x**2 (``square``) or x * exp(-j*omega*k) (``omega_rad_per_sample``). y is
    integrated as the straight line through its samples (trapezoid rule), and partial
    samples at both ends are integrated exactly on that line.

    Returns an array of shape (len(channels), len(starts)), complex if demodulating.
    """
    n = channels[0].shape[0]
    demod = omega_rad_per_sample is not None
    ends = starts + length
    k_a = np.floor(starts).astype(np.intp)
    f_a = starts - k_a
    k_b = np.floor(ends).astype(np.intp)
    f_b = ends - k_b
    at_last = k_b >= n - 1  # window ends on (or a rounding hair past) the last sample
    k_b[at_last] = n - 1
    f_b[at_last] = 0.0

    # C(k + f) = P(k + 1) - y_k/2 + y_k*f + (y_{k+1} - y_k)*f^2/2, P(j) = sum_{i<j} y_i,
    # is the running trapezoid integral up to position k + f, shifted by the constant
    # y_0/2 that cancels in C(end) - C(start). So we need P at k_a + 1 and k_b + 1.
    needed = np.concatenate((k_a + 1, k_b + 1))
    chunk_edges = np.arange(0, n, _CHUNK_SAMPLES, dtype=np.intp)
    bounds = np.unique(np.concatenate((chunk_edges, needed[needed < n])))
    chunk_slots = np.searchsorted(bounds, np.append(chunk_edges, n))

    dtype = np.complex128 if demod else np.float64
    segment_sums = np.empty((len(channels), bounds.size), dtype=dtype)
    buf_re = np.empty(_CHUNK_SAMPLES)
    buf_im = np.empty(_CHUNK_SAMPLES) if demod else None
    if demod:
        local = np.arange(_CHUNK_SAMPLES) * omega_rad_per_sample
        cos_local, sin_local = np.cos(local), np.sin(local)
        # exp(-j*omega*k) = exp(-j*omega*c0) * exp(-j*omega*(k - c0)): the chunk's phase
        # is applied once to its block sums, not to every sample.
        chunk_phase = np.exp(-1j * omega_rad_per_sample * chunk_edges.astype(np.float64))

    for i_chunk, c0 in enumerate(chunk_edges):
        c1 = min(int(c0) + _CHUNK_SAMPLES, n)
        m = c1 - c0
        lo, hi = chunk_slots[i_chunk], chunk_slots[i_chunk + 1]
        local_bounds = bounds[lo:hi] - c0
        for ch, x in enumerate(channels):
            xc = x[c0:c1]
            if demod:
                re = np.multiply(xc, cos_local[:m], out=buf_re[:m])
                im = np.multiply(xc, sin_local[:m], out=buf_im[:m])
                sums = np.add.reduceat(re, local_bounds) - 1j * np.add.reduceat(im, local_bounds)
                segment_sums[ch, lo:hi] = sums * chunk_phase[i_chunk]
            elif square:
                y = np.multiply(xc, xc, out=buf_re[:m])
                segment_sums[ch, lo:hi] = np.add.reduceat(y, local_bounds)
            else:
                segment_sums[ch, lo:hi] = np.add.reduceat(xc, local_bounds)

    prefix = np.zeros((len(channels), bounds.size + 1), dtype=dtype)
    np.cumsum(segment_sums, axis=1, out=prefix[:, 1:])  # prefix[:, i] = P(bounds[i]); last = P(n)

    def running_integral(k: NDArray[np.intp], f: NDArray[np.float64]) -> NDArray:
        k_next = np.minimum(k + 1, n - 1)  # only reached with f == 0 at the last sample
        p = prefix[:, np.searchsorted(bounds, k + 1)]
        idx = np.concatenate((k, k_next))
        xs = np.stack([x[idx] for x in channels])
        if demod:
            ys = xs * np.exp(-1j * omega_rad_per_sample * idx.astype(np.float64))
        elif square:
            ys = xs * xs
        else:
            ys = xs
        y_k, y_next = ys[:, : k.size], ys[:, k.size :]
        return p - 0.5 * y_k + y_k * f + (y_next - y_k) * (0.5 * f * f)

    return running_integral(k_b, f_b) - running_integral(k_a, f_a)


def _window_geometry(
    n_samples: int,
    sample_rate_hz: float,
    f_nominal_hz: float,
    window_cycles: float,
    step_fraction: float,
) -> tuple[NDArray[np.float64], float]:
    if sample_rate_hz <= 0 or f_nominal_hz <= 0:
        raise ValueError("sample_rate_hz and f_nominal_hz must be positive")
    if window_cycles <= 0 or step_fraction <= 0:
        raise ValueError("window_cycles and step_fraction must be positive")
    samples_per_window = window_cycles * sample_rate_hz / f_nominal_hz
    starts = window_starts(n_samples, samples_per_window, step_fraction * samples_per_window)
    return starts, samples_per_window


def per_cycle_rms(
    x: ArrayLike,
    sample_rate_hz: float,
    f_nominal_hz: float,
    *,
    step_fraction: float = 1.0,
    window_cycles: float = 1.0,
    t0_s: float = 0.0,
) -> PerCycleRms:
    """RMS over windows of ``window_cycles`` nominal cycles.

    ``step_fraction`` = 1 gives back-to-back (block) windows; a smaller value gives
    sliding windows that advance by that fraction of a window. ``x`` may be 1-D,
    (channel, sample) or a list of 1-D channels; the result is 1-D or (channel, window). ``t0_s`` is the time of the
    first sample.
    """
    channels, multi = _as_channels(x)
    starts, length = _window_geometry(
        channels[0].size, sample_rate_hz, f_nominal_hz, window_cycles, step_fraction
    )
    energy = _window_integrals(channels, starts, length, square=True)
    rms = np.sqrt(np.maximum(energy, 0.0) / length)
    t_s = t0_s + (starts + 0.5 * length) / sample_rate_hz
    return PerCycleRms(t_s=t_s, rms=rms if multi else rms[0])


def per_cycle_phasor(
    x: ArrayLike,
    sample_rate_hz: float,
    f_nominal_hz: float,
    *,
    window_cycles: float = 1.0,
    step_fraction: float = 1.0,
    t0_s: float = 0.0,
) -> PerCyclePhasor:
    """Complex RMS phasor of the nominal-frequency component over sliding windows.

    It is a DFT at f_nominal_hz over ``window_cycles`` whole nominal cycles, so
    harmonics of f_nominal_hz are rejected. The window may hold a fractional number of
    samples. See :class:`PerCyclePhasor` for the angle reference.
    """
    channels, multi = _as_channels(x)
    starts, length = _window_geometry(
        channels[0].size, sample_rate_hz, f_nominal_hz, window_cycles, step_fraction
    )
    omega = 2.0 * np.pi * f_nominal_hz / sample_rate_hz
    integral = _window_integrals(channels, starts, length, omega_rad_per_sample=omega)
    # x = sqrt(2)*|X|*cos(w t + phi)  ->  mean(x * exp(-j w t)) = X / sqrt(2)
    phasor = (np.sqrt(2.0) / length) * integral
    # The angle reference is sample 0. Shifting it to absolute time t0_s keeps phasors
    # from separate captures comparable.
    if t0_s:
        phasor = phasor * np.exp(-1j * 2.0 * np.pi * f_nominal_hz * t0_s)
    t_s = t0_s + (starts + 0.5 * length) / sample_rate_hz
    return PerCyclePhasor(t_s=t_s, phasor=phasor if multi else phasor[0])
