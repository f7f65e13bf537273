"""Grid-following outer-loop functions of the simulated PCS (numba; part of the EMT kernel).

What IEEE 1547 asks of a grid-following DER beyond P/Q setpoints, as a real PCS firmware
runs it on its own measurements:

* frequency-watt droop (model 711): outside a deadband the active power changes by
  rated / (droop x f_nom) per hertz, through a first-order lag whose 90 % time is the
  open-loop response time;
* volt-var (model 705): a piecewise-linear Q(V) curve on the positive-sequence voltage,
  through the same kind of lag; it replaces the constant-Q setpoint while enabled;
* enter service (model 703): a start waits until voltage and frequency have stayed
  inside the enter-service window for the enter-service delay;
* LF / HF must-trip curves (models 709 / 710): each point an independent timer on the
  measured frequency, like the voltage curves;
* the reactive-power setpoint ramp (vendor setting, ``reactive_power_var``);
* the weak-grid guard on the active-power ramp (vendor function, below).

Weak grids. A grid-following PCS injects the power it is told to and follows the voltage it
finds; behind a series R + jX (E = 1 pu) no operating point exists past the nose of the P-V
curve. At unity power factor the most it can export is P_max = 1 / (2 (|Z| - R)) pu: at
SCR 1.5, X/R 7 (|Z| 0.667, R 0.094 pu) that is 0.874 pu (0.894 pu with the bench's 0.03 pu
PCC capacitor, the nose at 0.80 pu voltage), so rated power at unity power factor is not
feasible there at all. It needs reactive support from the PCC voltage: the IEEE 1547
Category B volt-var curve settles at 1.0 pu power with 0.147 pu reactive power at 0.96 pu
(1.05 pu current, inside the 1.10 pu limit); 0.18 pu holds 1.0 pu voltage. Volt-var acts
through its open-loop response time (5 s by default), so an active-power ramp of 1 pu/s
outruns it, crosses the nose before the reactive power arrives, and the PLL loses the
collapsing voltage (observed: momentary cessation, then an HV trip). This PCS's weak-grid
function (bessbench's design, not a standard's): once its own ramp has visibly pulled the
PCC voltage down, the ramp of the setpoint part slows as the voltage falls towards the
ride-through entry and stops short of it (``active_power_ramp_w``); it resumes as soon as
reactive support lifts the voltage. Without reactive support the PCS holds at a feasible
point (~0.80 pu at SCR 1.5, 0.92 pu voltage) instead of collapsing, and says so in its
event log. A stiff grid that merely sits low does not trigger it. The guard acts on the
measured one-cycle voltage, so it keeps ramps up to about 1-2 pu/s on an SCR 1.5 grid away
from the nose; a faster ramp crosses it inside the PLL's response (tests:
tests/test_weak_grid_scr1_5.py).

The state/parameter layout is kernel_emt's; this module imports its constants.
"""

from __future__ import annotations

import numba
import numpy as np

from bench.sim.kernel_emt import (
    EV_ES_DONE, EV_ES_WAIT, MAX_TRIP_POINTS, P_DT, P_ES_DELAY_S, P_ES_EN, P_ES_F_HI,
    P_DEF_GEN_OSC, P_ES_F_LO, P_ES_V_HI, P_ES_V_LO, P_F_NOM, P_FW_DB_HZ, P_FW_EN, P_FW_TAU,
    P_FW_W_PER_HZ, P_HF_F, P_HF_T, P_LF_F, P_LF_T, P_N_HF, P_N_LF, P_N_VV,
    P_VV_Q, P_VV_TAU, P_VV_V, S_ES_T, S_ES_WAIT, S_F_MEAS, S_FW_DP, S_HF_TMR, S_LF_TMR,
    S_FW_HOLD_F, S_FW_HOLD_T, S_PLL_LOCKED, S_PLL_W, S_V1_PU, S_VV_VF, TRIP_HF, TRIP_LF, TWO_PI, push_event, trip,
    EV_P_HOLD_ENTER, EV_P_HOLD_EXIT, P_DB, P_P_SET, S_P_HOLD, S_P_RAMP, S_P_RAMP_V0,
    P_Q_RAMP, P_Q_SET, P_VV_EN, S_Q_RAMP,
)

# the firmware's frequency measurement: the PLL frequency through a ~1 cycle filter
# (the PLL's own proportional path rings on phase jumps; protection must not see that)
F_MEAS_TAU_S = 0.02
DEFECT_FREQ_HOLD_S = 0.1    # genset_interaction_oscillation: frequency sample period
DEFECT_FW_GAIN = 10.0       # ... and its droop gain error
# weak-grid ramp guard: the ramp runs at full speed down to RAMP_GUARD_FULL_PU above the
# ride-through entry (1 - dvs deadband), slows linearly below it and stops RAMP_GUARD_STOP_PU
# above the entry (the one-cycle voltage lags a ramp of 1 pu/s by ~0.01 pu near the nose);
# only once the ramp itself has pulled the voltage down by RAMP_GUARD_OWN_DROP_PU: a stiff
# grid that merely sits low (enter service allows 0.917 pu) barely moves with the PCS's
# power (SCR 5: 0.01 pu at rated), a weak one does (SCR 1.5: 0.10 pu by 0.8 pu power)
RAMP_GUARD_STOP_PU = 0.02
RAMP_GUARD_FULL_PU = 0.05
RAMP_GUARD_OWN_DROP_PU = 0.03


@numba.njit(cache=True)
def update_outer_measurements(state: np.ndarray, params: np.ndarray) -> None:
    """Filtered frequency and the enter-service timer; runs every step."""
    dt = params[P_DT]
    f_pll = state[S_PLL_W] / TWO_PI
    state[S_F_MEAS] += (f_pll - state[S_F_MEAS]) * min(dt / F_MEAS_TAU_S, 1.0)
    f = state[S_F_MEAS]
    v = state[S_V1_PU]
    inside = state[S_PLL_LOCKED] > 0.5 \
        and v >= params[P_ES_V_LO] and v <= params[P_ES_V_HI] \
        and f >= params[P_ES_F_LO] and f <= params[P_ES_F_HI]
    state[S_ES_T] = state[S_ES_T] + dt if inside else 0.0


@numba.njit(cache=True)
def enter_service_ready(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                        t_s: float) -> bool:
    """A start may close once the enter-service window has held for the delay; until
    then it waits (logged once), as long as it takes."""
    if params[P_ES_EN] < 0.5:
        return True
    if state[S_ES_T] >= params[P_ES_DELAY_S]:
        if state[S_ES_WAIT] > 0.5:
            state[S_ES_WAIT] = 0.0
            push_event(events, state, t_s, EV_ES_DONE, state[S_V1_PU], state[S_F_MEAS], 0.0)
        return True
    if state[S_ES_WAIT] < 0.5:
        state[S_ES_WAIT] = 1.0
        push_event(events, state, t_s, EV_ES_WAIT, state[S_V1_PU], state[S_F_MEAS],
                   params[P_ES_DELAY_S] - state[S_ES_T])
    return False


@numba.njit(cache=True)
def frequency_watt_w(state: np.ndarray, params: np.ndarray) -> float:
    """Active-power change (W) of the frequency droop: negative above nominal."""
    f = state[S_F_MEAS]
    gain = params[P_FW_W_PER_HZ]
    enabled = params[P_FW_EN] > 0.5
    if params[P_DEF_GEN_OSC] > 0.5:
        # seeded defect: a factory "fast frequency response" left on whatever fw_enabled
        # says, fed from the 10 Hz telemetry frequency (held 100 ms), its droop read as
        # per-mille (10x the gain) and without its response lag. Against a stiff grid it
        # never leaves the deadband; against a governor the held sample's delay turns
        # the loop into a sustained oscillation of a few hertz, bounded by the PCS rating.
        state[S_FW_HOLD_T] += params[P_DT]
        if state[S_FW_HOLD_T] >= DEFECT_FREQ_HOLD_S:
            state[S_FW_HOLD_T] = 0.0
            state[S_FW_HOLD_F] = f
        f = state[S_FW_HOLD_F]
        gain *= DEFECT_FW_GAIN
        enabled = True
    target = 0.0
    if enabled:
        df = f - params[P_F_NOM]
        db = params[P_FW_DB_HZ]
        if df > db:
            target = -(df - db) * gain
        elif df < -db:
            target = -(df + db) * gain
    if params[P_DEF_GEN_OSC] > 0.5:
        state[S_FW_DP] = target
    else:
        state[S_FW_DP] += (target - state[S_FW_DP]) * min(params[P_DT] / params[P_FW_TAU], 1.0)
    return state[S_FW_DP]


@numba.njit(cache=True)
def curve_value(params: np.ndarray, x_index: int, y_index: int, n: int, x: float) -> float:
    """Piecewise-linear y(x) through n points (x ascending), flat beyond the ends."""
    if n <= 0:
        return 0.0
    if x <= params[x_index]:
        return params[y_index]
    for i in range(1, n):
        x1 = params[x_index + i]
        if x <= x1:
            x0 = params[x_index + i - 1]
            y0 = params[y_index + i - 1]
            y1 = params[y_index + i]
            if x1 <= x0:
                return y1
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return params[y_index + n - 1]


@numba.njit(cache=True)
def volt_var_var(state: np.ndarray, params: np.ndarray) -> float:
    """Reactive power (var, capacitive +) of the volt-var curve at the filtered |V1|.
    The filter runs whether or not the function is enabled, so enabling is bumpless."""
    state[S_VV_VF] += (state[S_V1_PU] - state[S_VV_VF]) * min(params[P_DT] / params[P_VV_TAU], 1.0)
    return curve_value(params, P_VV_V, P_VV_Q, int(params[P_N_VV]), state[S_VV_VF])


@numba.njit(cache=True)
def reactive_power_var(state: np.ndarray, params: np.ndarray) -> float:
    """The reactive-power reference (var, capacitive +) outside ride-through: volt-var's
    when it is enabled (it has its own response lag), else the setpoint through the
    reactive-power ramp (P_Q_RAMP var/s; 0: a step, as SunSpec VarSet alone implies).
    While volt-var runs the ramp follows its output, so switching it off ramps from there
    to the setpoint instead of jumping."""
    q_vv = volt_var_var(state, params)
    if params[P_VV_EN] > 0.5:
        state[S_Q_RAMP] = q_vv
        return q_vv
    target = params[P_Q_SET]
    step = params[P_Q_RAMP] * params[P_DT]
    if step <= 0.0:
        state[S_Q_RAMP] = target
    else:
        state[S_Q_RAMP] += min(max(target - state[S_Q_RAMP], -step), step)
    return state[S_Q_RAMP]


@numba.njit(cache=True)
def check_frequency_trips(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                          t_s: float) -> bool:
    """LF/HF must-trip: each point an independent timer. True when it tripped."""
    dt = params[P_DT]
    f = state[S_F_MEAS]
    for i in range(int(params[P_N_LF])):
        if f < params[P_LF_F + i]:
            state[S_LF_TMR + i] += dt
            if state[S_LF_TMR + i] > params[P_LF_T + i]:
                trip(state, events, t_s, TRIP_LF, params[P_LF_F + i], params[P_LF_T + i])
                return True
        else:
            state[S_LF_TMR + i] = 0.0
    for i in range(int(params[P_N_HF])):
        if f > params[P_HF_F + i]:
            state[S_HF_TMR + i] += dt
            if state[S_HF_TMR + i] > params[P_HF_T + i]:
                trip(state, events, t_s, TRIP_HF, params[P_HF_F + i], params[P_HF_T + i])
                return True
        else:
            state[S_HF_TMR + i] = 0.0
    return False


@numba.njit(cache=True)
def reset_frequency_timers(state: np.ndarray) -> None:
    for i in range(MAX_TRIP_POINTS):
        state[S_LF_TMR + i] = 0.0
        state[S_HF_TMR + i] = 0.0


@numba.njit(cache=True)
def active_power_ramp_w(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                        t_s: float, step_w: float) -> float:
    """The ramp limiter's change (W) of the setpoint part this step, towards P_P_SET by at
    most step_w, with the weak-grid guard: moving away from zero, once the ramp has pulled
    the PCC voltage |V1| down by RAMP_GUARD_OWN_DROP_PU from where it set off, the step
    shrinks as |V1| falls from (1 - deadband + RAMP_GUARD_FULL_PU) to (1 - deadband +
    RAMP_GUARD_STOP_PU) and is zero below. Towards zero it is never held (less power lifts
    the voltage of an inductive grid). Entering / leaving the guard is an event (a = |V1|
    pu, b = the held power W)."""
    p_now = state[S_P_RAMP]
    change = min(max(params[P_P_SET] - p_now, -step_w), step_w)
    away = abs(p_now + change) > abs(p_now)
    v = state[S_V1_PU]
    if not away or p_now == 0.0:
        state[S_P_RAMP_V0] = v          # at rest, unloading or just started: ramps set off here
    v_stop = 1.0 - params[P_DB] + RAMP_GUARD_STOP_PU
    span = RAMP_GUARD_FULL_PU - RAMP_GUARD_STOP_PU
    scale = min(max((v - v_stop) / span, 0.0), 1.0)
    if state[S_P_RAMP_V0] - v < RAMP_GUARD_OWN_DROP_PU:
        scale = 1.0                     # the PCS's own power is not what holds the voltage low
    if state[S_P_HOLD] < 0.5:
        if away and scale < 1.0:
            state[S_P_HOLD] = 1.0
            push_event(events, state, t_s, EV_P_HOLD_ENTER, v, p_now, 0.0)
    elif not away or scale >= 1.0:
        state[S_P_HOLD] = 0.0
        push_event(events, state, t_s, EV_P_HOLD_EXIT, v, p_now, 0.0)
    return change * scale if away else change
