"""Throughput benchmark of the per-cycle analysis on synthetic three-phase V and I.

The CLI prints the returned dict as JSON. The benchmark generates a record as long as a
long scope capture on the virtual bench (20 kHz, i.e. its 50 us step), then times:
per-cycle RMS of all six channels, per-cycle phasors of all six channels, and
frequency plus RoCoF from the three voltages. The frequency timing runs from the raw
samples, so it includes its own phasor step. Making the data is not timed.
"""

from __future__ import annotations

import time

import numpy as np

from .cycles import per_cycle_phasor, per_cycle_rms
from .frequency import frequency_hz, rocof_hz_per_s

__all__ = ["analysis_benchmark"]


def _synthetic_three_phase(
    n_samples: int, sample_rate_hz: float, f_hz: float, v_rms_v: float, i_rms_a: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(3, n) voltages and (3, n) currents: slightly off-nominal, with a 5th harmonic and noise."""
    rng = np.random.default_rng(seed)
    theta = (2.0 * np.pi * f_hz / sample_rate_hz) * np.arange(n_samples, dtype=np.float64)
    v = np.empty((3, n_samples))
    i = np.empty((3, n_samples))
    for k, shift in enumerate((0.0, -2.0 * np.pi / 3.0, 2.0 * np.pi / 3.0)):
        np.cos(theta + shift, out=v[k])
        v[k] += 0.02 * np.cos(5.0 * (theta + shift))
        v[k] *= np.sqrt(2.0) * v_rms_v
        v[k] += rng.normal(0.0, 1.0, n_samples)
        np.cos(theta + shift - 0.3, out=i[k])
        i[k] *= np.sqrt(2.0) * i_rms_a
    return v, i


def analysis_benchmark(n_samples: int = 10_000_000) -> dict:
    """Time per-cycle RMS, phasors and frequency for ``n_samples`` on 3 phases of V and I."""
    sample_rate_hz = 20_000.0  # 333.33 samples per 60 Hz cycle: exercises fractional windows
    f_nominal_hz = 60.0
    v, i = _synthetic_three_phase(n_samples, sample_rate_hz, 60.02, 277.1, 300.7, seed=1)
    channels = [v[0], v[1], v[2], i[0], i[1], i[2]]

    t0 = time.perf_counter()
    rms = per_cycle_rms(channels, sample_rate_hz, f_nominal_hz)
    t1 = time.perf_counter()
    phasors = per_cycle_phasor(channels, sample_rate_hz, f_nominal_hz)
    t2 = time.perf_counter()
    freq = frequency_hz(v[0], v[1], v[2], sample_rate_hz, f_nominal_hz)
    rocof = rocof_hz_per_s(freq.t_s, freq.f_hz, window_s=0.1)
    t3 = time.perf_counter()

    return {
        "n_samples": int(n_samples),
        "n_channels": len(channels),
        "sample_rate_hz": sample_rate_hz,
        "n_windows": int(rms.t_s.size),
        "rms_s": t1 - t0,
        "phasor_s": t2 - t1,
        "frequency_s": t3 - t2,
        "total_s": t3 - t0,
        # Sanity figures, so a fast but wrong run is obvious from the output.
        "v_rms_mean_v": float(np.mean(rms.rms[:3])),
        "i_phasor_mean_a": float(np.mean(np.abs(phasors.phasor[3:]))),
        "f_mean_hz": float(np.mean(freq.f_hz)),
        "rocof_max_abs_hz_per_s": float(np.max(np.abs(rocof.rocof_hz_per_s))),
    }
