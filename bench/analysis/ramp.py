"""Ramp rates and tracking error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["RampRate", "TrackingError", "max_ramp_rate", "ramp_rate_at", "tracking_error"]


@dataclass(frozen=True)
class RampRate:
    rate_per_s: float  # signed change over the window divided by the window length
    t_start_s: float  # start of the window where it occurs


@dataclass(frozen=True)
class TrackingError:
    max_abs: float  # largest |y - reference|, in the units of y
    rms: float
    mean: float  # signed mean of y - reference (bias)
    index_of_max: int
    max_fraction: float | None  # max_abs / base, when a base was given


def ramp_rate_at(
    t_s: ArrayLike,
    y: ArrayLike,
    window_s: float,
    *,
    direction: Literal["both", "up", "down"] = "both",
) -> RampRate:
    """The window with the largest change of y over ``window_s``, and its signed rate per second.

    Windows start at every sample time. The end value is interpolated at
    t + window_s, so the window length is exact for any sample grid. The rate is the
    change between the window's ends, which is how grid codes define a ramp rate over
    a window. A spike that returns within the window does not count.
    ``direction`` limits the search to rising ("up") or falling ("down") changes.
    """
    t = np.asarray(t_s, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or t.shape != yv.shape:
        raise ValueError("need matching 1-D time and value arrays")
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    if np.any(np.diff(t) <= 0):
        raise ValueError("time stamps must increase")
    starts = t[t + window_s <= t[-1] + 1e-12 * max(1.0, abs(t[-1]))]
    if starts.size == 0:
        raise ValueError(f"record ({t[-1] - t[0]:.3g} s) is shorter than the window ({window_s} s)")
    change = np.interp(starts + window_s, t, yv) - yv[: starts.size]
    if direction == "both":
        score = np.abs(change)
    elif direction == "up":
        score = change
    elif direction == "down":
        score = -change
    else:
        raise ValueError(f"direction must be 'both', 'up' or 'down', got {direction!r}")
    i = int(np.argmax(score))
    return RampRate(rate_per_s=float(change[i] / window_s), t_start_s=float(starts[i]))


def max_ramp_rate(
    t_s: ArrayLike,
    y: ArrayLike,
    window_s: float,
    *,
    direction: Literal["both", "up", "down"] = "both",
) -> float:
    """Largest |change of y| over any window of ``window_s``, per second (see :func:`ramp_rate_at`)."""
    return abs(ramp_rate_at(t_s, y, window_s, direction=direction).rate_per_s)


def tracking_error(y: ArrayLike, reference: ArrayLike, *, base: float | None = None) -> TrackingError:
    """Error of y against a reference sampled at the same instants.

    ``base`` (e.g. the rated power or the IT-load step) expresses the worst error as a
    fraction, as in "tracking error <= 2 %".
    """
    yv = np.asarray(y, dtype=np.float64)
    ref = np.broadcast_to(np.asarray(reference, dtype=np.float64), yv.shape)
    if yv.size == 0:
        raise ValueError("empty signal")
    err = yv - ref
    i = int(np.argmax(np.abs(err)))
    max_abs = float(abs(err.flat[i]))
    if base is not None and base <= 0:
        raise ValueError("base must be positive")
    return TrackingError(
        max_abs=max_abs,
        rms=float(np.sqrt(np.mean(err * err))),
        mean=float(np.mean(err)),
        index_of_max=i,
        max_fraction=None if base is None else max_abs / base,
    )
