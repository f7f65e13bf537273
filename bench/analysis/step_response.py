"""Step-response metrics and the damping of decaying oscillations.

Response time is the IEEE 1547 open-loop response time: the time from the step to the
first time the output reaches 90 % of its final change. Crossing times are interpolated
between samples, so the result does not depend on the sample grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import uniform_filter1d
from scipy.optimize import least_squares

__all__ = [
    "StepMetrics",
    "DampedOscillation",
    "step_response",
    "damping_ratio_and_frequency",
    "noise_std",
]

# A change smaller than this many noise standard deviations is not treated as a step.
_MIN_STEP_TO_NOISE = 5.0


@dataclass(frozen=True)
class StepMetrics:
    """Step-response figures. Times are measured from ``t_step_s``.

    A time is None when the event is not in the data: never reached 90 %, or never
    settled before the record ends.
    """

    t_step_s: float
    y_initial: float
    y_final: float
    response_time_s: float | None  # first reach of 90 % of the final change (IEEE 1547)
    rise_time_s: float | None  # 10 % → 90 % of the final change
    settling_time_s: float | None  # enters and stays within +-settle_band*|change| of y_final
    overshoot: float  # peak excursion past y_final, as a fraction of |change| (>= 0)
    peak_time_s: float | None  # time of that peak (None when there is no overshoot)
    settle_band: float
    noise_std: float  # estimated noise on y, same units as y

    @property
    def change(self) -> float:
        return self.y_final - self.y_initial


class DampedOscillation(NamedTuple):
    damping_ratio: float
    damped_frequency_hz: float
    natural_frequency_hz: float
    amplitude: float  # envelope at the first sample
    offset: float  # value the oscillation decays to


def noise_std(y: ArrayLike) -> float:
    """Robust estimate of white-noise std: MAD of first differences.

    Steps and slow trends affect only a few differences, so they barely bias the estimate.
    """
    d = np.diff(np.asarray(y, dtype=np.float64))
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def _first_crossing_time(
    t: NDArray[np.float64], u: NDArray[np.float64], level: float
) -> float | None:
    """First time u reaches ``level`` from below, interpolated; None if never."""
    above = u >= level
    if not above.any():
        return None
    i = int(np.argmax(above))
    if i == 0:
        return float(t[0])
    u0, u1 = u[i - 1], u[i]
    frac = (level - u0) / (u1 - u0) if u1 != u0 else 1.0
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))


def step_response(
    t_s: ArrayLike,
    y: ArrayLike,
    t_step_s: float,
    y_initial: float | None = None,
    y_final: float | None = None,
    *,
    settle_band: float = 0.02,
    final_fraction: float = 0.1,
    smoothing_s: float | None = None,
) -> StepMetrics:
    """Response time (90 %), rise time, settling time, overshoot and peak time of a step.

    ``y_initial`` defaults to the median of the samples before ``t_step_s``.
    ``y_final`` defaults to the median of the last ``final_fraction`` of the record.
    Pass it (e.g. the commanded value) when the record may end before the output
    settles. ``smoothing_s`` applies a centred moving average before the times and the
    overshoot are read, so that noise does not trigger an early crossing or inflate the
    peak. Keep it well below the response time being measured.

    Raises ValueError when the record does not hold a step: the change is within
    ``5 * noise std``, or there are no samples before or after ``t_step_s``.
    """
    t = np.asarray(t_s, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or t.shape != yv.shape or t.size < 3:
        raise ValueError("need matching 1-D time and value arrays with at least 3 samples")
    if np.any(np.diff(t) <= 0):
        raise ValueError("time stamps must increase")
    if not 0.0 < settle_band < 1.0:
        raise ValueError("settle_band must be a fraction between 0 and 1")
    pre = t < t_step_s
    post = ~pre
    if not post.any():
        raise ValueError(f"no samples at or after the step time {t_step_s} s")
    if y_initial is None:
        if not pre.any():
            raise ValueError(f"no samples before the step time {t_step_s} s to read the initial value from")
        y_initial = float(np.median(yv[pre]))
    y_post = yv[post]
    t_post = t[post]
    if y_final is None:
        n_tail = max(1, int(round(final_fraction * y_post.size)))
        y_final = float(np.median(y_post[-n_tail:]))

    sigma = noise_std(yv)
    change = y_final - y_initial
    if abs(change) <= _MIN_STEP_TO_NOISE * sigma or change == 0.0:
        raise ValueError(
            f"no step in the data: change {change:.4g} from {y_initial:.4g} to {y_final:.4g} "
            f"is within {_MIN_STEP_TO_NOISE:g} x noise std {sigma:.3g}"
        )

    if smoothing_s:
        dt = float(np.median(np.diff(t)))
        n_smooth = int(round(smoothing_s / dt))
        if n_smooth > 1:
            y_post = uniform_filter1d(y_post, n_smooth, mode="nearest")

    # Progress from initial (0) to final (1); handles steps in either direction.
    u = (y_post - y_initial) / change
    t_10 = _first_crossing_time(t_post, u, 0.1)
    t_90 = _first_crossing_time(t_post, u, 0.9)
    response_time = None if t_90 is None else t_90 - t_step_s
    rise_time = None if (t_10 is None or t_90 is None) else t_90 - t_10

    outside = np.abs(u - 1.0) > settle_band
    if not outside.any():
        settling_time: float | None = 0.0
    elif outside[-1]:
        settling_time = None  # still outside the band at the end of the record
    else:
        last_out = int(np.flatnonzero(outside)[-1])
        # Interpolate the time at which |u - 1| comes back to the band edge.
        e0 = abs(u[last_out] - 1.0)
        e1 = abs(u[last_out + 1] - 1.0)
        frac = (e0 - settle_band) / (e0 - e1) if e0 != e1 else 1.0
        t_in = t_post[last_out] + frac * (t_post[last_out + 1] - t_post[last_out])
        settling_time = float(t_in - t_step_s)

    i_peak = int(np.argmax(u))
    overshoot = max(0.0, float(u[i_peak]) - 1.0)
    peak_time = float(t_post[i_peak] - t_step_s) if overshoot > 0.0 else None

    return StepMetrics(
        t_step_s=float(t_step_s),
        y_initial=float(y_initial),
        y_final=float(y_final),
        response_time_s=response_time,
        rise_time_s=rise_time,
        settling_time_s=settling_time,
        overshoot=overshoot,
        peak_time_s=peak_time,
        settle_band=settle_band,
        noise_std=sigma,
    )


def _damped_basis(tau: NDArray[np.float64], sigma: float, omega: float) -> NDArray[np.float64]:
    envelope = np.exp(-sigma * tau)
    return np.column_stack(
        (np.ones_like(tau), envelope * np.cos(omega * tau), envelope * np.sin(omega * tau))
    )


def damping_ratio_and_frequency(t_s: ArrayLike, y: ArrayLike) -> DampedOscillation:
    """Damping ratio and frequency of a decaying oscillation, fitted to the whole record.

    Model: y = c + exp(-sigma*tau) * (a*cos(wd*tau) + b*sin(wd*tau)), with tau = t - t[0].
    For each (sigma, wd), c, a and b follow from linear least squares (variable
    projection). A grid over the damping ratio, with wd started from the FFT peak,
    gives the start values, and a nonlinear least-squares fit refines them. This is
    more robust to noise than a log decrement on picked peaks. Pass the record from the
    start of the oscillation, e.g. the samples after a step. Growing oscillations
    (sigma < 0) come back as a negative damping ratio.
    """
    t = np.asarray(t_s, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or t.shape != yv.shape or t.size < 8:
        raise ValueError("need matching 1-D time and value arrays with at least 8 samples")
    tau = t - t[0]
    duration = tau[-1]
    if duration <= 0:
        raise ValueError("time stamps must increase")

    # Initial frequency from the FFT peak of the de-meaned record on a uniform grid,
    # zero-padded 8x for resolution.
    n_uniform = t.size
    tau_u = np.linspace(0.0, duration, n_uniform)
    y_u = np.interp(tau_u, tau, yv)
    y_u = y_u - y_u.mean()
    n_fft = 8 * int(2 ** np.ceil(np.log2(n_uniform)))
    spectrum = np.abs(np.fft.rfft(y_u, n_fft))
    freqs = np.fft.rfftfreq(n_fft, duration / (n_uniform - 1))
    spectrum[0] = 0.0
    k_peak = int(np.argmax(spectrum))
    if k_peak == 0 or spectrum[k_peak] == 0.0:
        raise ValueError("no oscillation found in the record")
    omega0 = 2.0 * np.pi * freqs[k_peak]

    def residual(params: NDArray[np.float64]) -> NDArray[np.float64]:
        sigma, omega = params
        basis = _damped_basis(tau, sigma, omega)
        coef, *_ = np.linalg.lstsq(basis, yv, rcond=None)
        return basis @ coef - yv

    best = None
    for zeta in np.concatenate((-np.geomspace(0.2, 0.005, 6), [0.0], np.geomspace(0.005, 0.9, 30))):
        for omega in (0.8 * omega0, omega0, 1.25 * omega0):
            # sigma = zeta*wn and wd = wn*sqrt(1 - zeta^2), so sigma = zeta*wd/sqrt(1 - zeta^2).
            sigma = zeta * omega / np.sqrt(1.0 - zeta * zeta)
            cost = float(np.sum(residual(np.array([sigma, omega])) ** 2))
            if best is None or cost < best[0]:
                best = (cost, sigma, omega)
    assert best is not None
    fit = least_squares(residual, x0=np.array(best[1:]), x_scale=np.array([omega0, omega0]))
    sigma, omega = (float(v) for v in fit.x)
    omega = abs(omega)
    coef, *_ = np.linalg.lstsq(_damped_basis(tau, sigma, omega), yv, rcond=None)
    omega_n = float(np.hypot(sigma, omega))
    return DampedOscillation(
        damping_ratio=sigma / omega_n,
        damped_frequency_hz=omega / (2.0 * np.pi),
        natural_frequency_hz=omega_n / (2.0 * np.pi),
        amplitude=float(np.hypot(coef[1], coef[2])),
        offset=float(coef[0]),
    )
