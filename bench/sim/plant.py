"""Physics plant of the virtual bench: grid simulator behind a bench impedance (plus its
programmable output impedance), PCC bus with an RLC load bank, an AI-load emulator and a
genset behind its own breaker, the PCS (grid following with frequency-watt, volt-var,
enter service and trip curves; grid forming; load smoothing, demand-response dispatch,
SOC manager), DC link and battery emulator.

Python here only orchestrates: configuration -> kernel parameter arrays, chunked
advance with scheduled callbacks, the scope ring, telemetry, the event log and the
supervisory SOC manager. The per-step physics is in ``kernel_emt.run_steps`` (EMT, numba)
or ``kernel_phasor.run_phasor_steps`` (phasor mode, ``set_fidelity``).

All outputs start off: grid simulator output off, DC source output off, PCS OFF.
"""

from __future__ import annotations

import cmath
import collections
import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from bench.sim import kernel_emt as k
from bench.sim import kernel_phasor as kp
from bench.sim import kernel_telemetry as tel
from bench.sim.ai_load import AiLoadConfig, AiLoadProfile
from bench.sim.defects import check_defects
from bench.sim.genset import GensetConfig

# One kernel call advances at most this much plant time. Telemetry and events are written
# inside the kernel (events carry their own time stamps), so the chunk only bounds the
# AI-load command buffer and the Python overhead per call (~10 us), which at 10 ms chunks
# was a tenth of the run time. The bench's own slices (control endpoint, recorder) are 50 ms.
MAX_CHUNK_S = 0.05
STALE_CHUNK_S = 0.01        # telemetry_timestamp_lag keeps its stale copies this often
PHASOR_CHUNK_S = 1.0        # phasor mode: plant time per kernel call (a 24 h run: 86 400)
PHASOR_DT_RANGE_S = (1e-3, 10e-3)
FIDELITIES = ("emt", "phasor")
DC_MODES = ("voltage", "battery")     # the DC source: a voltage source, or a battery emulator
# SOC manager: outside [soc_min_pct, soc_max_pct] it bounds the missions it may override
# and brings SOC back at this fraction of rating; it lets go this far inside the band
SOC_RECOVERY_PU = 0.10
SOC_HYSTERESIS_PCT = 1.0
# which parts of the active-power reference the SOC manager may bound, per mission
# priority: RESERVE (SOC first) bounds both; a mission ranked first keeps its own part
SOC_MANAGED = {"RESERVE": ("setpoint", "smoothing"), "DEMAND_RESPONSE": ("smoothing",),
               "SMOOTHING": ("setpoint",)}
# read_ring in phasor mode: each ring signal = (phasor-ring column, phase index or -1 real)
_PHASOR_SIGNAL = {"pcc_va_v": (kp.PH_V, 0), "pcc_vb_v": (kp.PH_V, 1), "pcc_vc_v": (kp.PH_V, 2),
                  "pcs_ia_a": (kp.PH_IF, 0), "pcs_ib_a": (kp.PH_IF, 1), "pcs_ic_a": (kp.PH_IF, 2),
                  "grid_ia_a": (kp.PH_IG, 0), "grid_ib_a": (kp.PH_IG, 1), "grid_ic_a": (kp.PH_IG, 2),
                  "vdc_v": (kp.PH_VDC, -1), "idc_a": (kp.PH_IDC, -1),
                  "load_ia_a": (kp.PH_IL, 0), "load_ib_a": (kp.PH_IL, 1), "load_ic_a": (kp.PH_IL, 2),
                  "gen_ia_a": (kp.PH_IGEN, 0), "gen_ib_a": (kp.PH_IGEN, 1), "gen_ic_a": (kp.PH_IGEN, 2)}
EVENT_CAPACITY = 512
CALLBACK_EPS_S = 1e-9

STATE_NAMES = ("OFF", "STARTING", "RUNNING", "MOMENTARY_CESSATION", "TRIPPED", "FAULT")
PRIORITY_CODES = {"P": k.PRIO_P, "Q": k.PRIO_Q, "mixed": k.PRIO_MIXED}
COMMAND_CODES = {"start": k.CMD_START, "stop": k.CMD_STOP, "standby": k.CMD_STANDBY,
                 "reset_alarms": k.CMD_RESET,
                 # grid forming: energise a dead bus; open / re-synchronise and close the
                 # PCC breaker between the grid simulator's impedance and the PCC bus
                 "black_start": k.CMD_BLACK_START, "island": k.CMD_ISLAND,
                 "reconnect": k.CMD_RECONNECT}
CONTROL_MODES = {"GFL": k.CTRL_GFL, "GFM_DROOP": k.CTRL_GFM_DROOP, "GFM_VSM": k.CTRL_GFM_VSM}
# grid forming (kernel_gfm.py): virtual resistance (damps the virtual inductor), droop power
# filter, PCC voltage-magnitude regulator (integral; closed loop ~7 Hz, zeta ~0.56)
GFM_RV_PU = 0.03
GFM_MIN_X_PU = 0.02          # below this the virtual inductor is the converter filter's
GFM_POWER_TAU_S = 0.02
# The power loops on a grid. A droop m behind a power filter tau is a machine of inertia
# 2H = tau / m damped by 1 / m against the nominal frequency: zeta ~0.45 at SCR 5 (5 %,
# 20 ms) in a lossless model, but the line current's own mode and the transient virtual
# resistance below eat into it on stiffer grids (zeta 0.1 at SCR 20; a swing at SCR 50).
# GFM_DROOP_DAMPING_PU adds damping power in proportion to the slip of the PCS's frequency
# against the grid's (the PLL), as a damper winding does: nothing in steady state, nor
# islanded (the PLL tracks the bus the PCS forms), so the droop's sharing and its islanded
# response are unchanged. Fitted on 100 -> 150 kW steps: zeta ~0.27 / 0.48 / 0.29 / 0.13
# at SCR 5 / 20 / 50 / 100 (without: 0.39 / 0.11 / a swing / a swing).
GFM_DROOP_DAMPING_PU = 40.0
# The VSM's inertia filters its power already: under the droop's 20 ms filter it swung at
# SCR 5 (H 2 s, D 20: K tau = 0.067 against D / w0 = 0.053); its own is a 2 ms ripple
# filter. Its damping D acts on the slip against the grid (kernel_gfm._power_loop_frequency).
# Grid connected with the defaults (H 2 s, D 20) it is lightly damped, zeta ~0.14 at SCR 5
# and ~0.10 at SCR 20 (a 2.8 / 4 Hz swing); D 60 gives ~0.21, D 150 ~0.4.
VSM_POWER_TAU_S = 0.002
# Transient virtual resistance: active damping of the LC resonance. Islanded, the bus
# capacitance (PCC 0.03 pu plus a load bank's C) resonates with the PCS's inductance (filter
# L_f 0.10 pu = 244 uH, emulated as the 0.10 pu virtual inductor): f = 1 / (2 pi sqrt(L_f C)),
# or f_nom / sqrt(x_L (b_pcc + b_load)) in pu: 60 / sqrt(0.10 x 0.28) = 359 Hz with a 0.25 pu
# capacitive load (806 uF), 526 Hz with 0.10 pu, 263 Hz with 0.50 pu. The current loop
# (~300 Hz) emulates the virtual inductor with a lag, Z_v (1 + s / w_c): its resistance at
# the resonance is R_v - w^2 L_v / w_c, about -0.7 pu at 360 Hz, which neither R_v nor a light
# resistive load outweighs: the bus rang without decay at 300-400 Hz from ~0.1 pu of C on a
# 0.1 pu resistive load. R_t acts on the virtual current less its 1 ms low-pass (corner
# ~160 Hz in the PCS's frame), so the droops, the voltage regulator and the fundamental see
# R_v alone, and the ring decays within ~20 ms. Its cost is on stiff grids: it slows the line
# current's own mode (60 Hz in the PCS's frame) towards the droop's range: grid connected at
# 5 % droop the PCS swung at SCR 50 (with R_t 1 pu or a 2 ms low-pass already at SCR 20),
# which GFM_DROOP_DAMPING_PU pays back (a 0.5 ms low-pass would too, but left the capacitive
# ring at 40 % after 10 ms).
GFM_RT_PU, GFM_RT_TAU_S = 0.5, 1e-3
VREG_KP, VREG_KI_PER_S, VREG_TAU_S = 0.0, 40.0, 0.02
BLACK_START_RAMP_S = 1.0
# gfm_underdamped: |V| measured through a 300 ms filter (a telemetry RMS reused by the
# regulator) and the integral gain raised to keep the bandwidth: ~3 Hz, zeta ~0.09
UNDERDAMPED_VREG_KI_PER_S, UNDERDAMPED_VREG_TAU_S = 107.0, 0.30
# blackstart_overshoot: 50 ms "ramp", integral-only start-up regulator at 3x gain
OVERSHOOT_RAMP_S, OVERSHOOT_KI_SCALE = 0.05, 1.5
TRANSFER_GAP_DEFECT_S = 0.150     # island_transfer_gap: output ceases while it changes mode
# faults at the PCC and the phases they involve: to ground (each faulted phase through R_f
# to ground; "3ph" is three-phase to ground) or phase to phase (R_f between the two phases)
FAULT_KINDS = {"3ph": (0, 1, 2), "ag": (0,), "bg": (1,), "cg": (2,),
               "abg": (0, 1), "bcg": (1, 2), "cag": (2, 0),
               "ab": (0, 1), "bc": (1, 2), "ca": (2, 0)}
PHASE_TO_PHASE_FAULTS = {"ab": 0, "bc": 1, "ca": 2}    # its branch: P_G_AB + this
MIN_FAULT_R_OHM = 1e-4      # a "bolted" fault still has a contact resistance
# the grid simulator's frequency ramp: faster than this is a step for any PCS (a 5 Hz change
# within 50 ms); grid codes ask for 0.5..5 Hz/s
MAX_SOURCE_ROCOF_HZ_PER_S = 100.0
# the T7 defects' elements (kernel_grid_events.py). trip_on_rocof: pickup and delay of a
# RoCoF element set an order of magnitude below the rates 1547/2800 ask to ride through
ROCOF_DEFECT_PICKUP_HZ_PER_S, ROCOF_DEFECT_DELAY_S = 0.25, 0.10
# legacy_frequency_trip: fixed under/over-frequency element (offsets from nominal, s)
LEGACY_FTRIP_UNDER_HZ, LEGACY_FTRIP_OVER_HZ, LEGACY_FTRIP_S = 0.7, 0.5, 0.16
# pll_loses_lock_on_jump: the lock window (filtered normalised PLL error, sin 5 deg: a
# 20 deg jump at the source takes a healthy PLL's filtered error to ~0.14) and the
# cessation after the PLL relocks
JUMP_DEFECT_ERR, JUMP_DEFECT_CEASE_S = math.sin(math.radians(5.0)), 1.0
PYTHON_COMMANDS = ("dr_execute",)   # handled by the plant's supervisory layer, not the kernel
DR_FINISH_FRACTION = 0.9    # a dispatch ramps so that it arrives at 90 % of dr_time_s
DR_SLOW_TIMEBASE = 5.0      # dr_slow_response: the ramp limiter's clock runs 5x slow
TELEMETRY_LAG_S = 0.120     # telemetry_timestamp_lag: the stale buffer's age
# the fault-mode PLL's bandwidth, a fraction of pll_bandwidth_hz (kernel_emt.update_pll):
# 20 Hz -> 10 Hz while riding through (stable at SCR 1.5 with k = 2; see RT_HYSTERESIS_PU)
RT_PLL_BANDWIDTH_SCALE = 0.5
SMOOTHING_MARGIN = 0.9      # the smoothing ramp aims 10 % under the limit (measurement margin)
SMOOTHING_TAU_S = 0.001     # load-feeder power sensing of the smoothing function (feed-forward)
RAMP_BUFFER_SLOW_FACTOR = 4.0   # ramp_buffer_slow: its injection slews at p_ramp / 4
OLRT_TO_TAU = math.log(10.0)
SOC_DRIFT_DISCHARGE_GAIN = 1.05  # soc_drift: discharged energy over-counted by 5 %    # first-order lag: 90 % of the change at t = tau ln 10
START_FAIL_TEXT = {k.START_NO_GRID: "start refused: grid voltage not present",
                   k.START_NO_LOCK: "start refused: PLL not locked",
                   k.START_DC_RANGE: "start refused: DC link out of range",
                   k.START_NOT_RESET: "start refused: alarms not reset",
                   k.START_BUS_LIVE: "black start refused: bus live or grid connected",
                   k.START_NOT_OFF: "black start refused: PCS not OFF"}
GUARD_COMPONENT = {k.ERR_GRID: "grid source branch current",
                   k.ERR_PCS: "PCS filter current",
                   k.ERR_PCC: "PCC bus voltage",
                   k.ERR_DC: "DC link voltage",
                   k.ERR_GEN: "genset branch current"}


class PlantNumericalError(RuntimeError):
    """A state became NaN/inf or a current ran away; names the component and time."""


# ====================================================================== configuration
@dataclass
class GridConfig:
    v_ll_nom_v: float = 480.0
    f_nom_hz: float = 60.0
    scr: float = 5.0                 # relative to the PCS rating
    x_over_r: float = 7.0
    pcc_c_pu: float = 0.03           # PCC shunt capacitance per phase, on the PCS base
    r_ohm: float | None = None       # explicit bench impedance, overrides scr/x_over_r
    l_h: float | None = None


@dataclass
class PcsConfig:
    s_rated_va: float = 250e3
    v_ll_nom_v: float = 480.0
    f_nom_hz: float = 60.0
    i_max_a: float = 330.0
    vdc_min_v: float = 750.0
    vdc_max_v: float = 1000.0
    manufacturer: str = "bessbench"
    model: str = "VPCS-250"
    serial: str = "VPCS-0001"
    # power stage
    l_filter_pu: float = 0.10
    r_filter_pu: float = 0.005
    dc_link_c_f: float = 5e-3
    # control
    pll_bandwidth_hz: float = 20.0
    current_loop_bandwidth_hz: float = 300.0
    vff_filter_tau_s: float = 3e-4
    modulation_max: float = 0.98
    t_sync_s: float = 0.15
    dc_trip_delay_s: float = 0.005
    hw_overcurrent_pu: float = 2.5       # instantaneous, peak, of rated peak
    inst_overvoltage_pu: float = 1.6     # instantaneous, peak, of nominal peak
    # battery and thermal (telemetry)
    battery_capacity_wh: float = 500e3
    soc_initial_pct: float = 50.0
    ambient_c: float = 25.0
    temp_rise_rated_c: float = 35.0
    thermal_tau_s: float = 120.0
    # the PCS's BMS limits shrink near the SOC ends (of its own SOC estimate): the discharge
    # limit is rated above bms_discharge_full_soc_pct and tapers linearly to 0 at
    # bms_discharge_zero_soc_pct; the charge limit likewise between the charge points
    bms_discharge_zero_soc_pct: float = 0.0
    bms_discharge_full_soc_pct: float = 10.0
    bms_charge_full_soc_pct: float = 90.0
    bms_charge_zero_soc_pct: float = 100.0
    # telemetry (kernel_telemetry.py): the register image is refreshed every
    # telemetry_period_s (rounded to whole one-cycle measurement windows: 0.1 s is 6 cycles
    # at 60 Hz, 5 at 50 Hz), stamped with the refresh instant; its values are the one-cycle
    # means through a first-order filter of telemetry_filter_s (0: none). 100 ms (10 Hz)
    # is the slow end of the 20-100 ms a PCS's SCADA registers refresh at (bessbench's
    # assumption, no manual cited), so plans meet the quantisation they will meet; the 30 ms
    # filter is under a third of it: a reading has moved 96 % of a step by the next refresh
    # and is settled (< 0.1 %) 0.2 s after the step, inside T1's guard_s
    telemetry_period_s: float = 0.1
    telemetry_filter_s: float = 0.03


def _default_ocv_curve() -> tuple[tuple[float, float], ...]:
    # a lithium-ion string whose open-circuit voltage spans the PCS's DC window
    # (750-1000 V): steep at the ends, a gentle slope in the middle
    return ((0.0, 780.0), (5.0, 840.0), (10.0, 865.0), (50.0, 900.0), (90.0, 935.0),
            (95.0, 950.0), (100.0, 985.0))


@dataclass
class BatteryConfig:
    """The battery the DC source emulates in battery mode (Plant.set_dc_battery)."""

    capacity_ah: float = 555.0          # ~500 kWh at 900 V, as PcsConfig.battery_capacity_wh
    soc_pct: float = 50.0
    r_internal_ohm: float = 0.05
    ocv_curve: tuple[tuple[float, float], ...] = field(default_factory=_default_ocv_curve)


@dataclass
class DcSourceConfig:
    voltage_v: float = 900.0
    current_limit_a: float = 400.0
    current_limit_neg_a: float = 400.0
    r_internal_ohm: float = 0.02
    mode: str = "voltage"               # "voltage" | "battery" (Plant.set_dc_source)
    battery: BatteryConfig = field(default_factory=BatteryConfig)


@dataclass
class PlantConfig:
    grid: GridConfig = field(default_factory=GridConfig)
    pcs: PcsConfig = field(default_factory=PcsConfig)
    dt_s: float = 50e-6
    ring_s: float = 30.0
    defects: tuple[str, ...] = ()
    dc_source: DcSourceConfig = field(default_factory=DcSourceConfig)
    ai_load: AiLoadConfig = field(default_factory=AiLoadConfig)
    genset: GensetConfig | None = None      # a genset behind its own breaker on the PCC bus


@dataclass
class PcsSettings:
    p_set_w: float = 0.0
    q_set_var: float = 0.0
    p_ramp_w_per_s: float = 250e3
    # reactive-power setpoint ramp (vendor point var_ramp, docs/vendor_points_vpcs.md);
    # 0: the setpoint applies as a step (kernel_gfl.reactive_power_var)
    q_ramp_var_per_s: float = 0.0
    limit_priority: str = "Q"              # "P" | "Q" | "mixed"
    k_factor: float = 2.0
    dvs_enabled: bool = True
    dvs_deadband_pu: float = 0.1
    lv_must_trip: list[tuple[float, float]] = field(
        default_factory=lambda: [(0.50, 2.0), (0.88, 21.0)])
    hv_must_trip: list[tuple[float, float]] = field(
        default_factory=lambda: [(1.20, 0.16), (1.10, 13.0)])
    lv_mom_cess_v_pu: float = 0.50
    hv_mom_cess_v_pu: float = 1.10
    # --- vendor extension (docs/vendor_points_vpcs.md); physics arrives with the full plant
    control_mode: str = "GFL"              # "GFL" | "GFM_DROOP" | "GFM_VSM"
    droop_f_pct: float = 5.0               # P-f droop, % frequency change for 100 % power
    droop_v_pct: float = 5.0               # Q-V droop
    vsm_inertia_h_s: float = 2.0
    vsm_damping_pu: float = 20.0
    virtual_x_pu: float = 0.10
    smoothing_enabled: bool = False
    smoothing_ramp_pu_per_s: float = 0.20  # grid-side ramp limit, fraction of rating per second
    soc_min_pct: float = 20.0
    soc_max_pct: float = 80.0
    mission_priority: str = "RESERVE"      # "RESERVE" | "DEMAND_RESPONSE" | "SMOOTHING" first
    dr_target_w: float = 0.0
    dr_time_s: float = 2.0
    # --- grid-following outer loop (kernel_gfl.py); field names are the SunSpec server's
    # frequency-watt droop, model 711: IEEE 1547-2018 defaults [primary, criteria.md]
    # deadband 0.036 Hz, droop 5 %, open-loop response time 5 s
    fw_enabled: bool = False
    fw_deadband_hz: float = 0.036
    fw_droop_pct: float = 5.0
    fw_olrt_s: float = 5.0                 # time to 90 % of the final change
    # volt-var, model 705: (v_pu, q_pu) points, q in pu of rated apparent power, capacitive
    # (injecting) positive; default the IEEE 1547 Category B curve [recall, not checked
    # against the text]: 0.92/+0.44, 0.98/0, 1.02/0, 1.08/-0.44, response time 5 s
    vv_enabled: bool = False
    vv_points: list[tuple[float, float]] = field(
        default_factory=lambda: [(0.92, 0.44), (0.98, 0.0), (1.02, 0.0), (1.08, -0.44)])
    vv_olrt_s: float = 5.0
    # enter service, model 703: IEEE 1547 window 0.917-1.05 pu, 59.5-60.1 Hz and a 300 s
    # delay [IEEE default]; the bench default delay is short (0.2 s) so that a bench start
    # is not a five-minute wait (plans time a start out at 5 s); write 300 s to test it
    es_enabled: bool = True
    es_v_low_pu: float = 0.917
    es_v_high_pu: float = 1.05
    es_f_low_hz: float = 59.5
    es_f_high_hz: float = 60.1
    es_delay_s: float = 0.2
    # LF / HF must-trip, models 709 / 710: (f_hz, t_s) points, each an independent timer;
    # IEEE 1547 defaults [primary]: UF2 56.5 Hz/0.16 s, UF1 58.5 Hz/300 s,
    # OF2 62.0 Hz/0.16 s, OF1 61.2 Hz/300 s
    lf_must_trip: list[tuple[float, float]] = field(
        default_factory=lambda: [(56.5, 0.16), (58.5, 300.0)])
    hf_must_trip: list[tuple[float, float]] = field(
        default_factory=lambda: [(62.0, 0.16), (61.2, 300.0)])


@dataclass(frozen=True)
class BenchImpedance:
    r_ohm: float
    l_h: float
    z_base_ohm: float


# ====================================================================== validation
def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _positive(name: str, value: float) -> None:
    _require(math.isfinite(value) and value > 0.0, f"{name} must be > 0, got {value!r}")


def bench_impedance(grid: GridConfig, pcs: PcsConfig) -> BenchImpedance:
    """Series R-L from SCR and X/R on the PCS base (or the explicit override)."""
    z_base = grid.v_ll_nom_v ** 2 / pcs.s_rated_va
    if grid.r_ohm is not None or grid.l_h is not None:
        _require(grid.r_ohm is not None and grid.l_h is not None,
                 "grid.r_ohm and grid.l_h must be given together")
        _require(grid.r_ohm >= 0.0, f"negative bench resistance {grid.r_ohm} ohm")
        _require(grid.l_h > 0.0, f"bench inductance must be > 0, got {grid.l_h} H")
        return BenchImpedance(grid.r_ohm, grid.l_h, z_base)
    _positive("grid.scr", grid.scr)
    _positive("grid.x_over_r", grid.x_over_r)
    z_ohm = z_base / grid.scr
    x_ohm = z_ohm * math.sin(math.atan(grid.x_over_r))
    r_ohm = x_ohm / grid.x_over_r
    return BenchImpedance(r_ohm, x_ohm / (2.0 * math.pi * grid.f_nom_hz), z_base)


def telemetry_period_s(pcs: PcsConfig) -> float:
    """The telemetry refresh period the PCS runs: PcsConfig.telemetry_period_s in whole
    one-cycle measurement windows (at least one), so each refresh instant is a window end."""
    windows = max(1, round(pcs.telemetry_period_s * pcs.f_nom_hz))
    return windows / pcs.f_nom_hz


def validate_config(config: PlantConfig) -> None:
    g, p = config.grid, config.pcs
    _positive("dt_s", config.dt_s)
    _require(config.dt_s <= 1e-3, f"dt_s {config.dt_s} s too large for the EMT kernel (<= 1 ms)")
    _positive("ring_s", config.ring_s)
    for name in ("v_ll_nom_v", "f_nom_hz", "pcc_c_pu"):
        _positive(f"grid.{name}", getattr(g, name))
    for name in ("s_rated_va", "v_ll_nom_v", "f_nom_hz", "i_max_a", "vdc_min_v", "vdc_max_v",
                 "l_filter_pu", "dc_link_c_f", "pll_bandwidth_hz", "current_loop_bandwidth_hz",
                 "vff_filter_tau_s", "modulation_max", "battery_capacity_wh", "thermal_tau_s"):
        _positive(f"pcs.{name}", getattr(p, name))
    _require(p.r_filter_pu >= 0.0, f"negative PCS filter resistance {p.r_filter_pu} pu")
    _require(math.isfinite(p.telemetry_period_s) and 0.0 < p.telemetry_period_s <= 10.0,
             f"pcs.telemetry_period_s must be within 0..10 s, got {p.telemetry_period_s!r}")
    _require(math.isfinite(p.telemetry_filter_s) and 0.0 <= p.telemetry_filter_s <= 10.0,
             f"pcs.telemetry_filter_s must be within 0..10 s (0: no filter), got {p.telemetry_filter_s!r}")
    _require(p.vdc_min_v < p.vdc_max_v, "pcs.vdc_min_v must be below pcs.vdc_max_v")
    _require(0.0 <= p.soc_initial_pct <= 100.0, "pcs.soc_initial_pct must be within 0..100")
    _positive("dc_source.r_internal_ohm", config.dc_source.r_internal_ohm)
    _require(config.dc_source.mode in DC_MODES,
             f"dc_source.mode must be one of {DC_MODES}, got {config.dc_source.mode!r}")
    _battery_checked(config.dc_source.battery, "dc_source.battery")
    _bms_tapers(p)
    bench_impedance(g, p)
    if config.genset is not None:
        gen = config.genset.resolved()
        _require(gen.f_nom_hz == p.f_nom_hz,
                 f"genset.f_nom_hz {gen.f_nom_hz} differs from the bench's {p.f_nom_hz} Hz")
    check_defects(tuple(config.defects))


def _ocv_curve(name: str, curve: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """An open-circuit-voltage curve: (soc_pct, v) points, SOC strictly increasing within
    0..100, voltage positive and monotonic (never falling as SOC rises)."""
    try:
        pts = tuple((float(soc), float(v)) for soc, v in curve)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: needs (soc_pct, v) pairs, got {curve!r}") from None
    _require(2 <= len(pts) <= k.MAX_OCV_POINTS,
             f"{name}: 2..{k.MAX_OCV_POINTS} points, got {len(pts)}")
    for soc, v in pts:
        _require(math.isfinite(soc) and 0.0 <= soc <= 100.0,
                 f"{name}: SOC {soc!r} % outside 0..100")
        _require(math.isfinite(v) and v > 0.0, f"{name}: voltage {v!r} V at SOC {soc:g} % must be > 0")
    for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
        _require(s1 > s0, f"{name}: SOC points must increase, got {s0:g} % then {s1:g} %")
        _require(v1 >= v0, f"{name}: not monotonic: {v0:g} V at {s0:g} % then {v1:g} V at {s1:g} %")
    _require(pts[-1][1] > pts[0][1], f"{name}: flat curve ({pts[0][1]:g} V throughout); "
                                     "a battery's OCV rises with its SOC")
    return pts


def _battery_checked(battery: "BatteryConfig", name: str = "battery") -> "BatteryConfig":
    """A validated copy (ValueError naming the setting on anything impossible)."""
    _require(isinstance(battery.capacity_ah, (int, float)) and math.isfinite(battery.capacity_ah)
             and battery.capacity_ah > 0.0, f"{name}.capacity_ah must be > 0, got {battery.capacity_ah!r}")
    _require(isinstance(battery.soc_pct, (int, float)) and math.isfinite(battery.soc_pct)
             and 0.0 <= battery.soc_pct <= 100.0,
             f"{name}.soc_pct must be within 0..100, got {battery.soc_pct!r}")
    _require(isinstance(battery.r_internal_ohm, (int, float)) and math.isfinite(battery.r_internal_ohm)
             and battery.r_internal_ohm > 0.0,
             f"{name}.r_internal_ohm must be > 0 (no negative resistance; an ideal source is "
             f"voltage mode), got {battery.r_internal_ohm!r}")
    return BatteryConfig(float(battery.capacity_ah), float(battery.soc_pct),
                         float(battery.r_internal_ohm), _ocv_curve(f"{name}.ocv_curve", battery.ocv_curve))


def _bms_tapers(pcs: "PcsConfig") -> None:
    points = (pcs.bms_discharge_zero_soc_pct, pcs.bms_discharge_full_soc_pct,
              pcs.bms_charge_full_soc_pct, pcs.bms_charge_zero_soc_pct)
    _require(all(math.isfinite(x) for x in points)
             and 0.0 <= points[0] < points[1] <= points[2] < points[3] <= 100.0,
             "BMS tapers need 0 <= pcs.bms_discharge_zero_soc_pct < bms_discharge_full_soc_pct "
             "<= bms_charge_full_soc_pct < bms_charge_zero_soc_pct <= 100, got "
             + ", ".join(f"{x:g}" for x in points))


def _trip_points(name: str, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = [(float(v), float(t)) for v, t in points]
    _require(len(pts) <= k.MAX_TRIP_POINTS,
             f"{name}: at most {k.MAX_TRIP_POINTS} points, got {len(pts)}")
    for v, t in pts:
        _require(v >= 0.0 and t >= 0.0, f"{name}: point ({v}, {t}) must be non-negative")
    return pts


# ====================================================================== plant
class Plant:
    """The whole virtual bench as one numerical plant (see docs/architecture.md)."""

    ring_signals: tuple[str, ...] = ("pcc_va_v", "pcc_vb_v", "pcc_vc_v",
                                     "pcs_ia_a", "pcs_ib_a", "pcs_ic_a",
                                     "grid_ia_a", "grid_ib_a", "grid_ic_a",
                                     "vdc_v", "idc_a",
                                     "load_ia_a", "load_ib_a", "load_ic_a",   # bank + AI load
                                     "gen_ia_a", "gen_ib_a", "gen_ic_a")

    def __init__(self, config: PlantConfig) -> None:
        validate_config(config)
        self.config = config
        self.dt_s = float(config.dt_s)
        self.sample_rate_hz = 1.0 / self.dt_s
        self.impedance = bench_impedance(config.grid, config.pcs)
        self.pcs_events: list[tuple[float, str, str]] = []
        self._defects = frozenset(config.defects)
        self._step = 0
        self._in_advance = False
        self._callbacks: list[tuple[int, int, Callable[[Plant], None]]] = []
        self._seq = itertools.count()
        self._fault_g = [0.0, 0.0, 0.0]
        self._fault_gpp = [0.0, 0.0, 0.0]      # phase-to-phase branches AB, BC, CA
        # constant-impedance loads on the PCC bus by owner (set_load_bank's part): (P, QL, QC)
        self._bank_parts: dict[str, tuple[float, float, float]] = {}
        # the grid simulator's programmable output impedance (weak-grid emulation), in
        # series with the bench impedance; zero until set_source_impedance()
        self._source_r_ohm = 0.0
        self._source_l_h = 0.0
        self._trip_reason = ""
        self._trip_reason_t_s = 0.0             # when the PCS logged it (its image shows it from then)
        self._alarms: list[str] = []
        self._pending_commands: collections.deque[float] = collections.deque()
        self._q_frozen: float | None = None
        self._dispatch: tuple[float, float] | None = None   # (target_w, ramp_w_per_s)
        # fidelity: "emt" (every ring sample is a kernel step) or "phasor" (a kernel step
        # is _ph_m ring samples; ring reads are synthesised from the phasor ring)
        self.fidelity = "emt"
        self._ph_m = 0
        self._ph_ring: np.ndarray | None = None
        self._ph_rows = 0                       # phasor-ring rows written so far
        self._segments: list[tuple[int, str]] = [(0, "emt")]   # (first step, fidelity)
        self._pparams = np.zeros(k.N_PARAMS)
        self._soc_band_state = "inside"         # SOC manager: "inside" | "low" | "high"
        self._allocate()
        self._init_params()
        self._stale: collections.deque | None = None
        if "telemetry_timestamp_lag" in self._defects:
            self._stale = collections.deque()
            self._stale_initial = (self._meas.copy(), self.state.copy())
        self._pcs_settings = PcsSettings(p_ramp_w_per_s=config.pcs.s_rated_va)
        self._settings_snapshot: dict | None = None
        self._apply_settings_if_changed()

    # ------------------------------------------------------------------ setup
    def _allocate(self) -> None:
        cfg = self.config
        self._n_ring = int(round(cfg.ring_s / self.dt_s)) + 1
        self._n_win = max(int(round(1.0 / (cfg.pcs.f_nom_hz * self.dt_s))), 1)
        self.state = np.zeros(k.N_STATE)
        self.params = np.zeros(k.N_PARAMS)
        self._mats = np.zeros((k.N_MATS, k.NX, k.NX + k.NU))
        self._ai_buf = np.zeros(max(int(round(MAX_CHUNK_S * self.sample_rate_hz)), 1) + 1)
        self._ai_profile: AiLoadProfile | None = None
        self._ai_t0_s = 0.0
        self._win = np.zeros((5, self._n_win))
        self._ring = np.zeros((self._n_ring, k.N_RING), dtype=np.float32)
        self._meas = np.zeros(k.N_MEAS)
        self._events = np.zeros((EVENT_CAPACITY, k.EVENT_COLUMNS))
        self._signal_row = {name: i for i, name in enumerate(self.ring_signals)}

    def _init_params(self) -> None:
        cfg, pcs, g = self.config, self.config.pcs, self.config.grid
        p = self.params
        v_ln = pcs.v_ll_nom_v / math.sqrt(3.0)
        z_base = pcs.v_ll_nom_v ** 2 / pcs.s_rated_va
        w_nom = 2.0 * math.pi * pcs.f_nom_hz
        i_rated_pk = math.sqrt(2.0) * pcs.s_rated_va / (math.sqrt(3.0) * pcs.v_ll_nom_v)
        l_f = pcs.l_filter_pu * z_base / w_nom
        p[k.P_DT] = self.dt_s
        p[k.P_F_NOM] = pcs.f_nom_hz
        p[k.P_VPK_NOM] = math.sqrt(2.0) * v_ln
        p[k.P_IPK_RATED] = i_rated_pk
        self._write_source_impedance()
        p[k.P_RF] = pcs.r_filter_pu * z_base
        p[k.P_LF] = l_f
        p[k.P_C] = g.pcc_c_pu / (z_base * w_nom)
        grid_v_ln = g.v_ll_nom_v / math.sqrt(3.0)
        p[k.P_SRC_VA] = p[k.P_SRC_VB] = p[k.P_SRC_VC] = grid_v_ln
        p[k.P_SRC_PHA], p[k.P_SRC_PHB], p[k.P_SRC_PHC] = 0.0, -2 * math.pi / 3, 2 * math.pi / 3
        p[k.P_SRC_F] = g.f_nom_hz
        self.state[k.S_SRC_F] = g.f_nom_hz
        dc = cfg.dc_source
        p[k.P_DC_V] = dc.voltage_v
        p[k.P_DC_ILIM_SRC] = dc.current_limit_a
        p[k.P_DC_ILIM_SINK] = dc.current_limit_neg_a
        p[k.P_DC_R] = dc.r_internal_ohm
        self._dc_output_r_ohm = 0.0             # programmed output resistance (VOLT:RES)
        self._battery = _battery_checked(dc.battery, "dc_source.battery")
        self._write_battery()
        self.state[k.S_BAT_SOC_PCT] = self.state[k.S_BAT_EST_PCT] = self._battery.soc_pct
        p[k.P_DC_MODE] = k.DC_MODE_BATTERY if dc.mode == "battery" else k.DC_MODE_VOLTAGE
        # the PCS's SOC estimate in voltage mode: its energy count against its capacity
        p[k.P_SOC0_PCT] = pcs.soc_initial_pct
        p[k.P_SOC_PCT_PER_J] = 100.0 / (pcs.battery_capacity_wh * 3600.0)
        p[k.P_BMS_DIS_ZERO_PCT] = pcs.bms_discharge_zero_soc_pct
        p[k.P_BMS_DIS_FULL_PCT] = pcs.bms_discharge_full_soc_pct
        p[k.P_BMS_CHA_FULL_PCT] = pcs.bms_charge_full_soc_pct
        p[k.P_BMS_CHA_ZERO_PCT] = pcs.bms_charge_zero_soc_pct
        p[k.P_CDC] = pcs.dc_link_c_f
        p[k.P_DC_BLEED_R] = 10.0 / pcs.dc_link_c_f      # 10 s bleed time constant
        p[k.P_VDC_MIN] = pcs.vdc_min_v
        p[k.P_VDC_MAX] = pcs.vdc_max_v
        p[k.P_DC_TRIP_S] = pcs.dc_trip_delay_s
        # PLL: 2nd-order loop, zeta 0.707; -3 dB bandwidth ~ 2.06 wn
        wn = 2.0 * math.pi * pcs.pll_bandwidth_hz / 2.06
        p[k.P_PLL_KP] = 2.0 * 0.707 * wn
        p[k.P_PLL_KI] = wn * wn
        wc = 2.0 * math.pi * pcs.current_loop_bandwidth_hz
        p[k.P_CC_KP] = l_f * wc
        p[k.P_CC_KI] = l_f * wc * wc / 5.0
        p[k.P_VFF_TAU] = pcs.vff_filter_tau_s
        p[k.P_T_SYNC] = pcs.t_sync_s
        p[k.P_M_MAX] = pcs.modulation_max
        p[k.P_IMAX_PK] = math.sqrt(2.0) * pcs.i_max_a
        p[k.P_OC_PK] = pcs.hw_overcurrent_pu * i_rated_pk
        p[k.P_OV_PK] = pcs.inst_overvoltage_pu * p[k.P_VPK_NOM]
        p[k.P_TEMP_AMB] = pcs.ambient_c
        p[k.P_TEMP_RISE] = pcs.temp_rise_rated_c
        p[k.P_TEMP_TAU] = pcs.thermal_tau_s
        p[k.P_GUARD_IF_PK] = 20.0 * i_rated_pk
        p[k.P_DEF_TRIP_SAG] = float("trip_on_sag" in self._defects)
        p[k.P_DEF_NO_Q] = float("no_reactive_injection" in self._defects)
        p[k.P_DEF_PRIO_IGN] = float("limit_priority_ignored" in self._defects)
        p[k.P_DEF_LIMIT_CYCLE] = float("limiter_limit_cycle" in self._defects)
        p[k.P_RAMP_TIMEBASE] = DR_SLOW_TIMEBASE if "dr_slow_response" in self._defects else 1.0
        p[k.P_S_RATED] = pcs.s_rated_va
        p[k.P_PCC_BRK] = 1.0
        # grid forming
        p[k.P_RV_VIRT] = GFM_RV_PU * z_base
        p[k.P_GFM_RT] = GFM_RT_PU * z_base
        p[k.P_GFM_RT_TAU] = GFM_RT_TAU_S
        p[k.P_GFM_PF_TAU] = GFM_POWER_TAU_S
        p[k.P_VSM_PF_TAU] = VSM_POWER_TAU_S
        p[k.P_GFM_SLIP_D] = GFM_DROOP_DAMPING_PU
        underdamped = "gfm_underdamped" in self._defects
        p[k.P_VREG_KP] = VREG_KP
        p[k.P_VREG_KI] = UNDERDAMPED_VREG_KI_PER_S if underdamped else VREG_KI_PER_S
        p[k.P_VREG_TAU] = UNDERDAMPED_VREG_TAU_S if underdamped else VREG_TAU_S
        overshoot = "blackstart_overshoot" in self._defects
        p[k.P_BS_RAMP_S] = OVERSHOOT_RAMP_S if overshoot else BLACK_START_RAMP_S
        p[k.P_BS_KI_SCALE] = OVERSHOOT_KI_SCALE if overshoot else 1.0
        p[k.P_BS_FF] = 0.0 if overshoot else 1.0
        p[k.P_TRANSFER_GAP_S] = TRANSFER_GAP_DEFECT_S if "island_transfer_gap" in self._defects else 0.0
        p[k.P_DEF_GEN_OSC] = float("genset_interaction_oscillation" in self._defects)
        p[k.P_SOC_DISCH_GAIN] = SOC_DRIFT_DISCHARGE_GAIN if "soc_drift" in self._defects else 1.0
        self._init_grid_event_defects()
        p[k.P_SOC_SP_LO] = p[k.P_SOC_SM_LO] = -pcs.s_rated_va    # SOC manager: no bound yet
        p[k.P_SOC_SP_HI] = p[k.P_SOC_SM_HI] = pcs.s_rated_va
        if cfg.genset is not None:
            self._init_genset_params(cfg.genset.resolved())
        ai = cfg.ai_load
        p[k.P_AI_IMAX_PK] = math.sqrt(2.0) * ai.i_max_a
        p[k.P_AI_TAU] = ai.power_tau_s
        p[k.P_AI_V_TAU] = ai.voltage_filter_tau_s
        p[k.P_SMOOTH_TAU] = SMOOTHING_TAU_S
        p[k.P_TEL_PERIOD_S] = telemetry_period_s(pcs)
        p[k.P_TEL_FILTER_S] = pcs.telemetry_filter_s
        p[k.P_RT_PLL_SCALE] = RT_PLL_BANDWIDTH_SCALE
        s = self.state
        s[k.S_PLL_W] = w_nom
        s[k.S_LC_ILIM] = k.LC_WINDUP_MAX * p[k.P_IMAX_PK]
        s[k.S_TEMP_C] = pcs.ambient_c
        s[k.S_PCC_CLOSED] = 1.0
        s[k.S_GFM_RAMP] = 1.0
        s[k.S_F_MEAS] = pcs.f_nom_hz
        s[k.S_FW_HOLD_F] = pcs.f_nom_hz
        s[k.S_GEN_W] = w_nom
        s[k.S_VV_VF] = 1.0
        self._init_bms_limits()
        tel.latch_status(s, p, self._meas)      # the image a read finds before the first refresh

    def _init_grid_event_defects(self) -> None:
        """The elements of the T7 frequency / RoCoF / phase-jump defects (0: absent)."""
        p, f_nom = self.params, self.config.pcs.f_nom_hz
        if "trip_on_rocof" in self._defects:
            p[k.P_DEF_ROCOF_TRIP] = ROCOF_DEFECT_PICKUP_HZ_PER_S
            p[k.P_DEF_ROCOF_DELAY] = ROCOF_DEFECT_DELAY_S
        if "legacy_frequency_trip" in self._defects:
            p[k.P_DEF_FTRIP_LO] = f_nom - LEGACY_FTRIP_UNDER_HZ
            p[k.P_DEF_FTRIP_HI] = f_nom + LEGACY_FTRIP_OVER_HZ
            p[k.P_DEF_FTRIP_T] = LEGACY_FTRIP_S
        if "pll_loses_lock_on_jump" in self._defects:
            p[k.P_DEF_JUMP_ERR] = JUMP_DEFECT_ERR
            p[k.P_DEF_JUMP_CEASE_S] = JUMP_DEFECT_CEASE_S

    def _init_genset_params(self, gen: GensetConfig) -> None:
        p = self.params
        w_nom = 2.0 * math.pi * gen.f_nom_hz
        z_base = gen.v_ll_nom_v ** 2 / gen.s_rated_va
        p[k.P_GEN_S] = gen.s_rated_va
        p[k.P_GEN_VPK] = math.sqrt(2.0 / 3.0) * gen.v_ll_nom_v
        p[k.P_GEN_R] = gen.r_pu * z_base
        p[k.P_GEN_L] = gen.x_pu * z_base / w_nom
        p[k.P_GEN_2H] = 2.0 * gen.inertia_h_s
        p[k.P_GEN_KGOV] = gen.s_rated_va / (gen.droop_pct / 100.0 * w_nom)
        p[k.P_GEN_TAU_ENG] = gen.engine_tau_s
        p[k.P_GEN_PREF] = gen.p_ref_w
        p[k.P_GEN_VREF] = gen.v_ref_pu
        p[k.P_GEN_AVR_KP] = gen.avr_kp
        p[k.P_GEN_AVR_KI] = gen.avr_ki_per_s
        p[k.P_GEN_TAU_F] = gen.field_tau_s
        p[k.P_GEN_EMAX] = gen.e_max_pu

    # ------------------------------------------------------------------ settings
    @property
    def pcs_settings(self) -> PcsSettings:
        return self._pcs_settings

    @pcs_settings.setter
    def pcs_settings(self, settings: PcsSettings) -> None:
        self._pcs_settings = settings
        self._settings_snapshot = None

    def _apply_settings_if_changed(self) -> None:
        s = self._pcs_settings
        snap = {key: (list(v) if isinstance(v, list) else v) for key, v in vars(s).items()}
        if snap == self._settings_snapshot:
            return
        self._write_settings(s)
        self._settings_snapshot = snap

    def _write_settings(self, s: PcsSettings) -> None:
        """Validate first, then write: a bad setting must not half-apply."""
        _require(s.limit_priority in PRIORITY_CODES,
                 f"limit_priority must be one of {sorted(PRIORITY_CODES)}, got {s.limit_priority!r}")
        _require(s.p_ramp_w_per_s > 0.0, f"p_ramp_w_per_s must be > 0, got {s.p_ramp_w_per_s}")
        _require(math.isfinite(s.q_ramp_var_per_s) and s.q_ramp_var_per_s >= 0.0,
                 f"q_ramp_var_per_s must be >= 0 (0: a step), got {s.q_ramp_var_per_s}")
        _require(s.k_factor >= 0.0, f"k_factor must be >= 0, got {s.k_factor}")
        _require(s.dvs_deadband_pu >= 0.0, "dvs_deadband_pu must be >= 0")
        _require(0.0 <= s.lv_mom_cess_v_pu < 1.0, "lv_mom_cess_v_pu must be within [0, 1)")
        _require(s.hv_mom_cess_v_pu > 1.0, "hv_mom_cess_v_pu must be > 1")
        _require(s.control_mode in CONTROL_MODES,
                 f"control_mode must be one of {sorted(CONTROL_MODES)}, got {s.control_mode!r}")
        _require(self.fidelity == "emt" or s.control_mode == "GFL",
                 "phasor mode models a grid-following PCS only: switch to EMT for grid forming")
        _require(s.mission_priority in SOC_MANAGED,
                 f"mission_priority must be one of {sorted(SOC_MANAGED)}, got {s.mission_priority!r}")
        _require(0.0 <= s.soc_min_pct < s.soc_max_pct <= 100.0,
                 f"SOC band needs 0 <= soc_min_pct < soc_max_pct <= 100, got "
                 f"{s.soc_min_pct}..{s.soc_max_pct}")
        for name, lo, hi in (("droop_f_pct", 0.5, 10.0), ("droop_v_pct", 0.5, 10.0),
                             ("vsm_inertia_h_s", 0.1, 20.0), ("vsm_damping_pu", 0.0, 200.0),
                             ("virtual_x_pu", 0.0, 0.5)):
            val = getattr(s, name)
            _require(math.isfinite(val) and lo <= val <= hi, f"{name} must be within {lo}..{hi}, got {val}")
        lv = _trip_points("lv_must_trip", s.lv_must_trip)
        hv = _trip_points("hv_must_trip", s.hv_must_trip)
        lf = _trip_points("lf_must_trip", s.lf_must_trip)
        hf = _trip_points("hf_must_trip", s.hf_must_trip)
        vv = _volt_var_points(s.vv_points)
        for name, lo, hi in (("fw_deadband_hz", 0.0, 1.0), ("fw_droop_pct", 0.5, 10.0),
                             ("fw_olrt_s", 0.01, 600.0), ("vv_olrt_s", 0.01, 600.0),
                             ("es_delay_s", 0.0, 3600.0)):
            val = getattr(s, name)
            _require(math.isfinite(val) and lo <= val <= hi, f"{name} must be within {lo}..{hi}, got {val}")
        _require(0.0 < s.es_v_low_pu < s.es_v_high_pu,
                 f"enter-service window needs 0 < es_v_low_pu < es_v_high_pu, got "
                 f"{s.es_v_low_pu}..{s.es_v_high_pu} pu")
        _require(0.0 < s.es_f_low_hz < s.es_f_high_hz,
                 f"enter-service window needs 0 < es_f_low_hz < es_f_high_hz, got "
                 f"{s.es_f_low_hz}..{s.es_f_high_hz} Hz")
        p = self.params
        p[k.P_P_SET] = s.p_set_w
        p[k.P_Q_SET] = s.q_set_var
        p[k.P_Q_RAMP] = s.q_ramp_var_per_s
        p[k.P_P_RAMP] = s.p_ramp_w_per_s
        if self._dispatch is not None:
            target_w, rate_w_per_s = self._dispatch
            if s.p_set_w == target_w:
                p[k.P_P_RAMP] = rate_w_per_s      # a dispatch ramps at its own rate
            else:
                self._dispatch = None             # a new setpoint cancels the dispatch
        p[k.P_PRIO] = PRIORITY_CODES[s.limit_priority]
        p[k.P_K] = s.k_factor
        p[k.P_DVS_EN] = float(bool(s.dvs_enabled))
        p[k.P_DB] = s.dvs_deadband_pu
        _require(s.smoothing_ramp_pu_per_s > 0.0,
                 f"smoothing_ramp_pu_per_s must be > 0, got {s.smoothing_ramp_pu_per_s}")
        p[k.P_SMOOTH_EN] = float(bool(s.smoothing_enabled))
        p[k.P_SMOOTH_RAMP] = SMOOTHING_MARGIN * s.smoothing_ramp_pu_per_s * self.config.pcs.s_rated_va
        if "ramp_buffer_slow" in self._defects:
            p[k.P_SMOOTH_SLEW] = s.p_ramp_w_per_s / RAMP_BUFFER_SLOW_FACTOR
        pcs = self.config.pcs
        w_nom = 2.0 * math.pi * pcs.f_nom_hz
        z_base = pcs.v_ll_nom_v ** 2 / pcs.s_rated_va
        p[k.P_CTRL_MODE] = CONTROL_MODES[s.control_mode]
        p[k.P_GFM_MP] = s.droop_f_pct / 100.0 * w_nom / pcs.s_rated_va
        p[k.P_GFM_MQ] = s.droop_v_pct / 100.0
        p[k.P_VSM_2H] = 2.0 * s.vsm_inertia_h_s
        p[k.P_VSM_D] = s.vsm_damping_pu
        p[k.P_LV_VIRT] = max(s.virtual_x_pu, GFM_MIN_X_PU) * z_base / w_nom
        p[k.P_LV_MC] = s.lv_mom_cess_v_pu
        p[k.P_HV_MC] = s.hv_mom_cess_v_pu
        p[k.P_N_LV] = len(lv)
        p[k.P_N_HV] = len(hv)
        for i, (v, t) in enumerate(lv):
            p[k.P_LV_V + i], p[k.P_LV_T + i] = v, t
        for i, (v, t) in enumerate(hv):
            p[k.P_HV_V + i], p[k.P_HV_T + i] = v, t
        self._write_outer_loop_settings(s, lf, hf, vv)

    def _write_outer_loop_settings(self, s: PcsSettings, lf: list[tuple[float, float]],
                                   hf: list[tuple[float, float]],
                                   vv: list[tuple[float, float]]) -> None:
        """Frequency-watt, volt-var, enter service, frequency trips (validated)."""
        p = self.params
        pcs = self.config.pcs
        p[k.P_FW_EN] = float(bool(s.fw_enabled))
        p[k.P_FW_DB_HZ] = s.fw_deadband_hz
        p[k.P_FW_W_PER_HZ] = pcs.s_rated_va / (s.fw_droop_pct / 100.0 * pcs.f_nom_hz)
        p[k.P_FW_TAU] = s.fw_olrt_s / OLRT_TO_TAU
        p[k.P_VV_EN] = float(bool(s.vv_enabled))
        p[k.P_VV_TAU] = s.vv_olrt_s / OLRT_TO_TAU
        p[k.P_N_VV] = len(vv)
        for i, (v, q) in enumerate(vv):
            p[k.P_VV_V + i], p[k.P_VV_Q + i] = v, q * pcs.s_rated_va
        p[k.P_ES_EN] = float(bool(s.es_enabled))
        p[k.P_ES_V_LO], p[k.P_ES_V_HI] = s.es_v_low_pu, s.es_v_high_pu
        p[k.P_ES_F_LO], p[k.P_ES_F_HI] = s.es_f_low_hz, s.es_f_high_hz
        p[k.P_ES_DELAY_S] = s.es_delay_s
        p[k.P_N_LF] = len(lf)
        p[k.P_N_HF] = len(hf)
        for i, (f, t) in enumerate(lf):
            p[k.P_LF_F + i], p[k.P_LF_T + i] = f, t
        for i, (f, t) in enumerate(hf):
            p[k.P_HF_F + i], p[k.P_HF_T + i] = f, t

    # ------------------------------------------------------------------ time
    @property
    def t_s(self) -> float:
        return self._step * self.dt_s

    def schedule(self, t_s: float, callback: Callable[["Plant"], None]) -> None:
        """Run callback(plant) when plant time reaches t_s (at once if already past)."""
        step = max(int(math.ceil(t_s / self.dt_s - CALLBACK_EPS_S * self.sample_rate_hz)), self._step)
        heapq.heappush(self._callbacks, (step, next(self._seq), callback))

    def advance(self, duration_s: float) -> None:
        """Advance plant time by duration_s, running due callbacks at their plant time."""
        _require(math.isfinite(duration_s) and duration_s >= 0.0,
                 f"advance duration must be >= 0, got {duration_s!r}")
        if self._in_advance:
            raise RuntimeError("Plant.advance() called re-entrantly (from a callback?)")
        self._in_advance = True
        try:
            end_step = self._step + int(round(duration_s * self.sample_rate_hz))
            self._run_due_callbacks()
            while self._step < end_step:
                phasor = self.fidelity == "phasor"     # a callback may switch it
                chunk_s = STALE_CHUNK_S if self._stale is not None else (
                    PHASOR_CHUNK_S if phasor else MAX_CHUNK_S)
                max_chunk = max(int(round(chunk_s * self.sample_rate_hz)), 1)
                target = min(end_step, self._step + max_chunk)
                if self._pending_commands:
                    self.state[k.S_CMD] = self._pending_commands.popleft()
                    target = min(end_step, self._step + (self._ph_m if phasor else 1))
                if self._callbacks:
                    target = min(target, self._callbacks[0][0])
                self._update_soc_manager()
                if phasor:
                    self._run_phasor_chunk(target - self._step)
                else:
                    self._run_chunk(target - self._step)
                self._run_due_callbacks()
        finally:
            self._in_advance = False

    def _run_due_callbacks(self) -> None:
        while self._callbacks and self._callbacks[0][0] <= self._step:
            _, _, callback = heapq.heappop(self._callbacks)
            callback(self)

    def _run_chunk(self, n_steps: int) -> None:
        self._apply_settings_if_changed()
        while n_steps > 0:
            ai = self._ai_commands(n_steps)
            done = k.run_steps(n_steps, self._step, self.state, self.params, self._mats,
                               self._win, self._ring, self._meas, self._events, ai)
            self._step += done
            n_steps -= done
            if self._stale is not None:
                self._record_stale()
            if self.state[k.S_EV_N] > 0:
                self._drain_events()
            if self.state[k.S_ERR_CODE] != 0:
                self._raise_numerical()

    def _run_phasor_chunk(self, n_samples: int) -> None:
        """n_samples of ring time in phasor steps of _ph_m samples, the remainder (a
        callback or the end of an advance between two steps) as one shorter step."""
        self._apply_settings_if_changed()
        m = self._ph_m
        full, rest = divmod(n_samples, m)
        for n_steps, samples_per_step in ((full, m), (1 if rest else 0, rest)):
            while n_steps > 0:
                h = samples_per_step * self.dt_s
                pp = self._pparams
                pp[:] = self.params
                pp[k.P_DT] = h
                t0 = self.t_s
                n_call = min(n_steps, max(len(self._ai_buf) - 1, 1))
                ai = self._ai_phasor_commands(n_call, h)
                done = kp.run_phasor_steps(n_call, t0, self.state, pp, self._meas, self._events,
                                           self._ph_ring, self._ph_rows, ai)
                self._ph_rows += done
                self._step += done * samples_per_step
                n_steps -= done
                if self._stale is not None:
                    self._record_stale()
                if self.state[k.S_EV_N] > 0:
                    self._drain_events()
                if self.state[k.S_ERR_CODE] != 0:
                    self._raise_numerical()

    def _ai_phasor_commands(self, n_steps: int, h_s: float) -> np.ndarray:
        """AI-load power at the end of each of the next n_steps phasor steps."""
        buf = self._ai_buf
        if self._ai_profile is None:
            buf[:n_steps] = 0.0
            return buf
        t = self.t_s + h_s * np.arange(1, n_steps + 1) - self._ai_t0_s
        values = np.asarray(self._ai_profile.power_w(t), dtype=float)
        if not np.all(np.isfinite(values)):
            raise PlantNumericalError(f"AI-load profile returned a non-finite power "
                                      f"at plant time t = {self.t_s:.6f} s")
        buf[:n_steps] = values
        return buf

    # ------------------------------------------------------------------ fidelity
    @property
    def step_s(self) -> float:
        """The kernel's integration step: dt_s in EMT, the phasor step in phasor mode."""
        return self.dt_s * (self._ph_m if self.fidelity == "phasor" else 1)

    def set_fidelity(self, fidelity: str, dt_s: float | None = None) -> None:
        """Switch the plant between "emt" (averaged EMT at the configured dt_s, sub-cycle
        work) and "phasor" (balanced RMS phasors at dt_s of 1-10 ms, default 5 ms, for long
        runs), at the present plant time, carrying every state across.

        Phasor mode models grid-following operation (a grid-forming setting is refused)
        and balanced conditions: unbalanced source programming counts by its positive
        sequence and only three-phase faults are accepted. Its step is a whole number of
        ring samples; plant.dt_s stays the ring's sample period, so read_ring() keeps its
        time base and returns waveforms synthesised from the phasors. Commands and
        callbacks act at phasor-step boundaries (a callback between two steps shortens
        the step that reaches it)."""
        _require(fidelity in FIDELITIES, f"fidelity must be one of {FIDELITIES}, got {fidelity!r}")
        if fidelity == "emt":
            _require(dt_s is None or abs(dt_s - self.dt_s) <= 1e-12,
                     f"EMT runs at the configured dt_s {self.dt_s:g} s (PlantConfig.dt_s); "
                     f"got {dt_s!r}")
            if self.fidelity == "phasor":
                self._enter_emt()
            return
        dt_s = 5e-3 if dt_s is None else dt_s
        lo, hi = PHASOR_DT_RANGE_S
        _require(isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and lo <= dt_s <= hi,
                 f"phasor dt_s must be within {lo:g}..{hi:g} s, got {dt_s!r}")
        _require(self._pcs_settings.control_mode == "GFL" and self.state[k.S_GFM] < 0.5,
                 "phasor mode models a grid-following PCS only; set control_mode GFL "
                 "(grid forming needs EMT)")
        _require(len(set(self._fault_g)) == 1 and not any(self._fault_gpp),
                 "phasor mode is balanced: clear the unbalanced fault first")
        m = max(int(round(dt_s / self.dt_s)), 1)
        if self.fidelity == "phasor":
            if m != self._ph_m:
                self._ph_m = m
                self._allocate_phasor_ring()
            return
        self._ph_m = m
        self._allocate_phasor_ring()
        self._enter_phasor()

    def _allocate_phasor_ring(self) -> None:
        rows = int(math.ceil(self.config.ring_s / (self._ph_m * self.dt_s))) + 2
        self._ph_ring = np.zeros((rows, kp.N_PH_COLS))
        self._ph_rows = 0
        self._ai_buf = np.zeros(max(len(self._ai_buf), int(PHASOR_CHUNK_S / (self._ph_m * self.dt_s)) + 2))

    def _enter_phasor(self) -> None:
        """Phasors of the present instantaneous network state (balanced: its space vector)."""
        st = self.state
        rot = cmath.exp(-1j * self._w_nom() * self.t_s)

        def phasor(index: int) -> complex:
            x0, x1, x2 = st[index], st[index + 1], st[index + 2]
            return complex((2 * x0 - x1 - x2) / 3.0, (x1 - x2) / math.sqrt(3.0)) / math.sqrt(2.0) * rot

        v = phasor(k.S_VC)
        for index, value in ((k.S_PH_V, v), (k.S_PH_IF, phasor(k.S_IF)), (k.S_PH_IG, phasor(k.S_IG)),
                             (k.S_PH_IGEN, phasor(k.S_IGEN))):
            st[index], st[index + 1] = value.real, value.imag
        st[k.S_PH_ANG] = cmath.phase(v) if abs(v) > 0.0 else 0.0
        self.fidelity = "phasor"
        self._segments.append((self._step, "phasor"))
        self._log(self.t_s, "FIDELITY", f"phasor, step {self._ph_m * self.dt_s * 1e3:g} ms")

    def _enter_emt(self) -> None:
        """Instantaneous network and controller states consistent with the last phasors,
        so the EMT kernel continues from the same operating point."""
        st, p = self.state, self.params
        w0 = self._w_nom()
        rot = cmath.exp(1j * w0 * self.t_s)
        shifts = [cmath.exp(-2j * math.pi * ph / 3.0) for ph in range(3)]
        v = complex(st[k.S_PH_V], st[k.S_PH_V + 1])
        i_bank_l = v / (1j * w0 * p[k.P_BANK_L]) if p[k.P_BANK_L] > 0.0 else 0j
        for index, value in ((k.S_VC, v), (k.S_IF, complex(st[k.S_PH_IF], st[k.S_PH_IF + 1])),
                             (k.S_IG, complex(st[k.S_PH_IG], st[k.S_PH_IG + 1])),
                             (k.S_IGEN, complex(st[k.S_PH_IGEN], st[k.S_PH_IGEN + 1])),
                             (k.S_IL, i_bank_l)):
            for ph in range(3):
                st[index + ph] = math.sqrt(2.0) * (value * rot * shifts[ph]).real
        for ph in range(3):
            st[k.S_PREV_IG + ph] = st[k.S_IG + ph]
            st[k.S_PREV_V + ph] = st[k.S_VC + ph]
        v_abs = abs(v)
        unit = v / v_abs if v_abs > 1e-9 else 1.0 + 0j
        st[k.S_PLL_TH] = (cmath.phase(unit) + w0 * self.t_s) % (2.0 * math.pi)
        # current loop in steady state: integrators carry R_f i, feed-forward carries v
        i_dq = complex(st[k.S_PH_IF], st[k.S_PH_IF + 1]) * unit.conjugate() * math.sqrt(2.0)
        st[k.S_ID_INT] = p[k.P_RF] * i_dq.real
        st[k.S_IQ_INT] = p[k.P_RF] * i_dq.imag
        st[k.S_VFF_D], st[k.S_VFF_Q] = math.sqrt(2.0) * v_abs, 0.0
        v_nom_frame = math.sqrt(2.0) * v        # the AI load's fundamental estimate
        st[k.S_AI_VD1] = st[k.S_AI_VD2] = v_nom_frame.real
        st[k.S_AI_VQ1] = st[k.S_AI_VQ2] = v_nom_frame.imag
        n_win = self._win.shape[1]
        for row, value in enumerate((v_abs ** 2,) * 3 + (math.sqrt(2.0) * v_abs, 0.0)):
            self._win[row, :] = value
            st[k.S_WIN_SUM + row] = value * n_win
        # the per-phase v^2 windows hold the last cycle's samples, oldest at the write
        # position: a flat RMS^2 there would be replaced sample by sample by the real
        # v^2, and the half-replaced window swings +-10 % (a spurious 1.10 pu cessation)
        pos = int(st[k.S_WIN_POS])
        ages = (n_win - np.arange(n_win)) * self.dt_s           # oldest first
        slots = (pos + np.arange(n_win)) % n_win
        for ph in range(3):
            past = math.sqrt(2.0) * (v * shifts[ph] * np.exp(1j * w0 * (self.t_s - ages))).real
            self._win[ph, slots] = past ** 2
            st[k.S_WIN_SUM + ph] = float(np.sum(past ** 2))
        st[k.S_ACC_T] = 0.0
        st[k.S_ACC:k.S_ACC + k.N_ACC] = 0.0
        st[k.S_TOPO_VALID] = 0.0
        self.fidelity = "emt"
        self._segments.append((self._step, "emt"))
        self._log(self.t_s, "FIDELITY", f"emt, step {self.dt_s * 1e6:g} us")

    def _w_nom(self) -> float:
        return 2.0 * math.pi * self.config.pcs.f_nom_hz

    # ------------------------------------------------------------------ SOC manager
    def _update_soc_manager(self) -> None:
        """Keep the (estimated) SOC within [soc_min_pct, soc_max_pct]: outside the band,
        bound the missions that rank below SOC in mission_priority and drive the battery
        back at SOC_RECOVERY_PU; released SOC_HYSTERESIS_PCT inside the band."""
        s = self._pcs_settings
        soc = self._soc_pct()
        before = self._soc_band_state
        if soc < s.soc_min_pct:
            state = "low"
        elif soc > s.soc_max_pct:
            state = "high"
        elif before == "low" and soc < s.soc_min_pct + SOC_HYSTERESIS_PCT:
            state = "low"
        elif before == "high" and soc > s.soc_max_pct - SOC_HYSTERESIS_PCT:
            state = "high"
        else:
            state = "inside"
        if state == before and state == "inside":
            return
        rated = self.config.pcs.s_rated_va
        managed = SOC_MANAGED.get(s.mission_priority, SOC_MANAGED["RESERVE"])
        p = self.params
        p[k.P_SOC_SP_LO] = p[k.P_SOC_SM_LO] = -rated
        p[k.P_SOC_SP_HI] = p[k.P_SOC_SM_HI] = rated
        recovery_w = SOC_RECOVERY_PU * rated
        if state == "low":          # no discharge; the setpoint part charges the battery
            if "setpoint" in managed:
                p[k.P_SOC_SP_HI] = -recovery_w
            if "smoothing" in managed:
                p[k.P_SOC_SM_HI] = 0.0
        elif state == "high":       # no charging; the setpoint part discharges
            if "setpoint" in managed:
                p[k.P_SOC_SP_LO] = recovery_w
            if "smoothing" in managed:
                p[k.P_SOC_SM_LO] = 0.0
        if state != before:
            self._soc_band_state = state
            self._log(self.t_s, "SOC_MANAGER",
                      {"low": f"SOC {soc:.1f} % below {s.soc_min_pct:g} %: recharging",
                       "high": f"SOC {soc:.1f} % above {s.soc_max_pct:g} %: discharging",
                       "inside": f"SOC {soc:.1f} % back inside the band"}[state])

    def _raise_numerical(self) -> None:
        code = int(self.state[k.S_ERR_CODE])
        what = GUARD_COMPONENT.get(code, "state")
        raise PlantNumericalError(
            f"numerical guard: {what} non-finite or runaway "
            f"(value {self.state[k.S_ERR_VAL]:.4g}) at plant time t = {self.state[k.S_ERR_T]:.6f} s")

    # ------------------------------------------------------------------ events
    def _drain_events(self) -> None:
        n = int(self.state[k.S_EV_N])
        for row in self._events[:n]:
            self._decode_event(float(row[0]), int(row[1]), row[2], row[3], row[4])
        self.state[k.S_EV_N] = 0

    def _log(self, t_s: float, code: str, text: str) -> None:
        self.pcs_events.append((round(t_s, 3), code, text))

    def _decode_event(self, t_s: float, code: int, a: float, b: float, c: float) -> None:
        if code == k.EV_STATE:
            name = STATE_NAMES[int(a)]
            if name == "OFF" and self._trip_reason:
                self._trip_reason = ""          # reset_alarms acknowledged the trip
            if name == "RUNNING" and "telemetry_flatline" in self._defects \
                    and self._q_frozen is None:
                self._q_frozen = self._reported_q_now()
            self._log(t_s, "STATE", name)
        elif code == k.EV_TRIP:
            text = self._trip_text(int(a), b, c)
            self._trip_reason, self._trip_reason_t_s = text, t_s
            self._log(t_s, "TRIP", text)
        elif code == k.EV_MC_ENTER:
            self._log(t_s, "MC_ENTER", f"V min {a:.2f} pu, V max {b:.2f} pu")
        elif code == k.EV_MC_EXIT:
            self._log(t_s, "MC_EXIT", f"V min {a:.2f} pu, V max {b:.2f} pu")
        elif code == k.EV_LIMIT_ENTER:
            self._log(t_s, "LIMIT_ENTER", f"|I| ref {a:.2f} pu, priority {_prio_name(b)}")
        elif code == k.EV_LIMIT_EXIT:
            self._log(t_s, "LIMIT_EXIT", f"|I| ref {a:.2f} pu")
        elif code == k.EV_RT_ENTER:
            self._log(t_s, "RT_ENTER", f"V1 {a:.2f} pu")
        elif code == k.EV_RT_EXIT:
            self._log(t_s, "RT_EXIT", f"V1 {a:.2f} pu")
        elif code == k.EV_START_FAIL:
            text = START_FAIL_TEXT.get(int(a), "start refused")
            if text not in self._alarms:
                self._alarms.append(text)
            self._log(t_s, "START_FAIL", text)
        elif code == k.EV_GFM_ENTER:
            cause = {0: "setting", 1: "grid loss", 2: "black start"}.get(int(a), "?")
            self._log(t_s, "MODE", f"grid forming ({cause})")
        elif code == k.EV_GFM_EXIT:
            self._log(t_s, "MODE", "grid following")
        elif code == k.EV_GRID_LOSS:
            self._log(t_s, "GRID_LOSS", "grid side open: islanded")
        elif code == k.EV_BRK_OPEN:
            self._log(t_s, "BREAKER", "PCC breaker open (island)")
        elif code == k.EV_BRK_CLOSE:
            self._log(t_s, "BREAKER", f"PCC breaker closed (angle {a:.1f} deg, df {b:.3f} Hz)")
        elif code == k.EV_ES_WAIT:
            self._log(t_s, "ENTER_SERVICE", f"start waits for the enter-service window "
                                            f"(V1 {a:.3f} pu, f {b:.3f} Hz, {c:.1f} s to go)")
        elif code == k.EV_ES_DONE:
            self._log(t_s, "ENTER_SERVICE", f"enter-service conditions met "
                                            f"(V1 {a:.3f} pu, f {b:.3f} Hz)")
        elif code == k.EV_SYNC_START:
            self._log(t_s, "SYNC", "synchronising to the grid side")
        elif code == k.EV_FAULT:
            text = f"AC overcurrent {a:.0f} A peak > {b:.0f} A"
            self._trip_reason, self._trip_reason_t_s = text, t_s
            self._log(t_s, "FAULT", text)
        elif code == k.EV_LOCK_CEASE:
            self._log(t_s, "PLL_LOCK", f"PLL out of its lock window (error {a:.3f}): current ceased")
        elif code == k.EV_LOCK_RESUME:
            self._log(t_s, "PLL_LOCK", "PLL locked again: current resumed")
        elif code in (k.EV_BMS_LIMIT_ENTER, k.EV_BMS_LIMIT_EXIT):
            self._log(t_s, "BMS_LIMIT", self._bms_limit_text(code == k.EV_BMS_LIMIT_ENTER, a, int(b), c))
        elif code == k.EV_P_HOLD_ENTER:
            self._log(t_s, "P_RAMP_HOLD", f"active-power ramp slowed by low PCC voltage "
                                          f"(V1 {a:.3f} pu, P {b / 1e3:.1f} kW)")
        elif code == k.EV_P_HOLD_EXIT:
            self._log(t_s, "P_RAMP_HOLD", f"active-power ramp released (V1 {a:.3f} pu, "
                                          f"P {b / 1e3:.1f} kW)")

    def _bms_limit_text(self, entered: bool, soc_pct: float, kind: int, limit_w: float) -> str:
        pcs = self.config.pcs
        what = "discharge" if kind == k.BMS_DISCHARGE else "charge"
        if not entered:
            return f"{what} limit back to rated (SOC {soc_pct:.1f} %)"
        taper = ((pcs.bms_discharge_full_soc_pct, pcs.bms_discharge_zero_soc_pct)
                 if kind == k.BMS_DISCHARGE else
                 (pcs.bms_charge_full_soc_pct, pcs.bms_charge_zero_soc_pct))
        return (f"{what} limit shrinking: SOC {soc_pct:.1f} % (taper {taper[0]:g} -> "
                f"{taper[1]:g} %), limit {limit_w / 1e3:.1f} kW")

    @staticmethod
    def _trip_text(kind: int, a: float, b: float) -> str:
        if kind == k.TRIP_LV:
            return f"LV must-trip {a:.2f} pu / {b:.2f} s"
        if kind == k.TRIP_HV:
            return f"HV must-trip {a:.2f} pu / {b:.2f} s"
        if kind == k.TRIP_LV_FIXED:
            return f"LV protection {a:.2f} pu / {b:.2f} s"
        if kind == k.TRIP_LF:
            return f"LF must-trip {a:.2f} Hz / {b:.2f} s"
        if kind == k.TRIP_HF:
            return f"HF must-trip {a:.2f} Hz / {b:.2f} s"
        if kind == k.TRIP_DC_UV:
            return f"DC link undervoltage {a:.1f} V < {b:.1f} V"
        if kind == k.TRIP_DC_OV:
            return f"DC link overvoltage {a:.1f} V > {b:.1f} V"
        if kind == k.TRIP_AC_OV:
            return f"AC instantaneous overvoltage {a:.2f} pu peak"
        if kind == k.TRIP_ROCOF:
            return f"RoCoF protection {a:+.2f} Hz/s beyond {b:.2f} Hz/s"
        if kind == k.TRIP_F_FIXED:
            return f"frequency protection {a:.2f} Hz for {b:.2f} s"
        return "trip"

    # ------------------------------------------------------------------ grid simulator
    def set_source(self, *, output_on: bool | None = None,
                   v_ln_rms_v: Sequence[float] | float | None = None,
                   freq_hz: float | None = None,
                   phase_deg: Sequence[float] | None = None,
                   rocof_hz_per_s: float | None = None,
                   freq_start_hz: float | None = None) -> None:
        """Program the grid simulator; validated as a whole, applied at the next step.

        freq_hz alone is a frequency step. With rocof_hz_per_s the frequency ramps from where
        it is to freq_hz at that rate, inside the kernel (step by step, the source angle
        integrating it, so the waveform stays continuous), then stays there; freq_start_hz
        makes it step there first and ramp from it (a list point with START and END
        frequencies). phase_deg: the
        angle of each phase (A, B, C; nominal 0, -120, +120) against the source's own
        rotation; changing it is a phase jump at the next step (a callback scheduled with
        ``schedule`` puts it at an exact plant time)."""
        volts = _three("v_ln_rms_v", v_ln_rms_v) if v_ln_rms_v is not None else None
        if volts is not None:
            for v in volts:
                _require(math.isfinite(v) and v >= 0.0,
                         f"source voltage must be >= 0 V (a sag cannot go below 0), got {v}")
        if freq_hz is not None:
            _require(isinstance(freq_hz, (int, float)) and math.isfinite(freq_hz)
                     and 1.0 <= freq_hz <= 1000.0,
                     f"source frequency must be within 1..1000 Hz, got {freq_hz}")
        if rocof_hz_per_s is not None:
            _require(freq_hz is not None,
                     "a frequency ramp needs the target freq_hz it ramps to (rocof_hz_per_s alone)")
            _require(isinstance(rocof_hz_per_s, (int, float)) and math.isfinite(rocof_hz_per_s)
                     and 0.0 < rocof_hz_per_s <= MAX_SOURCE_ROCOF_HZ_PER_S,
                     f"source RoCoF must be > 0 and at most {MAX_SOURCE_ROCOF_HZ_PER_S:g} Hz/s "
                     f"(faster is a step: leave rocof_hz_per_s out), got {rocof_hz_per_s!r} Hz/s")
        if freq_start_hz is not None:
            _require(rocof_hz_per_s is not None, "freq_start_hz is the start of a ramp: give rocof_hz_per_s")
            _require(isinstance(freq_start_hz, (int, float)) and math.isfinite(freq_start_hz)
                     and 1.0 <= freq_start_hz <= 1000.0,
                     f"ramp start frequency must be within 1..1000 Hz, got {freq_start_hz}")
        angles = _three("phase_deg", phase_deg) if phase_deg is not None else None
        if angles is not None:
            for angle in angles:
                _require(math.isfinite(angle), f"source phase angle must be finite, got {angle!r} deg")
        p = self.params
        if output_on is not None:
            p[k.P_SRC_ON] = float(bool(output_on))
        if volts is not None:
            p[k.P_SRC_VA], p[k.P_SRC_VB], p[k.P_SRC_VC] = volts
        if freq_hz is not None:
            p[k.P_SRC_F] = freq_hz
            p[k.P_SRC_ROCOF] = float(rocof_hz_per_s) if rocof_hz_per_s is not None else 0.0
            if freq_start_hz is not None:
                self.state[k.S_SRC_F] = float(freq_start_hz)
        if angles is not None:
            p[k.P_SRC_PHA], p[k.P_SRC_PHB], p[k.P_SRC_PHC] = (math.radians(x) for x in angles)

    def source_frequency_hz(self) -> float:
        """The source's present frequency (where a ramp has got to)."""
        return float(self.state[k.S_SRC_F])

    def set_source_impedance(self, r_ohm: float, l_h: float) -> None:
        """Program the grid simulator's output impedance (per phase, series R-L).

        A regenerative grid simulator can emulate a weak grid by adding a programmable
        impedance at its output; here it sits in series with the bench impedance
        (``Plant.impedance``, from SCR and X/R), so the PCS sees the sum
        (``source_impedance()``). Applied at the next step (the network is re-discretised);
        (0, 0) removes it. ValueError on negative or non-finite values.
        """
        for name, val in (("r_ohm", r_ohm), ("l_h", l_h)):
            _require(isinstance(val, (int, float)) and math.isfinite(val) and val >= 0.0,
                     f"source impedance {name} must be finite and >= 0, got {val!r}")
        self._source_r_ohm = float(r_ohm)
        self._source_l_h = float(l_h)
        self._write_source_impedance()
        self._bump_topology()
        self._log(self.t_s, "SOURCE_Z", f"grid simulator output impedance R {r_ohm:.4g} ohm, "
                                        f"L {l_h:.4g} H")

    def source_impedance(self) -> BenchImpedance:
        """Total impedance behind the grid simulator's EMF: bench + programmed output."""
        return BenchImpedance(self.impedance.r_ohm + self._source_r_ohm,
                              self.impedance.l_h + self._source_l_h, self.impedance.z_base_ohm)

    def _write_source_impedance(self) -> None:
        p = self.params
        z = self.source_impedance()
        p[k.P_RG] = z.r_ohm
        p[k.P_LG] = z.l_h
        # runaway = far beyond any physical current: for the grid branch, 4x the
        # prospective bolted-fault peak (DC offset included) or 20 pu
        w_nom = 2.0 * math.pi * self.config.pcs.f_nom_hz
        grid_v_ln = self.config.grid.v_ll_nom_v / math.sqrt(3.0)
        i_fault_pk = math.sqrt(2.0) * grid_v_ln / math.hypot(z.r_ohm, w_nom * z.l_h)
        p[k.P_GUARD_IG_PK] = max(20.0 * p[k.P_IPK_RATED], 4.0 * i_fault_pk)

    def source_measurements(self) -> dict:
        m = self._avg
        return {"v_ln_rms_v": [math.sqrt(m(k.A_E2 + i)) for i in range(3)],
                "i_rms_a": [math.sqrt(m(k.A_IG2 + i)) for i in range(3)],
                "p_w": m(k.A_P_SRC), "q_var": m(k.A_Q_SRC),
                "freq_hz": m(k.A_F_SRC) if self._meas[k.M_VALID] else self.source_frequency_hz()}

    # ------------------------------------------------------------------ faults (bench helper)
    def apply_fault(self, kind: str, r_ohm: float = 0.0) -> None:
        """Fault at the PCC, replacing any fault applied before: to ground "3ph", "ag", "bg",
        "cg", two-phase to ground "abg", "bcg", "cag" (each faulted phase through r_ohm to
        ground), or phase to phase "ab", "bc", "ca" (r_ohm between the two phases, which
        couples them: the network is then solved as one three-phase system)."""
        _require(kind in FAULT_KINDS, f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        _require(self.fidelity == "emt" or kind == "3ph",
                 f"phasor mode is balanced: a {kind!r} fault needs EMT (set_fidelity('emt'))")
        _require(isinstance(r_ohm, (int, float)) and math.isfinite(r_ohm) and r_ohm >= 0.0,
                 f"fault resistance must be >= 0, got {r_ohm}")
        g = 1.0 / max(r_ohm, MIN_FAULT_R_OHM)
        if kind in PHASE_TO_PHASE_FAULTS:
            self._fault_g = [0.0, 0.0, 0.0]
            self._fault_gpp = [g if i == PHASE_TO_PHASE_FAULTS[kind] else 0.0 for i in range(3)]
        else:
            self._fault_g = [g if ph in FAULT_KINDS[kind] else 0.0 for ph in range(3)]
            self._fault_gpp = [0.0, 0.0, 0.0]
        self._write_shunts()

    def clear_fault(self) -> None:
        self._fault_g = [0.0, 0.0, 0.0]
        self._fault_gpp = [0.0, 0.0, 0.0]
        self._write_shunts()

    def _write_shunts(self) -> None:
        self.params[k.P_G_A], self.params[k.P_G_B], self.params[k.P_G_C] = self._fault_g
        self.params[k.P_G_AB], self.params[k.P_G_BC], self.params[k.P_G_CA] = self._fault_gpp

    # ------------------------------------------------------------------ DC source
    def set_dc_source(self, *, output_on: bool | None = None, voltage_v: float | None = None,
                      current_limit_a: float | None = None,
                      current_limit_neg_a: float | None = None,
                      output_resistance_ohm: float | None = None,
                      mode: str | None = None) -> None:
        """Program the DC source; validated as a whole, applied at the next step.

        ``mode`` "voltage": the source holds ``voltage_v`` behind its own output resistance
        (DcSourceConfig.r_internal_ohm) plus a programmed ``output_resistance_ohm`` (a
        supply's output-resistance setting). "battery": it emulates the battery of
        set_dc_battery(): OCV(SOC) behind the battery's internal resistance, SOC by coulomb
        count; ``voltage_v`` is then unused. The current limits apply in both modes.
        Entering battery mode re-synchronises the PCS's SOC estimate with the battery's
        (its BMS reads the battery as it is connected)."""
        for name, val in (("voltage_v", voltage_v), ("current_limit_a", current_limit_a),
                          ("current_limit_neg_a", current_limit_neg_a),
                          ("output_resistance_ohm", output_resistance_ohm)):
            if val is not None:
                _require(math.isfinite(val) and val >= 0.0, f"DC source {name} must be >= 0, got {val}")
        _require(mode is None or mode in DC_MODES, f"DC source mode must be one of {DC_MODES}, got {mode!r}")
        p = self.params
        if output_on is not None:
            p[k.P_DC_ON] = float(bool(output_on))
        if voltage_v is not None:
            p[k.P_DC_V] = voltage_v
        if current_limit_a is not None:
            p[k.P_DC_ILIM_SRC] = current_limit_a
        if current_limit_neg_a is not None:
            p[k.P_DC_ILIM_SINK] = current_limit_neg_a
        if output_resistance_ohm is not None:
            self._dc_output_r_ohm = float(output_resistance_ohm)
            p[k.P_DC_R] = self.config.dc_source.r_internal_ohm + self._dc_output_r_ohm
        if mode is not None and mode != self.dc_mode:
            if mode == "battery":
                self.state[k.S_BAT_EST_PCT] = self.state[k.S_BAT_SOC_PCT]
            p[k.P_DC_MODE] = k.DC_MODE_BATTERY if mode == "battery" else k.DC_MODE_VOLTAGE
            self._init_bms_limits()
            self._log(self.t_s, "DC_SOURCE", f"{mode} mode" + (
                f", battery SOC {self._emulated_soc_pct():.1f} %" if mode == "battery" else ""))

    @property
    def dc_mode(self) -> str:
        return "battery" if self.params[k.P_DC_MODE] > 0.5 else "voltage"

    def set_dc_battery(self, *, capacity_ah: float | None = None, soc_pct: float | None = None,
                       r_internal_ohm: float | None = None,
                       ocv_curve: Sequence[tuple[float, float]] | None = None) -> None:
        """Program the battery that battery mode emulates (any subset; validated as a whole,
        nothing applied if anything is refused). ``ocv_curve``: (soc_pct, v) points, SOC
        increasing within 0..100 and voltage monotonic. Setting ``soc_pct`` sets the
        battery's charge and re-synchronises the PCS's estimate with it."""
        b = self._battery
        battery = _battery_checked(BatteryConfig(
            b.capacity_ah if capacity_ah is None else capacity_ah,
            b.soc_pct if soc_pct is None else soc_pct,
            b.r_internal_ohm if r_internal_ohm is None else r_internal_ohm,
            b.ocv_curve if ocv_curve is None else ocv_curve))
        self._battery = battery
        self._write_battery()
        if soc_pct is not None:
            self.state[k.S_BAT_SOC_PCT] = self.state[k.S_BAT_EST_PCT] = battery.soc_pct
            self._init_bms_limits()
        self._log(self.t_s, "DC_BATTERY",
                  f"{battery.capacity_ah:g} Ah, R {battery.r_internal_ohm:g} ohm, OCV "
                  f"{battery.ocv_curve[0][1]:g}..{battery.ocv_curve[-1][1]:g} V, SOC "
                  f"{self._emulated_soc_pct():.1f} %")

    def dc_battery(self) -> BatteryConfig:
        """The emulated battery as programmed, with its present SOC."""
        b = self._battery
        return BatteryConfig(b.capacity_ah, self._emulated_soc_pct(), b.r_internal_ohm, b.ocv_curve)

    def _emulated_soc_pct(self) -> float:
        """The emulated battery's SOC (it keeps its charge while the source is in voltage mode)."""
        return float(min(max(self.state[k.S_BAT_SOC_PCT], 0.0), 100.0))

    def _write_battery(self) -> None:
        p, b = self.params, self._battery
        p[k.P_BAT_R] = b.r_internal_ohm
        p[k.P_BAT_CAP_C] = b.capacity_ah * 3600.0
        p[k.P_BAT_N_OCV] = len(b.ocv_curve)
        for i, (soc, v) in enumerate(b.ocv_curve):
            p[k.P_BAT_OCV_SOC + i], p[k.P_BAT_OCV_V + i] = soc, v

    def _init_bms_limits(self) -> None:
        """The PCS's BMS limits for its present SOC estimate (also between steps, so the
        first step after a change already obeys them); taper entries go to the event log."""
        k.update_bms_limits(self.state, self.params, self._events, self.t_s)

    def dc_source_measurements(self) -> dict:
        """The DC source at its terminals (cycle averages): voltage_v, current_a (> 0
        delivered: the PCS discharges), power_w; mode ("voltage" | "battery") and, in
        battery mode, the emulated battery's soc_pct and ocv_v (None in voltage mode)."""
        m = self._avg
        battery = self.dc_mode == "battery"
        soc = self._emulated_soc_pct() if battery else None
        return {"voltage_v": m(k.A_VDC) if self._meas[k.M_VALID] else float(self.state[k.S_VDC]),
                "current_a": m(k.A_IDC_SRC), "power_w": m(k.A_VDC) * m(k.A_IDC_SRC),
                "mode": self.dc_mode, "soc_pct": soc,
                "ocv_v": float(k.battery_ocv_v(self.params, self.state[k.S_BAT_SOC_PCT])) if battery else None}

    # ------------------------------------------------------------------ loads on the PCC bus
    def set_load_bank(self, p_w: float = 0.0, q_inductive_var: float = 0.0,
                      q_capacitive_var: float = 0.0, *, part: str = "bank") -> None:
        """RLC load bank as constant-impedance branches sized at nominal voltage (three-phase
        totals); switched in at the next step, as the bank's contactors do. Several such loads
        may hang on the bus (an AC load in constant-resistance mode, a passive RLC bank): each
        sets its own ``part`` and the bus draws their parallel sum."""
        for name, val in (("p_w", p_w), ("q_inductive_var", q_inductive_var),
                          ("q_capacitive_var", q_capacitive_var)):
            _require(math.isfinite(val) and val >= 0.0, f"load bank {name} must be >= 0, got {val}")
        self._bank_parts[part] = (p_w, q_inductive_var, q_capacitive_var)
        # parallel constant impedances at nominal voltage: their powers add
        p_w, q_inductive_var, q_capacitive_var = (sum(v) for v in zip(*self._bank_parts.values()))
        v_ln = self.config.grid.v_ll_nom_v / math.sqrt(3.0)
        w_nom = 2.0 * math.pi * self.config.grid.f_nom_hz
        p = self.params
        p[k.P_BANK_G] = p_w / (3.0 * v_ln ** 2)
        p[k.P_BANK_L] = 3.0 * v_ln ** 2 / (w_nom * q_inductive_var) if q_inductive_var > 0 else 0.0
        p[k.P_BANK_C] = q_capacitive_var / (3.0 * v_ln ** 2 * w_nom)
        self._bump_topology()
        self._log(self.t_s, "LOAD_BANK", f"P {p_w:.0f} W, QL {q_inductive_var:.0f} var, "
                                         f"QC {q_capacitive_var:.0f} var")

    def set_genset(self, running: bool, breaker_closed: bool) -> None:
        """Genset engine (running at speed and voltage, or stopped) and its breaker onto
        the PCC bus; applied at the next step. Closing onto a live bus goes through the
        set's auto-synchroniser (modelled as ideal: angle, speed and EMF matched to the
        bus at the closing instant). A stopped set cannot be connected (it would motor)."""
        _require(self.config.genset is not None,
                 "no genset on this bench (PlantConfig.genset is None)")
        _require(isinstance(running, bool) and isinstance(breaker_closed, bool),
                 "set_genset needs booleans running and breaker_closed")
        _require(running or not breaker_closed,
                 "the genset breaker can close only while the genset runs")
        p, st = self.params, self.state
        gen = self.config.genset.resolved()
        w_nom = 2.0 * math.pi * gen.f_nom_hz
        was_running = p[k.P_GEN_ON] > 0.5
        was_closed = p[k.P_GEN_BRK] > 0.5
        if running and not was_running:      # started, governor and AVR at their references
            st[k.S_GEN_W] = w_nom
            st[k.S_GEN_TH] = 0.0
            st[k.S_GEN_E] = st[k.S_GEN_EFD_INT] = st[k.S_GEN_VM] = gen.v_ref_pu
            st[k.S_GEN_PM] = gen.p_ref_w
            self._log(self.t_s, "GENSET", "genset running")
        if breaker_closed and not was_closed:
            if st[k.S_V1_PU] > 0.1:           # live bus: synchronise first
                st[k.S_GEN_TH] = st[k.S_PLL_TH]
                st[k.S_GEN_W] = st[k.S_PLL_W]
                e_pu = st[k.S_V1_PU] * p[k.P_VPK_NOM] / p[k.P_GEN_VPK]
                st[k.S_GEN_E] = st[k.S_GEN_VM] = e_pu
                st[k.S_GEN_EFD_INT] = e_pu
            self._log(self.t_s, "GENSET", "genset breaker closed")
        if not breaker_closed and was_closed:
            self._log(self.t_s, "GENSET", "genset breaker open")
        if not running and was_running:
            st[k.S_GEN_E] = 0.0
            self._log(self.t_s, "GENSET", "genset stopped")
        p[k.P_GEN_ON] = float(running)
        p[k.P_GEN_BRK] = float(breaker_closed)
        self._bump_topology()

    def genset_measurements(self) -> dict:
        """The genset at its breaker (cycle averages): p_w, q_var (delivered; Q > 0 supplies
        reactive power), i_rms_a[3], freq_hz (rotor, electrical), plus the instantaneous
        speed_hz, e_pu (EMF), p_mech_w, running, breaker_closed."""
        m = self._avg
        st, p = self.state, self.params
        return {"p_w": m(k.A_P_GEN), "q_var": m(k.A_Q_GEN),
                "i_rms_a": [math.sqrt(m(k.A_IGEN2 + i)) for i in range(3)],
                "freq_hz": m(k.A_F_GEN) if self._meas[k.M_VALID] else st[k.S_GEN_W] / (2 * math.pi),
                "speed_hz": float(st[k.S_GEN_W] / (2 * math.pi)),
                "e_pu": float(st[k.S_GEN_E]), "p_mech_w": float(st[k.S_GEN_PM]),
                "running": bool(p[k.P_GEN_ON] > 0.5), "breaker_closed": bool(p[k.P_GEN_BRK] > 0.5)}

    def set_ai_load(self, profile: AiLoadProfile | None) -> None:
        """Start the AI-load emulator on a profile (its time 0 = now); None stops it."""
        _require(profile is None or isinstance(profile, AiLoadProfile),
                 f"set_ai_load needs an AiLoadProfile or None, got {type(profile).__name__}")
        self._ai_profile = profile
        self._ai_t0_s = self.t_s

    def _ai_commands(self, n_steps: int) -> np.ndarray:
        if len(self._ai_buf) < n_steps:
            self._ai_buf = np.zeros(n_steps)
        buf = self._ai_buf
        if self._ai_profile is None:
            buf[:n_steps] = 0.0
            return buf
        t = (self._step + np.arange(n_steps)) * self.dt_s - self._ai_t0_s
        values = np.asarray(self._ai_profile.power_w(t), dtype=float)
        if not np.all(np.isfinite(values)):
            raise PlantNumericalError(f"AI-load profile returned a non-finite power "
                                      f"at plant time t = {self.t_s:.6f} s")
        buf[:n_steps] = values
        return buf

    def _bump_topology(self) -> None:
        self.params[k.P_TOPO_GEN] += 1.0

    def load_measurements(self) -> dict:
        """Bank + AI load at the PCC (cycle averages): p_w, q_var (inductive > 0), i_rms_a[3],
        ai_p_w (AI-load share)."""
        m = self._avg
        return {"p_w": m(k.A_P_LOAD), "q_var": m(k.A_Q_LOAD),
                "i_rms_a": [math.sqrt(m(k.A_ILOAD2 + i)) for i in range(3)],
                "ai_p_w": m(k.A_P_AI)}

    def pcc_grid_measurements(self) -> dict:
        """What the grid delivers into the PCC bus (after the bench impedance): p_w, q_var."""
        return {"p_w": self._avg(k.A_P_GRID), "q_var": self._avg(k.A_Q_GRID)}

    # ------------------------------------------------------------------ PCS
    def pcs_command(self, command: str) -> None:
        """"start" | "stop" | "standby" | "reset_alarms"; acted on at the next step.
        "standby" blocks the gates and opens the breaker like "stop"."""
        known = (*COMMAND_CODES, *PYTHON_COMMANDS)
        _require(command in known, f"unknown PCS command {command!r} (known: {', '.join(known)})")
        if command == "dr_execute":
            self._dr_execute()
            return
        if command == "reset_alarms":
            self._alarms.clear()
        # Commands queue and are acted on one per control step, in order, as a PCS
        # controller does: "reset_alarms" then "start" in the same instant both count.
        self._pending_commands.append(COMMAND_CODES[command])
        self._log(self.t_s, "CMD", command)

    def _dr_execute(self) -> None:
        """Demand-response dispatch: ramp linearly from the present output to dr_target_w so
        as to arrive at DR_FINISH_FRACTION x dr_time_s (margin for the measurement window)."""
        s = self._pcs_settings
        rated = self.config.pcs.s_rated_va
        _require(math.isfinite(s.dr_target_w) and abs(s.dr_target_w) <= rated,
                 f"dr_target_w {s.dr_target_w} W beyond +-{rated:g} W")
        _require(math.isfinite(s.dr_time_s) and 0.1 <= s.dr_time_s <= 600.0,
                 f"dr_time_s must be within 0.1..600 s, got {s.dr_time_s}")
        present_w = float(self.state[k.S_P_RAMP])
        rate_w_per_s = max(abs(s.dr_target_w - present_w) / (DR_FINISH_FRACTION * s.dr_time_s),
                           1e-3 * rated)
        s.p_set_w = float(s.dr_target_w)
        self._dispatch = (s.p_set_w, rate_w_per_s)
        self._settings_snapshot = None
        self._log(self.t_s, "CMD", f"dr_execute {s.dr_target_w:.0f} W in {s.dr_time_s:g} s")

    def pcs_telemetry(self) -> dict:
        """The PCS's own measurement as it stands now: the last completed one-cycle window
        (t_s at its end) and the present status. What its measurement task holds, before
        the telemetry refresh; a plant-level probe. What a client reads over Modbus is the
        refreshed image, ``pcs_telemetry_image()``. The telemetry defects act on both."""
        meas, state = self._telemetry_source()
        m = lambda index: float(meas[k.M_AVG + index])   # noqa: E731 - local shorthand
        status = {"mode": state[k.S_MODE], "soc_pct": self._soc_pct(state),
                  "p_discharge_max_w": state[k.S_BMS_DIS_W], "p_charge_max_w": state[k.S_BMS_CHA_W],
                  "temperature_c": state[k.S_TEMP_C], "current_limited": state[k.S_LIM],
                  "ride_through_active": state[k.S_RT], "grid_forming": state[k.S_GFM],
                  "pcc_breaker_closed": state[k.S_PCC_CLOSED]}
        rms = lambda index: math.sqrt(max(m(index), 0.0))   # noqa: E731 - mean squares here
        return self._report(m, rms, float(meas[k.M_T_END]), meas[k.M_VALID] > 0.5, status,
                            self._trip_reason)

    def pcs_telemetry_image(self) -> dict:
        """What the PCS reports (its Modbus registers): the telemetry image as of its last
        refresh, every PcsConfig.telemetry_period_s, stamped t_s at the refresh instant;
        values are its one-cycle means through its telemetry_filter_s filter, status
        latched at the same instant (kernel_telemetry.py). A reader polling faster sees the
        same image again. A trip logged after the refresh shows in the next one."""
        meas, _ = self._telemetry_source(image=True)
        m = lambda index: float(meas[k.M_TEL_AVG + index])   # noqa: E731 - local shorthand
        t_s = float(meas[k.M_TEL_T])
        status = {"mode": meas[k.M_TEL_MODE], "soc_pct": meas[k.M_TEL_SOC_PCT],
                  "p_discharge_max_w": meas[k.M_TEL_BMS_DIS_W], "p_charge_max_w": meas[k.M_TEL_BMS_CHA_W],
                  "temperature_c": meas[k.M_TEL_TEMP_C], "current_limited": meas[k.M_TEL_LIM],
                  "ride_through_active": meas[k.M_TEL_RT], "grid_forming": meas[k.M_TEL_GFM],
                  "pcc_breaker_closed": meas[k.M_TEL_PCC_CLOSED]}
        trip_reason = self._trip_reason if self._trip_reason_t_s <= t_s + CALLBACK_EPS_S else ""
        # the image holds RMS values for voltages and currents (kernel_telemetry.is_mean_square)
        return self._report(m, m, t_s, meas[k.M_TEL_VALID] > 0.5, status, trip_reason)

    def _report(self, mean: Callable[[int], float], rms: Callable[[int], float], t_s: float,
                valid: bool, status: dict, trip_reason: str) -> dict:
        """The telemetry dict from accumulator-channel values (``mean``; ``rms`` for the
        voltage and current channels) and status values; the telemetry defects applied."""
        p_w = mean(k.A_P_PCS)
        if "telemetry_scale_error" in self._defects:
            p_w *= 1.03
        q_var = self._q_frozen if self._q_frozen is not None else mean(k.A_Q_PCS)
        s_va = math.hypot(p_w, q_var)
        alarms = list(self._alarms)
        if trip_reason:
            alarms.insert(0, trip_reason)
        return {
            "t_s": t_s,
            "state": STATE_NAMES[int(status["mode"])],
            "v_ln_rms_v": [rms(k.A_V2 + i) for i in range(3)],
            "v_ll_rms_v": sum(rms(k.A_VLL2 + i) for i in range(3)) / 3.0,
            "i_rms_a": [rms(k.A_IF2 + i) for i in range(3)],
            "p_w": p_w,
            "q_var": q_var,
            "s_va": s_va,
            "pf": p_w / s_va if s_va > 1e-6 * self.config.pcs.s_rated_va else 1.0,
            "freq_hz": mean(k.A_F_PLL) if valid else self.config.pcs.f_nom_hz,
            "vdc_v": mean(k.A_VDC),
            "idc_a": mean(k.A_IDC_PCS),
            "soc_pct": float(status["soc_pct"]),
            # the BMS limits (they shrink near the SOC ends): what the PCS may discharge / charge
            "p_discharge_max_w": float(status["p_discharge_max_w"]),
            "p_charge_max_w": float(status["p_charge_max_w"]),
            "temperature_c": float(status["temperature_c"]),
            "current_limited": bool(status["current_limited"] > 0.5),
            "ride_through_active": bool(status["ride_through_active"] > 0.5),
            "grid_forming": bool(status["grid_forming"] > 0.5),
            "pcc_breaker_closed": bool(status["pcc_breaker_closed"] > 0.5),
            "trip_reason": trip_reason,
            "alarms": alarms,
        }

    def _telemetry_source(self, image: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The (meas, state) the PCS reports from (meas holds its telemetry image too):
        live, or with telemetry_timestamp_lag the newest entry of its stale buffer that is
        at least TELEMETRY_LAG_S old (``image``: whose telemetry image is, by its stamp)."""
        if self._stale is None:
            return self._meas, self.state
        now = self.t_s
        chosen = None
        for t_s, meas, state in self._stale:
            age_from_s = float(meas[k.M_TEL_T]) if image else t_s
            if age_from_s <= now - TELEMETRY_LAG_S + CALLBACK_EPS_S:
                chosen = (meas, state)
            elif not image:
                break
        if chosen is None:                    # just powered up: the buffer holds nothing yet
            return self._stale_initial
        return chosen

    def _record_stale(self) -> None:
        """telemetry_timestamp_lag: keep copies of the telemetry source, oldest first."""
        stale = self._stale
        stale.append((self.t_s, self._meas.copy(), self.state.copy()))
        while len(stale) > 2 and stale[1][0] <= self.t_s - TELEMETRY_LAG_S:
            stale.popleft()

    def _avg(self, index: int) -> float:
        return float(self._meas[k.M_AVG + index])

    def _reported_q_now(self) -> float:
        return self._avg(k.A_Q_PCS)

    def _soc_pct(self, state: np.ndarray | None = None) -> float:
        """The PCS's SOC estimate (its BMS's count; what it reports and limits by)."""
        state = self.state if state is None else state
        return float(k.pcs_soc_estimate_pct(state, self.params))

    def battery_soc_pct(self) -> float:
        """The battery's true SOC: in battery mode the emulated battery's coulomb count; in
        voltage mode the count of the DC energy against PcsConfig.battery_capacity_wh. The
        PCS reports its own estimate (telemetry soc_pct), which the soc_drift defect corrupts."""
        if self.dc_mode == "battery":
            return self._emulated_soc_pct()
        pcs = self.config.pcs
        used_pct = self.state[k.S_EDC_J] / (pcs.battery_capacity_wh * 3600.0) * 100.0
        return float(min(max(pcs.soc_initial_pct - used_pct, 0.0), 100.0))

    # ------------------------------------------------------------------ scope ring
    def read_ring(self, names: Sequence[str], t_start_s: float, n_samples: int) -> np.ndarray:
        """(len(names), n_samples) float64 of samples at t_start_s + i*dt_s. Samples from
        phasor-mode stretches are synthesised from the phasors (balanced three-phase)."""
        rows = []
        for name in names:
            _require(name in self._signal_row,
                     f"unknown ring signal {name!r} (known: {', '.join(self.ring_signals)})")
            rows.append(self._signal_row[name])
        _require(n_samples >= 0, f"n_samples must be >= 0, got {n_samples}")
        first = int(round(t_start_s * self.sample_rate_hz))
        last = first + n_samples - 1
        oldest = max(0, self._step - self._n_ring + 1)
        if first < oldest or last > self._step:
            raise ValueError(
                f"ring samples {first * self.dt_s:.6f}..{last * self.dt_s:.6f} s not in the buffer "
                f"(holds {oldest * self.dt_s:.6f}..{self.t_s:.6f} s)")
        steps = np.arange(first, first + n_samples)
        out = self._ring[np.ix_(steps % self._n_ring, rows)].T.astype(np.float64)
        in_phasor = self._in_phasor(steps)
        if in_phasor.any():
            t = steps[in_phasor] * self.dt_s
            for i, name in enumerate(names):
                out[i, in_phasor] = self._synthesise(name, t)
        return out

    def sample_ring(self, names: Sequence[str], t_s: np.ndarray) -> np.ndarray:
        """(len(names), len(t_s)) ring signals at arbitrary times inside the buffer: linear
        interpolation of the EMT samples, or synthesis straight from the phasors in phasor
        stretches. A reader that wants few samples (the PCS's recorder at 1920 Sa/s) need not
        have hours of phasor mode synthesised at the ring's 20 kSa/s first."""
        t_s = np.asarray(t_s, dtype=np.float64)
        if t_s.size == 0:
            return np.zeros((len(names), 0))
        steps = np.rint(t_s * self.sample_rate_hz).astype(np.int64)
        in_phasor = self._in_phasor(steps)
        out = np.empty((len(names), t_s.size))
        if (~in_phasor).any():
            t_emt = t_s[~in_phasor]
            first = int(math.floor(t_emt.min() * self.sample_rate_hz + 1e-9))
            last = int(math.ceil(t_emt.max() * self.sample_rate_hz - 1e-9))
            raw = self.read_ring(names, first * self.dt_s, last - first + 1)
            t_raw = np.arange(first, last + 1) * self.dt_s
            for i in range(len(names)):
                out[i, ~in_phasor] = np.interp(t_emt, t_raw, raw[i])
        if in_phasor.any():
            for i, name in enumerate(names):
                out[i, in_phasor] = self._synthesise(name, t_s[in_phasor])
        return out

    def _in_phasor(self, steps: np.ndarray) -> np.ndarray:
        """Which ring samples come from phasor-mode stretches."""
        starts = np.array([start for start, _ in self._segments])
        is_phasor = np.array([mode == "phasor" for _, mode in self._segments])
        # sample s is the end of kernel step s-1 -> s: it belongs to the segment begun before s
        seg = np.searchsorted(starts, steps, side="left") - 1
        return (seg >= 0) & is_phasor[np.maximum(seg, 0)]

    def _synthesise(self, name: str, t: np.ndarray) -> np.ndarray:
        """Instantaneous samples of a ring signal from the phasor ring (linear
        interpolation of the phasors between steps)."""
        n_rows = self._ph_ring.shape[0]
        count = min(self._ph_rows, n_rows)
        if count == 0:
            return np.zeros_like(t)
        order = (self._ph_rows - count + np.arange(count)) % n_rows
        rows = self._ph_ring[order]
        col, phase = _PHASOR_SIGNAL[name]
        if phase < 0:
            return np.interp(t, rows[:, kp.PH_T], rows[:, col])
        x = np.interp(t, rows[:, kp.PH_T], rows[:, col]) \
            + 1j * np.interp(t, rows[:, kp.PH_T], rows[:, col + 1])
        angle = self._w_nom() * t - 2.0 * math.pi * phase / 3.0
        return math.sqrt(2.0) * (x * np.exp(1j * angle)).real


def _volt_var_points(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = [(float(v), float(q)) for v, q in points]
    _require(2 <= len(pts) <= k.MAX_TRIP_POINTS,
             f"vv_points: 2..{k.MAX_TRIP_POINTS} points, got {len(pts)}")
    for v, q in pts:
        _require(math.isfinite(v) and math.isfinite(q) and v > 0.0 and -1.0 <= q <= 1.0,
                 f"vv_points: point ({v}, {q}) needs v_pu > 0 and q_pu within -1..1")
    for (v0, _), (v1, _) in zip(pts, pts[1:]):
        _require(v1 > v0, f"vv_points: voltages must increase, got {v0} then {v1}")
    return pts


def _three(name: str, values: Sequence[float] | float) -> tuple[float, float, float]:
    if isinstance(values, (int, float)):
        return (float(values),) * 3
    vals = tuple(float(v) for v in values)
    _require(len(vals) == 3, f"{name} needs 3 values (phases A, B, C), got {len(vals)}")
    return vals  # type: ignore[return-value]


def _prio_name(code: float) -> str:
    return {k.PRIO_P: "P", k.PRIO_Q: "Q", k.PRIO_MIXED: "mixed"}.get(int(code), "?")
