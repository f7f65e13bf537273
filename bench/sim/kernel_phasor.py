"""Phasor (RMS) step kernel of the virtual bench, for long runs at 1-10 ms steps (numba).

The same bench as kernel_emt, balanced and at the fundamental: every quantity is a complex
RMS phasor X of phase A in the frame rotating at nominal frequency (x_a(t) =
sqrt(2) Re(X e^{j w0 t}), phases B and C lag by 120 and 240 degrees). The network is
algebraic at this time scale (its L/R and LC modes are milliseconds): each step solves the
PCC node equation, with the PCS and the AI load as voltage-dependent current sources
(a few fixed-point passes). Everything slower runs as in EMT and mostly through the same
code: the PCS's supervisory logic, protection, ride-through hold, limiter, ramps,
smoothing, frequency-watt, volt-var, the DC link (backward Euler, stable at any step),
the genset's rotor, governor and AVR. The PCS's current loop is taken as ideal (its 300 Hz
bandwidth is far inside one phasor step) and its PLL as the angle of the PCC voltage.

Scope: grid following only (a grid-forming PCS needs EMT or its own phasor model, not
written); unbalanced programming and faults are reduced to their positive sequence by the
plant. It reuses kernel_emt's state/parameter layout and ``params[P_DT]`` is the phasor
step (the plant passes a copy of its parameters with the step replaced).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from bench.sim import kernel_emt as k
from bench.sim import kernel_genset as gen
from bench.sim import kernel_grid_events as ge
from bench.sim import kernel_telemetry as tel

# phasor ring columns: time, then (re, im) of V, I_pcs, I_grid, I_load, I_gen, then vdc, idc
(PH_T, PH_V, PH_IF, PH_IG, PH_IL, PH_IGEN) = (0, 1, 3, 5, 7, 9)
PH_VDC, PH_IDC = 11, 12
N_PH_COLS = 13
FIXED_POINT_PASSES = 3
PLL_TAU_S = 0.008        # the PLL's frequency estimate (20 Hz bandwidth, as in EMT)
SQRT2 = math.sqrt(2.0)


@numba.njit(cache=True)
def _cplx(state: np.ndarray, index: int) -> complex:
    return complex(state[index], state[index + 1])


@numba.njit(cache=True)
def _store(state: np.ndarray, index: int, value: complex) -> None:
    state[index] = value.real
    state[index + 1] = value.imag


@numba.njit(cache=True)
def _wrap(angle: float) -> float:
    return (angle + math.pi) % k.TWO_PI - math.pi


@numba.njit(cache=True)
def source_positive_sequence(params: np.ndarray) -> complex:
    """Positive-sequence phasor of the programmed grid-simulator phases (at angle 0 of
    its own rotation): (Va + a Vb + a^2 Vc) / 3."""
    a = complex(math.cos(k.TWO_PI / 3.0), math.sin(k.TWO_PI / 3.0))
    e = 0j
    rot = 1.0 + 0j
    for ph in range(3):
        ang = params[k.P_SRC_PHA + ph]
        e += params[k.P_SRC_VA + ph] * complex(math.cos(ang), math.sin(ang)) * rot
        rot *= a
    return e / 3.0


@numba.njit(cache=True)
def run_phasor_steps(n_steps: int, t0_s: float, state: np.ndarray, params: np.ndarray,
                     meas: np.ndarray, events: np.ndarray, ph_ring: np.ndarray,
                     ring_row0: int, ai_p_w: np.ndarray) -> int:
    """Advance up to n_steps phasor steps of params[P_DT]; returns the steps done (fewer
    when the event buffer is nearly full or the numerical guard fired)."""
    dt = params[k.P_DT]
    w0 = k.TWO_PI * params[k.P_F_NOM]
    v_ln_nom = params[k.P_VPK_NOM] / SQRT2
    n_rows = ph_ring.shape[0]
    ev_stop = events.shape[0] - 8
    e_src0 = source_positive_sequence(params)
    f_tgt = params[k.P_SRC_F]          # a ramp moves the source towards it every step
    rocof = params[k.P_SRC_ROCOF]
    z_g = complex(params[k.P_RG], w0 * params[k.P_LG])
    y_bank = complex(params[k.P_BANK_G], w0 * params[k.P_BANK_C])
    if params[k.P_BANK_L] > 0.0:
        y_bank += 1.0 / complex(0.0, w0 * params[k.P_BANK_L])
    g_fault = (params[k.P_G_A] + params[k.P_G_B] + params[k.P_G_C]) / 3.0
    y_shunt = y_bank + complex(g_fault, w0 * params[k.P_C])
    gen_running = params[k.P_GEN_ON] > 0.5
    gen_closed = gen_running and params[k.P_GEN_BRK] > 0.5
    y_gen = 0j
    if gen_closed:
        y_gen = 1.0 / complex(params[k.P_GEN_R], w0 * params[k.P_GEN_L])
    ai_imax = params[k.P_AI_IMAX_PK] / SQRT2
    a_ai = min(dt / params[k.P_AI_TAU], 1.0)
    a_load = min(dt / params[k.P_SMOOTH_TAU], 1.0)
    a_pll = min(dt / PLL_TAU_S, 1.0)
    a_temp = min(dt / params[k.P_TEMP_TAU], 1.0)
    a_win = min(dt / (0.5 / params[k.P_F_NOM]), 1.0)
    r_f = params[k.P_RF]
    for step in range(n_steps):
        if state[k.S_EV_N] >= ev_stop:
            return step
        t_s = t0_s + step * dt
        t_end = t_s + dt
        v = _cplx(state, k.S_PH_V)
        v_abs = abs(v)
        # --- the PCS's view of the bus (balanced: every phase RMS equals |V1|). Its RMS
        # values are one-cycle windows in EMT; a moving window of length T delays by T/2
        # on average, so here a first-order filter of T/2 stands in for it (a one-step
        # spike of the algebraic network must not trip what a cycle window would not see)
        v1_prev = state[k.S_V1_PU]
        v1_pu = v1_prev + (v_abs / v_ln_nom - v1_prev) * a_win
        state[k.S_V1_PU] = v1_pu
        state[k.S_VMIN_PU] = v1_pu
        state[k.S_VMAX_PU] = v1_pu
        state[k.S_V1_PRE] += (v1_pu - state[k.S_V1_PRE]) * min(dt / k.V1_PRE_TAU_S, 1.0)
        ang = math.atan2(v.imag, v.real) if v_abs > 0.0 else state[k.S_PH_ANG]
        w_bus = w0 + _wrap(ang - state[k.S_PH_ANG]) / dt
        state[k.S_PH_ANG] = ang
        if v_abs > 0.3 * v_ln_nom:
            state[k.S_PLL_W] += (w_bus - state[k.S_PLL_W]) * a_pll
            state[k.S_PLL_LOCKED] = 1.0
        else:
            state[k.S_PLL_LOCKED] = 0.0
        th = ang + w0 * t_s
        state[k.S_PLL_TH] = th - k.TWO_PI * math.floor(th / k.TWO_PI)
        src_on = params[k.P_SRC_ON] > 0.5 and state[k.S_PCC_CLOSED] > 0.5
        for ph in range(3):
            state[k.S_SW_SRC + ph] = 1.0 if src_on else 0.0
        vpk = SQRT2 * v_abs
        rt_before = state[k.S_RT]
        k.supervise(state, params, events, t_s, vpk, vpk, vpk)
        if rt_before < 0.5 and state[k.S_RT] > 0.5:
            # the hold rescales the references to the pre-disturbance voltage from the
            # voltage they were computed at: the previous step's here (EMT: this sample's)
            v_scale = max(v1_prev, 0.2) / max(state[k.S_V1_PRE], 0.2)
            state[k.S_ID_HOLD] = state[k.S_ID_REF] * v_scale
            state[k.S_IQ_HOLD] = state[k.S_IQ_REF] * v_scale
        # --- the PCS's current references (peak A, PLL frame) -> RMS phasor
        powered = src_on or gen_closed
        id_ref, iqc_ref = 0.0, 0.0
        if state[k.S_GFM] < 0.5:
            id_ref, iqc_ref = k.current_references(state, params, events, t_s)
        if state[k.S_BRK] < 0.5 or not powered or state[k.S_GFM] > 0.5:
            id_ref, iqc_ref = 0.0, 0.0     # a grid follower cannot hold a sourceless bus
        i_dq = complex(id_ref, -iqc_ref) / SQRT2
        # --- AI load: delivered power (first order), then a current at the bus voltage
        state[k.S_AI_P] += (ai_p_w[step] - state[k.S_AI_P]) * a_ai
        p_ai = state[k.S_AI_P]
        # --- sources
        f_src = state[k.S_SRC_F]
        f_new = ge.next_source_frequency(f_src, f_tgt, rocof, dt)
        th_src = state[k.S_SRC_TH] + math.pi * dt * (f_src + f_new)   # exact for a ramp
        state[k.S_SRC_F] = f_new
        th_src -= k.TWO_PI * math.floor(th_src / k.TWO_PI)
        state[k.S_SRC_TH] = th_src
        rot_src = complex(math.cos(th_src - w0 * t_end), math.sin(th_src - w0 * t_end))
        e_g = e_src0 * rot_src
        y_g = 1.0 / z_g if src_on else 0j
        e_gen = 0j
        if gen_running:
            d = state[k.S_GEN_TH] - w0 * t_s
            e_gen = state[k.S_GEN_E] * params[k.P_GEN_VPK] / SQRT2 * complex(math.cos(d), math.sin(d))
        y_total = y_g + y_gen + y_shunt
        # --- PCC node: fixed point on the voltage-dependent current sources
        i_pcs = 0j
        i_ai = 0j
        if not powered:
            v = 0j
        else:
            for _ in range(FIXED_POINT_PASSES):
                v_abs = abs(v)
                unit = v / v_abs if v_abs > 1e-9 else 1.0 + 0j
                i_pcs = i_dq * unit
                v_floor = max(v_abs, 0.3 * v_ln_nom)
                g_ai = p_ai / (3.0 * v_floor * v_floor)
                i_ai = g_ai * v
                if abs(i_ai) > ai_imax:
                    i_ai *= ai_imax / abs(i_ai)
                v = (e_g * y_g + e_gen * y_gen + i_pcs - i_ai) / y_total
        i_g = (e_g - v) * y_g
        i_gen = (e_gen - v) * y_gen
        i_load = v * y_bank + i_ai
        # --- DC side: converter power = AC output + filter copper losses
        p_ac = 3.0 * (v * i_pcs.conjugate()).real
        p_conv = p_ac + 3.0 * r_f * (i_pcs.real ** 2 + i_pcs.imag ** 2)
        i_conv = p_conv / max(state[k.S_VDC], 1.0)
        k.step_dc_link(state, params, i_conv)
        # the battery is the DC source: its energy includes the DC link's own losses (bleed)
        k.count_energy(state, params, state[k.S_VDC] * state[k.S_IDC_SRC] * dt)
        k.update_bms_limits(state, params, events, t_end)
        # --- genset mechanics and AVR
        if gen_running:
            pe = 3.0 * (e_gen * i_gen.conjugate()).real
            v_term = abs(v) / (params[k.P_GEN_VPK] / SQRT2) if gen_closed else state[k.S_GEN_E]
            gen.genset_dynamics(state, params, pe, v_term)
        # --- thermal
        i_rated_rms2 = 0.5 * params[k.P_IPK_RATED] ** 2
        i2_pu = (i_pcs.real ** 2 + i_pcs.imag ** 2) / i_rated_rms2
        t_target = params[k.P_TEMP_AMB] + params[k.P_TEMP_RISE] * i2_pu
        state[k.S_TEMP_C] += (t_target - state[k.S_TEMP_C]) * a_temp
        # --- numerical guard
        if not (abs(v) < 1e7):
            k.fail(state, k.ERR_PCC, t_end, abs(v))
            return step
        if not (abs(i_g) < params[k.P_GUARD_IG_PK]):
            k.fail(state, k.ERR_GRID, t_end, abs(i_g))
            return step
        # --- telemetry: the phasor values are the cycle averages of this step
        s_pcs = 3.0 * v * i_pcs.conjugate()
        s_src = 3.0 * e_g * i_g.conjugate()
        s_grid = 3.0 * v * i_g.conjugate()
        s_load = 3.0 * v * i_load.conjugate()
        s_gen = 3.0 * v * i_gen.conjugate()
        m = k.M_AVG
        v2 = v.real ** 2 + v.imag ** 2
        for ph in range(3):
            meas[m + k.A_V2 + ph] = v2
            meas[m + k.A_VLL2 + ph] = 3.0 * v2
            meas[m + k.A_IF2 + ph] = i_pcs.real ** 2 + i_pcs.imag ** 2
            meas[m + k.A_IG2 + ph] = i_g.real ** 2 + i_g.imag ** 2
            meas[m + k.A_E2 + ph] = params[k.P_SRC_VA + ph] ** 2 if src_on else 0.0
            meas[m + k.A_IGEN2 + ph] = i_gen.real ** 2 + i_gen.imag ** 2
            meas[m + k.A_ILOAD2 + ph] = i_load.real ** 2 + i_load.imag ** 2
        meas[m + k.A_P_PCS] = s_pcs.real
        meas[m + k.A_Q_PCS] = s_pcs.imag
        meas[m + k.A_P_SRC] = s_src.real
        meas[m + k.A_Q_SRC] = s_src.imag
        meas[m + k.A_VDC] = state[k.S_VDC]
        meas[m + k.A_IDC_PCS] = i_conv
        meas[m + k.A_IDC_SRC] = state[k.S_IDC_SRC]
        meas[m + k.A_F_PLL] = state[k.S_PLL_W] / k.TWO_PI
        meas[m + k.A_F_SRC] = state[k.S_SRC_F]
        meas[m + k.A_P_LOAD] = s_load.real
        meas[m + k.A_Q_LOAD] = s_load.imag
        meas[m + k.A_P_AI] = 3.0 * (v * i_ai.conjugate()).real
        meas[m + k.A_P_GEN] = s_gen.real
        meas[m + k.A_Q_GEN] = s_gen.imag
        meas[m + k.A_F_GEN] = state[k.S_GEN_W] / k.TWO_PI
        meas[m + k.A_P_GRID] = s_grid.real
        meas[m + k.A_Q_GRID] = s_grid.imag
        meas[k.M_T_END] = t_end
        meas[k.M_VALID] = 1.0
        tel.window_completed(state, params, meas, dt)    # the PCS's telemetry image
        # the PCS's load-power sensing for smoothing
        state[k.S_PLOAD_F] += (s_load.real - state[k.S_PLOAD_F]) * a_load
        # --- state and the phasor ring
        _store(state, k.S_PH_V, v)
        _store(state, k.S_PH_IF, i_pcs)
        _store(state, k.S_PH_IG, i_g)
        _store(state, k.S_PH_IGEN, i_gen)
        row = ph_ring[(ring_row0 + step) % n_rows]
        row[PH_T] = t_end
        row[PH_V] = v.real
        row[PH_V + 1] = v.imag
        row[PH_IF] = i_pcs.real
        row[PH_IF + 1] = i_pcs.imag
        row[PH_IG] = i_g.real
        row[PH_IG + 1] = i_g.imag
        row[PH_IL] = i_load.real
        row[PH_IL + 1] = i_load.imag
        row[PH_IGEN] = i_gen.real
        row[PH_IGEN + 1] = i_gen.imag
        row[PH_VDC] = state[k.S_VDC]
        row[PH_IDC] = i_conv
    return n_steps
