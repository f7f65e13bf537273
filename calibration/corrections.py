"""Calibration corrections applied to captured channels: pure array functions."""
from __future__ import annotations

import numpy as np

from calibration.records import ChannelCorrection


def correct_channel(t_s: np.ndarray, values: np.ndarray, correction: ChannelCorrection) -> np.ndarray:
    """gain × value + offset, then deskew onto the common time axis.

    A channel with deskew d shows an event d seconds late, so its corrected value at t is
    its raw value at t + d (linear interpolation; the record's ends are held).
    """
    corrected = correction.gain * np.asarray(values, dtype=np.float64) + correction.offset
    if correction.deskew_s:
        corrected = np.interp(t_s + correction.deskew_s, t_s, corrected)
    return corrected
