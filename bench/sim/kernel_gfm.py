"""Grid-forming control of the simulated PCS (numba; part of the EMT step kernel).

The PCS forms the voltage as an EMF behind a virtual impedance: the EMF's angle comes
from P-f droop (or a virtual synchronous machine's swing equation, the droop its governor,
its damping against the grid frequency), its magnitude from Q-V droop trimmed by a PCC
voltage-magnitude regulator (the outer voltage loop); the virtual impedance turns EMF minus
PCC voltage into the current reference of the existing dq current loop (the inner loop), so
current limiting stays a limit on that reference, with the declared P/Q priority on its
active and reactive parts (relative to the PCC voltage), as in grid following. While
limited on a grid the angle follows the bus, so that the PCS neither slips a pole nor
latches at its limit (_power_loop_frequency). The virtual impedance's resistance
rises above the fundamental (a transient virtual resistance): it damps the resonance of the
bus capacitance, a capacitive load's included, with the inductor that the current loop
emulates (plant.GFM_RT_PU says why and how much).

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
    P_GEN_BRK, P_GEN_ON, P_GFM_MP, P_GFM_MQ, P_GFM_PF_TAU, P_GFM_RT, P_GFM_RT_TAU,
    P_IMAX_PK, P_LV_VIRT, P_P_RAMP, P_P_SET, P_PRIO,
    P_Q_SET, P_RAMP_TIMEBASE, P_RV_VIRT, P_S_RATED, P_SRC_F, P_SRC_ON, P_SRC_PHA,
    P_SRC_VA, P_TRANSFER_GAP_S, P_VDC_MAX, P_VDC_MIN, P_VPK_NOM, P_VREG_KI, P_VREG_KP,
    P_VREG_TAU, P_VSM_2H, P_VSM_D, P_VSM_PF_TAU, P_GFM_SLIP_D,
    START_BUS_LIVE, START_DC_RANGE, START_NOT_OFF, SQRT3, TWO_PI,
    S_BLK_T, S_BRK, S_GAP_T, S_GFM, S_GFM_ENERG_T, S_GFM_ID, S_GFM_IQ, S_GFM_PF,
    S_GFM_ILP_D, S_GFM_ILP_Q, S_GFM_QF, S_GFM_RAMP, S_GFM_TH, S_GFM_VINT, S_GFM_VM, S_GFM_W,
    S_ID_INT, S_IF,
    S_IQ_INT, S_LIM, S_LOSS_T, S_MC, S_MODE, S_P_RAMP, S_PCC_CLOSED, S_PLL_LOCKED, S_PLL_TH,
    S_PLL_W, S_SRC_TH,
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
# current-limited on a grid (_power_loop_frequency): the angle follows the bus (the PLL) plus
# this fraction of the droop on the virtual impedance's power demand (a slow restoring pull,
# well below the PLL's and the impedance's own bandwidths); below HOLD_MIN_V_PU there is no
# bus to follow
LIMITED_DROOP_SCALE = 0.1
HOLD_MIN_V_PU = 0.2
# below this |V1| the limiter splits in the EMF's frame (no PCC voltage angle to split on)
LIMIT_FRAME_MIN_V_PU = 0.1


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
    state[S_GFM_ILP_D] = state[S_GFM_ID]      # the transient resistance starts at rest
    state[S_GFM_ILP_Q] = state[S_GFM_IQ]
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
            state[S_GFM_ILP_D] = 0.0
            state[S_GFM_ILP_Q] = 0.0
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
        # what the pull-in added to the frequency becomes part of the power setpoint (the
        # droop's, the VSM governor's), so closing does not step the power; the VSM's rotor
        # takes the pull-in's speed too, or it would slip against the grid at the
        # islanded droop frequency until its inertia caught up
        if params[P_GFM_MP] > 0.0:
            state[S_P_RAMP] += state[S_SYNC_INT] / params[P_GFM_MP]
        if params[P_CTRL_MODE] == CTRL_GFM_VSM:
            state[S_GFM_W] += state[S_SYNC_INT]
        state[S_SYNC_INT] = 0.0
    return dw


@numba.njit(cache=True)
def _power_loop_frequency(state: np.ndarray, params: np.ndarray, vsm: bool,
                          limited_on_grid: bool) -> float:
    """The frequency (rad/s) the power loop sets, before any synchronising pull-in: the
    P-f droop, or the VSM's swing equation (advanced one step here)."""
    dt = params[P_DT]
    w0 = TWO_PI * params[P_F_NOM]
    s_rated = params[P_S_RATED]
    if limited_on_grid:
        # Current-limited on a grid. Fed the delivered power, which the limit keeps short
        # of the setpoint, the droop or the swing equation advanced the angle until the PCS
        # slipped a pole (under a 0.6 pu sag the bus fell to 0.4 pu, the PCS absorbing 1 pu
        # of reactive current). Held to the bus, the angle can stay where the demand
        # exceeds the limit after the sag has gone (the PCS latched at its limit). So the
        # angle moves with the bus (the PLL) plus a slow droop on the power the virtual
        # impedance asks for (S_GFM_PF is fed that demand meanwhile): it drifts to where an
        # unlimited PCS would deliver the setpoint at this voltage, the limiter splits that
        # demand, and when the voltage returns the demand falls back inside the limit.
        if state[S_V1_PU] > HOLD_MIN_V_PU:
            w = state[S_PLL_W] + LIMITED_DROOP_SCALE * params[P_GFM_MP] * (
                state[S_P_RAMP] - state[S_GFM_PF])
        else:
            w = state[S_GFM_W]          # no bus to follow: keep turning as before
        if vsm:
            state[S_GFM_W] = w
        return w
    if not vsm:
        return w0 + params[P_GFM_MP] * (state[S_P_RAMP] - state[S_GFM_PF])
    # VSM, per unit: 2H dw/dt = p_set - p - (w - w0) / m - D (w - w_grid). The droop
    # setting m is its governor: it decides where the frequency settles, as the droop's.
    # The damping D acts on the slip against the grid frequency (the PLL), as a machine's
    # damper winding does. Against the nominal frequency it is one more droop, and D = 20
    # (5 %) against 2 s of inertia left zeta ~0.14 at SCR 5 (a 2.8 Hz swing), which the
    # droop's 20 ms power filter then undamped (plant.VSM_POWER_TAU_S). Islanded, the PLL
    # tracks the bus the PCS forms: no slip once settled, and the frequency falls to -m dP
    # with time constant 2H m.
    w = state[S_GFM_W]
    locked = state[S_PLL_LOCKED] > 0.5 and state[S_SYNC] < 0.5
    slip_pu = (w - state[S_PLL_W]) / w0 if locked else 0.0
    dp_pu = (state[S_P_RAMP] - state[S_GFM_PF]) / s_rated
    governor_pu = (w - w0) / (params[P_GFM_MP] * s_rated)
    w += w0 * (dp_pu - governor_pu - params[P_VSM_D] * slip_pu) / params[P_VSM_2H] * dt
    state[S_GFM_W] = w
    return w


@numba.njit(cache=True)
def _limit_virtual_current(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                           t_s: float, id_v: float, iq_v: float):
    """(id, iq_capacitive, limited) in the GFM frame: the virtual impedance's current
    limited to i_max with the declared priority. Active and reactive current are the parts
    in phase with and in quadrature to the PCC voltage, not to the EMF: the two frames
    differ by the angle across the virtual impedance, and a split made in the EMF's frame
    hands part of a "reactive" current to active power."""
    prio = int(params[P_PRIO])
    if params[P_DEF_PRIO_IGN] > 0.5:
        prio = PRIO_MIXED
    mag = math.sqrt(id_v * id_v + iq_v * iq_v)
    cv, sv = 1.0, 0.0
    if state[S_V1_PU] > LIMIT_FRAME_MIN_V_PU:
        # the PLL's frame, not the instantaneous PCC voltage: on a deep sag the current the
        # PCS injects turns the PCC voltage, and a split that followed it at once closed a
        # loop through the grid impedance that hunted at +-12 Hz
        d_th = state[S_PLL_TH] - state[S_GFM_TH]
        cv, sv = math.cos(d_th), math.sin(d_th)
    i_act = id_v * cv + iq_v * sv
    i_cap = id_v * sv - iq_v * cv                  # capacitive (supporting) positive
    i_act, i_cap, limited = limit_current(i_act, i_cap, params[P_IMAX_PK], prio)
    flag_limit(state, params, events, t_s, limited, mag, prio)
    return i_act * cv + i_cap * sv, i_cap * cv - i_act * sv, limited


@numba.njit(cache=True)
def grid_forming_references(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                            t_s: float, c: float, s: float, vd: float, vq: float):
    """(id, iq_capacitive) in the GFM frame; advances the GFM angle and the loops."""
    dt = params[P_DT]
    if int(state[S_MODE]) != MODE_RUNNING:
        state[S_GFM_ID] = 0.0
        state[S_GFM_IQ] = 0.0
        state[S_GFM_ILP_D] = 0.0
        state[S_GFM_ILP_Q] = 0.0
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
    vsm = params[P_CTRL_MODE] == CTRL_GFM_VSM
    limited_on_grid = state[S_LIM] > 0.5 and grid_connected(state, params)
    if limited_on_grid:
        # the power the virtual impedance asks for (see _power_loop_frequency)
        p_w = 1.5 * (vd * state[S_GFM_ID] + vq * state[S_GFM_IQ])
    elif not vsm and state[S_PLL_LOCKED] > 0.5 and state[S_SYNC] < 0.5:
        # the droop's damping: power in proportion to the slip against the grid frequency
        # (plant.GFM_DROOP_DAMPING_PU says why); nothing in steady state or islanded
        p_w += params[P_GFM_SLIP_D] * s_rated * (state[S_GFM_W] - state[S_PLL_W]) / w0
    a_pf = dt / (params[P_GFM_PF_TAU] + dt)
    a_p = dt / (params[P_VSM_PF_TAU] + dt) if vsm else a_pf
    state[S_GFM_PF] += (p_w - state[S_GFM_PF]) * a_p
    state[S_GFM_QF] += (q_var - state[S_GFM_QF]) * a_pf
    # --- angle: P-f droop, or the VSM swing equation
    w_droop = _power_loop_frequency(state, params, vsm, limited_on_grid)
    w_sync = 0.0
    if state[S_SYNC] > 0.5:
        w_sync = _synchronise(state, params, events, t_s, w_droop)
    w = w_droop + w_sync
    if not vsm:
        state[S_GFM_W] = w
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
    # --- virtual impedance R + jwL in this frame, backward Euler (stable for any L/R). The
    # transient resistance R_t acts on the current less its low-pass: R_v alone at the
    # fundamental (DC in this frame) and in the droops' range, R_v + R_t at the LC resonance
    l_v = params[P_LV_VIRT]
    r_t = params[P_GFM_RT]
    a = 1.0 + dt * (params[P_RV_VIRT] + r_t) / l_v
    b = dt * w
    r_d = state[S_GFM_ID] + dt / l_v * (e_v - vd + r_t * state[S_GFM_ILP_D])
    r_q = state[S_GFM_IQ] + dt / l_v * (0.0 - vq + r_t * state[S_GFM_ILP_Q])
    det = a * a + b * b
    id_v = (a * r_d + b * r_q) / det
    iq_v = (a * r_q - b * r_d) / det
    # The virtual impedance runs unlimited: it is a computation with no integrator to wind
    # up (its current settles at (E - V) / Z_v within L_v / R_v), so under a sustained
    # overload the limiter splits the impedance's own demand. Stepping it from the limited
    # current instead stalls where the inductor's rotation (w L_v i) balances the voltage
    # across it: a split set by the inductor, not by the priority (under Q priority a 0.6 pu
    # sag then drew 0.85 pu of active current and 0.6 pu of reactive).
    state[S_GFM_ID] = id_v
    state[S_GFM_IQ] = iq_v
    a_rt = dt / (params[P_GFM_RT_TAU] + dt)
    state[S_GFM_ILP_D] += (id_v - state[S_GFM_ILP_D]) * a_rt
    state[S_GFM_ILP_Q] += (iq_v - state[S_GFM_ILP_Q]) * a_rt
    # --- current-reference limiting with the declared priority; the voltage regulator
    # holds its integrator while limited
    id_l, iqc_l, limited = _limit_virtual_current(state, params, events, t_s, id_v, iq_v)
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
