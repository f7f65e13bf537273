"""Oscillation content within a frequency band, e.g. the 1–30 Hz check and limit cycles.

The spectrum is a Hann-windowed periodogram of the linearly detrended record, or a Welch
average of such periodograms. It is scaled as a power spectral density, so its sum over
a band times the bin width is the mean-square value in the band. That holds for noise
and for tones alike, since a tone's energy is kept in full across its main lobe. An
"amplitude" here is the peak amplitude of a sinusoid with the same in-band energy,
sqrt(2) times the in-band RMS.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import periodogram, welch

__all__ = [
    "BandOscillation",
    "DominantOscillation",
    "band_oscillation_amplitude",
    "band_oscillation",
    "dominant_oscillation",
    "uniform_sample_rate_hz",
]

# Hann main lobe: +-2 bins around the peak hold > 99.9 % of a tone's energy.
_HANN_HALF_LOBE_BINS = 2


class BandOscillation(NamedTuple):
    amplitude: float  # sqrt(2) * rms: peak of the equivalent sinusoid
    rms: float
    resolution_hz: float  # bin width of the spectrum used


class DominantOscillation(NamedTuple):
    frequency_hz: float
    amplitude: float  # peak amplitude of that component


def uniform_sample_rate_hz(t_s: ArrayLike, *, tolerance: float = 1e-3) -> float:
    """Sample rate of a uniformly sampled time vector. ValueError if the spacing varies by more than ``tolerance``."""
    t = np.asarray(t_s, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError("need a 1-D time vector with at least 2 samples")
    dt = np.diff(t)
    step = float(np.median(dt))
    if step <= 0 or np.any(np.abs(dt - step) > tolerance * step):
        raise ValueError("spectral analysis needs uniformly sampled data (resample first)")
    return 1.0 / step


def _spectrum(
    t_s: ArrayLike, y: ArrayLike, method: Literal["periodogram", "welch"], segment_s: float | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    yv = np.asarray(y, dtype=np.float64)
    fs = uniform_sample_rate_hz(t_s)
    if yv.shape != np.shape(t_s):
        raise ValueError("need matching time and value arrays")
    if method == "periodogram":
        return periodogram(yv, fs=fs, window="hann", detrend="linear", scaling="density")
    if method == "welch":
        nperseg = yv.size if segment_s is None else min(yv.size, int(round(segment_s * fs)))
        return welch(yv, fs=fs, window="hann", nperseg=nperseg, detrend="linear", scaling="density")
    raise ValueError(f"method must be 'periodogram' or 'welch', got {method!r}")


def _band_mask(freqs: NDArray[np.float64], f_low_hz: float, f_high_hz: float) -> NDArray[np.bool_]:
    if not 0.0 <= f_low_hz < f_high_hz:
        raise ValueError("need 0 <= f_low_hz < f_high_hz")
    mask = (freqs >= f_low_hz) & (freqs <= f_high_hz)
    if not mask.any():
        raise ValueError(
            f"no spectral bin within {f_low_hz}–{f_high_hz} Hz: the record is too short "
            f"(bin width {freqs[1] - freqs[0]:.3g} Hz) or the band is above Nyquist"
        )
    return mask


def band_oscillation(
    t_s: ArrayLike,
    y: ArrayLike,
    f_low_hz: float,
    f_high_hz: float,
    *,
    method: Literal["periodogram", "welch"] = "periodogram",
    segment_s: float | None = None,
) -> BandOscillation:
    """RMS and equivalent amplitude of the content of y between f_low_hz and f_high_hz (inclusive bins).

    The periodogram (the default) has the finest resolution, which matters for bands
    that start at a few tenths of a hertz. Welch with ``segment_s`` trades resolution
    for a steadier estimate on noisy records. A tone within two bins of a band edge is
    partly counted on both sides.
    """
    freqs, psd = _spectrum(t_s, y, method, segment_s)
    df = float(freqs[1] - freqs[0])
    power = float(np.sum(psd[_band_mask(freqs, f_low_hz, f_high_hz)]) * df)
    rms = np.sqrt(power)
    return BandOscillation(amplitude=float(np.sqrt(2.0) * rms), rms=float(rms), resolution_hz=df)


def band_oscillation_amplitude(
    t_s: ArrayLike,
    y: ArrayLike,
    f_low_hz: float,
    f_high_hz: float,
    *,
    method: Literal["periodogram", "welch"] = "periodogram",
    segment_s: float | None = None,
) -> float:
    """Peak amplitude of the sinusoid with the in-band energy of y (see :func:`band_oscillation`)."""
    return band_oscillation(t_s, y, f_low_hz, f_high_hz, method=method, segment_s=segment_s).amplitude


def dominant_oscillation(
    t_s: ArrayLike,
    y: ArrayLike,
    f_low_hz: float,
    f_high_hz: float,
    *,
    method: Literal["periodogram", "welch"] = "periodogram",
    segment_s: float | None = None,
) -> DominantOscillation:
    """Frequency and peak amplitude of the strongest spectral peak within the band.

    Frequency: a Gaussian (log-parabolic) fit through the peak bin and its neighbours,
    accurate to a small fraction of a bin for a Hann window. Amplitude: the energy of
    the peak's main lobe (+-2 bins), so it does not depend on where the tone falls
    between bins.
    """
    freqs, psd = _spectrum(t_s, y, method, segment_s)
    df = float(freqs[1] - freqs[0])
    in_band = np.flatnonzero(_band_mask(freqs, f_low_hz, f_high_hz))
    k = int(in_band[np.argmax(psd[in_band])])
    f_peak = float(freqs[k])
    if 0 < k < psd.size - 1 and np.all(psd[k - 1 : k + 2] > 0):
        l0, l1, l2 = np.log(psd[k - 1 : k + 2])
        denom = l0 - 2.0 * l1 + l2
        if denom < 0:
            f_peak += 0.5 * (l0 - l2) / denom * df
    lo, hi = max(0, k - _HANN_HALF_LOBE_BINS), min(psd.size, k + _HANN_HALF_LOBE_BINS + 1)
    power = float(np.sum(psd[lo:hi]) * df)
    return DominantOscillation(frequency_hz=f_peak, amplitude=float(np.sqrt(2.0 * power)))
