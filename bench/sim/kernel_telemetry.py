"""The simulated PCS's telemetry image (numba; part of the EMT and phasor kernels).

A real PCS does not answer a Modbus read with a measurement taken at the moment of the
read. Its measurement task produces averages window by window (this one: one-cycle
windows, the averaging it declares to T1); a first-order filter smooths them; its
communication task copies them into the register image at its own refresh period, with the
refresh instant as their time stamp, and the image holds until the next refresh.
Voltages and currents are filtered as RMS values (the image holds RMS, not mean squares). A reader
polling faster than that sees the same values (and stamp) repeated; a step shows up at
the refresh after it, through the filter.

Here the refresh happens at the end of the measurement window that closes nearest each
multiple of ``P_TEL_PERIOD_S`` (the plant rounds the period to whole windows, so in EMT
every refresh instant is a window end: the stamp is exactly the end of the newest data in
the image). The image also latches the PCS's status at that instant (state, limit and
ride-through flags, grid forming, PCC breaker, temperature, SOC estimate, BMS limits), as
one register image. Filter and refresh run on the windows, not on every step: no cost on
the step's critical path. Phasor mode calls the same function once per phasor step (its
"window" is the step).

The state/parameter/meas layout is kernel_emt's; this module imports its constants.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from bench.sim.kernel_emt import (
    A_E2, A_IGEN2, A_ILOAD2, A_V2, M_AVG, M_T_END, M_TEL_AVG, M_TEL_BMS_CHA_W, M_TEL_BMS_DIS_W, M_TEL_FILT, M_TEL_FILT_VALID,
    M_TEL_GFM, M_TEL_LIM, M_TEL_MODE, M_TEL_PCC_CLOSED, M_TEL_RT, M_TEL_SOC_PCT, M_TEL_T,
    M_TEL_TEMP_C, M_TEL_VALID, N_ACC, P_TEL_FILTER_S, P_TEL_PERIOD_S, S_BMS_CHA_W, S_BMS_DIS_W,
    S_GFM, S_LIM, S_MODE, S_PCC_CLOSED, S_RT, S_TEL_NEXT_T, S_TEMP_C, pcs_soc_estimate_pct,
)


@numba.njit(cache=True)
def is_mean_square(index: int) -> bool:
    """Accumulator channels that hold mean squares (voltages, currents): the image holds
    their RMS values, filtered as such."""
    return (A_V2 <= index < A_E2 + 3) or (A_IGEN2 <= index < A_ILOAD2 + 3)


@numba.njit(cache=True)
def latch_status(state: np.ndarray, params: np.ndarray, meas: np.ndarray) -> None:
    """Copy the PCS's status into the image (at a refresh, and once at power-up)."""
    meas[M_TEL_MODE] = state[S_MODE]
    meas[M_TEL_LIM] = state[S_LIM]
    meas[M_TEL_RT] = state[S_RT]
    meas[M_TEL_GFM] = state[S_GFM]
    meas[M_TEL_PCC_CLOSED] = state[S_PCC_CLOSED]
    meas[M_TEL_TEMP_C] = state[S_TEMP_C]
    meas[M_TEL_SOC_PCT] = pcs_soc_estimate_pct(state, params)
    meas[M_TEL_BMS_DIS_W] = state[S_BMS_DIS_W]
    meas[M_TEL_BMS_CHA_W] = state[S_BMS_CHA_W]


@numba.njit(cache=True)
def window_completed(state: np.ndarray, params: np.ndarray, meas: np.ndarray,
                     window_s: float) -> None:
    """A measurement window of window_s has just closed (its averages at meas[M_AVG..],
    its end at meas[M_T_END]): filter them and, at a refresh instant, publish the image."""
    tau = params[P_TEL_FILTER_S]
    # the filter starts on the first window it sees (no ramp up from zero at power-up)
    a = 1.0
    if tau > 0.0 and meas[M_TEL_FILT_VALID] > 0.5:
        a = 1.0 - math.exp(-window_s / tau)
    for i in range(N_ACC):
        x = meas[M_AVG + i]
        if is_mean_square(i):
            x = math.sqrt(max(x, 0.0))      # RMS channels: the filter smooths the RMS value
        meas[M_TEL_FILT + i] += (x - meas[M_TEL_FILT + i]) * a
    meas[M_TEL_FILT_VALID] = 1.0
    t_end = meas[M_T_END]
    if t_end < state[S_TEL_NEXT_T] - 0.5 * window_s:
        return
    for i in range(N_ACC):
        meas[M_TEL_AVG + i] = meas[M_TEL_FILT + i]
    meas[M_TEL_T] = t_end
    meas[M_TEL_VALID] = 1.0
    latch_status(state, params, meas)
    period = params[P_TEL_PERIOD_S]
    # the next multiple of the period (the grid stays put whatever the window phase)
    state[S_TEL_NEXT_T] = (math.floor(t_end / period + 0.5) + 1.0) * period
