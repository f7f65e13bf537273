"""Grid events of the virtual bench (numba; part of the EMT kernel, used by the phasor one).

What a regenerative grid simulator and a fault at the PCC add to the plain source:

* frequency ramps: the source frequency moves towards its programmed value at a programmed
  RoCoF one kernel step at a time, and the source angle integrates it (trapezoid: exact
  for a linear ramp). Stepping the frequency at chunk boundaries instead (measured in
  tests/test_grid_events.py, 5 Hz/s, each tread at the ramp's mid-chunk value): at the
  plant's 50 ms chunks the treads are 0.25 Hz, frequency steps a PLL and a RoCoF element
  see, and the angle strays 0.54 deg from the ramp's; 1 ms chunks bring that to 0.0002 deg
  but cost a kernel call (and, through a twin, a scheduled callback) every 20 steps: a 2 s
  ramp ran 1.5x slower at plant level, while the ramp in the kernel costs nothing
  measurable (a cos/sin per step while ramping);
* phase-to-phase faults: a conductance between two PCC nodes couples the phases, which the
  per-phase matrices cannot hold. While one is applied the network is discretised as one
  15-state system (exact ZOH, like the per-phase one) and stepped with the full
  [Phi | Gamma] (about 400 multiply-adds a step, only while the fault lasts);
* the protections that the T7 ride-through defects add to the PCS (a RoCoF element set far
  too sensitive, the fixed frequency element of an old firmware, a PLL whose loss of lock on
  a phase jump ceases current for a second). All are off on a healthy PCS.

The state/parameter layout is kernel_emt's; this module imports its constants.
"""

from __future__ import annotations

import numba
import numpy as np

from bench.sim.kernel_emt import (
    EV_LOCK_CEASE, EV_LOCK_RESUME, MODE_RUNNING, NU, NX, P_BANK_C, P_C, P_DEF_FTRIP_HI,
    P_DEF_FTRIP_LO, P_DEF_FTRIP_T, P_DEF_JUMP_CEASE_S, P_DEF_JUMP_ERR, P_DEF_ROCOF_DELAY,
    P_DEF_ROCOF_TRIP, P_DT, P_G_AB, S_F_MEAS, S_FTRIP_TMR, S_IF, S_IG, S_IGEN, S_IL,
    S_JUMP_CEASE_T, S_MODE, S_NET_COUPLED, S_PLL_ERR_F, S_PREV_VPP, S_ROCOF_EST,
    S_ROCOF_F_PREV, S_ROCOF_TMR, S_SW_GPP, S_SW_WAIT, S_TOPO_GPP, S_VC, SWITCH_FORCE_S,
    TRIP_F_FIXED, TRIP_ROCOF, assemble_phase, expm_small, push_event, trip,
)

# trip_on_rocof: the element's df/dt is the derivative of the firmware's (20 ms filtered)
# frequency through a 0.5 s lag, i.e. (f - f_slow) / tau: a ramp reads its rate after a few
# tau, a step of f reads step / tau and fades (RoCoF relays measure over hundreds of ms)
ROCOF_RELAY_TAU_S = 0.5
N_COUPLED = 3 * (NX + NU)        # states and inputs of all three phases


# ================================================================ frequency ramps
@numba.njit(cache=True)
def next_source_frequency(f_hz: float, target_hz: float, rocof_hz_per_s: float,
                          dt: float) -> float:
    """The source frequency one step on: towards the target at the RoCoF (no ramp: a step)."""
    if rocof_hz_per_s <= 0.0:
        return target_hz
    step = rocof_hz_per_s * dt
    if f_hz < target_hz:
        return min(f_hz + step, target_hz)
    return max(f_hz - step, target_hz)


# ================================================================ phase-to-phase faults
@numba.njit(cache=True)
def update_phase_to_phase_switches(state: np.ndarray, params: np.ndarray) -> bool:
    """Phase-to-phase fault branches (AB, BC, CA) towards what was requested: inception at
    once, clearing at the branch current's zero (the line voltage's: the branch is
    resistive), as the phase-to-ground branches do. True while one waits for its zero."""
    pending = False
    force = state[S_SW_WAIT] >= SWITCH_FORCE_S
    for k in range(3):
        v = state[S_VC + k] - state[S_VC + (k + 1) % 3]
        g_req = params[P_G_AB + k]
        if g_req > state[S_SW_GPP + k]:
            state[S_SW_GPP + k] = g_req
        elif g_req < state[S_SW_GPP + k]:
            if v * state[S_PREV_VPP + k] <= 0.0 or force:
                state[S_SW_GPP + k] = g_req
            else:
                pending = True
        state[S_PREV_VPP + k] = v
    return pending


@numba.njit(cache=True)
def coupling_unchanged(state: np.ndarray) -> bool:
    for k in range(3):
        if state[S_TOPO_GPP + k] != state[S_SW_GPP + k]:
            return False
    return True


@numba.njit(cache=True)
def build_phase_coupling(state: np.ndarray, params: np.ndarray, mats: np.ndarray,
                         src_on: np.ndarray, brk_on: float, g_shunt: np.ndarray) -> None:
    """With a phase-to-phase branch applied, the three phases as one system: blocks
    mats[3 + 3 p + q] (NX x (NX + NU)) map phase q's states and inputs to phase p's next
    states. Each phase is assembled as in the per-phase network; the branch G_pq between
    PCC nodes p and q adds G_pq (v_q - v_p) / C to node p and the opposite to node q."""
    coupled = False
    for k in range(3):
        state[S_TOPO_GPP + k] = state[S_SW_GPP + k]
        coupled = coupled or state[S_SW_GPP + k] > 0.0
    state[S_NET_COUPLED] = 1.0 if coupled else 0.0
    if not coupled:
        return
    m = np.zeros((N_COUPLED, N_COUPLED))
    n_x = 3 * NX
    c = params[P_C] + params[P_BANK_C]       # each PCC node's capacitance, as assembled
    for ph in range(3):
        assemble_phase(m, params, ph, ph * NX, n_x + ph * NU, src_on, brk_on, g_shunt)
    for k in range(3):
        g = state[S_SW_GPP + k]
        if g <= 0.0:
            continue
        vp = k * NX + 2
        vq = ((k + 1) % 3) * NX + 2
        m[vp, vp] -= g / c
        m[vp, vq] += g / c
        m[vq, vq] -= g / c
        m[vq, vp] += g / c
    e = expm_small(m * params[P_DT])
    for p in range(3):
        for q in range(3):
            block = mats[3 + 3 * p + q]
            for i in range(NX):
                for j in range(NX):
                    block[i, j] = e[p * NX + i, q * NX + j]
                for j in range(NU):
                    block[i, NX + j] = e[p * NX + i, n_x + q * NU + j]


@numba.njit(cache=True)
def step_network_coupled(state: np.ndarray, mats: np.ndarray, e: np.ndarray,
                         vconv: np.ndarray, i_ai: np.ndarray, e_gen: np.ndarray,
                         scratch: np.ndarray) -> None:
    """x+ = sum over q of the blocks times [x_q; u_q], all phases from the old states."""
    width = NX + NU
    for q in range(3):
        b = q * width
        scratch[b] = state[S_IG + q]
        scratch[b + 1] = state[S_IF + q]
        scratch[b + 2] = state[S_VC + q]
        scratch[b + 3] = state[S_IL + q]
        scratch[b + 4] = state[S_IGEN + q]
        scratch[b + 5] = e[q]
        scratch[b + 6] = vconv[q]
        scratch[b + 7] = i_ai[q]
        scratch[b + 8] = e_gen[q]
    out = scratch[N_COUPLED:]
    for p in range(3):
        for i in range(NX):
            out[p * NX + i] = 0.0
        for q in range(3):
            block = mats[3 + 3 * p + q]
            b = q * width
            for i in range(NX):
                acc = 0.0
                for j in range(width):
                    acc += block[i, j] * scratch[b + j]
                out[p * NX + i] += acc
    for p in range(3):
        state[S_IG + p] = out[p * NX]
        state[S_IF + p] = out[p * NX + 1]
        state[S_VC + p] = out[p * NX + 2]
        state[S_IL + p] = out[p * NX + 3]
        state[S_IGEN + p] = out[p * NX + 4]


# ================================================================ T7 defects' protections
@numba.njit(cache=True)
def reset_defect_relays(state: np.ndarray) -> None:
    """While the PCS is not operating: the relays start from the present frequency."""
    state[S_ROCOF_F_PREV] = state[S_F_MEAS]
    state[S_ROCOF_EST] = 0.0
    state[S_ROCOF_TMR] = 0.0
    state[S_FTRIP_TMR] = 0.0
    state[S_JUMP_CEASE_T] = 0.0


@numba.njit(cache=True)
def check_defect_protections(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                             t_s: float) -> None:
    """The protections of the seeded T7 defects (each off while its parameter is 0)."""
    dt = params[P_DT]
    f = state[S_F_MEAS]
    # trip_on_rocof: a RoCoF element with a pickup far below the RoCoF to ride through
    d_f = (f - state[S_ROCOF_F_PREV]) / dt
    state[S_ROCOF_F_PREV] = f
    state[S_ROCOF_EST] += (d_f - state[S_ROCOF_EST]) * dt / ROCOF_RELAY_TAU_S
    if params[P_DEF_ROCOF_TRIP] > 0.0:
        if abs(state[S_ROCOF_EST]) > params[P_DEF_ROCOF_TRIP]:
            state[S_ROCOF_TMR] += dt
            if state[S_ROCOF_TMR] > params[P_DEF_ROCOF_DELAY]:
                trip(state, events, t_s, TRIP_ROCOF, state[S_ROCOF_EST], params[P_DEF_ROCOF_TRIP])
                return
        else:
            state[S_ROCOF_TMR] = 0.0
    # legacy_frequency_trip: a fixed under/over-frequency element nobody removed
    if params[P_DEF_FTRIP_T] > 0.0:
        if f < params[P_DEF_FTRIP_LO] or f > params[P_DEF_FTRIP_HI]:
            state[S_FTRIP_TMR] += dt
            if state[S_FTRIP_TMR] > params[P_DEF_FTRIP_T]:
                trip(state, events, t_s, TRIP_F_FIXED, f, params[P_DEF_FTRIP_T])
                return
        else:
            state[S_FTRIP_TMR] = 0.0
    # pll_loses_lock_on_jump: the PLL error leaves the lock window and the firmware ceases
    # current until the PLL has been locked again for P_DEF_JUMP_CEASE_S
    if params[P_DEF_JUMP_CEASE_S] > 0.0 and int(state[S_MODE]) == MODE_RUNNING:
        if state[S_PLL_ERR_F] > params[P_DEF_JUMP_ERR]:
            if state[S_JUMP_CEASE_T] <= 0.0:
                push_event(events, state, t_s, EV_LOCK_CEASE, state[S_PLL_ERR_F], 0.0, 0.0)
            state[S_JUMP_CEASE_T] = params[P_DEF_JUMP_CEASE_S]
        elif state[S_JUMP_CEASE_T] > 0.0:
            state[S_JUMP_CEASE_T] -= dt
            if state[S_JUMP_CEASE_T] <= 0.0:
                state[S_JUMP_CEASE_T] = 0.0
                push_event(events, state, t_s, EV_LOCK_RESUME, state[S_PLL_ERR_F], 0.0, 0.0)
