"""Averaged-model EMT step kernel of the virtual bench (numba, fixed step).

Pure functions on flat numpy arrays so that the same source runs compiled (numba) or
interpreted (``NUMBA_DISABLE_JIT=1``):

* ``params`` (float64): configuration, source/DC-source programming and PCS settings,
  indexed by the ``P_*`` constants; written by ``plant.py`` between chunks.
* ``state`` (float64): every dynamic state (network, DC link, controller, protection
  timers, telemetry accumulators), indexed by ``S_*``.
* ``mats`` (float64, N_MATS x NX x (NX + NU)): per-phase exact discretisation
  ``[Phi | Gamma]`` of the linear R-L-C network (and the 3 x 3 blocks of the coupled one
  while a phase-to-phase fault joins the phases: kernel_grid_events.py), rebuilt inside the kernel whenever the topology changes
  (switches, PCC breaker, load bank, genset breaker: ``P_TOPO_GEN``).
* ``win`` (float64, 5 x N): one-cycle sliding windows (phase v^2, v_d, v_q) for protection.
* ``ring`` (float32, n_ring x n_signals): the scope ring, one row per plant step.
* ``meas`` (float64): the last completed per-cycle averages (telemetry source).
* ``events`` (float64, capacity x 5): (t_s, code, a, b, c) rows, drained by the plant.

Network (per phase, 4-wire, neutral grounded): grid source e behind R_g-L_g (through the
PCC breaker), PCS converter voltage v_conv behind R_f-L_f, a genset branch (EMF from
kernel_genset.py behind its reactance, through its breaker), all into the PCC node with a shunt capacitance C
(+ load-bank C), a shunt conductance G (fault + load-bank R), a load-bank inductor, and the
AI-load emulator as a current drawn from the node (an input, see ``ai_load_current``). It is linear between topology changes, so it
is discretised exactly (matrix exponential, zero-order hold on the inputs): A-stable and
free of the trapezoidal rule's chatter on stiff bolted faults. The converter voltage is
genuinely held over a step (digital modulation); the smooth source voltage is sampled at
mid-step, which makes the hold second-order accurate.
"""

from __future__ import annotations

import math

import numba
import numpy as np


# ---------------------------------------------------------------- parameter indices
MAX_TRIP_POINTS = 8

(P_DT, P_F_NOM, P_VPK_NOM, P_IPK_RATED,
 P_RG, P_LG, P_RF, P_LF, P_C,
 P_SRC_ON, P_SRC_VA, P_SRC_VB, P_SRC_VC, P_SRC_PHA, P_SRC_PHB, P_SRC_PHC, P_SRC_F,
 P_G_A, P_G_B, P_G_C,
 P_DC_ON, P_DC_V, P_DC_ILIM_SRC, P_DC_ILIM_SINK, P_DC_R, P_CDC, P_DC_BLEED_R,
 P_VDC_MIN, P_VDC_MAX, P_DC_TRIP_S,
 P_PLL_KP, P_PLL_KI, P_CC_KP, P_CC_KI, P_VFF_TAU, P_T_SYNC, P_M_MAX,
 P_IMAX_PK, P_OC_PK, P_OV_PK,
 P_P_SET, P_Q_SET, P_P_RAMP, P_PRIO, P_K, P_DVS_EN, P_DB, P_LV_MC, P_HV_MC,
 P_N_LV, P_N_HV,
 P_DEF_TRIP_SAG, P_DEF_NO_Q, P_DEF_PRIO_IGN,
 P_TEMP_AMB, P_TEMP_RISE, P_TEMP_TAU, P_GUARD_IG_PK, P_GUARD_IF_PK,
 P_LV_V) = range(60)
P_LV_T = P_LV_V + MAX_TRIP_POINTS
P_HV_V = P_LV_T + MAX_TRIP_POINTS
P_HV_T = P_HV_V + MAX_TRIP_POINTS
# second wave: defects and AI-factory functions
_P2 = P_HV_T + MAX_TRIP_POINTS
(P_DEF_LIMIT_CYCLE, P_RAMP_TIMEBASE, P_S_RATED,
 P_TOPO_GEN,            # bumped by the plant whenever a branch of the network changes
 P_PCC_BRK,             # PCC breaker (grid simulator side) requested closed
 P_BANK_G, P_BANK_L, P_BANK_C,          # RLC load bank per phase (S, H (0: none), F)
 P_AI_IMAX_PK, P_AI_TAU, P_AI_V_TAU,    # AI-load emulator
 P_GEN_BRK, P_GEN_R, P_GEN_L,           # genset branch behind its breaker
 P_SMOOTH_EN, P_SMOOTH_RAMP, P_SMOOTH_TAU,
 P_SMOOTH_SLEW,         # ramp_buffer_slow: slew limit (W/s) on the injection, 0 = none
 P_N2) = range(_P2, _P2 + 19)
# third wave: grid forming (kernel_gfm.py)
(P_CTRL_MODE,           # CTRL_GFL | CTRL_GFM_DROOP | CTRL_GFM_VSM
 P_GFM_MP,              # P-f droop, rad/s per W
 P_GFM_MQ,              # Q-V droop, pu voltage per pu reactive power
 P_VSM_2H, P_VSM_D,     # VSM inertia 2H (s) and damping (pu power per pu frequency)
 P_LV_VIRT, P_RV_VIRT,  # virtual impedance (H, ohm)
 P_GFM_PF_TAU,          # power measurement filter of the droop
 P_VREG_KP, P_VREG_KI, P_VREG_TAU,   # PCC voltage-magnitude regulator (pu/pu, 1/s, s)
 P_BS_RAMP_S,           # black-start soft voltage ramp
 P_BS_KI_SCALE, P_BS_FF,             # regulator while energising (1, 1 healthy)
 P_TRANSFER_GAP_S,      # grid loss -> grid forming: output ceases this long (0 healthy)
 P_N3) = range(P_N2, P_N2 + 16)
# fourth wave: grid-following outer loop functions (kernel_gfl.py): frequency-watt droop,
# volt-var, enter service, frequency trip curves
(P_FW_EN, P_FW_DB_HZ, P_FW_W_PER_HZ, P_FW_TAU,
 P_VV_EN, P_VV_TAU, P_N_VV,
 P_ES_EN, P_ES_V_LO, P_ES_V_HI, P_ES_F_LO, P_ES_F_HI, P_ES_DELAY_S,
 P_N_LF, P_N_HF,
 P_VV_V) = range(P_N3, P_N3 + 16)
P_VV_Q = P_VV_V + MAX_TRIP_POINTS          # volt-var curve: v_pu points, q (var) points
P_LF_F = P_VV_Q + MAX_TRIP_POINTS          # LF must-trip: f_hz points, t_s points
P_LF_T = P_LF_F + MAX_TRIP_POINTS
P_HF_F = P_LF_T + MAX_TRIP_POINTS
P_HF_T = P_HF_F + MAX_TRIP_POINTS
P_N4 = P_HF_T + MAX_TRIP_POINTS
# fifth wave: the genset behind its breaker (kernel_genset.py); P_GEN_R/L/BRK are above
(P_GEN_ON,              # engine running at speed, excitation on
 P_GEN_S, P_GEN_VPK,    # rating (VA) and nominal peak phase voltage
 P_GEN_2H,              # 2 x inertia constant (s)
 P_GEN_KGOV,            # governor droop gain, W per rad/s
 P_GEN_TAU_ENG,         # engine lag (s)
 P_GEN_PREF,            # governor load reference (W at nominal speed)
 P_GEN_VREF, P_GEN_AVR_KP, P_GEN_AVR_KI, P_GEN_TAU_F, P_GEN_EMAX,   # AVR and field
 P_DEF_GEN_OSC,         # genset_interaction_oscillation (0 healthy)
 P_N5) = range(P_N4, P_N4 + 14)
# sixth wave: SOC manager clamps (W) on the setpoint and smoothing parts of the active
# power reference (written by the plant's supervisory layer), SOC estimate gain
(P_SOC_SP_LO, P_SOC_SP_HI, P_SOC_SM_LO, P_SOC_SM_HI,
 P_SOC_DISCH_GAIN,      # soc_drift: the estimate counts discharged energy x this (1 healthy)
 P_N6) = range(P_N5, P_N5 + 6)
# seventh wave: the DC source's battery-emulation mode (terminal = OCV(SOC) - R_int I, SOC
# by coulomb count) and the PCS's BMS limits, which shrink near the SOC ends
MAX_OCV_POINTS = 16
(P_DC_MODE,             # DC_MODE_VOLTAGE | DC_MODE_BATTERY
 P_BAT_R,               # the emulated battery's internal resistance (ohm, > 0)
 P_BAT_CAP_C,           # its capacity (coulomb)
 P_BAT_N_OCV,           # points in its open-circuit-voltage curve
 P_SOC0_PCT,            # voltage mode: the PCS's SOC at zero energy count ...
 P_SOC_PCT_PER_J,       # ... and its SOC change per joule counted (100 / capacity)
 P_BMS_DIS_ZERO_PCT, P_BMS_DIS_FULL_PCT,  # discharge limit 0 at/below, rated at/above
 P_BMS_CHA_FULL_PCT, P_BMS_CHA_ZERO_PCT,  # charge limit rated at/below, 0 at/above
 P_BAT_OCV_SOC) = range(P_N6, P_N6 + 11)
P_BAT_OCV_V = P_BAT_OCV_SOC + MAX_OCV_POINTS   # OCV curve: SOC % points, then V points
P_N7 = P_BAT_OCV_V + MAX_OCV_POINTS
# eighth wave: grid events (kernel_grid_events.py): the source's frequency ramp, faults
# between phases, and the protections of the T7 defects (all 0 on a healthy PCS)
(P_SRC_ROCOF,           # rate (Hz/s) at which the source moves to P_SRC_F; 0 = a step
 P_G_AB, P_G_BC, P_G_CA,                # phase-to-phase fault conductances at the PCC (S)
 P_DEF_ROCOF_TRIP, P_DEF_ROCOF_DELAY,   # trip_on_rocof: pickup (Hz/s) and delay (s)
 P_DEF_FTRIP_LO, P_DEF_FTRIP_HI, P_DEF_FTRIP_T,   # legacy_frequency_trip: Hz, Hz, s
 P_DEF_JUMP_ERR,        # pll_loses_lock_on_jump: filtered PLL error that unlocks it
 P_DEF_JUMP_CEASE_S,    # ... and how long current then ceases after it relocks
 P_N8) = range(P_N7, P_N7 + 12)
# ninth wave: the PCS's telemetry refresh (kernel_telemetry.py), its reactive-power setpoint
# ramp, and its ride-through controller's weak-grid measures (update_ride_through)
(P_TEL_PERIOD_S,        # telemetry registers refreshed this often (a whole number of windows)
 P_TEL_FILTER_S,        # first-order filter of the reported values (s); 0 = none
 P_Q_RAMP,              # reactive-power setpoint ramp (var/s); 0 = a step
 P_RT_PLL_SCALE,        # PLL bandwidth factor while riding through (1 = unchanged)
 P_N9) = range(P_N8, P_N8 + 5)
# tenth wave: grid forming's transient virtual resistance (kernel_gfm.py), the active damping
# of the bus capacitance's resonance with the (virtual) inductor
(P_GFM_RT,              # transient virtual resistance (ohm), on top of P_RV_VIRT
 P_GFM_RT_TAU,          # it acts on the virtual current less this low-pass of it (s)
 P_N10) = range(P_N9, P_N9 + 3)
# eleventh wave: grid forming's power loops (kernel_gfm.py): the VSM's own active-power
# measurement filter (the droop's P_GFM_PF_TAU filters its reactive power still), and the
# droop's damping against the grid frequency
(P_VSM_PF_TAU,          # VSM active-power measurement filter (s)
 P_GFM_SLIP_D,          # droop: damping power per pu slip against the PLL frequency (pu)
 P_N11) = range(P_N10, P_N10 + 3)
N_PARAMS = P_N11
DC_MODE_VOLTAGE, DC_MODE_BATTERY = 0, 1
CTRL_GFL, CTRL_GFM_DROOP, CTRL_GFM_VSM = 0, 1, 2

# limiter priority codes
PRIO_P, PRIO_Q, PRIO_MIXED = 0, 1, 2

# ---------------------------------------------------------------- accumulator order
A_V2 = 0                    # 3 phases: PCC v^2
A_VLL2 = 3                  # 3: v_ab^2, v_bc^2, v_ca^2
A_IF2 = 6                   # 3: PCS current^2
A_IG2 = 9                   # 3: grid current^2
A_E2 = 12                   # 3: source terminal v^2
(A_P_PCS, A_Q_PCS, A_P_SRC, A_Q_SRC, A_VDC, A_IDC_PCS, A_IDC_SRC,
 A_F_PLL, A_F_SRC) = range(15, 24)
(A_P_LOAD, A_Q_LOAD,        # load bank + AI load, at the PCC
 A_P_AI, A_P_GEN, A_Q_GEN, A_F_GEN,
 A_P_GRID, A_Q_GRID) = range(24, 32)   # grid branch at the PCC (into the bus)
A_IGEN2 = 32                # 3: genset current^2
A_ILOAD2 = 35               # 3: load current^2 (bank + AI)
N_ACC = 38

# ---------------------------------------------------------------- state indices
S_IG = 0    # 3: grid source currents (from source into PCC)
S_IF = 3    # 3: PCS filter currents (out of PCS into PCC)
S_VC = 6    # 3: PCC capacitor voltages
(S_SRC_TH, S_PLL_TH, S_PLL_W, S_PLL_INT, S_PLL_ERR_F, S_PLL_LOCK_T, S_PLL_LOCKED,
 S_VDC, S_IDC_PCS, S_IDC_SRC, S_EDC_J,
 S_ID_INT, S_IQ_INT, S_VFF_D, S_VFF_Q,
 S_P_RAMP, S_ID_HOLD, S_IQ_HOLD, S_ID_REF, S_IQ_REF,
 S_MODE, S_MODE_T, S_CMD, S_BRK,
 S_RT, S_MC, S_LIM,
 S_DC_TMR, S_OV_CNT, S_SAG_TMR,
 S_V1_PU, S_VMIN_PU, S_VMAX_PU, S_WIN_POS,
 S_TEMP_C, S_ACC_T,
 S_TOPO_VALID, S_TOPO_BRK,
 S_EV_N, S_ERR_CODE, S_ERR_T, S_ERR_VAL, S_BLK_T, S_SW_WAIT, S_START_T,
 S_WIN_SUM) = range(9, 55)   # S_WIN_SUM: 5 running sums (va^2, vb^2, vc^2, vd, vq)
S_SW_SRC = S_WIN_SUM + 5     # 3: grid simulator output contactor, per phase (1 closed)
S_SW_G = S_SW_SRC + 3        # 3: shunt (fault) conductance actually applied, per phase
S_PREV_IG = S_SW_G + 3       # 3: previous-step grid currents (zero-crossing detection)
S_PREV_V = S_PREV_IG + 3     # 3: previous-step PCC voltages
S_TOPO_SRC = S_PREV_V + 3   # 3: topology the matrices were built for
S_TOPO_G = S_TOPO_SRC + 3   # 3
S_LV_TMR = S_TOPO_G + 3
S_HV_TMR = S_LV_TMR + MAX_TRIP_POINTS
S_ACC = S_HV_TMR + MAX_TRIP_POINTS
# second wave
_S2 = S_ACC + N_ACC
S_IL = _S2                  # 3: load-bank inductor currents
S_IGEN = _S2 + 3            # 3: genset currents (from genset into PCC)
(S_LC_IMEAS, S_LC_ILIM, S_LC_ON, S_TOPO_GEN,
 S_AI_P,                    # AI load: delivered power (W)
 S_AI_VD1, S_AI_VQ1, S_AI_VD2, S_AI_VQ2,   # its fundamental-voltage estimate (2 stages)
 S_PLOAD_F, S_GRID_TGT, S_SMOOTH_ON, S_SMOOTH_INJ,
 S_N2) = range(_S2 + 6, _S2 + 6 + 14)
# third wave: limiter priority in ride-through
(S_V1_PRE,                  # filtered |V1| (pu): the pre-disturbance voltage for the hold
 # grid forming (kernel_gfm.py)
 S_GFM,                     # 1 while the PCS runs grid forming
 S_GFM_TH, S_GFM_W,         # its internal angle (rad) and frequency (rad/s)
 S_GFM_PF, S_GFM_QF,        # filtered P (W) and Q (var, capacitive +) it delivers
 S_GFM_VM, S_GFM_VINT,      # filtered |V| (pu) and the voltage regulator's integrator (pu)
 S_GFM_ID, S_GFM_IQ,        # virtual-impedance current (A peak, GFM frame)
 S_GFM_RAMP,                # black-start ramp progress 0..1 (1: not ramping)
 S_GFM_ENERG_T,             # time since black start (energising regime)
 S_LOSS_T, S_GAP_T,         # grid-loss detection timer, transfer gap remaining
 S_PCC_CLOSED,              # PCC breaker (grid side) commanded closed by the PCS/site
 S_SYNC, S_SYNC_INT, S_SYNC_T,       # re-synchronisation in progress, its integrator, hold timer
 S_N3) = range(S_N2, S_N2 + 19)
# fourth wave: grid-following outer loop functions (kernel_gfl.py)
(S_F_MEAS,                  # filtered PLL frequency (Hz): droop, enter service, trips
 S_FW_DP,                   # frequency-watt power change (W), after its response lag
 S_VV_VF,                   # volt-var's filtered |V1| (pu)
 S_ES_T,                    # time V and f have been within the enter-service window
 S_ES_WAIT,                 # 1 while a start waits for enter-service conditions
 S_LF_TMR) = range(S_N3, S_N3 + 6)
S_HF_TMR = S_LF_TMR + MAX_TRIP_POINTS
S_N4 = S_HF_TMR + MAX_TRIP_POINTS
# fifth wave: genset (kernel_genset.py) and the genset_interaction_oscillation defect
(S_GEN_TH, S_GEN_W,         # rotor (EMF) angle (rad) and speed (rad/s, electrical)
 S_GEN_PM,                  # mechanical power (W)
 S_GEN_E,                   # EMF magnitude (pu of the set's nominal)
 S_GEN_EFD_INT,             # AVR integrator (pu field voltage)
 S_GEN_VM,                  # AVR's filtered terminal voltage (pu)
 S_GEN_PE,                  # electrical power (W)
 S_FW_HOLD_F, S_FW_HOLD_T,  # defect: the held frequency sample and its age
 S_N5) = range(S_N4, S_N4 + 10)
S_EDC_EST_J = S_N5          # the PCS's energy count behind its SOC estimate (J)
# seventh wave: phasor mode (kernel_phasor.py), complex RMS phasors in the nominal frame
(S_PH_V,                    # 2: PCC voltage (re, im)
 ) = (S_N5 + 1,)
S_PH_IF = S_PH_V + 2        # 2: PCS current (out of the PCS)
S_PH_IG = S_PH_IF + 2       # 2: grid branch current (into the PCC)
S_PH_IGEN = S_PH_IG + 2     # 2: genset current (into the PCC)
S_PH_ANG = S_PH_IGEN + 2    # angle of the PCC voltage at the last step (its PLL)
# eighth wave: the emulated battery (DC source in battery mode) and the PCS's BMS limits
(S_BAT_SOC_PCT,             # the emulated battery's SOC, coulomb counted (unclamped)
 S_BAT_EST_PCT,             # the PCS's own coulomb count of it (battery mode estimate)
 S_BMS_DIS_W, S_BMS_CHA_W,  # the PCS's present discharge / charge power limits (W)
 S_BMS_DIS_LIM, S_BMS_CHA_LIM,   # 1 while that limit is below rated (tapering)
 S_N8) = range(S_PH_ANG + 1, S_PH_ANG + 8)
# ninth wave: grid events (kernel_grid_events.py)
(S_SRC_F,                   # the source's present frequency (Hz): it ramps towards P_SRC_F
 S_NET_COUPLED,             # 1 while a phase-to-phase branch couples the phases
 S_ROCOF_F_PREV, S_ROCOF_EST, S_ROCOF_TMR,   # trip_on_rocof's element
 S_FTRIP_TMR,               # legacy_frequency_trip's timer
 S_JUMP_CEASE_T,            # pll_loses_lock_on_jump: cessation time left (s)
 S_SW_GPP) = range(S_N8, S_N8 + 8)   # S_SW_GPP: 3, phase-to-phase conductances applied
S_TOPO_GPP = S_SW_GPP + 3   # 3: those the matrices were built for
S_PREV_VPP = S_TOPO_GPP + 3  # 3: previous-step PCC line voltages (zero crossings)
S_N9 = S_PREV_VPP + 3
# tenth wave: the weak-grid guard on the active-power ramp (kernel_gfl.py)
(S_P_HOLD,                  # 1 while a depressed PCC voltage slows or holds the ramp
 S_P_RAMP_V0,               # |V1| (pu) when the ramp last set off away from zero
 S_N10) = range(S_N9, S_N9 + 3)
# eleventh wave: telemetry refresh, reactive-power ramp, ride-through (see P_N9's wave)
(S_TEL_NEXT_T,              # next telemetry refresh instant (plant time, s)
 S_Q_RAMP,                  # the ramped reactive-power setpoint (var, capacitive +)
 S_RT_EXIT_T,               # how long |V1| has been back inside the exit band (s)
 S_RT_PLL_T,                # time left on the ride-through PLL schedule (s)
 S_MC_RESTORE,              # after momentary cessation: the part of the current still to restore (1..0)
 S_N11) = range(S_N10, S_N10 + 6)
# twelfth wave: grid forming's transient virtual resistance (kernel_gfm.py)
(S_GFM_ILP_D, S_GFM_ILP_Q,  # low-pass of the virtual-impedance current (A peak, GFM frame)
 S_N12) = range(S_N11, S_N11 + 3)
N_STATE = S_N12

# ---------------------------------------------------------------- telemetry (meas) indices
M_T_END = 0      # plant time at the end of the last completed window
M_VALID = 1      # 1 once a full window has been averaged
M_AVG = 2        # N_ACC averages follow, in accumulator order
# the PCS's telemetry image (kernel_telemetry.py): refreshed at its own period, filtered
M_TEL_T = M_AVG + N_ACC      # refresh instant of the image (its time stamp)
M_TEL_VALID = M_TEL_T + 1    # 1 once the image has been refreshed from a measurement
M_TEL_FILT_VALID = M_TEL_T + 2   # 1 once the filter holds a measurement
M_TEL_AVG = M_TEL_T + 3      # N_ACC reported (filtered) averages, in accumulator order
M_TEL_FILT = M_TEL_AVG + N_ACC   # N_ACC: the filter's running state
(M_TEL_MODE, M_TEL_LIM, M_TEL_RT, M_TEL_GFM, M_TEL_PCC_CLOSED, M_TEL_TEMP_C, M_TEL_SOC_PCT,
 M_TEL_BMS_DIS_W, M_TEL_BMS_CHA_W) = range(M_TEL_FILT + N_ACC, M_TEL_FILT + N_ACC + 9)
N_MEAS = M_TEL_BMS_CHA_W + 1

# ---------------------------------------------------------------- codes
MODE_OFF, MODE_STARTING, MODE_RUNNING, MODE_MC, MODE_TRIPPED, MODE_FAULT = range(6)
CMD_NONE, CMD_START, CMD_STOP, CMD_STANDBY, CMD_RESET = range(5)
CMD_BLACK_START, CMD_ISLAND, CMD_RECONNECT = range(5, 8)
(EV_STATE, EV_TRIP, EV_MC_ENTER, EV_MC_EXIT, EV_LIMIT_ENTER, EV_LIMIT_EXIT,
 EV_RT_ENTER, EV_RT_EXIT, EV_START_FAIL, EV_FAULT,
 EV_GFM_ENTER, EV_GFM_EXIT, EV_BRK_OPEN, EV_BRK_CLOSE, EV_SYNC_START,
 EV_GRID_LOSS, EV_ES_WAIT, EV_ES_DONE) = range(1, 19)
# the PCS's BMS limit (a = SOC %, b = BMS_DISCHARGE | BMS_CHARGE, c = limit W)
EV_BMS_LIMIT_ENTER, EV_BMS_LIMIT_EXIT = EV_ES_DONE + 1, EV_ES_DONE + 2
BMS_DISCHARGE, BMS_CHARGE = 0, 1
# pll_loses_lock_on_jump: current ceased / resumed (a = the PLL's filtered error)
EV_LOCK_CEASE, EV_LOCK_RESUME = EV_BMS_LIMIT_EXIT + 1, EV_BMS_LIMIT_EXIT + 2
# the weak-grid ramp guard slows / releases the active-power ramp (a = |V1| pu, b = P W)
EV_P_HOLD_ENTER, EV_P_HOLD_EXIT = EV_LOCK_RESUME + 1, EV_LOCK_RESUME + 2
(TRIP_LV, TRIP_HV, TRIP_DC_UV, TRIP_DC_OV, TRIP_AC_OV, TRIP_LV_FIXED, TRIP_LF,
 TRIP_HF) = range(1, 9)
TRIP_ROCOF, TRIP_F_FIXED = 9, 10     # the T7 defects' elements (kernel_grid_events.py)
(START_NO_GRID, START_NO_LOCK, START_DC_RANGE, START_NOT_RESET, START_BUS_LIVE,
 START_NOT_OFF) = range(1, 7)
(ERR_GRID, ERR_PCS, ERR_PCC, ERR_DC, ERR_GEN) = range(1, 6)
EVENT_COLUMNS = 5

# ring rows (order of Plant.ring_signals)
N_RING = 17
# network per phase: states [i_grid, i_pcs, v_pcc, i_bank_L, i_gen],
# inputs [e_grid, v_conv, i_ai (drawn), e_gen]
NX = 5
NU = 4
# mats: the per-phase matrices, then the 3 x 3 blocks of the coupled network that a
# phase-to-phase fault needs (kernel_grid_events.build_phase_coupling)
N_MATS = 3 + 9

SQRT3 = math.sqrt(3.0)
TWO_PI = 2.0 * math.pi
LIMIT_HYSTERESIS = 0.98     # limiter flag leaves below 98 % of i_max, avoids event chatter
MC_HYSTERESIS_PU = 0.02
# Ride-through on weak grids (update_ride_through, update_pll). The reactive current a
# PCS injects lifts the PCC voltage by about X_grid x dIq: at SCR 1.5 (X ~ 0.66 pu) with
# k = 2 that is 1.3 pu per pu of depression, and the PCC angle swings with the PCS's own
# current. A 0.5 pu sag at 0.5 pu power grew a ~40 Hz oscillation between the 20 Hz PLL and
# the injection (PLL 56-66 Hz) until |V1| swung back into the ride-through band; leaving
# ride-through the moment it got there (0.01 pu hysteresis) dropped the injection, the
# voltage fell, ride-through re-entered: a relay on top, and an HV trip at the end. A
# vendor's fault ride-through therefore (1) runs its PLL at a reduced bandwidth while riding
# through and for a short hold after (the fault-mode PLL: the sag and its clearing are also
# phase steps of the PCC on a weak grid, which a slower PLL rides without a frequency
# excursion); (2) leaves only after |V1| has stayed inside the band, with a wider
# hysteresis, for a dwell; (3) brings the current back along a ramp after a momentary
# cessation (MC_RESTORE_S). The injection itself, k (1 - |V1|) on the one-cycle |V1|, is
# unchanged: IEEE 2800's 2.5-cycle reactive-current step response at SCR 5 (T7) and the
# declared sag response (T12) stay as they were. Not covered: an active current the grid
# cannot take during the sag (beyond about V_sag / X: at SCR 1.5, 0.3 pu in a 0.2 pu sag,
# 0.75 pu in a 0.5 pu sag) still pulls the PLL out of step; the PCS would have to reduce it.
RT_HYSTERESIS_PU = 0.02
RT_EXIT_DWELL_S = 0.02      # |V1| must stay inside the exit band this long (> 1 cycle)
RT_PLL_HOLD_S = 0.2         # the fault-mode PLL holds this long after ride-through ends
# After momentary cessation the current comes back along a ramp, not as a step: on a weak
# grid a step of rated current back onto the PCC rings its capacitor against the grid
# inductance past the cessation threshold (per-phase RMS > 1.10 pu at SCR 2), which ceased
# it again: a relay at the clearing of a sag. IEEE 1547-2018 asks for the output back
# within 0.4 s [recall]; 0.1 s restores 80 % in 80 ms.
MC_RESTORE_S = 0.1
PLL_LOCK_ERR = 0.02         # rad (normalised vq), filtered
PLL_LOCK_TIME_S = 0.05
GRID_PRESENT_PU = 0.85
OV_STEPS = 3                # instantaneous OV needs 3 consecutive samples (noise immunity)
SWITCH_FORCE_S = 0.02       # an opening switch that sees no current zero opens anyway
START_WAIT_S = 2.0          # a start waits this long for grid, PLL lock and DC link
BLOCK_TIME_S = 0.003        # current driven to zero before the breaker opens (see open_converter)
# seeded defect limiter_limit_cycle: a limit loop on the *measured* current magnitude
LC_MEAS_TAU_S = 0.010       # its current-magnitude filter (too slow for a limit loop)
LC_RATE_PU_PER_S = 3.0      # its limit integrator, in i_max per second
LC_LOW_FRACTION = 0.92      # it winds back up only below 92 % of i_max (hysteresis)
LC_WINDUP_MAX = 1.5         # and winds up to 1.5 i_max when not limiting
# The held ride-through current is computed at the voltage from before the disturbance:
# |V1| is a one-cycle window, so by the time it leaves the deadband it has already fallen
# ~0.1 pu and P/V would hold ~11 % too much active current. A 50 ms filter lags a sag's
# first milliseconds by well under 1 %.
V1_PRE_TAU_S = 0.05
# a BMS limit leaves its taper this far past the taper point (SOC noise must not chatter)
BMS_HYSTERESIS_PCT = 0.1


# ================================================================ network discretisation
@numba.njit(cache=True)
def expm_small(m: np.ndarray) -> np.ndarray:
    """Matrix exponential of a small dense matrix (scaling and squaring + Taylor)."""
    n = m.shape[0]
    norm = 0.0
    for i in range(n):
        row = 0.0
        for j in range(n):
            row += abs(m[i, j])
        norm = max(norm, row)
    squarings = 0
    if norm > 0.25:
        squarings = int(math.ceil(math.log2(norm / 0.25)))
    scaled = m / (2.0 ** squarings)
    result = np.eye(n)
    term = np.eye(n)
    for k in range(1, 18):
        term = term @ scaled / k
        result += term
    for _ in range(squarings):
        result = result @ result
    return result


@numba.njit(cache=True)
def assemble_phase(m: np.ndarray, params: np.ndarray, ph: int, x0: int, u0: int,
                   src_on: np.ndarray, brk_on: float, g_shunt: np.ndarray) -> None:
    """Phase ph's continuous-time rows of [A | B] into m, its states [i_grid, i_pcs, v_pcc,
    i_bank_L, i_gen] at x0.. and its inputs [e, v_conv, i_ai, e_gen] at u0.. (the
    per-phase network, and each phase of the coupled one)."""
    lg, rg = params[P_LG], params[P_RG]
    lf, rf = params[P_LF], params[P_RF]
    c = params[P_C] + params[P_BANK_C]
    l_bank = params[P_BANK_L]
    gen_on = params[P_GEN_BRK] > 0.5
    if src_on[ph] > 0.5:
        m[x0, x0] = -rg / lg
        m[x0, x0 + 2] = -1.0 / lg
        m[x0, u0] = 1.0 / lg
        m[x0 + 2, x0] = 1.0 / c
    if brk_on > 0.5:
        m[x0 + 1, x0 + 1] = -rf / lf
        m[x0 + 1, x0 + 2] = -1.0 / lf
        m[x0 + 1, u0 + 1] = 1.0 / lf
        m[x0 + 2, x0 + 1] = 1.0 / c
    m[x0 + 2, x0 + 2] = -(g_shunt[ph] + params[P_BANK_G]) / c
    m[x0 + 2, u0 + 2] = -1.0 / c
    if l_bank > 0.0:
        m[x0 + 3, x0 + 2] = 1.0 / l_bank
        m[x0 + 2, x0 + 3] = -1.0 / c
    if gen_on:
        lgen = params[P_GEN_L]
        m[x0 + 4, x0 + 4] = -params[P_GEN_R] / lgen
        m[x0 + 4, x0 + 2] = -1.0 / lgen
        m[x0 + 4, u0 + 3] = 1.0 / lgen
        m[x0 + 2, x0 + 4] = 1.0 / c


@numba.njit(cache=True)
def build_network(mats: np.ndarray, params: np.ndarray, src_on: np.ndarray, brk_on: float,
                  g_shunt: np.ndarray) -> None:
    """Exact ZOH discretisation per phase: x+ = Phi x + Gamma u.

    States [i_grid, i_pcs, v_pcc, i_bank_L, i_gen], inputs [e, v_conv, i_ai, e_gen]. The
    PCC node carries its own capacitance plus the bank's C, the fault and bank's R as a
    conductance; an open branch gets a zero row so its current (reset to 0 by the
    caller) stays zero and injects nothing.
    """
    dt = params[P_DT]
    n = NX + NU
    for ph in range(3):
        m = np.zeros((n, n))
        assemble_phase(m, params, ph, 0, NX, src_on, brk_on, g_shunt)
        e = expm_small(m * dt)
        for i in range(NX):
            for j in range(n):
                mats[ph, i, j] = e[i, j]


@numba.njit(cache=True)
def update_switches(state: np.ndarray, params: np.ndarray) -> None:
    """Move the grid contactor and the fault branch towards what was requested.

    Closing (and fault inception) is instant; opening waits for the current zero in that
    phase, as a real contactor or breaker interrupts. Chopping ~1 kA in an inductor in one
    step would put a multi-kV spike on the PCC capacitance that no bench ever sees."""
    pending = False
    for ph in range(3):
        ig = state[S_IG + ph]
        v = state[S_VC + ph]
        force = state[S_SW_WAIT] >= SWITCH_FORCE_S
        # grid branch conducts when the simulator output AND the PCC breaker are closed
        if params[P_SRC_ON] > 0.5 and state[S_PCC_CLOSED] > 0.5:
            state[S_SW_SRC + ph] = 1.0
        elif state[S_SW_SRC + ph] > 0.5:
            if ig * state[S_PREV_IG + ph] <= 0.0 or force:
                state[S_SW_SRC + ph] = 0.0
            else:
                pending = True
        g_req = params[P_G_A + ph]
        if g_req > state[S_SW_G + ph]:
            state[S_SW_G + ph] = g_req
        elif g_req < state[S_SW_G + ph]:
            if v * state[S_PREV_V + ph] <= 0.0 or force:
                state[S_SW_G + ph] = g_req
            else:
                pending = True
        state[S_PREV_IG + ph] = ig
        state[S_PREV_V + ph] = v
    # the phase-to-phase fault branches clear at their own zeros
    pending = ge.update_phase_to_phase_switches(state, params) or pending
    if pending:
        state[S_SW_WAIT] += params[P_DT]
    else:
        state[S_SW_WAIT] = 0.0


@numba.njit(cache=True)
def ensure_topology(state: np.ndarray, params: np.ndarray, mats: np.ndarray) -> None:
    update_switches(state, params)
    brk = state[S_BRK]
    same = state[S_TOPO_VALID] > 0.5 and state[S_TOPO_BRK] == brk \
        and state[S_TOPO_GEN] == params[P_TOPO_GEN]
    for ph in range(3):
        same = same and state[S_TOPO_SRC + ph] == state[S_SW_SRC + ph] \
            and state[S_TOPO_G + ph] == state[S_SW_G + ph]
    if same and ge.coupling_unchanged(state):
        return
    src = np.empty(3)
    g = np.empty(3)
    for ph in range(3):
        src[ph] = state[S_SW_SRC + ph]
        g[ph] = state[S_SW_G + ph]
        if src[ph] < 0.5:
            state[S_IG + ph] = 0.0
        state[S_TOPO_SRC + ph] = src[ph]
        state[S_TOPO_G + ph] = g[ph]
    build_network(mats, params, src, brk, g)
    ge.build_phase_coupling(state, params, mats, src, brk, g)
    for ph in range(3):
        if brk < 0.5:
            state[S_IF + ph] = 0.0
        if params[P_BANK_L] <= 0.0:
            state[S_IL + ph] = 0.0
        if params[P_GEN_BRK] < 0.5:
            state[S_IGEN + ph] = 0.0
    state[S_TOPO_GEN] = params[P_TOPO_GEN]
    state[S_TOPO_VALID] = 1.0
    state[S_TOPO_BRK] = brk


# ================================================================ small helpers
@numba.njit(cache=True)
def small_angle_cos_sin(d: float):
    """cos, sin of a per-step angle (|d| < 0.1 rad) by series: error < d^6/720, and
    libm trig on the step's critical path was a large share of the kernel's time."""
    d2 = d * d
    return 1.0 - d2 * (0.5 - d2 / 24.0), d * (1.0 - d2 * (1.0 / 6.0 - d2 / 120.0))


@numba.njit(cache=True)
def rotate(c: float, s: float, cd: float, sd: float):
    """(c, s) advanced by the angle whose cos, sin are (cd, sd)."""
    return c * cd - s * sd, s * cd + c * sd


@numba.njit(cache=True)
def push_event(events: np.ndarray, state: np.ndarray, t_s: float, code: int,
               a: float, b: float, c: float) -> None:
    n = int(state[S_EV_N])
    if n < events.shape[0]:
        events[n, 0] = t_s
        events[n, 1] = code
        events[n, 2] = a
        events[n, 3] = b
        events[n, 4] = c
        state[S_EV_N] = n + 1


@numba.njit(cache=True)
def set_mode(state: np.ndarray, events: np.ndarray, t_s: float, mode: int) -> None:
    if int(state[S_MODE]) == mode:
        return
    state[S_MODE] = mode
    state[S_MODE_T] = 0.0
    push_event(events, state, t_s, EV_STATE, mode, 0.0, 0.0)


@numba.njit(cache=True)
def clear_flags(state: np.ndarray, events: np.ndarray, t_s: float) -> None:
    """Leaving operation: close open ride-through / limit / cessation episodes in the log."""
    if state[S_MC] > 0.5:
        state[S_MC] = 0.0
        push_event(events, state, t_s, EV_MC_EXIT, state[S_VMIN_PU], 0.0, 0.0)
    if state[S_RT] > 0.5:
        state[S_RT] = 0.0
        push_event(events, state, t_s, EV_RT_EXIT, state[S_V1_PU], 0.0, 0.0)
    if state[S_LIM] > 0.5:
        state[S_LIM] = 0.0
        push_event(events, state, t_s, EV_LIMIT_EXIT, 0.0, 0.0, 0.0)


@numba.njit(cache=True)
def open_converter(state: np.ndarray, events: np.ndarray, t_s: float, mode: int) -> None:
    """Stop the PCS current, then open the AC breaker.

    Chopping ~300 A in the filter inductor in one step would put a kV spike on the small
    PCC capacitance; a real converter's current decays within a few ms (freewheeling, then
    the breaker opens near zero current). So the references go to zero at once and the
    branch opens BLOCK_TIME_S later."""
    if state[S_BRK] > 0.5 and state[S_BLK_T] <= 0.0:
        state[S_BLK_T] = BLOCK_TIME_S
    state[S_P_RAMP] = 0.0
    state[S_Q_RAMP] = 0.0
    state[S_MC_RESTORE] = 0.0
    clear_flags(state, events, t_s)
    if state[S_GFM] > 0.5:
        state[S_GFM] = 0.0
        state[S_SYNC] = 0.0
        push_event(events, state, t_s, EV_GFM_EXIT, 0.0, 0.0, 0.0)
    set_mode(state, events, t_s, mode)


@numba.njit(cache=True)
def trip(state: np.ndarray, events: np.ndarray, t_s: float, kind: int, a: float,
         b: float) -> None:
    push_event(events, state, t_s, EV_TRIP, kind, a, b)
    open_converter(state, events, t_s, MODE_TRIPPED)


# ================================================================ measurement
@numba.njit(cache=True)
def update_windows(state: np.ndarray, win: np.ndarray, params: np.ndarray,
                   va: float, vb: float, vc: float, vd: float, vq: float) -> None:
    """One-cycle sliding sums: per-phase RMS (protection) and positive-sequence |V|."""
    n_win = win.shape[1]
    pos = int(state[S_WIN_POS])
    vals = (va * va, vb * vb, vc * vc, vd, vq)
    for k in range(5):
        state[S_WIN_SUM + k] += vals[k] - win[k, pos]
        win[k, pos] = vals[k]
    state[S_WIN_POS] = (pos + 1) % n_win
    vpk = params[P_VPK_NOM]
    inv_n = 1.0 / n_win
    sd, sq = state[S_WIN_SUM + 3], state[S_WIN_SUM + 4]
    state[S_V1_PU] = math.sqrt(sd * sd + sq * sq) * inv_n / vpk
    state[S_V1_PRE] += (state[S_V1_PU] - state[S_V1_PRE]) * params[P_DT] / V1_PRE_TAU_S
    # RMS per unit = sqrt(mean v^2) / (vpk / sqrt 2)
    lo = min(state[S_WIN_SUM], min(state[S_WIN_SUM + 1], state[S_WIN_SUM + 2]))
    hi = max(state[S_WIN_SUM], max(state[S_WIN_SUM + 1], state[S_WIN_SUM + 2]))
    state[S_VMIN_PU] = math.sqrt(max(lo, 0.0) * inv_n * 2.0) / vpk
    state[S_VMAX_PU] = math.sqrt(max(hi, 0.0) * inv_n * 2.0) / vpk


@numba.njit(cache=True)
def update_pll(state: np.ndarray, params: np.ndarray, vq: float) -> None:
    """SRF-PLL on the PCC voltage; the error is normalised by |V1| so the bandwidth
    does not collapse during sags."""
    dt = params[P_DT]
    w_nom = TWO_PI * params[P_F_NOM]
    v_mag = max(state[S_V1_PU], 0.1) * params[P_VPK_NOM]
    err = vq / v_mag
    kp, ki = params[P_PLL_KP], params[P_PLL_KI]
    # fault-mode PLL: bandwidth x P_RT_PLL_SCALE (kp ~ wn, ki ~ wn^2) while riding through
    # and RT_PLL_HOLD_S after (see RT_HYSTERESIS_PU)
    if state[S_RT] > 0.5:
        state[S_RT_PLL_T] = RT_PLL_HOLD_S
    elif state[S_RT_PLL_T] > 0.0:
        state[S_RT_PLL_T] -= dt
    if state[S_RT_PLL_T] > 0.0:
        scale = params[P_RT_PLL_SCALE]
        kp *= scale
        ki *= scale * scale
    state[S_PLL_INT] += ki * err * dt
    # the integrator alone must not carry the PLL off to absurd frequencies on a dead bus
    lim = 0.2 * w_nom
    state[S_PLL_INT] = min(max(state[S_PLL_INT], -lim), lim)
    w = w_nom + kp * err + state[S_PLL_INT]
    w = min(max(w, w_nom - lim), w_nom + lim)
    state[S_PLL_W] = w
    th = state[S_PLL_TH] + w * dt
    if th > TWO_PI:
        th -= TWO_PI
    state[S_PLL_TH] = th
    # lock detector: filtered angle error small and a voltage worth locking to
    state[S_PLL_ERR_F] += (abs(err) - state[S_PLL_ERR_F]) * dt / 0.01
    if state[S_PLL_ERR_F] < PLL_LOCK_ERR and state[S_V1_PU] > 0.3:
        state[S_PLL_LOCK_T] += dt
    else:
        state[S_PLL_LOCK_T] = 0.0
    if state[S_PLL_LOCK_T] >= PLL_LOCK_TIME_S:
        state[S_PLL_LOCKED] = 1.0
    elif state[S_PLL_ERR_F] > 5.0 * PLL_LOCK_ERR or state[S_V1_PU] < 0.2:
        state[S_PLL_LOCKED] = 0.0


# ================================================================ supervisory logic
@numba.njit(cache=True)
def handle_command(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                   t_s: float) -> None:
    cmd = int(state[S_CMD])
    if cmd == CMD_NONE:
        state[S_START_T] = 0.0
        return
    state[S_CMD] = CMD_NONE
    mode = int(state[S_MODE])
    if cmd == CMD_START:
        if mode == MODE_TRIPPED or mode == MODE_FAULT:
            push_event(events, state, t_s, EV_START_FAIL, START_NOT_RESET, 0.0, 0.0)
        elif mode == MODE_OFF:
            vdc = state[S_VDC]
            reason = 0
            if state[S_V1_PU] < GRID_PRESENT_PU:
                reason = START_NO_GRID
            elif state[S_PLL_LOCKED] < 0.5:
                reason = START_NO_LOCK
            elif vdc < params[P_VDC_MIN] or vdc > params[P_VDC_MAX]:
                reason = START_DC_RANGE
            if reason != 0:
                # like a real PCS, keep trying for a while (grid just energised, PLL
                # locking, DC link charging) before refusing
                state[S_START_T] += params[P_DT]
                if state[S_START_T] >= START_WAIT_S:
                    push_event(events, state, t_s, EV_START_FAIL, reason, state[S_V1_PU], vdc)
                else:
                    state[S_CMD] = CMD_START
            elif not gfl.enter_service_ready(state, params, events, t_s):
                state[S_CMD] = CMD_START      # wait for the enter-service window
            else:
                # close onto the bus with the controller synthesising the bus voltage
                state[S_BRK] = 1.0
                state[S_BLK_T] = 0.0
                state[S_ID_INT] = 0.0
                state[S_IQ_INT] = 0.0
                state[S_P_RAMP] = 0.0
                state[S_Q_RAMP] = 0.0
                set_mode(state, events, t_s, MODE_STARTING)
    elif cmd == CMD_STOP or cmd == CMD_STANDBY:
        state[S_ES_WAIT] = 0.0             # a waiting start is abandoned
        if mode == MODE_STARTING or mode == MODE_RUNNING or mode == MODE_MC:
            open_converter(state, events, t_s, MODE_OFF)
    elif cmd == CMD_RESET:
        if mode == MODE_TRIPPED or mode == MODE_FAULT:
            set_mode(state, events, t_s, MODE_OFF)
    else:
        gfm.handle_gfm_command(state, params, events, t_s, cmd)


@numba.njit(cache=True)
def check_trip_curves(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                      t_s: float) -> None:
    """Each must-trip point is an independent timer on the lowest/highest phase RMS."""
    dt = params[P_DT]
    vmin = state[S_VMIN_PU]
    vmax = state[S_VMAX_PU]
    for i in range(int(params[P_N_LV])):
        if vmin < params[P_LV_V + i]:
            state[S_LV_TMR + i] += dt
            if state[S_LV_TMR + i] > params[P_LV_T + i]:
                trip(state, events, t_s, TRIP_LV, params[P_LV_V + i], params[P_LV_T + i])
                return
        else:
            state[S_LV_TMR + i] = 0.0
    for i in range(int(params[P_N_HV])):
        if vmax > params[P_HV_V + i]:
            state[S_HV_TMR + i] += dt
            if state[S_HV_TMR + i] > params[P_HV_T + i]:
                trip(state, events, t_s, TRIP_HV, params[P_HV_V + i], params[P_HV_T + i])
                return
        else:
            state[S_HV_TMR + i] = 0.0
    # seeded defect: a hard-coded undervoltage element nobody removed from the firmware
    if params[P_DEF_TRIP_SAG] > 0.5:
        if vmin < 0.88:
            state[S_SAG_TMR] += dt
            if state[S_SAG_TMR] > 0.04:
                trip(state, events, t_s, TRIP_LV_FIXED, 0.88, 0.04)
        else:
            state[S_SAG_TMR] = 0.0


@numba.njit(cache=True)
def reset_trip_timers(state: np.ndarray) -> None:
    for i in range(MAX_TRIP_POINTS):
        state[S_LV_TMR + i] = 0.0
        state[S_HV_TMR + i] = 0.0
    state[S_SAG_TMR] = 0.0
    state[S_DC_TMR] = 0.0
    state[S_OV_CNT] = 0.0
    gfl.reset_frequency_timers(state)
    ge.reset_defect_relays(state)


@numba.njit(cache=True)
def supervise(state: np.ndarray, params: np.ndarray, events: np.ndarray, t_s: float,
              va: float, vb: float, vc: float) -> None:
    """State machine, protection, momentary cessation and ride-through detection."""
    dt = params[P_DT]
    gfl.update_outer_measurements(state, params)
    handle_command(state, params, events, t_s)
    if state[S_BLK_T] > 0.0:
        state[S_BLK_T] -= dt
        if state[S_BLK_T] <= 0.0:
            state[S_BLK_T] = 0.0
            state[S_BRK] = 0.0
    mode = int(state[S_MODE])
    state[S_MODE_T] += dt
    if mode != MODE_STARTING and mode != MODE_RUNNING and mode != MODE_MC:
        reset_trip_timers(state)
        return
    # hardware-level protections first: they act within a few samples
    vov = params[P_OV_PK]
    if abs(va) > vov or abs(vb) > vov or abs(vc) > vov:
        state[S_OV_CNT] += 1.0
        if state[S_OV_CNT] >= OV_STEPS:
            vpk = max(abs(va), max(abs(vb), abs(vc)))
            trip(state, events, t_s, TRIP_AC_OV, vpk / params[P_VPK_NOM], 0.0)
            return
    else:
        state[S_OV_CNT] = 0.0
    vdc = state[S_VDC]
    if vdc < params[P_VDC_MIN] or vdc > params[P_VDC_MAX]:
        state[S_DC_TMR] += dt
        if state[S_DC_TMR] > params[P_DC_TRIP_S]:
            if vdc < params[P_VDC_MIN]:
                trip(state, events, t_s, TRIP_DC_UV, vdc, params[P_VDC_MIN])
            else:
                trip(state, events, t_s, TRIP_DC_OV, vdc, params[P_VDC_MAX])
            return
    else:
        state[S_DC_TMR] = 0.0
    check_trip_curves(state, params, events, t_s)
    # frequency protection of the grid-connected DER: a grid-forming PCS sets the island's
    # frequency itself (its droop would trip it at full load), so it applies in GFL only
    if int(state[S_MODE]) != MODE_TRIPPED and state[S_GFM] < 0.5:
        gfl.check_frequency_trips(state, params, events, t_s)
        if int(state[S_MODE]) != MODE_TRIPPED:
            ge.check_defect_protections(state, params, events, t_s)
    mode = int(state[S_MODE])
    if mode == MODE_TRIPPED:
        return
    if mode == MODE_STARTING:
        if state[S_MODE_T] >= params[P_T_SYNC]:
            set_mode(state, events, t_s, MODE_RUNNING)
        return
    gfm.supervise_grid_forming(state, params, events, t_s)
    if state[S_GFM] > 0.5:
        return      # a voltage source rides through by itself: no RT hold, no cessation
    update_ride_through(state, params, events, t_s)
    update_cessation(state, params, events, t_s)


@numba.njit(cache=True)
def update_ride_through(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                        t_s: float) -> None:
    dev = abs(1.0 - state[S_V1_PU])
    db = params[P_DB]
    if state[S_RT] < 0.5 and dev > db:
        state[S_RT] = 1.0
        state[S_RT_EXIT_T] = 0.0
        # hold the pre-disturbance currents: the references as they were at the voltage
        # before the sag began (the one-cycle |V1| lags the sag by the time it gets here)
        # (id = P / V: rescale from the present |V1| to the filtered pre-sag |V1|)
        v_scale = max(state[S_V1_PU], 0.2) / max(state[S_V1_PRE], 0.2)
        state[S_ID_HOLD] = state[S_ID_REF] * v_scale
        state[S_IQ_HOLD] = state[S_IQ_REF] * v_scale
        push_event(events, state, t_s, EV_RT_ENTER, state[S_V1_PU], 0.0, 0.0)
    elif state[S_RT] > 0.5:
        # out only once |V1| has stayed inside the band for the dwell (see RT_HYSTERESIS_PU)
        if dev < db - RT_HYSTERESIS_PU:
            state[S_RT_EXIT_T] += params[P_DT]
        else:
            state[S_RT_EXIT_T] = 0.0
        if state[S_RT_EXIT_T] >= RT_EXIT_DWELL_S:
            state[S_RT] = 0.0
            push_event(events, state, t_s, EV_RT_EXIT, state[S_V1_PU], 0.0, 0.0)


@numba.njit(cache=True)
def update_cessation(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                     t_s: float) -> None:
    vmin = state[S_VMIN_PU]
    vmax = state[S_VMAX_PU]
    mode = int(state[S_MODE])
    if mode == MODE_RUNNING and (vmin < params[P_LV_MC] or vmax > params[P_HV_MC]):
        state[S_MC] = 1.0
        push_event(events, state, t_s, EV_MC_ENTER, vmin, vmax, 0.0)
        set_mode(state, events, t_s, MODE_MC)
    elif mode == MODE_MC and vmin > params[P_LV_MC] + MC_HYSTERESIS_PU \
            and vmax < params[P_HV_MC] - MC_HYSTERESIS_PU:
        state[S_MC] = 0.0
        state[S_MC_RESTORE] = 1.0          # the current ramps back (MC_RESTORE_S)
        push_event(events, state, t_s, EV_MC_EXIT, vmin, vmax, 0.0)
        set_mode(state, events, t_s, MODE_RUNNING)


# ================================================================ references and limiter
@numba.njit(cache=True)
def limit_current(id_ref: float, iqc_ref: float, imax: float, prio: int):
    """Returns (id, iq_capacitive, limited). iq positive = capacitive (Q > 0)."""
    mag = math.sqrt(id_ref * id_ref + iqc_ref * iqc_ref)
    if mag <= imax:
        return id_ref, iqc_ref, False
    if prio == PRIO_Q:
        iq = min(max(iqc_ref, -imax), imax)
        room = math.sqrt(max(imax * imax - iq * iq, 0.0))
        return math.copysign(min(abs(id_ref), room), id_ref), iq, True
    if prio == PRIO_P:
        idv = min(max(id_ref, -imax), imax)
        room = math.sqrt(max(imax * imax - idv * idv, 0.0))
        return idv, math.copysign(min(abs(iqc_ref), room), iqc_ref), True
    scale = imax / mag
    return id_ref * scale, iqc_ref * scale, True


@numba.njit(cache=True)
def current_references(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                       t_s: float):
    """dq current references (id, iq_capacitive) from setpoints, ride-through, limiter."""
    dt = params[P_DT]
    mode = int(state[S_MODE])
    if mode != MODE_RUNNING or state[S_GAP_T] > 0.0 or state[S_JUMP_CEASE_T] > 0.0:
        # STARTING synchronises at zero current; MC ceases current without disconnecting;
        # a transfer gap (island_transfer_gap) ceases it while the firmware changes mode
        state[S_SMOOTH_ON] = 0.0
        state[S_ID_REF] = 0.0
        state[S_IQ_REF] = 0.0
        if mode == MODE_MC and state[S_LIM] > 0.5:
            state[S_LIM] = 0.0
            push_event(events, state, t_s, EV_LIMIT_EXIT, 0.0, 0.0, 0.0)
        return 0.0, 0.0
    # P_RAMP_TIMEBASE is 1 for a healthy PCS; dr_slow_response: a ramp limiter whose
    # time base is wrong (5x), so every setpoint change takes 5x longer than set
    step = params[P_P_RAMP] * dt / params[P_RAMP_TIMEBASE]
    # (on a weak grid the ramp slows and stops before the PCC voltage reaches the nose)
    state[S_P_RAMP] += gfl.active_power_ramp_w(state, params, events, t_s, step)
    v_den = 1.5 * max(state[S_V1_PU], 0.2) * params[P_VPK_NOM]
    ipk = params[P_IPK_RATED]
    prio = int(params[P_PRIO])
    if state[S_RT] > 0.5:
        id_ref = state[S_ID_HOLD]
        iqc_ref = state[S_IQ_HOLD]
        if params[P_DVS_EN] > 0.5 and params[P_DEF_NO_Q] < 0.5:
            iqc_ref += params[P_K] * (1.0 - state[S_V1_PU]) * ipk
        # the declared priority applies in ride-through too: a site that wants reactive
        # priority during faults writes limit_priority = Q (IEEE 2800 default)
    else:
        # the SOC manager bounds the setpoint and the smoothing parts (by mission priority)
        p_sp = min(max(state[S_P_RAMP], params[P_SOC_SP_LO]), params[P_SOC_SP_HI])
        p_sm = min(max(smoothing_power_w(state, params), params[P_SOC_SM_LO]),
                   params[P_SOC_SM_HI])
        p_ref = p_sp + p_sm + gfl.frequency_watt_w(state, params)
        p_max = params[P_S_RATED]
        p_ref = min(max(p_ref, -p_max), p_max)
        # the BMS limits (they shrink near the SOC ends) bound what the PCS asks of the battery
        p_ref = min(max(p_ref, -state[S_BMS_CHA_W]), state[S_BMS_DIS_W])
        id_ref = p_ref / v_den
        iqc_ref = gfl.reactive_power_var(state, params) / v_den
    # raw (unlimited) references are what the hold captures on the next disturbance
    state[S_ID_REF] = id_ref
    state[S_IQ_REF] = iqc_ref
    if state[S_RT] > 0.5:
        state[S_ID_REF] = state[S_ID_HOLD]
        state[S_IQ_REF] = state[S_IQ_HOLD]
    if params[P_DEF_PRIO_IGN] > 0.5:
        prio = PRIO_MIXED
    imax = params[P_IMAX_PK]
    mag = math.sqrt(id_ref * id_ref + iqc_ref * iqc_ref)
    if params[P_DEF_LIMIT_CYCLE] > 0.5:
        # seeded defect: instead of limiting the reference algebraically, the firmware
        # regulates the *measured* current magnitude with a hysteretic integrator; the
        # filter lag plus the hysteresis make it a relay loop that limit-cycles at ~10 Hz
        id_lim, iqc_lim, limited = limit_current(id_ref, iqc_ref, state[S_LC_ILIM], prio)
        limited = mag > imax
    else:
        id_lim, iqc_lim, limited = limit_current(id_ref, iqc_ref, imax, prio)
    flag_limit(state, params, events, t_s, limited, mag, prio)
    if state[S_MC_RESTORE] > 0.0:
        # back from momentary cessation: the current returns along a ramp (MC_RESTORE_S)
        state[S_MC_RESTORE] = max(state[S_MC_RESTORE] - dt / MC_RESTORE_S, 0.0)
        restored = 1.0 - state[S_MC_RESTORE]
        return id_lim * restored, iqc_lim * restored
    return id_lim, iqc_lim


@numba.njit(cache=True)
def flag_limit(state: np.ndarray, params: np.ndarray, events: np.ndarray, t_s: float,
               limited: bool, mag: float, prio: int) -> None:
    """The visible limit state and its events (exit with hysteresis, no chatter)."""
    ipk = params[P_IPK_RATED]
    if state[S_LIM] < 0.5 and limited:
        state[S_LIM] = 1.0
        push_event(events, state, t_s, EV_LIMIT_ENTER, mag / ipk, prio, 0.0)
    elif state[S_LIM] > 0.5 and mag < LIMIT_HYSTERESIS * params[P_IMAX_PK]:
        state[S_LIM] = 0.0
        push_event(events, state, t_s, EV_LIMIT_EXIT, mag / ipk, prio, 0.0)


@numba.njit(cache=True)
def ai_load_current(state: np.ndarray, params: np.ndarray, p_cmd_w: float,
                    va: float, vb: float, vc: float, c: float, s: float, c2: float, s2: float,
                    i_ai: np.ndarray) -> None:
    """Regenerative AI-load emulator: a current source in phase with the fundamental PCC
    voltage, drawing the commanded power (first-order response), capped by its current
    limit. i_ai > 0 = drawn from the bus.

    The fundamental is estimated in a nominal-frequency dq frame through two cascaded
    low-pass stages, as the emulator's own synchronisation does: a current that follows
    the instantaneous voltage would act as a negative resistance when regenerating and
    undamp the PCC LC resonance (several hundred Hz). (c, s): the nominal-frame angle
    at the step, (c2, s2) at mid-step (the run loop rotates them, no trig per step)."""
    dt = params[P_DT]
    state[S_AI_P] += (p_cmd_w - state[S_AI_P]) * dt / params[P_AI_TAU]
    v_al = (2.0 * va - vb - vc) / 3.0
    v_be = (vb - vc) / SQRT3
    vd = v_al * c + v_be * s
    vq = -v_al * s + v_be * c
    a = dt / (params[P_AI_V_TAU] + dt)
    state[S_AI_VD1] += (vd - state[S_AI_VD1]) * a
    state[S_AI_VQ1] += (vq - state[S_AI_VQ1]) * a
    state[S_AI_VD2] += (state[S_AI_VD1] - state[S_AI_VD2]) * a
    state[S_AI_VQ2] += (state[S_AI_VQ1] - state[S_AI_VQ2]) * a
    if state[S_AI_P] == 0.0 and p_cmd_w == 0.0:
        i_ai[0] = i_ai[1] = i_ai[2] = 0.0      # idle: keep synchronising, draw nothing
        return
    fd, fq = state[S_AI_VD2], state[S_AI_VQ2]
    v2 = fd * fd + fq * fq
    v_floor = 0.3 * params[P_VPK_NOM]      # below 0.3 pu it draws (limited) current
    v2 = max(v2, v_floor * v_floor)
    g = state[S_AI_P] / (1.5 * v2)
    g_max = params[P_AI_IMAX_PK] / math.sqrt(v2)
    g = min(max(g, -g_max), g_max)
    # held over the coming step: aim at the mid-step angle
    i_al = g * (fd * c2 - fq * s2)
    i_be = g * (fd * s2 + fq * c2)
    i_ai[0] = i_al
    i_ai[1] = -0.5 * i_al + 0.5 * SQRT3 * i_be
    i_ai[2] = -0.5 * i_al - 0.5 * SQRT3 * i_be


@numba.njit(cache=True)
def smoothing_power_w(state: np.ndarray, params: np.ndarray) -> float:
    """Load smoothing: the grid is to see the load through a ramp limiter; the PCS
    injects the difference between the (measured) load and that ramp-limited target."""
    if params[P_SMOOTH_EN] < 0.5:
        state[S_SMOOTH_ON] = 0.0
        return 0.0
    if state[S_SMOOTH_ON] < 0.5:       # bumpless start: the grid keeps what it sees now
        state[S_GRID_TGT] = state[S_PLOAD_F]
        state[S_SMOOTH_INJ] = 0.0
        state[S_SMOOTH_ON] = 1.0
    step = params[P_SMOOTH_RAMP] * params[P_DT]
    err = state[S_PLOAD_F] - state[S_GRID_TGT]
    state[S_GRID_TGT] += min(max(err, -step), step)
    inj = state[S_PLOAD_F] - state[S_GRID_TGT]
    slew = params[P_SMOOTH_SLEW] * params[P_DT]
    if slew > 0.0:
        # ramp_buffer_slow: the injection is routed through a slew limiter far slower
        # than the load moves, so load steps reach the grid before the PCS catches up
        d = inj - state[S_SMOOTH_INJ]
        inj = state[S_SMOOTH_INJ] + min(max(d, -slew), slew)
    state[S_SMOOTH_INJ] = inj
    return inj


@numba.njit(cache=True)
def update_faulty_limit_loop(state: np.ndarray, params: np.ndarray) -> None:
    """The limit integrator of the limiter_limit_cycle defect (runs every step)."""
    dt = params[P_DT]
    imax = params[P_IMAX_PK]
    ia, ib, ic = state[S_IF], state[S_IF + 1], state[S_IF + 2]
    i_al = (2.0 * ia - ib - ic) / 3.0
    i_be = (ib - ic) / SQRT3
    state[S_LC_IMEAS] += (math.hypot(i_al, i_be) - state[S_LC_IMEAS]) * dt / LC_MEAS_TAU_S
    # on/off relay with hysteresis: pulls the limit down from the moment the measured
    # current exceeds i_max until it has fallen below 92 %, then winds it back up
    if state[S_LC_IMEAS] > imax:
        state[S_LC_ON] = 1.0
    elif state[S_LC_IMEAS] < LC_LOW_FRACTION * imax:
        state[S_LC_ON] = 0.0
    rate = LC_RATE_PU_PER_S * imax * dt
    if state[S_LC_ON] > 0.5:
        state[S_LC_ILIM] = max(state[S_LC_ILIM] - rate, 0.0)
    else:
        state[S_LC_ILIM] = min(state[S_LC_ILIM] + rate, LC_WINDUP_MAX * imax)


# ================================================================ current controller
@numba.njit(cache=True)
def current_control(state: np.ndarray, params: np.ndarray, id_ref: float, iqc_ref: float,
                    cos_th: float, sin_th: float, vd: float, vq: float,
                    v0: float, w: float):
    """dq PI with decoupling and filtered d-axis voltage feed-forward; returns v_conv abc."""
    dt = params[P_DT]
    # feed-forward filtered: unfiltered PCC feed-forward destabilises weak-grid LC modes
    a_ff = dt / (params[P_VFF_TAU] + dt)
    state[S_VFF_D] += (vd - state[S_VFF_D]) * a_ff
    state[S_VFF_Q] += (vq - state[S_VFF_Q]) * a_ff
    if state[S_BRK] < 0.5:
        state[S_ID_INT] = 0.0
        state[S_IQ_INT] = 0.0
        return 0.0, 0.0, 0.0
    ia, ib, ic = state[S_IF], state[S_IF + 1], state[S_IF + 2]
    i_al = (2.0 * ia - ib - ic) / 3.0
    i_be = (ib - ic) / SQRT3
    i_d = i_al * cos_th + i_be * sin_th
    i_q = -i_al * sin_th + i_be * cos_th
    iq_ref = -iqc_ref          # capacitive current lags the voltage: negative q-axis
    wl = w * params[P_LF]
    kp, ki = params[P_CC_KP], params[P_CC_KI]
    e_d = id_ref - i_d
    e_q = iq_ref - i_q
    u_d = kp * e_d + state[S_ID_INT] + state[S_VFF_D] - wl * i_q
    # no q-axis feed-forward: it couples the PLL angle error straight into the converter
    # voltage and destabilises the PLL on weak grids (SCR < 2); the integrator holds vq ~ 0
    u_q = kp * e_q + state[S_IQ_INT] + wl * i_d
    v_lim = params[P_M_MAX] * state[S_VDC] / SQRT3
    mag = math.sqrt(u_d * u_d + u_q * u_q)
    if mag > v_lim:
        # modulation limit: scale the vector, hold the integrators (anti-windup)
        s = v_lim / mag if mag > 0.0 else 0.0
        u_d *= s
        u_q *= s
    else:
        state[S_ID_INT] += ki * e_d * dt
        state[S_IQ_INT] += ki * e_q * dt
    # the voltage is held for the whole step: rotate to mid-step angle
    ch, sh = small_angle_cos_sin(0.5 * w * dt)
    c2 = cos_th * ch - sin_th * sh
    s2 = sin_th * ch + cos_th * sh
    u_al = u_d * c2 - u_q * s2
    u_be = u_d * s2 + u_q * c2
    # a three-wire converter carries no zero-sequence current: follow the bus v0
    i0 = (ia + ib + ic) / 3.0
    z = v0 - kp * i0
    return (u_al + z,
            -0.5 * u_al + 0.5 * SQRT3 * u_be + z,
            -0.5 * u_al - 0.5 * SQRT3 * u_be + z)


# ================================================================ plant dynamics
@numba.njit(cache=True)
def step_network(state: np.ndarray, mats: np.ndarray, e: np.ndarray,
                 vconv: np.ndarray, i_ai: np.ndarray, e_gen: np.ndarray,
                 full: bool) -> None:
    """x+ = [Phi | Gamma] [x; u] per phase, written out row by row.

    Explicit rows keep the five dot products independent (a generic loop over j
    serialises them on one accumulator, which was the kernel's largest cost). With no
    bank inductor and the genset breaker open (``full`` False) their states are held at
    zero and the e_gen column of Gamma is zero, so only the 3 x 6 core is computed."""
    for ph in range(3):
        m = mats[ph]
        x0 = state[S_IG + ph]
        x1 = state[S_IF + ph]
        x2 = state[S_VC + ph]
        u0 = e[ph]
        u1 = vconv[ph]
        u2 = i_ai[ph]
        o0 = m[0, 0] * x0 + m[0, 1] * x1 + m[0, 2] * x2 + m[0, 5] * u0 + m[0, 6] * u1 + m[0, 7] * u2
        o1 = m[1, 0] * x0 + m[1, 1] * x1 + m[1, 2] * x2 + m[1, 5] * u0 + m[1, 6] * u1 + m[1, 7] * u2
        o2 = m[2, 0] * x0 + m[2, 1] * x1 + m[2, 2] * x2 + m[2, 5] * u0 + m[2, 6] * u1 + m[2, 7] * u2
        if full:
            x3 = state[S_IL + ph]
            x4 = state[S_IGEN + ph]
            u3 = e_gen[ph]
            o0 += m[0, 3] * x3 + m[0, 4] * x4 + m[0, 8] * u3
            o1 += m[1, 3] * x3 + m[1, 4] * x4 + m[1, 8] * u3
            o2 += m[2, 3] * x3 + m[2, 4] * x4 + m[2, 8] * u3
            o3 = (m[3, 0] * x0 + m[3, 1] * x1 + m[3, 2] * x2 + m[3, 3] * x3 + m[3, 4] * x4
                  + m[3, 5] * u0 + m[3, 6] * u1 + m[3, 7] * u2 + m[3, 8] * u3)
            o4 = (m[4, 0] * x0 + m[4, 1] * x1 + m[4, 2] * x2 + m[4, 3] * x3 + m[4, 4] * x4
                  + m[4, 5] * u0 + m[4, 6] * u1 + m[4, 7] * u2 + m[4, 8] * u3)
            state[S_IL + ph] = o3
            state[S_IGEN + ph] = o4
        state[S_IG + ph] = o0
        state[S_IF + ph] = o1
        state[S_VC + ph] = o2


@numba.njit(cache=True)
def step_dc_link(state: np.ndarray, params: np.ndarray, i_conv: float) -> None:
    """Backward-Euler DC link: the battery emulator's small internal resistance makes
    the link stiff at 50 us, so the linear part is implicit; current limits clamp it.

    Voltage mode: the source's EMF is the programmed voltage behind its own output
    resistance. Battery mode: the EMF is the emulated battery's OCV at its present SOC
    behind the battery's internal resistance, so the R_int I drop is solved every step;
    the SOC it reads moves by the coulombs of the previous steps (one step behind: 50 us
    of charge, nothing against the hours a battery takes)."""
    dt = params[P_DT]
    c_dt = params[P_CDC] / dt
    g_b = 1.0 / params[P_DC_BLEED_R]
    v0 = state[S_VDC]
    i_src = 0.0
    battery = params[P_DC_MODE] > 0.5
    if params[P_DC_ON] > 0.5:
        if battery:
            e_v = battery_ocv_v(params, state[S_BAT_SOC_PCT])
            g_s = 1.0 / params[P_BAT_R]
        else:
            e_v = params[P_DC_V]
            g_s = 1.0 / params[P_DC_R]
        v1 = (c_dt * v0 + e_v * g_s - i_conv) / (c_dt + g_s + g_b)
        i_src = (e_v - v1) * g_s
        if i_src > params[P_DC_ILIM_SRC] or i_src < -params[P_DC_ILIM_SINK]:
            i_src = min(max(i_src, -params[P_DC_ILIM_SINK]), params[P_DC_ILIM_SRC])
            v1 = (c_dt * v0 + i_src - i_conv) / (c_dt + g_b)
    else:
        v1 = (c_dt * v0 - i_conv) / (c_dt + g_b)
    state[S_VDC] = max(v1, 0.0)
    state[S_IDC_SRC] = i_src
    state[S_IDC_PCS] = i_conv
    if battery:
        count_charge(state, params, i_src * dt)


@numba.njit(cache=True)
def battery_ocv_v(params: np.ndarray, soc_pct: float) -> float:
    """Open-circuit voltage of the emulated battery: piecewise linear through the curve's
    points (SOC ascending), flat beyond its ends (an emulator holds its end voltages)."""
    n = int(params[P_BAT_N_OCV])
    if soc_pct <= params[P_BAT_OCV_SOC]:
        return params[P_BAT_OCV_V]
    for i in range(1, n):
        x1 = params[P_BAT_OCV_SOC + i]
        if soc_pct <= x1:
            x0 = params[P_BAT_OCV_SOC + i - 1]
            y0 = params[P_BAT_OCV_V + i - 1]
            y1 = params[P_BAT_OCV_V + i]
            return y0 + (y1 - y0) * (soc_pct - x0) / (x1 - x0)
    return params[P_BAT_OCV_V + n - 1]


@numba.njit(cache=True)
def count_charge(state: np.ndarray, params: np.ndarray, q_c: float) -> None:
    """Coulombs out of the emulated battery (discharge > 0): its SOC, and the PCS's own
    count behind its estimate (soc_drift: the same gain error on discharge as in
    voltage mode)."""
    to_pct = 100.0 / params[P_BAT_CAP_C]
    state[S_BAT_SOC_PCT] -= q_c * to_pct
    state[S_BAT_EST_PCT] -= q_c * to_pct * (params[P_SOC_DISCH_GAIN] if q_c > 0.0 else 1.0)


@numba.njit(cache=True)
def pcs_soc_estimate_pct(state: np.ndarray, params: np.ndarray) -> float:
    """The SOC the PCS believes (0..100): its coulomb count of the emulated battery in
    battery mode, its energy count against its configured capacity in voltage mode."""
    if params[P_DC_MODE] > 0.5:
        soc = state[S_BAT_EST_PCT]
    else:
        soc = params[P_SOC0_PCT] - state[S_EDC_EST_J] * params[P_SOC_PCT_PER_J]
    return min(max(soc, 0.0), 100.0)


# The BMS limits follow the SOC, which moves by parts per million per step: recomputing them
# every 16 steps (0.8 ms at 50 us, inside the event log's 1 ms resolution) saves the work
# of the other 15 (sim-benchmark: every step cost a few % of the single-PCS rate).
BMS_EVERY_STEPS = 16


@numba.njit(cache=True)
def update_bms_limits(state: np.ndarray, params: np.ndarray, events: np.ndarray,
                      t_s: float) -> None:
    """The PCS's battery limits from its SOC estimate: the discharge limit tapers linearly
    to 0 between P_BMS_DIS_FULL_PCT and P_BMS_DIS_ZERO_PCT, the charge limit between
    P_BMS_CHA_FULL_PCT and P_BMS_CHA_ZERO_PCT, so the PCS itself never drives the battery
    past its ends. Entering / leaving a taper is an event (with a small hysteresis)."""
    soc = pcs_soc_estimate_pct(state, params)
    rated = params[P_S_RATED]
    lo0, lo1 = params[P_BMS_DIS_ZERO_PCT], params[P_BMS_DIS_FULL_PCT]
    hi1, hi0 = params[P_BMS_CHA_FULL_PCT], params[P_BMS_CHA_ZERO_PCT]
    dis_w = rated * min(max((soc - lo0) / (lo1 - lo0), 0.0), 1.0)
    cha_w = rated * min(max((hi0 - soc) / (hi0 - hi1), 0.0), 1.0)
    state[S_BMS_DIS_W] = dis_w
    state[S_BMS_CHA_W] = cha_w
    if state[S_BMS_DIS_LIM] < 0.5 and soc < lo1:
        state[S_BMS_DIS_LIM] = 1.0
        push_event(events, state, t_s, EV_BMS_LIMIT_ENTER, soc, BMS_DISCHARGE, dis_w)
    elif state[S_BMS_DIS_LIM] > 0.5 and soc >= lo1 + BMS_HYSTERESIS_PCT:
        state[S_BMS_DIS_LIM] = 0.0
        push_event(events, state, t_s, EV_BMS_LIMIT_EXIT, soc, BMS_DISCHARGE, dis_w)
    if state[S_BMS_CHA_LIM] < 0.5 and soc > hi1:
        state[S_BMS_CHA_LIM] = 1.0
        push_event(events, state, t_s, EV_BMS_LIMIT_ENTER, soc, BMS_CHARGE, cha_w)
    elif state[S_BMS_CHA_LIM] > 0.5 and soc <= hi1 - BMS_HYSTERESIS_PCT:
        state[S_BMS_CHA_LIM] = 0.0
        push_event(events, state, t_s, EV_BMS_LIMIT_EXIT, soc, BMS_CHARGE, cha_w)


@numba.njit(cache=True)
def count_energy(state: np.ndarray, params: np.ndarray, e_j: float) -> None:
    """DC energy out of the battery (J, discharge > 0): the true count, and the PCS's
    own count behind its SOC estimate (soc_drift: a gain error on discharge)."""
    state[S_EDC_J] += e_j
    state[S_EDC_EST_J] += e_j * params[P_SOC_DISCH_GAIN] if e_j > 0.0 else e_j


@numba.njit(cache=True)
def guard(state: np.ndarray, params: np.ndarray, t_s: float) -> bool:
    """Numerical guard: NaN/inf or a runaway current stops the run (error code set)."""
    g_ig = params[P_GUARD_IG_PK]
    g_if = params[P_GUARD_IF_PK]
    for ph in range(3):
        if not abs(state[S_IG + ph]) < g_ig:
            return fail(state, ERR_GRID, t_s, state[S_IG + ph])
        if not abs(state[S_IF + ph]) < g_if:
            return fail(state, ERR_PCS, t_s, state[S_IF + ph])
        if not abs(state[S_VC + ph]) < 1e7:
            return fail(state, ERR_PCC, t_s, state[S_VC + ph])
        if not abs(state[S_IGEN + ph]) < g_ig:
            return fail(state, ERR_GEN, t_s, state[S_IGEN + ph])
    if not abs(state[S_VDC]) < 1e7:
        return fail(state, ERR_DC, t_s, state[S_VDC])
    return True


@numba.njit(cache=True)
def fail(state: np.ndarray, code: int, t_s: float, value: float) -> bool:
    state[S_ERR_CODE] = code
    state[S_ERR_T] = t_s
    state[S_ERR_VAL] = value
    return False


@numba.njit(cache=True)
def accumulate(state: np.ndarray, params: np.ndarray, meas: np.ndarray, t_end: float,
               vals: np.ndarray) -> None:
    """Per-cycle (1/f_nom) averages; the sample straddling a window edge is split so the
    window is exactly one nominal period even when it is not a whole number of steps."""
    dt = params[P_DT]
    t_win = 1.0 / params[P_F_NOM]
    acc_t = state[S_ACC_T]
    if acc_t + dt < t_win:
        for k in range(N_ACC):
            state[S_ACC + k] += vals[k] * dt
        state[S_ACC_T] = acc_t + dt
        return
    w_in = t_win - acc_t
    w_out = dt - w_in
    inv = 1.0 / t_win
    for k in range(N_ACC):
        meas[M_AVG + k] = (state[S_ACC + k] + vals[k] * w_in) * inv
        state[S_ACC + k] = vals[k] * w_out
    meas[M_T_END] = t_end - w_out
    meas[M_VALID] = 1.0
    state[S_ACC_T] = w_out
    tel.window_completed(state, params, meas, t_win)     # the PCS's telemetry image


# ================================================================ main loop
@numba.njit(cache=True)
def run_steps(n_steps: int, step0: int, state: np.ndarray, params: np.ndarray,
              mats: np.ndarray, win: np.ndarray, ring: np.ndarray, meas: np.ndarray,
              events: np.ndarray, ai_p_w: np.ndarray) -> int:
    """Advance up to n_steps. Returns the number of steps done; fewer when the event
    buffer is nearly full (the caller drains it and continues) or when the numerical
    guard fires (state[S_ERR_CODE] != 0)."""
    dt = params[P_DT]
    n_ring = ring.shape[0]
    e = np.empty(3)
    vconv = np.zeros(3)
    i_ai = np.zeros(3)
    e_gen = np.zeros(3)
    # bank inductor and genset branch states exist only while those branches do
    net_full = params[P_BANK_L] > 0.0 or params[P_GEN_BRK] > 0.5
    gen_running = params[P_GEN_ON] > 0.5
    vals = np.empty(N_ACC)
    a_load = math.exp(-dt / params[P_SMOOTH_TAU])
    ev_stop = events.shape[0] - 8
    # source phasors are constant within a chunk: e_k = Re(E_k e^{j theta})
    amp = np.empty(3)
    cph = np.empty(3)
    sph = np.empty(3)
    for ph in range(3):
        amp[ph] = math.sqrt(2.0) * params[P_SRC_VA + ph]
        cph[ph] = amp[ph] * math.cos(params[P_SRC_PHA + ph])
        sph[ph] = amp[ph] * math.sin(params[P_SRC_PHA + ph])
    # the source frequency: a step applies at once, a ramp moves it every step
    f_tgt = params[P_SRC_F]
    rocof = params[P_SRC_ROCOF]
    f_src = state[S_SRC_F]
    if rocof <= 0.0:
        f_src = f_tgt
        state[S_SRC_F] = f_src
    ramping = f_src != f_tgt
    w_src = TWO_PI * f_src
    net_scratch = np.empty(ge.N_COUPLED + 3 * NX)
    # rotating frames carried as (cos, sin) through the chunk instead of trig per step;
    # they restart from the angles at each chunk, so rounding never accumulates
    src_c, src_s = math.cos(state[S_SRC_TH]), math.sin(state[S_SRC_TH])
    src_cd, src_sd = math.cos(w_src * dt), math.sin(w_src * dt)
    src_ch, src_sh = math.cos(0.5 * w_src * dt), math.sin(0.5 * w_src * dt)
    pll_c, pll_s = math.cos(state[S_PLL_TH]), math.sin(state[S_PLL_TH])
    w_nom = TWO_PI * params[P_F_NOM]
    th_nom = w_nom * step0 * dt
    th_nom -= TWO_PI * math.floor(th_nom / TWO_PI)
    nom_c, nom_s = math.cos(th_nom), math.sin(th_nom)
    nom_cd, nom_sd = math.cos(w_nom * dt), math.sin(w_nom * dt)
    nom_ch, nom_sh = math.cos(0.5 * w_nom * dt), math.sin(0.5 * w_nom * dt)
    for k in range(n_steps):
        if state[S_EV_N] >= ev_stop:
            return k
        t_s = (step0 + k) * dt
        va, vb, vc = state[S_VC], state[S_VC + 1], state[S_VC + 2]
        # --- measurement in the PLL frame
        cos_th, sin_th = pll_c, pll_s
        v_al = (2.0 * va - vb - vc) / 3.0
        v_be = (vb - vc) / SQRT3
        v0 = (va + vb + vc) / 3.0
        vd = v_al * cos_th + v_be * sin_th
        vq = -v_al * sin_th + v_be * cos_th
        update_windows(state, win, params, va, vb, vc, vd, vq)
        # --- supervisory logic, references, controller (uses the angle sampled above)
        supervise(state, params, events, t_s, va, vb, vc)
        if params[P_DEF_LIMIT_CYCLE] > 0.5:
            update_faulty_limit_loop(state, params)
        if state[S_GFM] > 0.5:
            # grid forming: its own angle frames the references and the current loop
            g_c, g_s = math.cos(state[S_GFM_TH]), math.sin(state[S_GFM_TH])
            vd_g = v_al * g_c + v_be * g_s
            vq_g = -v_al * g_s + v_be * g_c
            w_frame = state[S_GFM_W]
            id_ref, iqc_ref = gfm.grid_forming_references(state, params, events, t_s,
                                                          g_c, g_s, vd_g, vq_g)
            vconv[0], vconv[1], vconv[2] = current_control(
                state, params, id_ref, iqc_ref, g_c, g_s, vd_g, vq_g, v0, w_frame)
        else:
            id_ref, iqc_ref = current_references(state, params, events, t_s)
            vconv[0], vconv[1], vconv[2] = current_control(
                state, params, id_ref, iqc_ref, cos_th, sin_th, vd, vq, v0, state[S_PLL_W])
        update_pll(state, params, vq)
        pll_c, pll_s = rotate(pll_c, pll_s, *small_angle_cos_sin(state[S_PLL_W] * dt))
        nom_c2, nom_s2 = rotate(nom_c, nom_s, nom_ch, nom_sh)
        ai_load_current(state, params, ai_p_w[k], va, vb, vc, nom_c, nom_s, nom_c2, nom_s2, i_ai)
        nom_c, nom_s = rotate(nom_c, nom_s, nom_cd, nom_sd)
        v_pre_a, v_pre_b, v_pre_c = va, vb, vc
        # --- network
        ensure_topology(state, params, mats)
        if ramping:
            # the angle integrates the linearly moving frequency (trapezoid: exact for a
            # ramp); the voltage is sampled at the mid-step angle, as in steady state
            f_new = ge.next_source_frequency(f_src, f_tgt, rocof, dt)
            d_mid = 0.25 * math.pi * dt * (3.0 * f_src + f_new)
            d_step = math.pi * dt * (f_src + f_new)
            c_mid, s_mid = rotate(src_c, src_s, math.cos(d_mid), math.sin(d_mid))
            src_c, src_s = rotate(src_c, src_s, math.cos(d_step), math.sin(d_step))
            f_src = f_new
            state[S_SRC_F] = f_src
            if f_src == f_tgt:          # arrived: the steady rotation for the rest
                ramping = False
                w_src = TWO_PI * f_src
                src_cd, src_sd = math.cos(w_src * dt), math.sin(w_src * dt)
                src_ch, src_sh = math.cos(0.5 * w_src * dt), math.sin(0.5 * w_src * dt)
        else:
            d_step = w_src * dt
            c_mid, s_mid = rotate(src_c, src_s, src_ch, src_sh)
            src_c, src_s = rotate(src_c, src_s, src_cd, src_sd)
        for ph in range(3):
            e[ph] = state[S_SW_SRC + ph] * (cph[ph] * c_mid - sph[ph] * s_mid)
        th_src = state[S_SRC_TH] + d_step
        if th_src > TWO_PI:
            th_src -= TWO_PI
        state[S_SRC_TH] = th_src
        if_a0, if_b0, if_c0 = state[S_IF], state[S_IF + 1], state[S_IF + 2]
        ig_a0, ig_b0, ig_c0 = state[S_IG], state[S_IG + 1], state[S_IG + 2]
        if gen_running:
            gen.genset_emf(state, params, e_gen)
        if state[S_NET_COUPLED] > 0.5:
            ge.step_network_coupled(state, mats, e, vconv, i_ai, e_gen, net_scratch)
        else:
            step_network(state, mats, e, vconv, i_ai, e_gen, net_full)
        if gen_running:
            gen.step_genset(state, params, e_gen)
        # --- DC side: lossless averaged switches, p_conv = sum v_conv * i_pcs
        p_conv = 0.5 * (vconv[0] * (if_a0 + state[S_IF]) + vconv[1] * (if_b0 + state[S_IF + 1])
                        + vconv[2] * (if_c0 + state[S_IF + 2]))
        i_conv = p_conv / max(state[S_VDC], 1.0)
        step_dc_link(state, params, i_conv)
        # the battery is the DC source: its energy includes the DC link's own losses (bleed)
        count_energy(state, params, state[S_VDC] * state[S_IDC_SRC] * dt)
        if (step0 + k) % BMS_EVERY_STEPS == 0:
            update_bms_limits(state, params, events, t_s + dt)
        if not guard(state, params, t_s + dt):
            return k
        # --- hardware overcurrent (sample-level)
        if state[S_BRK] > 0.5:
            oc = params[P_OC_PK]
            imx = max(abs(state[S_IF]), max(abs(state[S_IF + 1]), abs(state[S_IF + 2])))
            if imx > oc:
                push_event(events, state, t_s + dt, EV_FAULT, imx, oc, 0.0)
                open_converter(state, events, t_s + dt, MODE_FAULT)
        # --- thermal: first-order towards ambient + rise * (I/I_rated)^2
        ia, ib, ic = state[S_IF], state[S_IF + 1], state[S_IF + 2]
        i2_pu = (ia * ia + ib * ib + ic * ic) / (1.5 * params[P_IPK_RATED] ** 2)
        t_target = params[P_TEMP_AMB] + params[P_TEMP_RISE] * i2_pu
        state[S_TEMP_C] += (t_target - state[S_TEMP_C]) * dt / params[P_TEMP_TAU]
        # --- telemetry accumulators (post-step values)
        va, vb, vc = state[S_VC], state[S_VC + 1], state[S_VC + 2]
        ga = 0.5 * (ig_a0 + state[S_IG])
        gb = 0.5 * (ig_b0 + state[S_IG + 1])
        gc = 0.5 * (ig_c0 + state[S_IG + 2])
        vals[A_V2], vals[A_V2 + 1], vals[A_V2 + 2] = va * va, vb * vb, vc * vc
        vab, vbc, vca = va - vb, vb - vc, vc - va
        vals[A_VLL2], vals[A_VLL2 + 1], vals[A_VLL2 + 2] = vab * vab, vbc * vbc, vca * vca
        vals[A_IF2], vals[A_IF2 + 1], vals[A_IF2 + 2] = ia * ia, ib * ib, ic * ic
        ra, rb, rc = state[S_IG], state[S_IG + 1], state[S_IG + 2]
        vals[A_IG2], vals[A_IG2 + 1], vals[A_IG2 + 2] = ra * ra, rb * rb, rc * rc
        vals[A_E2], vals[A_E2 + 1], vals[A_E2 + 2] = e[0] * e[0], e[1] * e[1], e[2] * e[2]
        vals[A_P_PCS] = va * ia + vb * ib + vc * ic
        # instantaneous reactive power (line-voltage form): equals Q for sinusoids
        vals[A_Q_PCS] = (vbc * ia + vca * ib + vab * ic) / SQRT3
        vals[A_P_SRC] = e[0] * ga + e[1] * gb + e[2] * gc
        vals[A_Q_SRC] = ((e[1] - e[2]) * ga + (e[2] - e[0]) * gb + (e[0] - e[1]) * gc) / SQRT3
        vals[A_VDC] = state[S_VDC]
        vals[A_IDC_PCS] = i_conv
        vals[A_IDC_SRC] = state[S_IDC_SRC]
        vals[A_F_PLL] = state[S_PLL_W] / TWO_PI
        vals[A_F_SRC] = f_src
        g_bank = params[P_BANK_G]
        c_dt = params[P_BANK_C] / dt       # bank capacitor current over the step
        la = g_bank * va + state[S_IL] + i_ai[0] + c_dt * (va - v_pre_a)
        lb = g_bank * vb + state[S_IL + 1] + i_ai[1] + c_dt * (vb - v_pre_b)
        lc = g_bank * vc + state[S_IL + 2] + i_ai[2] + c_dt * (vc - v_pre_c)
        p_ai = va * i_ai[0] + vb * i_ai[1] + vc * i_ai[2]
        p_load = va * la + vb * lb + vc * lc
        vals[A_P_LOAD] = p_load
        vals[A_Q_LOAD] = (vbc * la + vca * lb + vab * lc) / SQRT3
        vals[A_P_AI] = p_ai
        ha, hb, hc = state[S_IGEN], state[S_IGEN + 1], state[S_IGEN + 2]
        vals[A_P_GEN] = va * ha + vb * hb + vc * hc
        vals[A_Q_GEN] = (vbc * ha + vca * hb + vab * hc) / SQRT3
        vals[A_F_GEN] = state[S_GEN_W] / TWO_PI
        vals[A_P_GRID] = va * ra + vb * rb + vc * rc
        vals[A_Q_GRID] = (vbc * ra + vca * rb + vab * rc) / SQRT3
        vals[A_IGEN2], vals[A_IGEN2 + 1], vals[A_IGEN2 + 2] = ha * ha, hb * hb, hc * hc
        vals[A_ILOAD2], vals[A_ILOAD2 + 1], vals[A_ILOAD2 + 2] = la * la, lb * lb, lc * lc
        # the PCS's load-power measurement for smoothing (its own filter)
        state[S_PLOAD_F] = a_load * state[S_PLOAD_F] + (1.0 - a_load) * p_load
        accumulate(state, params, meas, t_s + dt, vals)
        # --- scope ring: sample of time t_s + dt
        # one contiguous row per sample: 17 scattered column writes per step cost
        # more than the whole network update (TLB misses across the signal rows)
        r = ring[(step0 + k + 1) % n_ring]
        r[0] = va
        r[1] = vb
        r[2] = vc
        r[3] = ia
        r[4] = ib
        r[5] = ic
        r[6] = state[S_IG]
        r[7] = state[S_IG + 1]
        r[8] = state[S_IG + 2]
        r[9] = state[S_VDC]
        r[10] = i_conv
        r[11] = la
        r[12] = lb
        r[13] = lc
        r[14] = ha
        r[15] = hb
        r[16] = hc
    return n_steps


# Grid-forming functions live in their own module, which reads the index constants above;
# imported last so that it sees them (numba resolves the functions at first call).
from bench.sim import kernel_gfm as gfm  # noqa: E402
from bench.sim import kernel_gfl as gfl  # noqa: E402
from bench.sim import kernel_genset as gen  # noqa: E402
from bench.sim import kernel_grid_events as ge  # noqa: E402
from bench.sim import kernel_telemetry as tel  # noqa: E402

