"""Genset physics of the virtual bench (numba; part of the EMT step kernel).

Classical machine model (see genset.py for why): EMF e = E(t) cos(theta - k 2pi/3)
behind the set's R-L branch of the network (kernel_emt.build_network), rotor
2H/w0 dw/dt = (Pm - Pe)/S, governor Pm' = (P_ref + K_gov (w0 - w) - Pm)/tau_engine,
AVR: PI on the filtered terminal voltage, field first-order towards its output.

The state/parameter layout is kernel_emt's; this module imports its constants.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from bench.sim.kernel_emt import (
    P_DT, P_F_NOM, P_GEN_2H, P_GEN_AVR_KI, P_GEN_AVR_KP, P_GEN_BRK, P_GEN_EMAX,
    P_GEN_KGOV, P_GEN_PREF, P_GEN_S, P_GEN_TAU_ENG, P_GEN_TAU_F, P_GEN_VPK, P_GEN_VREF,
    S_GEN_E, S_GEN_EFD_INT, S_GEN_PE, S_GEN_PM, S_GEN_TH, S_GEN_VM, S_GEN_W, S_IGEN,
    S_VC, SQRT3, TWO_PI,
)

AVR_MEAS_TAU_S = 0.02           # the AVR's voltage sensing (about one cycle)
SQRT3_2 = 0.5 * math.sqrt(3.0)


@numba.njit(cache=True)
def genset_emf(state: np.ndarray, params: np.ndarray, e_gen: np.ndarray) -> None:
    """EMF of the three phases at mid-step (smooth source: second-order accurate hold)."""
    th = state[S_GEN_TH] + 0.5 * state[S_GEN_W] * params[P_DT]
    amp = params[P_GEN_VPK] * state[S_GEN_E]
    c = amp * math.cos(th)
    s = amp * math.sin(th)
    e_gen[0] = c
    e_gen[1] = -0.5 * c + SQRT3_2 * s          # cos(th - 2pi/3)
    e_gen[2] = -0.5 * c - SQRT3_2 * s          # cos(th + 2pi/3)


@numba.njit(cache=True)
def step_genset(state: np.ndarray, params: np.ndarray, e_gen: np.ndarray) -> None:
    """Rotor, governor/engine and AVR/field over one EMT step, after the network step."""
    ia, ib, ic = state[S_IGEN], state[S_IGEN + 1], state[S_IGEN + 2]
    pe = e_gen[0] * ia + e_gen[1] * ib + e_gen[2] * ic       # air-gap power
    # AVR: terminal voltage = PCC voltage with the breaker closed, the EMF without
    if params[P_GEN_BRK] > 0.5:
        va, vb, vc = state[S_VC], state[S_VC + 1], state[S_VC + 2]
        v_al = (2.0 * va - vb - vc) / 3.0
        v_be = (vb - vc) / SQRT3
        v_pu = math.sqrt(v_al * v_al + v_be * v_be) / params[P_GEN_VPK]
    else:
        v_pu = state[S_GEN_E]
    genset_dynamics(state, params, pe, v_pu)


@numba.njit(cache=True)
def genset_dynamics(state: np.ndarray, params: np.ndarray, pe: float, v_pu: float) -> None:
    """Rotor, governor/engine, AVR/field over one step of params[P_DT] (EMT or phasor),
    given the air-gap power (W) and the terminal voltage (pu of the set's nominal)."""
    dt = params[P_DT]
    w0 = TWO_PI * params[P_F_NOM]
    s_rated = params[P_GEN_S]
    state[S_GEN_PE] = pe
    w = state[S_GEN_W]
    # governor (speed droop) -> engine lag; the engine cannot absorb more than its
    # friction (~10 %) nor deliver more than its 110 % overload rating
    cmd = params[P_GEN_PREF] + params[P_GEN_KGOV] * (w0 - w)
    cmd = min(max(cmd, -0.1 * s_rated), 1.1 * s_rated)
    a_eng = dt / params[P_GEN_TAU_ENG]
    state[S_GEN_PM] += (cmd - state[S_GEN_PM]) * min(a_eng, 1.0)
    # swing equation (no damping against nominal: an islanded set has none)
    w += w0 * (state[S_GEN_PM] - pe) / (s_rated * params[P_GEN_2H]) * dt
    state[S_GEN_W] = w
    th = state[S_GEN_TH] + w * dt
    th -= TWO_PI * math.floor(th / TWO_PI)
    state[S_GEN_TH] = th
    state[S_GEN_VM] += (v_pu - state[S_GEN_VM]) * min(dt / AVR_MEAS_TAU_S, 1.0)
    err = params[P_GEN_VREF] - state[S_GEN_VM]
    e_max = params[P_GEN_EMAX]
    efd = params[P_GEN_AVR_KP] * err + state[S_GEN_EFD_INT]
    if efd > e_max:
        efd = e_max                    # ceiling: hold the integrator (anti-windup)
    elif efd < 0.0:
        efd = 0.0
    else:
        state[S_GEN_EFD_INT] += params[P_GEN_AVR_KI] * err * dt
    state[S_GEN_E] += (efd - state[S_GEN_E]) * min(dt / params[P_GEN_TAU_F], 1.0)
