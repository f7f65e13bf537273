"""Grid-forming control of the simulated PCS (numba; part of the EMT step kernel).

The PCS forms the voltage as an EMF behind a virtual impedance: the EMF's angle comes
from P-f droop (or a virtual synchronous machine's swing equation), its magnitude from
Q-V droop trimmed by a PCC voltage-magnitude regulator (the outer voltage loop); the
virtual impedance turns EMF minus PCC voltage into the current reference of the existing
dq current loop (the inner loop), so current limiting stays a limit on that reference,
with the declared P/Q priority, as in grid following.

Also here: the PCC breaker commands (island, reconnect with synchronisation), black
start onto a dead bus with a soft voltage ramp, and the transfer from grid following to
grid forming when the grid is lost.

The state/parameter layout is kernel_emt's; this module imports its constants.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from bench.sim.kernel_emt import (
    CMD_BLACK_START, CMD_ISLAND, CMD_RECONNECT, CTRL_GFL, CTRL_GFM_VSM,
    EV_BRK_CLOSE, EV_BRK_OPEN, EV_GFM_ENTER, EV_GFM_EXIT, EV_GRID_LOSS, EV_START_FAIL,
    EV_MC_EXIT, EV_SYNC_START, MODE_MC, MODE_OFF, MODE_RUNNING, PRIO_MIXED,
    P_BS_FF, P_BS_KI_SCALE, P_BS_RAMP_S, P_CTRL_MODE, P_DEF_PRIO_IGN, P_DT, P_F_NOM,
    P_GEN_BRK, P_GEN_ON, P_GFM_MP, P_GFM_MQ, P_GFM_PF_TAU, P_IMAX_PK, P_LV_VIRT, P_P_RAMP, P_P_SET, P_PRIO,
    P_Q_SET, P_RAMP_TIMEBASE, P_RV_VIRT, P_S_RATED, P_SRC_F, P_SRC_ON, P_SRC_PHA,
    P_SRC_VA, P_TRANSFER_GAP_S, P_VDC_MAX, P_VDC_MIN, P_VPK_NOM, P_VREG_KI, P_VREG_KP,
    P_VREG_TAU, P_VSM_2H, P_VSM_D,
    START_BUS_LIVE, START_DC_RANGE, START_NOT_OFF, SQRT3, TWO_PI,
    S_BLK_T, S_BRK, S_GAP_T, S_GFM, S_GFM_ENERG_T, S_GFM_ID, S_GFM_IQ, S_GFM_PF,
    S_GFM_QF, S_GFM_RAMP, S_GFM_TH, S_GFM_VINT, S_GFM_VM, S_GFM_W, S_ID_INT, S_IF,
    S_IQ_INT, S_LOSS_T, S_MC, S_MODE, S_P_RAMP, S_PCC_CLOSED, S_PLL_TH, S_PLL_W, S_SRC_TH,
    S_SW_SRC, S_SYNC, S_SYNC_INT, S_SYNC_T, S_V1_PU, S_VDC,
    flag_limit, limit_current, push_event, set_mode,
)

LOSS_DETECT_S = 0.004       # grid-side breaker / source contactor open -> island detected
DEAD_BUS_PU = 0.1           # black start only onto a bus below this
ENERGISING_S = 2.0          # after the ramp, the start-up regime lasts at most this long
ENERGISED_ERR_PU = 0.02     # ... or until the measured |V| is this close to the reference
# re-synchronisation: phase pull-in (PI on the angle difference) and closing window
SYNC_KP_PER_S = 4.0
SYNC_KI_PER_S2 = 4.0
SYNC_MAX_DW = 2.0 * math.pi * 3.0     # at most 3 Hz away from the droop frequency
SYNC_ANGLE_RAD = math.radians(3.0)
SYNC_VOLT_PU = 0.03
SYNC_FREQ_HZ = 0.1
SYNC_HOLD_S = 0.05


@numba.njit(cache=True)
def _wrap(angle: float) -> float:
    return (angle + math.pi) % TWO_PI - math.pi


@numba.njit(cache=True)
def enter_grid_forming(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                       t_s: float, cause: int) -> None:
    """Bumpless start of grid forming from the PLL's view of the bus: same angle and
    frequency, the present current as the virtual-impedance current, the present
    power as the filtered power, the present voltage as the regulator's measurement."""
    th = state[S_PLL_TH]
    state[S_GFM] = 1.0
    state[S_GFM_TH] = th
    state[S_GFM_W] = state[S_PLL_W]
    c, s = math.cos(th), math.sin(th)
    ia, ib, ic = state[S_IF], state[S_IF + 1], state[S_IF + 2]
    i_al = (2.0 * ia - ib - ic) / 3.0
    i_be = (ib - ic) / SQRT3
    state[S_GFM_ID] = i_al * c + i_be * s
    state[S_GFM_IQ] = -i_al * s + i_be * c
    vpk = params[P_VPK_NOM]
    v = state[S_V1_PU] * vpk
    state[S_GFM_PF] = 1.5 * v * state[S_GFM_ID]
    state[S_GFM_QF] = -1.5 * v * state[S_GFM_IQ]
    state[S_GFM_VM] = state[S_V1_PU]
    state[S_GFM_VINT] = 0.0
    state[S_GFM_RAMP] = 1.0
    state[S_GFM_ENERG_T] = 1e9
    state[S_GAP_T] = 0.0
    state[S_LOSS_T] = 0.0
    push_event(events, state, t_s, EV_GFM_ENTER, cause, 0.0, 0.0)
    if int(state[S_MODE]) == MODE_MC:
        # a voltage source does not cease: it re-forms the collapsed bus
        state[S_MC] = 0.0
        push_event(events, state, t_s, EV_MC_EXIT, state[S_V1_PU], 0.0, 0.0)
        set_mode(state, events, t_s, MODE_RUNNING)


@numba.njit(cache=True)
def leave_grid_forming(state: np.ndarray, events: np.ndarray, t_s: float) -> None:
    """Back to grid following (grid connected): the PLL has tracked the bus all along,
    so its frame is the bus's; the ramp continues from the power delivered now."""
    state[S_GFM] = 0.0
    state[S_SYNC] = 0.0
    state[S_P_RAMP] = state[S_GFM_PF]
    push_event(events, state, t_s, EV_GFM_EXIT, 0.0, 0.0, 0.0)


@numba.njit(cache=True)
def grid_connected(state: np.ndarray, params: np.ndarray) -> bool:
    """The PCS sees the breaker statuses (hard-wired at a site): connected when the grid
    simulator's output and the PCC breaker both conduct, or a running genset's breaker
    is closed (a genset-formed bus is a grid to follow)."""
    if params[P_GEN_BRK] > 0.5 and params[P_GEN_ON] > 0.5:
        return True
    return (state[S_SW_SRC] + state[S_SW_SRC + 1] + state[S_SW_SRC + 2]) > 0.5


@numba.njit(cache=True)
def handle_gfm_command(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                       t_s: float, cmd: int) -> None:
    mode = int(state[S_MODE])
    if cmd == CMD_ISLAND:
        if state[S_PCC_CLOSED] > 0.5:
            state[S_PCC_CLOSED] = 0.0
            state[S_SYNC] = 0.0
            push_event(events, state, t_s, EV_BRK_OPEN, 0.0, 0.0, 0.0)
    elif cmd == CMD_RECONNECT:
        if state[S_PCC_CLOSED] > 0.5:
            return
        if mode == MODE_RUNNING and state[S_GFM] > 0.5:
            # the bus is live: close only once it is synchronised to the grid side
            state[S_SYNC] = 1.0
            state[S_SYNC_INT] = 0.0
            state[S_SYNC_T] = 0.0
            push_event(events, state, t_s, EV_SYNC_START, 0.0, 0.0, 0.0)
        else:
            state[S_PCC_CLOSED] = 1.0          # dead bus: nothing to synchronise
            push_event(events, state, t_s, EV_BRK_CLOSE, 0.0, 0.0, 0.0)
    elif cmd == CMD_BLACK_START:
        vdc = state[S_VDC]
        if mode != MODE_OFF:
            push_event(events, state, t_s, EV_START_FAIL, START_NOT_OFF, 0.0, 0.0)
        elif grid_connected(state, params) or state[S_V1_PU] > DEAD_BUS_PU:
            push_event(events, state, t_s, EV_START_FAIL, START_BUS_LIVE, state[S_V1_PU], 0.0)
        elif vdc < params[P_VDC_MIN] or vdc > params[P_VDC_MAX]:
            push_event(events, state, t_s, EV_START_FAIL, START_DC_RANGE, 0.0, vdc)
        else:
            state[S_BRK] = 1.0
            state[S_BLK_T] = 0.0
            state[S_ID_INT] = 0.0
            state[S_IQ_INT] = 0.0
            state[S_P_RAMP] = 0.0
            w0 = TWO_PI * params[P_F_NOM]
            state[S_PLL_W] = w0
            enter_grid_forming(state, params, events, t_s, 2.0)
            state[S_GFM_W] = w0
            state[S_GFM_ID] = 0.0
            state[S_GFM_IQ] = 0.0
            state[S_GFM_PF] = 0.0
            state[S_GFM_QF] = 0.0
            state[S_GFM_VM] = 0.0
            state[S_GFM_RAMP] = 0.0            # soft voltage ramp from zero
            state[S_GFM_ENERG_T] = 0.0
            set_mode(state, events, t_s, MODE_RUNNING)


@numba.njit(cache=True)
def supervise_grid_forming(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                           t_s: float) -> None:
    """RUNNING: which control runs (setting, grid loss, reconnection)."""
    dt = params[P_DT]
    want_gfm = params[P_CTRL_MODE] != CTRL_GFL
    connected = grid_connected(state, params)
    if state[S_GFM] < 0.5:
        if want_gfm:
            enter_grid_forming(state, params, events, t_s, 0.0)
            return
        if connected:
            state[S_LOSS_T] = 0.0
            return
        # grid lost under grid following: transfer to grid forming (seamless when healthy)
        if state[S_LOSS_T] < LOSS_DETECT_S:
            state[S_LOSS_T] += dt
            if state[S_LOSS_T] >= LOSS_DETECT_S:
                push_event(events, state, t_s, EV_GRID_LOSS, 0.0, 0.0, 0.0)
                # open the PCC breaker so the grid's return cannot close out of phase:
                # reconnection goes through "reconnect" (synchronised)
                if state[S_PCC_CLOSED] > 0.5:
                    state[S_PCC_CLOSED] = 0.0
                    push_event(events, state, t_s, EV_BRK_OPEN, 1.0, 0.0, 0.0)
                state[S_GAP_T] = params[P_TRANSFER_GAP_S]
                if state[S_GAP_T] <= 0.0:
                    enter_grid_forming(state, params, events, t_s, 1.0)
            return
        if state[S_GAP_T] > 0.0:
            state[S_GAP_T] -= dt
            if state[S_GAP_T] <= 0.0:
                state[S_GAP_T] = 0.0
                enter_grid_forming(state, params, events, t_s, 1.0)
        return
    # grid forming; a grid-following setting returns to it once grid connected
    if not want_gfm and connected and state[S_SYNC] < 0.5:
        leave_grid_forming(state, events, t_s)


@numba.njit(cache=True)
def _synchronise(state: np.ndarray, params: np.ndarray, events: np.ndarray, t_s: float,
                 w_droop: float) -> float:
    """Frequency offset (rad/s) that pulls the bus onto the grid side's phase; closes the
    PCC breaker once angle, voltage and frequency have been inside the window for
    SYNC_HOLD_S."""
    dt = params[P_DT]
    if params[P_SRC_ON] < 0.5:
        state[S_SYNC_T] = 0.0
        return 0.0
    # PLL angle = bus phase-A voltage angle; grid side = source phase-A angle
    d_th = _wrap(state[S_SRC_TH] + params[P_SRC_PHA] - state[S_PLL_TH])
    state[S_SYNC_INT] += SYNC_KI_PER_S2 * d_th * dt
    state[S_SYNC_INT] = min(max(state[S_SYNC_INT], -SYNC_MAX_DW), SYNC_MAX_DW)
    dw = min(max(SYNC_KP_PER_S * d_th + state[S_SYNC_INT], -SYNC_MAX_DW), SYNC_MAX_DW)
    v_grid_pu = math.sqrt(2.0) * params[P_SRC_VA] / params[P_VPK_NOM]
    f_err_hz = (w_droop + dw - TWO_PI * params[P_SRC_F]) / TWO_PI
    inside = abs(d_th) < SYNC_ANGLE_RAD and abs(state[S_V1_PU] - v_grid_pu) < SYNC_VOLT_PU \
        and abs(f_err_hz) < SYNC_FREQ_HZ
    state[S_SYNC_T] = state[S_SYNC_T] + dt if inside else 0.0
    if state[S_SYNC_T] >= SYNC_HOLD_S:
        state[S_PCC_CLOSED] = 1.0
        state[S_SYNC] = 0.0
        push_event(events, state, t_s, EV_BRK_CLOSE, math.degrees(d_th), f_err_hz, 0.0)
        # what the pull-in added to the frequency becomes part of the power setpoint,
        # so closing does not step the power
        if params[P_CTRL_MODE] != CTRL_GFM_VSM and params[P_GFM_MP] > 0.0:
            state[S_P_RAMP] += state[S_SYNC_INT] / params[P_GFM_MP]
        state[S_SYNC_INT] = 0.0
    return dw


@numba.njit(cache=True)
def grid_forming_references(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                            t_s: float, c: float, s: float, vd: float, vq: float):
    """(id, iq_capacitive) in the GFM frame; advances the GFM angle and the loops."""
    dt = params[P_DT]
    if int(state[S_MODE]) != MODE_RUNNING:
        state[S_GFM_ID] = 0.0
        state[S_GFM_IQ] = 0.0
        return 0.0, 0.0
    vpk = params[P_VPK_NOM]
    s_rated = params[P_S_RATED]
    w0 = TWO_PI * params[P_F_NOM]
    # power setpoint ramp (as in grid following)
    step = params[P_P_RAMP] * dt / params[P_RAMP_TIMEBASE]
    state[S_P_RAMP] += min(max(params[P_P_SET] - state[S_P_RAMP], -step), step)
    # measured output in this frame (capacitive Q > 0)
    ia, ib, ic = state[S_IF], state[S_IF + 1], state[S_IF + 2]
    i_al = (2.0 * ia - ib - ic) / 3.0
    i_be = (ib - ic) / SQRT3
    i_d = i_al * c + i_be * s
    i_q = -i_al * s + i_be * c
    p_w = 1.5 * (vd * i_d + vq * i_q)
    q_var = 1.5 * (vq * i_d - vd * i_q)
    a_pf = dt / (params[P_GFM_PF_TAU] + dt)
    state[S_GFM_PF] += (p_w - state[S_GFM_PF]) * a_pf
    state[S_GFM_QF] += (q_var - state[S_GFM_QF]) * a_pf
    # --- angle: P-f droop, or the VSM swing equation (damping against nominal)
    if params[P_CTRL_MODE] == CTRL_GFM_VSM:
        dp_pu = (state[S_P_RAMP] - state[S_GFM_PF]) / s_rated
        dw_pu = (state[S_GFM_W] - w0) / w0
        state[S_GFM_W] += w0 * (dp_pu - params[P_VSM_D] * dw_pu) / params[P_VSM_2H] * dt
        w_droop = state[S_GFM_W]
    else:
        w_droop = w0 + params[P_GFM_MP] * (state[S_P_RAMP] - state[S_GFM_PF])
    w_sync = 0.0
    if state[S_SYNC] > 0.5:
        w_sync = _synchronise(state, params, events, t_s, w_droop)
    w = w_droop + w_sync
    state[S_GFM_W] = w if params[P_CTRL_MODE] != CTRL_GFM_VSM else state[S_GFM_W]
    th = state[S_GFM_TH] + w * dt
    if th > TWO_PI:
        th -= TWO_PI
    state[S_GFM_TH] = th
    # --- voltage magnitude: Q-V droop reference, soft-start ramp, PCC voltage regulator
    v_ref = 1.0 + params[P_GFM_MQ] * (params[P_Q_SET] - state[S_GFM_QF]) / s_rated
    if state[S_SYNC] > 0.5:
        v_ref = math.sqrt(2.0) * params[P_SRC_VA] / vpk     # match the grid side
    if state[S_GFM_RAMP] < 1.0:
        state[S_GFM_RAMP] = min(state[S_GFM_RAMP] + dt / params[P_BS_RAMP_S], 1.0)
    v_ref *= state[S_GFM_RAMP]
    state[S_GFM_ENERG_T] += dt
    energising = state[S_GFM_ENERG_T] < params[P_BS_RAMP_S] + ENERGISING_S
    ki = params[P_VREG_KI] * (params[P_BS_KI_SCALE] if energising else 1.0)
    ff = params[P_BS_FF] if energising else 1.0
    v_meas = math.sqrt(vd * vd + vq * vq) / vpk
    state[S_GFM_VM] += (v_meas - state[S_GFM_VM]) * dt / params[P_VREG_TAU]
    err = v_ref - state[S_GFM_VM]
    e_pu = ff * v_ref + params[P_VREG_KP] * err + state[S_GFM_VINT]
    e_v = max(e_pu, 0.0) * vpk
    # --- virtual impedance R + jwL in this frame, backward Euler (stable for any L/R)
    l_v = params[P_LV_VIRT]
    a = 1.0 + dt * params[P_RV_VIRT] / l_v
    b = dt * w
    r_d = state[S_GFM_ID] + dt / l_v * (e_v - vd)
    r_q = state[S_GFM_IQ] + dt / l_v * (0.0 - vq)
    det = a * a + b * b
    id_v = (a * r_d + b * r_q) / det
    iq_v = (a * r_q - b * r_d) / det
    # --- current-reference limiting with the declared priority (d: active, q: reactive)
    prio = int(params[P_PRIO])
    if params[P_DEF_PRIO_IGN] > 0.5:
        prio = PRIO_MIXED
    mag = math.sqrt(id_v * id_v + iq_v * iq_v)
    id_l, iqc_l, limited = limit_current(id_v, -iq_v, params[P_IMAX_PK], prio)
    flag_limit(state, params, events, t_s, limited, mag, prio)
    # the virtual current carries what was delivered (anti-windup), and the voltage
    # regulator holds its integrator while limited
    state[S_GFM_ID] = id_l
    state[S_GFM_IQ] = -iqc_l
    # While energising, the integrator waits until the ramp is over and the (filtered)
    # measurement has caught up with the reference: integrating the lag of a filter
    # behind a ramp is what makes an energising overshoot. A regulator without
    # feed-forward (blackstart_overshoot) has to build the voltage with it regardless.
    if energising and ff > 0.0:
        if state[S_GFM_RAMP] >= 1.0 and abs(err) < ENERGISED_ERR_PU:
            state[S_GFM_ENERG_T] = 1e9          # energised: normal regulation from here
    elif not limited:
        state[S_GFM_VINT] += ki * err * dt
    return id_l, iqc_l
