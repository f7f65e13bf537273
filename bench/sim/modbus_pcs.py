"""The simulated PCS's Modbus face: SunSpec models, the vendor block and disturbance records
on Modbus TCP and Modbus RTU (pymodbus 3.16).

- `start_pcs_server(plant, ...)`: Modbus TCP; `start_pcs_rtu_server(plant, ...)`: Modbus RTU
  on a pseudo-terminal pair (clients open `.port_path` with pyserial). Both present the same
  image: the SunSpec models below, the vendor block 41000-41049 (`vendor_block.py`, per
  docs/vendor_points_vpcs.md) and FC20 file records serving the plant's disturbance
  recorder (`recorder.py`; one recorder per plant, shared by all its ports).

Register map (holding registers; FC3 and FC4 read the same image), base 40000:

    40000  "SunS" marker (2 registers)
    40002  model 1   Common                 68 registers (ID, L=66, ...)
    40070  model 701 DER AC measurement    155
    40225  model 702 DER capacity           52
    40277  model 703 enter service          19
    40296  model 704 DER AC controls        67
    40363  model 705 volt-var               33  (NCrv=1, NPt=4)
    40396  model 707 LV trip curves         49  (NCrvSet=1, NPt=4)
    40445  model 708 HV trip curves         49  (NCrvSet=1, NPt=4)
    40494  model 709 LF trip curves         61  (NCrvSet=1, NPt=4)
    40555  model 710 HF trip curves         61  (NCrvSet=1, NPt=4)
    40616  model 711 frequency droop        24  (NCtl=1)
    40640  model 713 storage capacity        9
    40649  model 714 DC measurement         45  (NPrt=1)
    40694  model 715 DER controls            9
    40703  model 802 battery base           64
    40767  end marker 0xFFFF, L=0            2
    41000  vendor block (listed points only; the gaps answer exception 02)

(`layout_summary()` computes this from the JSON definitions; the numbers above are what it
gives for pysunspec2 1.3.) Models 703, 705, 709-711, 714 and 802 and their mapping to the
plant are in `sunspec_extra_models.py`.

How it works: pymodbus keeps the register list; our `action` hook runs before every
access. On reads it rewrites the live points of the models the request touches from
`plant.pcs_telemetry_image()` (the PCS's telemetry image, refreshed at its own period:
polling faster reads the same values again) / `plant.pcs_settings`; on writes it decodes
whole points from the request, validates all of them (a request is applied entirely or not
at all), applies them to the plant, and lets pymodbus store the raw registers.

Access rules, as a real device answers them:
- Only the points this PCS implements for writing are writable (listed per model in
  `_WRITABLE`); every other register, including points that SunSpec marks RW but this PCS
  does not implement, is read-only: pymodbus answers ILLEGAL_DATA_ADDRESS (0x02).
- A write must cover whole points (no half of an int32): else ILLEGAL_DATA_ADDRESS.
- Out-of-range values and enumeration values the PCS does not support: ILLEGAL_DATA_VALUE.
- Function codes other than 3, 4, 6, 16 and 20 (read file record): ILLEGAL_FUNCTION.
- Addresses outside 40000..40768 and the vendor block's points: ILLEGAL_DATA_ADDRESS.
- A vendor command the plant cannot carry out (yet): SERVER_DEVICE_FAILURE (0x04), logged.
- Other Modbus unit ids: exception 0x0B (gateway target device failed to respond), the
  answer a Modbus TCP gateway gives for a unit that is not there. (Left to itself, pymodbus's
  SimDevice path raises a KeyError for an unknown id, logs a traceback and answers
  DEVICE_FAILURE 0x04 - misleading, so a catch-all device answers 0x0B instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import struct
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.file_message import (
    FileRecord,
    ReadFileRecordRequest,
    ReadFileRecordResponse,
    WriteFileRecordRequest,
)
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bench.sim import sunspec_extra_models as extra
from bench.sim.recorder import DisturbanceRecorder, recorder_for
from bench.sim.sunspec_extra_models import PCS_ON_STATES as _ON_STATES
from bench.sim.sunspec_extra_models import SettingsBridge
from bench.sim.sunspec_extra_models import enum_value as _enum_value
from bench.sim.sunspec_extra_models import require as _require
from bench.sim.sunspec_models import (
    ModelLayout,
    PointLayout,
    build_model_layout,
    decode_point,
    encode_point,
    not_implemented_registers,
)
from bench.sim.sunspec_models import fit_scale_factor as _scale_factor
from bench.sim.sunspec_models import to_raw as _raw
from bench.sim.vendor_block import VendorBlock, WriteRejected

log = logging.getLogger(__name__)

SUNSPEC_BASE_ADDR = 40000
SUNS_MARKER = (0x5375, 0x6E53)          # "SunS"
END_MODEL_ID = 0xFFFF
CURVE_POINTS = 4                         # NPt of 707/708: room for the 1547 Cat III curves
CURVE_SETS = 1                           # NCrvSet: the one stored curve is the active curve
# In model-id order, as SunSpec lists the DER models (DER 70x, then the 80x storage models);
# the models of sunspec_extra_models take their group counts from there.
MODEL_PLAN: tuple[tuple[int, dict[str, int]], ...] = (
    (1, {}), (701, {}), (702, {}), (703, extra.MODEL_PLAN[703]), (704, {}),
    (705, extra.MODEL_PLAN[705]),
    (707, {"NCrvSet": CURVE_SETS, "NPt": CURVE_POINTS}),
    (708, {"NCrvSet": CURVE_SETS, "NPt": CURVE_POINTS}),
    (709, extra.MODEL_PLAN[709]), (710, extra.MODEL_PLAN[710]), (711, extra.MODEL_PLAN[711]),
    (713, {}), (714, extra.MODEL_PLAN[714]), (715, {}), (802, extra.MODEL_PLAN[802]),
)
SUPPORTED_FUNCTION_CODES = frozenset({3, 4, 6, 16})
TRIP_SETTING_DRIFT = "trip_setting_drift"   # seeded defect applied in _adopt_curves
TRIP_SETTING_DRIFT_S = 0.5
# Written-by-the-client points that reads never overwrite, with their value at power-up.
_INITIAL_VALUES: dict[int, dict[str, int]] = {715: {"ControllerHb": 0}, **extra.INITIAL_VALUES}

# Headroom of measured quantities over their rating when choosing scale factors: the PCS
# limits current to ~1.1 pu so 1.3 pu covers power and current with the finest resolution
# (T1 needs 0.5 % of reading at 10 % load); the grid simulator can push voltage far higher.
_POWER_HEADROOM = 1.3
_VOLTAGE_HEADROOM = 2.0

# Points this PCS implements for writing (everything else is read-only, see module doc).
_CURVE_WRITABLE = frozenset(
    {"Ena", "AdptCrvReq", "Crv[1].MustTrip.ActPt", "Crv[1].MomCess.ActPt"}
    | {f"Crv[1].{curve}.Pt[{i}].{name}" for curve in ("MustTrip", "MomCess")
       for i in range(1, CURVE_POINTS + 1) for name in ("V", "Tms")}
)
_WRITABLE: dict[int, frozenset[str]] = {
    704: frozenset({"WSetEna", "WSetMod", "WSet", "WSetPct", "VarSetEna", "VarSetMod",
                    "VarSetPri", "VarSet", "WRmp"}),
    707: _CURVE_WRITABLE,
    708: _CURVE_WRITABLE,
    715: frozenset({"ControllerHb", "AlarmReset", "OpCtl"}),
    **extra.WRITABLE,
}
# Models whose curve edits are staged until adopted, with the point reporting the result.
_ADOPT_RESULT_POINT = {707: "AdptCrvRslt", 708: "AdptCrvRslt", **extra.ADOPT_RESULT_POINT}



# ---------------------------------------------------------------------------------------
# Layout of the whole image
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlacedModel:
    layout: ModelLayout
    base_addr: int                     # address of the model's ID register

    @property
    def model_id(self) -> int:
        return self.layout.model_id

    @property
    def end_addr(self) -> int:         # one past the last register
        return self.base_addr + self.layout.length_regs

    def addr(self, path: str) -> int:
        return self.base_addr + self.layout.point(path).offset_regs


def place_models(base_addr: int = SUNSPEC_BASE_ADDR) -> tuple[list[PlacedModel], int]:
    """Models placed one after the other after the marker; returns them and the end-marker address."""
    placed: list[PlacedModel] = []
    addr = base_addr + len(SUNS_MARKER)
    for model_id, counts in MODEL_PLAN:
        layout = build_model_layout(model_id, counts)
        placed.append(PlacedModel(layout, addr))
        addr += layout.length_regs
    return placed, addr


def layout_summary(base_addr: int = SUNSPEC_BASE_ADDR) -> list[tuple[int, int, int]]:
    """(model id, address of ID, length incl. ID and L) for each model, then the end marker."""
    placed, end_addr = place_models(base_addr)
    return [(m.model_id, m.base_addr, m.layout.length_regs) for m in placed] + [(END_MODEL_ID, end_addr, 2)]


def _symbol(model_id: int, path: str, name: str) -> int:
    return build_model_layout(model_id, dict(MODEL_PLAN)[model_id]).point(path).symbols[name]


# The DISABLED/ENABLED enumeration shared by the 70x enable points, read from the JSON.
ENABLED = _symbol(704, "WSetEna", "ENABLED")


def _bits(layout: ModelLayout, path: str, names: Iterable[str]) -> int:
    symbols = layout.point(path).symbols
    value = 0
    for name in names:
        value |= 1 << symbols[name]
    return value


def _pcs_config(plant: Any) -> Any:
    """PcsConfig of the plant (Plant keeps the PlantConfig it was built with as `.config`)."""
    config = getattr(plant, "config", None)
    pcs = getattr(config, "pcs", None)
    if pcs is None:
        raise TypeError("plant has no .config.pcs (PcsConfig); cannot publish ratings")
    return pcs


# ---------------------------------------------------------------------------------------
# The device: live image, write handling
# ---------------------------------------------------------------------------------------

@dataclass
class _ActivePowerControl:
    """704 state the plant does not hold itself (enable flags, modes, parked setpoints)."""
    w_set_enabled: int = ENABLED       # the plant's p_set_w is always in force, so start enabled
    w_set_mode_watts: bool = True
    w_set_w: float = 0.0               # last WSet written (shown while not in force)
    w_set_pct: float = 0.0
    var_set_enabled: int = ENABLED
    var_set_var: float = 0.0


@dataclass
class SunSpecPcsDevice:
    """Maps the plant's PCS to a SunSpec register image (pure logic, no sockets)."""

    plant: Any
    device_id: int = 1
    base_addr: int = SUNSPEC_BASE_ADDR
    models: list[PlacedModel] = field(init=False)
    end_marker_addr: int = field(init=False)
    power_control: _ActivePowerControl = field(default_factory=_ActivePowerControl)
    op_ctl: int = 0                    # last OpCtl command (read back as written)
    curve_edits_pending: dict[int, bool] = field(
        default_factory=lambda: dict.fromkeys(_ADOPT_RESULT_POINT, False))
    adopt_result: dict[int, int] = field(init=False)
    settings_bridge: SettingsBridge = field(init=False)   # 703/705/709-711 settings

    def __post_init__(self) -> None:
        self.models, self.end_marker_addr = place_models(self.base_addr)
        self.by_id = {m.model_id: m for m in self.models}
        self.config = _pcs_config(self.plant)
        s_rated = float(self.config.s_rated_va)
        i_max = float(self.config.i_max_a)
        v_ll = float(self.config.v_ll_nom_v)
        # Scale factors, fixed for the life of the device (SunSpec says sunssf points are static).
        self.sf = {
            "W": _scale_factor(s_rated * _POWER_HEADROOM, signed=True),
            "A": _scale_factor(3 * i_max * _POWER_HEADROOM, signed=True),   # "A" is the sum of phases
            "V": _scale_factor(v_ll * _VOLTAGE_HEADROOM, signed=False),
            "Hz": -3, "PF": -3, "Tmp": -1,
            "WSet": 0, "WSetPct": -2, "VarSet": 0,
            "CrvV": -2, "CrvTms": -3,                 # 707/708: 0.01 %Vnom, 1 ms
            "WH": None, "Pct": -1,
        }
        self.sf.update(extra.extra_scale_factors(self.plant, _POWER_HEADROOM))
        self.settings_bridge = SettingsBridge(self.plant, extra.default_settings(float(self.config.f_nom_hz)))
        # battery_capacity_wh of PcsConfig; without it 713/802 WHRtg are not implemented
        self.e_rated_wh = extra.battery_ratings(self.plant).wh_rated
        if self.e_rated_wh:
            self.sf["WH"] = _scale_factor(self.e_rated_wh, signed=False)
        settings = self.plant.pcs_settings
        self.power_control.w_set_w = float(settings.p_set_w)
        self.power_control.var_set_var = float(settings.q_set_var)
        self.op_ctl = _symbol(715, "OpCtl", "START") if _state(self.plant) in _ON_STATES \
            else _symbol(715, "OpCtl", "STOP")
        self.adopt_result = {model_id: _symbol(model_id, path, "COMPLETED")
                             for model_id, path in _ADOPT_RESULT_POINT.items()}

    # -- image ---------------------------------------------------------------------------

    def writable_addresses(self) -> set[int]:
        addrs: set[int] = set()
        for model in self.models:
            for path in _WRITABLE.get(model.model_id, ()):
                point = model.layout.point(path)
                start = model.base_addr + point.offset_regs
                addrs.update(range(start, start + point.size_regs))
        return addrs

    def initial_registers(self) -> list[int]:
        """The whole image from the marker to the end model, live values included."""
        regs = [0] * (self.end_marker_addr + 2 - self.base_addr)
        regs[0:2] = SUNS_MARKER
        for model in self.models:
            for point in model.layout.points:
                start = model.base_addr + point.offset_regs - self.base_addr
                regs[start:start + point.size_regs] = not_implemented_registers(point)
            for path, value in _INITIAL_VALUES.get(model.model_id, {}).items():
                point = model.layout.point(path)
                start = model.base_addr + point.offset_regs - self.base_addr
                regs[start:start + point.size_regs] = encode_point(point, value)
        regs[-2:] = [END_MODEL_ID, 0]
        self.refresh(regs, self.base_addr, self.base_addr, len(regs))
        return regs

    def refresh(self, registers: list[int], start_addr: int, addr: int, count: int) -> None:
        """Rewrite the live points of every model the read [addr, addr+count) touches."""
        touched = [m for m in self.models if m.base_addr < addr + count and addr < m.end_addr]
        if not touched:
            return
        telemetry = self.plant.pcs_telemetry_image()
        for model in touched:
            for path, value in self._values(model, telemetry).items():
                point = model.layout.point(path)
                index = model.base_addr + point.offset_regs - start_addr
                registers[index:index + point.size_regs] = _encode_clamped(point, value)

    def _values(self, model: PlacedModel, telemetry: dict) -> dict[str, int | str | None]:
        """Raw register values (already scaled) of one model's points; None = not implemented."""
        values: dict[str, int | str | None] = {"ID": model.model_id, "L": model.layout.l_value}
        values.update(_MODEL_VALUES[model.model_id](self, model.layout, telemetry))
        return values

    # -- writes --------------------------------------------------------------------------

    def write(self, registers: list[int], start_addr: int, addr: int, values: list[int]) -> None:
        """Validate and apply a write of `values` at `addr`; raises WriteRejected."""
        end = addr + len(values)
        writes: dict[int, dict[str, int | str | None]] = {}
        for model in self.models:
            if model.end_addr <= addr or end <= model.base_addr:
                continue
            writable = _WRITABLE.get(model.model_id, frozenset())
            for point in model.layout.points:
                p_start = model.base_addr + point.offset_regs
                p_end = p_start + point.size_regs
                if p_end <= addr or end <= p_start:
                    continue
                if p_start < addr or end < p_end:
                    raise WriteRejected(ExcCodes.ILLEGAL_ADDRESS, f"partial write of {point.path}")
                if point.path not in writable:
                    raise WriteRejected(ExcCodes.ILLEGAL_ADDRESS, f"{point.path} is read-only")
                raw = decode_point(point, values[p_start - addr:p_end - addr])
                writes.setdefault(model.model_id, {})[point.path] = raw
        if not writes:
            raise WriteRejected(ExcCodes.ILLEGAL_ADDRESS, "no writable point")
        # validate everything first so that a refused request changes nothing
        appliers = []
        for model_id, changes in writes.items():
            model = self.by_id[model_id]
            merged = list(registers[model.base_addr - start_addr:model.end_addr - start_addr])
            for i, value in enumerate(values):
                if model.base_addr <= addr + i < model.end_addr:
                    merged[addr + i - model.base_addr] = value
            appliers.append(_MODEL_WRITERS[model_id](self, model, changes, merged))
        for apply in appliers:
            apply()

    # -- 704 helpers --------------------------------------------------------------------

    def apply_active_power(self) -> None:
        pc = self.power_control
        if pc.w_set_enabled != ENABLED:
            p_set_w = 0.0                              # no setpoint in force: a battery idles
        elif pc.w_set_mode_watts:
            p_set_w = pc.w_set_w
        else:
            p_set_w = pc.w_set_pct / 100.0 * float(self.config.s_rated_va)
        self.plant.pcs_settings.p_set_w = p_set_w

    def apply_reactive_power(self) -> None:
        pc = self.power_control
        self.plant.pcs_settings.q_set_var = pc.var_set_var if pc.var_set_enabled == ENABLED else 0.0


def _encode_clamped(point: PointLayout, value: int | str | None) -> list[int]:
    """Encode a live value; a value beyond the register range shows as the range end
    (never the not-implemented sentinel), as a saturating meter would."""
    if value is None:
        return not_implemented_registers(point)
    if isinstance(value, str):
        data = value.encode("utf-8")[: 2 * point.size_regs]
        return encode_point(point, data.decode("utf-8", errors="ignore"))
    bits = 16 * point.size_regs
    if point.type in {"int16", "int32", "int64", "sunssf"}:
        value = max(-(1 << (bits - 1)) + 1, min((1 << (bits - 1)) - 1, value))
    elif point.type.startswith("acc"):
        value = value % (1 << bits)
    else:
        value = max(0, min((1 << bits) - 2, value))
    return encode_point(point, value)


# ---------------------------------------------------------------------------------------
# Per-model values (reads). Each returns {path: raw value}; unlisted points stay "not
# implemented". Raw = engineering value / 10**sf.
# ---------------------------------------------------------------------------------------

def _state(plant: Any) -> str:
    return str(plant.pcs_telemetry_image().get("state", "OFF"))


def _model_1(dev: SunSpecPcsDevice, layout: ModelLayout, t: dict) -> dict:
    # Identity from PcsConfig; Vr is the simulator's own version.
    try:
        version = metadata.version("bessbench")
    except metadata.PackageNotFoundError:
        version = "0"
    return {"Mn": dev.config.manufacturer, "Md": dev.config.model, "SN": dev.config.serial,
            "Vr": f"sim {version}", "Opt": "", "DA": dev.device_id}


# 701 InvSt from the plant state. MOMENTARY_CESSATION: the PCS stays connected but stops
# current because of the voltage, i.e. throttled by LVRT/HVRT (ThrotSrc says which).
# TRIPPED and FAULT both mean "not operating because of a fault condition" -> FAULT.
_INV_STATE = {"OFF": "OFF", "STARTING": "STARTING", "RUNNING": "RUNNING",
              "MOMENTARY_CESSATION": "THROTTLED", "TRIPPED": "FAULT", "FAULT": "FAULT",
              "STANDBY": "STANDBY"}
# 701 Alrm bits from the plant's trip reason / alarm texts (bench/sim/plant.py wording:
# "LV must-trip ...", "LV protection ...", "HV must-trip ...", "AC instantaneous overvoltage",
# "DC link overvoltage", "start refused: grid voltage not present", ...). Texts with no
# SunSpec bit (DC undervoltage, AC overcurrent, other start refusals) set MANUFACTURER_ALRM;
# MnAlrmInfo always carries the texts themselves.
_ALARM_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), name) for pattern, name in (
        (r"^dc link overvoltage", "DC_OVER_VOLT"),
        (r"^dc link", "MANUFACTURER_ALRM"),
        (r"^lv\b|\bac under-?voltage", "AC_UNDER_VOLT"),
        (r"^hv\b|\bac (instantaneous )?over-?voltage", "AC_OVER_VOLT"),
        (r"over-?frequency", "OVER_FREQUENCY"),
        (r"under-?frequency", "UNDER_FREQUENCY"),
        (r"over-?temperature", "OVER_TEMP"),
        (r"grid voltage not present", "GRID_DISCONNECT"),
    ))


def _alarm_names(texts: list[str]) -> set[str]:
    names: set[str] = set()
    for text in texts:
        found = next((name for pattern, name in _ALARM_PATTERNS if pattern.search(text)), None)
        names.add(found or "MANUFACTURER_ALRM")
    return names


def _model_701(dev: SunSpecPcsDevice, layout: ModelLayout, t: dict) -> dict:
    sf = dev.sf
    state = str(t.get("state", "OFF"))
    s_rated = float(dev.config.s_rated_va)
    p_w, q_var, s_va = float(t.get("p_w", 0.0)), float(t.get("q_var", 0.0)), float(t.get("s_va", 0.0))
    v_ln = [float(v) for v in t.get("v_ln_rms_v", (0.0, 0.0, 0.0))]
    i_a = [float(i) for i in t.get("i_rms_a", (0.0, 0.0, 0.0))]
    v_nom_ln = float(dev.config.v_ll_nom_v) / math.sqrt(3.0)
    # PF: SunSpec wants the sign of active power; undefined (not implemented) at no load.
    pf = None
    if s_va > 1e-3 * s_rated:
        pf = math.copysign(min(1.0, abs(float(t.get("pf", p_w / s_va)))), p_w)
    trip_reason = str(t.get("trip_reason", "") or "")
    # the plant lists its trip reason among the alarms already; keep each text once
    alarm_texts = list(dict.fromkeys([trip_reason] * bool(trip_reason) + [str(a) for a in t.get("alarms", [])]))
    alarms = _alarm_names(alarm_texts)
    throttle: list[str] = []
    if state == "MOMENTARY_CESSATION" or t.get("ride_through_active"):
        # which side of nominal the worst phase is on tells low- from high-voltage ride-through
        throttle.append("LVRT" if v_nom_ln - min(v_ln) > max(v_ln) - v_nom_ln else "HVRT")
    if t.get("current_limited"):
        throttle.append("DERATED")      # closest 701 source for "held at the current limit"
    der_mode = "GRID_FORMING" if t.get("grid_forming") else "GRID_FOLLOWING"
    values: dict[str, int | str | None] = {
        "ACType": layout.point("ACType").symbols["THREE_PHASE"],
        "St": layout.point("St").symbols["ON" if state in _ON_STATES else "OFF"],
        "InvSt": layout.point("InvSt").symbols[_INV_STATE.get(state, "FAULT")],
        # connected = the PCS's AC contactor is closed; STARTING still synchronises
        "ConnSt": layout.point("ConnSt").symbols[
            "CONNECTED" if state in {"RUNNING", "MOMENTARY_CESSATION"} else "DISCONNECTED"],
        "Alrm": _bits(layout, "Alrm", alarms),
        "DERMode": _bits(layout, "DERMode", [der_mode]) if state in _ON_STATES else 0,
        "W": _raw(p_w, sf["W"]), "VA": _raw(s_va, sf["W"]), "Var": _raw(q_var, sf["W"]),
        "PF": _raw(pf, sf["PF"]),
        "A": _raw(sum(i_a), sf["A"]),                      # "Total AC current": sum of phases
        "LLV": _raw(float(t.get("v_ll_rms_v", 0.0)), sf["V"]),
        "LNV": _raw(sum(v_ln) / 3.0, sf["V"]),
        "Hz": _raw(float(t.get("freq_hz", 0.0)), sf["Hz"]),
        "TmpCab": _raw(t.get("temperature_c"), sf["Tmp"]),  # the plant has one PCS temperature
        "AL1": _raw(i_a[0], sf["A"]), "AL2": _raw(i_a[1], sf["A"]), "AL3": _raw(i_a[2], sf["A"]),
        "VL1": _raw(v_ln[0], sf["V"]), "VL2": _raw(v_ln[1], sf["V"]), "VL3": _raw(v_ln[2], sf["V"]),
        "ThrotSrc": _bits(layout, "ThrotSrc", throttle),
        "A_SF": sf["A"], "V_SF": sf["V"], "Hz_SF": sf["Hz"], "W_SF": sf["W"], "PF_SF": sf["PF"],
        "VA_SF": sf["W"], "Var_SF": sf["W"], "Tmp_SF": sf["Tmp"],
        "MnAlrmInfo": "; ".join(alarm_texts),
    }
    return values


def _model_702(dev: SunSpecPcsDevice, layout: ModelLayout, t: dict) -> dict:
    # Nameplate: the PCS can deliver its full kVA as W (charge or discharge) or as var.
    # VNomRtg is the line-to-line voltage (the three-phase nameplate voltage); VMin/VMax are
    # the continuous-operation band 0.88-1.10 pu. AMaxRtg is the per-phase current limit.
    sf = dev.sf
    c = dev.config
    s = float(c.s_rated_va)
    v = float(c.v_ll_nom_v)
    w = _raw(s, sf["W"])
    values: dict[str, int | str | None] = {
        "WMaxRtg": w, "VAMaxRtg": w, "VarMaxInjRtg": w, "VarMaxAbsRtg": w,
        "WChaRteMaxRtg": w, "WDisChaRteMaxRtg": w, "VAChaRteMaxRtg": w, "VADisChaRteMaxRtg": w,
        "VNomRtg": _raw(v, sf["V"]), "VMaxRtg": _raw(1.10 * v, sf["V"]), "VMinRtg": _raw(0.88 * v, sf["V"]),
        "AMaxRtg": _raw(float(c.i_max_a), sf["A"]),
        "NorOpCatRtg": layout.point("NorOpCatRtg").symbols["CAT_B"],
        "AbnOpCatRtg": layout.point("AbnOpCatRtg").symbols["CAT_3"],     # defaults are Cat III
        "CtrlModes": _bits(layout, "CtrlModes", ["FIXED_W", "FIXED_VAR", "DYN_REACT_CURR",
                                                 "LV_TRIP", "HV_TRIP"]),
        # settings mirror the ratings (this PCS does not let them be lowered over Modbus),
        # except the charge / discharge rates: its BMS shrinks those near the SOC ends
        "WMax": w, "VAMax": w, "VarMaxInj": w, "VarMaxAbs": w,
        "WChaRteMax": _raw(_bms_limit_w(t, "p_charge_max_w", s), sf["W"]),
        "WDisChaRteMax": _raw(_bms_limit_w(t, "p_discharge_max_w", s), sf["W"]),
        "VAChaRteMax": w, "VADisChaRteMax": w,
        "VNom": _raw(v, sf["V"]), "VMax": _raw(1.10 * v, sf["V"]), "VMin": _raw(0.88 * v, sf["V"]),
        "AMax": _raw(float(c.i_max_a), sf["A"]),
        "W_SF": sf["W"], "VA_SF": sf["W"], "Var_SF": sf["W"], "V_SF": sf["V"], "A_SF": sf["A"],
    }
    return values


def _bms_limit_w(t: dict, key: str, rated_w: float) -> float:
    """A BMS power limit from telemetry; the rating when the plant does not report one."""
    value = t.get(key)
    return rated_w if value is None else float(value)


# 704 VarSetPri <-> plant limit_priority (what wins at the current limit): ACTIVE -> "P",
# REACTIVE -> "Q", VENDOR -> "mixed" (the vendor-defined split).
_PRIORITY_TO_PLANT = {"ACTIVE": "P", "REACTIVE": "Q", "VENDOR": "mixed"}


def _model_704(dev: SunSpecPcsDevice, layout: ModelLayout, t: dict) -> dict:
    sf = dev.sf
    pc = dev.power_control
    settings = dev.plant.pcs_settings
    s_rated = float(dev.config.s_rated_va)
    # While a setpoint is in force, show what the plant actually uses (it may have been set
    # by other means); otherwise show the parked value last written.
    in_force = pc.w_set_enabled == ENABLED
    w_set_w = float(settings.p_set_w) if in_force and pc.w_set_mode_watts else pc.w_set_w
    w_set_pct = float(settings.p_set_w) / s_rated * 100.0 if in_force and not pc.w_set_mode_watts \
        else pc.w_set_pct
    var_set = float(settings.q_set_var) if pc.var_set_enabled == ENABLED else pc.var_set_var
    priority = {v: k for k, v in _PRIORITY_TO_PLANT.items()}.get(str(settings.limit_priority), "VENDOR")
    ramp = float(settings.p_ramp_w_per_s)
    return {
        "WSetEna": pc.w_set_enabled,
        "WSetMod": layout.point("WSetMod").symbols["WATTS" if pc.w_set_mode_watts else "W_MAX_PCT"],
        "WSet": _raw(w_set_w, sf["WSet"]), "WSetPct": _raw(w_set_pct, sf["WSetPct"]),
        "VarSetEna": pc.var_set_enabled,
        "VarSetMod": layout.point("VarSetMod").symbols["VARS"],
        "VarSetPri": layout.point("VarSetPri").symbols[priority],
        "VarSet": _raw(var_set, sf["VarSet"]),
        # WRmp is %WMax per second (WRmpRef = W_MAX), an integer: no scale factor
        "WRmp": round(ramp / s_rated * 100.0) if math.isfinite(ramp) else None,
        "WRmpRef": layout.point("WRmpRef").symbols["W_MAX"],
        "WSet_SF": sf["WSet"], "WSetPct_SF": sf["WSetPct"], "VarSet_SF": sf["VarSet"],
    }


def _curve_settings(dev: SunSpecPcsDevice, model_id: int) -> tuple[list[tuple[float, float]], float]:
    s = dev.plant.pcs_settings
    if model_id == 707:
        return list(s.lv_must_trip), float(s.lv_mom_cess_v_pu)
    return list(s.hv_must_trip), float(s.hv_mom_cess_v_pu)


def _model_trip_curves(dev: SunSpecPcsDevice, layout: ModelLayout, t: dict) -> dict:
    """707/708. The plant's must-trip list [(v_pu, t_s), ...] means "trip when V stays beyond
    v_pu for longer than t_s"; each tuple is one curve point (V in %Vnom, Tms in s). The
    momentary-cessation threshold is a pure voltage level: one point (V, Tms=0). MayTrip is
    not modelled (ActPt 0)."""
    model_id = layout.model_id
    sf = dev.sf
    values: dict[str, int | str | None] = {
        "Ena": ENABLED, "AdptCrvReq": 0, "AdptCrvRslt": dev.adopt_result[model_id],
        "NPt": CURVE_POINTS, "NCrvSet": CURVE_SETS, "V_SF": sf["CrvV"], "Tms_SF": sf["CrvTms"],
        "Crv[1].ReadOnly": layout.point("Crv[1].ReadOnly").symbols["RW"],
        "Crv[1].MayTrip.ActPt": 0,
    }
    for i in range(1, CURVE_POINTS + 1):
        values[f"Crv[1].MayTrip.Pt[{i}].V"] = 0
        values[f"Crv[1].MayTrip.Pt[{i}].Tms"] = 0
    if dev.curve_edits_pending[model_id]:
        return values                        # show the staged edits until adopted
    must_trip, mom_cess_v_pu = _curve_settings(dev, model_id)
    curves = {"MustTrip": must_trip[:CURVE_POINTS], "MomCess": [(mom_cess_v_pu, 0.0)]}
    for name, points in curves.items():
        values[f"Crv[1].{name}.ActPt"] = len(points)
        for i in range(1, CURVE_POINTS + 1):
            v_pu, t_s = points[i - 1] if i <= len(points) else (0.0, 0.0)
            values[f"Crv[1].{name}.Pt[{i}].V"] = _raw(v_pu * 100.0, sf["CrvV"])
            values[f"Crv[1].{name}.Pt[{i}].Tms"] = _raw(t_s, sf["CrvTms"])
    return values


def _model_713(dev: SunSpecPcsDevice, layout: ModelLayout, t: dict) -> dict:
    soc = t.get("soc_pct")
    state = str(t.get("state", "OFF"))
    e_wh = dev.e_rated_wh
    values: dict[str, int | str | None] = {
        "SoC": _raw(soc, dev.sf["Pct"]), "Pct_SF": dev.sf["Pct"],
        # the emulated battery does not fade (as 802 SoH says): its capacity stays WHRtg
        "SoH": _raw(extra.BATTERY_SOH_PCT, dev.sf["Pct"]),
        "Sta": layout.point("Sta").symbols["ERROR" if state == "FAULT" else "OK"],
    }
    if e_wh and soc is not None:
        # WHAvail = WHRtg * SoH * SoC, SoH being 100 %
        values.update({"WHRtg": _raw(e_wh, dev.sf["WH"]),
                       "WHAvail": _raw(e_wh * float(soc) / 100.0, dev.sf["WH"]),
                       "WH_SF": dev.sf["WH"]})
    return values


def _model_715(dev: SunSpecPcsDevice, layout: ModelLayout, t: dict) -> dict:
    # DERHb counts whole seconds of plant time (the PCS's own clock on the virtual bench);
    # the clock, not telemetry t_s, which is the end of the last averaging window.
    t_s = float(getattr(dev.plant, "t_s", t.get("t_s", 0.0)))
    return {"LocRemCtl": layout.point("LocRemCtl").symbols["REMOTE"],
            "DERHb": math.floor(t_s + 1e-9) & 0xFFFF_FFFF,
            "AlarmReset": 0, "OpCtl": dev.op_ctl}
    # ControllerHb is not listed: it keeps whatever the controller last wrote.


_MODEL_VALUES = {1: _model_1, 701: _model_701, 702: _model_702, 704: _model_704,
                 707: _model_trip_curves, 708: _model_trip_curves, 713: _model_713, 715: _model_715,
                 **extra.MODEL_VALUES}


# ---------------------------------------------------------------------------------------
# Per-model writers. Each validates `changes` (raw values by path) and returns a closure
# that applies them, so a request is checked completely before anything changes.
# ---------------------------------------------------------------------------------------

def _write_704(dev: SunSpecPcsDevice, model: PlacedModel, changes: dict, merged: list[int]):
    layout = model.layout
    s_rated = float(dev.config.s_rated_va)
    sf = dev.sf
    pc = dev.power_control
    new: dict[str, Any] = {}
    for path, raw in changes.items():
        point = layout.point(path)
        if path in {"WSetEna", "VarSetEna"}:
            new[path] = _enum_value(point, raw)
        elif path == "WSetMod":
            new[path] = _enum_value(point, raw) == point.symbols["WATTS"]
        elif path == "VarSetMod":
            _enum_value(point, raw, ["VARS"])         # only absolute vars are supported
        elif path == "VarSetPri":
            symbol = {v: k for k, v in point.symbols.items()}.get(_enum_value(point, raw))
            new[path] = _PRIORITY_TO_PLANT[symbol]
        elif path == "WSet":
            _require(raw is not None, "WSet not implemented value")
            w = raw * 10.0 ** sf["WSet"]
            _require(abs(w) <= s_rated, f"WSet {w} W beyond +-{s_rated} W")
            new[path] = w
        elif path == "WSetPct":
            _require(raw is not None, "WSetPct not implemented value")
            pct = raw * 10.0 ** sf["WSetPct"]
            _require(abs(pct) <= 100.0, f"WSetPct {pct} % beyond +-100 %")
            new[path] = pct
        elif path == "VarSet":
            _require(raw is not None, "VarSet not implemented value")
            var = raw * 10.0 ** sf["VarSet"]
            _require(abs(var) <= s_rated, f"VarSet {var} var beyond +-{s_rated} var")
            new[path] = var
        elif path == "WRmp":
            # 1..10000 %WMax/s; 0 would freeze the output, the sentinel means "not set"
            _require(raw is not None and 1 <= raw <= 10000, f"WRmp {raw} not in 1..10000 %/s")
            new[path] = raw / 100.0 * s_rated

    def apply() -> None:
        settings = dev.plant.pcs_settings
        if "WSetEna" in new:
            pc.w_set_enabled = new["WSetEna"]
        if "WSetMod" in new:
            pc.w_set_mode_watts = new["WSetMod"]
        if "WSet" in new:
            pc.w_set_w = new["WSet"]
        if "WSetPct" in new:
            pc.w_set_pct = new["WSetPct"]
        if "VarSetEna" in new:
            pc.var_set_enabled = new["VarSetEna"]
        if "VarSet" in new:
            pc.var_set_var = new["VarSet"]
        if new.keys() & {"WSetEna", "WSetMod", "WSet", "WSetPct"}:
            dev.apply_active_power()
        if new.keys() & {"VarSetEna", "VarSet"}:
            dev.apply_reactive_power()
        if "VarSetPri" in new:
            settings.limit_priority = new["VarSetPri"]
        if "WRmp" in new:
            settings.p_ramp_w_per_s = new["WRmp"]
    return apply


def _read_curve(model: PlacedModel, merged: list[int], name: str) -> tuple[int | None, list[tuple[int | None, int | None]]]:
    layout = model.layout

    def raw(path: str) -> Any:
        point = layout.point(path)
        return decode_point(point, merged[point.offset_regs:point.offset_regs + point.size_regs])
    act_pt = raw(f"Crv[1].{name}.ActPt")
    points = [(raw(f"Crv[1].{name}.Pt[{i}].V"), raw(f"Crv[1].{name}.Pt[{i}].Tms"))
              for i in range(1, CURVE_POINTS + 1)]
    return act_pt, points


def _adopt_curves(dev: SunSpecPcsDevice, model: PlacedModel, merged: list[int]) -> bool:
    """Check the staged curve set; if consistent, make it the plant's. Returns success."""
    lv = model.model_id == 707
    sf = dev.sf

    def beyond_nominal(v_pct: float) -> bool:   # the side of nominal this model guards
        return 0.0 < v_pct < 100.0 if lv else 100.0 < v_pct <= 200.0
    act, pts = _read_curve(model, merged, "MustTrip")
    if act is None or not 1 <= act <= CURVE_POINTS:
        return False
    must_trip: list[tuple[float, float]] = []
    for v_raw, tms_raw in pts[:act]:
        if v_raw is None or tms_raw is None:
            return False
        v_pct, t_s = v_raw * 10.0 ** sf["CrvV"], tms_raw * 10.0 ** sf["CrvTms"]
        if not beyond_nominal(v_pct):
            return False
        must_trip.append((v_pct / 100.0, t_s))
    act, pts = _read_curve(model, merged, "MomCess")
    if act is None or not 1 <= act <= CURVE_POINTS:
        return False
    levels = {v for v, _ in pts[:act]}
    # the plant ceases at a voltage level without delay: the curve must be one vertical line
    if len(levels) != 1 or None in levels:
        return False
    mom_cess_pct = levels.pop() * 10.0 ** sf["CrvV"]
    # 0 % on the LV side means "never cease" (IEEE 2800 forbids momentary cessation)
    if not (beyond_nominal(mom_cess_pct) or (lv and mom_cess_pct == 0.0)):
        return False
    if lv and TRIP_SETTING_DRIFT in getattr(dev.plant.config, "defects", ()):
        # Seeded defect (bench/sim/defects.py, caught by C2): the firmware stores the first
        # must-trip point later than written; the curve reads back as stored.
        v_pu, t_s = must_trip[0]
        must_trip[0] = (v_pu, t_s + TRIP_SETTING_DRIFT_S)
    settings = dev.plant.pcs_settings
    if lv:
        settings.lv_must_trip = must_trip
        settings.lv_mom_cess_v_pu = mom_cess_pct / 100.0
    else:
        settings.hv_must_trip = must_trip
        settings.hv_mom_cess_v_pu = mom_cess_pct / 100.0
    return True


def _write_trip_curves(dev: SunSpecPcsDevice, model: PlacedModel, changes: dict, merged: list[int]):
    """707/708 follow SunSpec's curve adoption: points written to the stored curve are staged;
    writing AdptCrvReq = 1 checks the curve and makes it active (AdptCrvRslt COMPLETED or
    FAILED). Ena cannot be cleared: the PCS's protective trip cannot be switched off."""
    layout = model.layout
    adopt = False
    for path, raw in changes.items():
        point = layout.point(path)
        if path == "Ena":
            _enum_value(point, raw, ["ENABLED"])
        elif path == "AdptCrvReq":
            _require(raw in (0, CURVE_SETS), f"AdptCrvReq {raw}: only curve 1 exists")
            adopt = adopt or raw == CURVE_SETS
        elif path.endswith("ActPt"):
            _require(raw is not None and 0 <= raw <= CURVE_POINTS, f"{path} {raw} > NPt {CURVE_POINTS}")
        elif path.endswith(".V"):
            _require(raw is not None and raw * 10.0 ** dev.sf["CrvV"] <= 200.0, f"{path} {raw} beyond 200 %")
        elif path.endswith(".Tms"):
            _require(raw is not None, f"{path} not implemented value")
    edits = any(p.startswith("Crv[") for p in changes)

    def apply() -> None:
        if edits:
            dev.curve_edits_pending[model.model_id] = True
        if adopt:
            ok = _adopt_curves(dev, model, merged)
            dev.adopt_result[model.model_id] = _symbol(707, "AdptCrvRslt", "COMPLETED" if ok else "FAILED")
            dev.curve_edits_pending[model.model_id] = False   # show the active curve again
    return apply


def _write_715(dev: SunSpecPcsDevice, model: PlacedModel, changes: dict, merged: list[int]):
    layout = model.layout
    commands: list[str] = []
    op_ctl = None
    for path, raw in changes.items():
        point = layout.point(path)
        if path == "AlarmReset":
            _require(raw in (0, 1), f"AlarmReset {raw}: 1 resets, 0 does nothing")
            if raw == 1:
                commands.append("reset_alarms")
        elif path == "OpCtl":
            op_ctl = _enum_value(point, raw)
            symbol = {v: k for k, v in point.symbols.items()}[op_ctl]
            # EXIT_STANDBY resumes operation, which for this PCS is its start command
            commands.append({"STOP": "stop", "START": "start", "ENTER_STANDBY": "standby",
                             "EXIT_STANDBY": "start"}[symbol])
        # ControllerHb: any value; pymodbus stores it and reads give it back

    def apply() -> None:
        nonlocal op_ctl
        if op_ctl is not None:
            dev.op_ctl = op_ctl
        for command in commands:
            dev.plant.pcs_command(command)
    return apply


_MODEL_WRITERS = {704: _write_704, 707: _write_trip_curves, 708: _write_trip_curves, 715: _write_715,
                  **extra.MODEL_WRITERS}


# ---------------------------------------------------------------------------------------
# pymodbus wiring
# ---------------------------------------------------------------------------------------

def _sim_blocks(device: SunSpecPcsDevice) -> list[SimData]:
    """The image as pymodbus SimData runs, split where writability changes (pymodbus itself
    refuses writes to read-only runs with ILLEGAL_DATA_ADDRESS before our action runs)."""
    registers = device.initial_registers()
    writable = device.writable_addresses()
    blocks: list[SimData] = []
    run_start = 0
    for i in range(1, len(registers) + 1):
        addr = device.base_addr + i
        if i == len(registers) or ((addr in writable) != (addr - 1 in writable)):
            first = device.base_addr + run_start
            blocks.append(SimData(address=first, values=registers[run_start:i],
                                  datatype=DataType.REGISTERS, readonly=first not in writable))
            run_start = i
    return blocks


def _make_action(device: SunSpecPcsDevice, vendor: VendorBlock):
    async def action(function_code: int, start_addr: int, address: int, count: int,
                     registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if function_code not in SUPPORTED_FUNCTION_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        # pymodbus refuses requests that touch the gap between the SunSpec image and the
        # vendor block (INVALID registers), so a request belongs wholly to one of them
        in_vendor_block = VendorBlock.owns(address)
        try:
            if set_values is None:
                if in_vendor_block:
                    vendor.refresh(registers, start_addr, address, count)
                else:
                    device.refresh(registers, start_addr, address, count)
                return None
            # FC6 calls us twice: this write, then a read of the same register (above)
            values = [int(v) for v in set_values]
            if in_vendor_block:
                vendor.write(address, values)
            else:
                device.write(registers, start_addr, address, values)
            # Logged so a run's evidence shows every command the PCS received.
            log.info("modbus write at %d: %s", address, values)
        except WriteRejected as exc:
            log.info("modbus write at %d refused: %s", address, exc)
            return exc.code
        except Exception:            # a bug here must not kill the server; a device would say 0x04
            log.exception("modbus access at %d failed", address)
            return ExcCodes.DEVICE_FAILURE
        return None
    return action


async def _answer_absent_unit(function_code: int, start_addr: int, address: int, count: int,
                              registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


# ---------------------------------------------------------------------------------------
# Disturbance records over FC20 (read file record)
#
# Finding (pymodbus 3.16.1, pdu/file_message.py): the datastore path cannot serve file
# records. ReadFileRecordRequest.datastore_update ignores the datastore (SimDevice included)
# and answers every sub-request with the fixed bytes b"SERVER DUMMY RECORD."; the SimDevice
# action hook is never called for FC20 (simulator/simruntime.py maps only FC 1-6, 15, 16,
# 22, 23). Its decode also drops the reference type and, through FileRecord.__post_init__,
# halves the requested length (and refuses odd lengths): FileRecord.record_length is taken
# as a byte count. So the server registers its own request class for function code 0x14
# (`custom_pdu=`, the documented hook, per server instance: DecodePDU.register copies the
# table), which parses the wire format itself and answers from the recorder.
# Client side consequence: pymodbus's client also halves FileRecord(record_length=...)
# before sending, so a pymodbus client asks for n registers with record_length=2 * n.
# ---------------------------------------------------------------------------------------

FILE_REFERENCE_TYPE = 6
MAX_FILE_RECORD_REGS = 120              # per sub-request, as the vendor manual says
_FILE_SUB_REQUEST_BYTES = 7
_MAX_FILE_BYTE_COUNT = 0xF5             # Modbus spec limit on the request/response byte count


@dataclass(frozen=True)
class _FileSubRequest:
    reference_type: int
    file_number: int
    record_number: int                  # register offset in the file
    length_regs: int


class _PcsReadFileRecordRequest(ReadFileRecordRequest):
    """FC20 served from a device's files: `file_sources[device_id](file_number)` gives the
    file's bytes or None. Subclassed per server with its own `file_sources`."""

    file_sources: ClassVar[dict[int, Callable[[int], bytes | None]]] = {}

    def __init__(self, records: list[FileRecord] | None = None, dev_id: int = 1,
                 transaction_id: int = 0) -> None:
        super().__init__(records=records, dev_id=dev_id, transaction_id=transaction_id)
        self.sub_requests: list[_FileSubRequest] = []
        self.byte_count = 0

    def decode(self, data: bytes) -> None:
        self.byte_count = int(data[0])
        body = data[1:1 + self.byte_count]
        if len(body) < self.byte_count:
            raise ModbusException(f"Invalid byte count: {self.byte_count}")
        whole = len(body) - len(body) % _FILE_SUB_REQUEST_BYTES
        self.sub_requests = [_FileSubRequest(*struct.unpack_from(">BHHH", body, offset))
                             for offset in range(0, whole, _FILE_SUB_REQUEST_BYTES)]

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        source = self.file_sources.get(device_id)
        if source is None:
            return self._refuse(ExcCodes.GATEWAY_NO_RESPONSE, f"no device {device_id}")
        if not (_FILE_SUB_REQUEST_BYTES <= self.byte_count <= _MAX_FILE_BYTE_COUNT
                and self.byte_count % _FILE_SUB_REQUEST_BYTES == 0):
            return self._refuse(ExcCodes.ILLEGAL_VALUE, f"byte count {self.byte_count}")
        answers: list[FileRecord] = []
        for sub in self.sub_requests:
            if sub.reference_type != FILE_REFERENCE_TYPE:
                return self._refuse(ExcCodes.ILLEGAL_ADDRESS, f"reference type {sub.reference_type}")
            if not 1 <= sub.length_regs <= MAX_FILE_RECORD_REGS:
                return self._refuse(ExcCodes.ILLEGAL_VALUE, f"length {sub.length_regs} registers")
            try:
                content = source(sub.file_number)
            except Exception:        # never let a recorder bug take the server down
                log.exception("FC20 file %d unavailable", sub.file_number)
                return self._refuse(ExcCodes.DEVICE_FAILURE, f"file {sub.file_number}")
            if content is None:
                return self._refuse(ExcCodes.ILLEGAL_ADDRESS, f"no file {sub.file_number}")
            padded = content + b"\x00" * (len(content) % 2)      # whole registers
            start = 2 * sub.record_number
            stop = start + 2 * sub.length_regs
            if stop > len(padded):
                return self._refuse(ExcCodes.ILLEGAL_ADDRESS,
                                    f"file {sub.file_number} has {len(padded) // 2} registers, "
                                    f"asked {sub.record_number}+{sub.length_regs}")
            answers.append(FileRecord(file_number=sub.file_number, record_number=sub.record_number,
                                      record_data=padded[start:stop]))
        if sum(2 + len(a.record_data) for a in answers) > _MAX_FILE_BYTE_COUNT:
            return self._refuse(ExcCodes.ILLEGAL_VALUE, "answer would exceed one Modbus frame")
        return ReadFileRecordResponse(records=answers, dev_id=device_id,
                                      transaction_id=self.transaction_id)

    def _refuse(self, code: ExcCodes, reason: str) -> ExceptionResponse:
        log.info("modbus read file record refused (%s): %s", code.name, reason)
        return ExceptionResponse(self.function_code, exception_code=code)


def _file_record_request_class(sources: dict[int, Callable[[int], bytes | None]]) -> type[ModbusPDU]:
    return type("PcsReadFileRecordRequest", (_PcsReadFileRecordRequest,), {"file_sources": sources})


class _RefusedWriteFileRecordRequest(WriteFileRecordRequest):
    """FC21: the PCS's files are its recorder's; pymodbus's stock answer would echo the
    request as if the write had been done."""

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        log.info("modbus write file record refused: the PCS's files are read-only")
        return ExceptionResponse(self.function_code, exception_code=ExcCodes.ILLEGAL_FUNCTION)


# ---------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _PcsImage:
    """Everything one server port needs to present the plant's PCS."""
    device: SunSpecPcsDevice
    vendor: VendorBlock
    recorder: DisturbanceRecorder
    sim_devices: list[SimDevice]
    custom_pdu: list[type[ModbusPDU]]


def _build_image(plant: Any, device_id: int) -> _PcsImage:
    if not 1 <= device_id <= 247:
        raise ValueError(f"device_id {device_id} outside 1..247")
    device = SunSpecPcsDevice(plant, device_id=device_id)
    recorder = recorder_for(plant)          # one per plant, shared by its TCP and RTU ports
    vendor = VendorBlock(plant, recorder)
    sim_devices = [
        SimDevice(id=device_id, simdata=_sim_blocks(device) + vendor.sim_data(),
                  action=_make_action(device, vendor)),
        # id 0 is pymodbus's "any other unit": a full map whose action always refuses
        SimDevice(id=0, simdata=[SimData(address=0, count=65536, datatype=DataType.REGISTERS)],
                  action=_answer_absent_unit),
    ]
    custom_pdu = [_file_record_request_class({device_id: recorder.file_bytes}),
                  _RefusedWriteFileRecordRequest]
    return _PcsImage(device, vendor, recorder, sim_devices, custom_pdu)


@dataclass
class PcsServer:
    """A running simulated PCS: `.port`, `await .stop()`."""

    port: int
    host: str
    device_id: int
    device: SunSpecPcsDevice
    _server: ModbusTcpServer
    vendor: VendorBlock | None = None
    recorder: DisturbanceRecorder | None = None

    async def stop(self) -> None:
        """Close the listening socket and every client connection (idempotent)."""
        await self._server.shutdown()


async def start_pcs_server(plant: Any, *, host: str = "127.0.0.1", port: int = 0,
                           device_id: int = 1) -> PcsServer:
    """Start the Modbus TCP server for `plant`'s PCS; port 0 lets the OS choose."""
    image = _build_image(plant, device_id)
    server = ModbusTcpServer(image.sim_devices, address=(host, port), custom_pdu=image.custom_pdu)
    await server.serve_forever(background=True)
    bound_port = server.transport.sockets[0].getsockname()[1]
    log.info("simulated PCS on %s:%d, device id %d", host, bound_port, device_id)
    return PcsServer(port=bound_port, host=host, device_id=device_id, device=image.device,
                     _server=server, vendor=image.vendor, recorder=image.recorder)


# --- RTU over a pseudo-terminal ------------------------------------------------------------
#
# Finding (pymodbus 3.16.1): ModbusSerialServer opens its port by name through pyserial
# (transport/serialtransport.py: serial.serial_for_url(port)); a pty master has no name
# that opens it (opening /dev/ptmx makes a new pair), so the stock serial server cannot sit
# on the master side. The server below is the stock ModbusSerialServer - same RTU framer,
# request handler, SimDevice datastore and FC20 class - whose "open the port" step
# (`init_setup_connect_listen` sets `call_create`) hands it a small asyncio transport on the
# master fd instead. Clients open the slave side (`port_path`) with pyserial as they would a
# USB-RS485 adapter. Baud rate and parity are carried for the record: a pty has no line
# timing, and pyserial's settings on the slave side do not reach the master. Found on this
# bench's Linux 6.18: tcsetattr with PARENB on a pty answers EINVAL, so a pyserial client
# can open the slave only with parity "N" (the server side never sets parity on the pty).

class _PtyMasterTransport(asyncio.Transport):
    """Byte stream on a pty master fd for a pymodbus protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, fd: int) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._fd = fd
        self._pending = b""
        self._closed = False

    def setup(self) -> None:
        self._loop.add_reader(self._fd, self._read_ready)
        self._protocol.connection_made(self)

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:          # EIO: no slave open; the server keeps one, so rare
            log.debug("pty read: %s", exc)
            return
        if data:
            self._protocol.data_received(data)

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._pending += bytes(data)
        self._write_ready()

    def _write_ready(self) -> None:
        try:
            written = os.write(self._fd, self._pending) if self._pending else 0
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError as exc:
            log.debug("pty write: %s", exc)
            self._pending = b""
            written = 0
        self._pending = self._pending[written:]
        if self._pending:
            self._loop.add_writer(self._fd, self._write_ready)
        else:
            self._loop.remove_writer(self._fd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closed

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_write_buffer_size(self) -> int:
        return len(self._pending)


class _PtyRtuServer(ModbusSerialServer):
    """ModbusSerialServer listening on a pty master fd instead of a named port."""

    def __init__(self, context: list[SimDevice], *, master_fd: int, **kwargs: Any) -> None:
        self._master_fd = master_fd         # needed by init_setup_connect_listen below
        super().__init__(context, **kwargs)

    def init_setup_connect_listen(self, host: str, port: int) -> None:
        self.call_create = self._open_master

    async def _open_master(self) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        protocol = self.handle_new_connection()
        transport = _PtyMasterTransport(self.loop, protocol, self._master_fd)
        self.loop.call_soon(transport.setup)
        return transport, protocol


@dataclass
class PcsRtuServer:
    """A running simulated PCS on Modbus RTU: open `.port_path` with pyserial; `await .stop()`."""

    port_path: str
    device_id: int
    baudrate: int
    parity: str
    device: SunSpecPcsDevice
    vendor: VendorBlock
    recorder: DisturbanceRecorder
    _server: ModbusSerialServer
    _master_fd: int
    _slave_fd: int
    _stopped: bool = False

    async def stop(self) -> None:
        """Stop answering and close both ends of the pty (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        await self._server.shutdown()
        for fd in (self._master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


async def start_pcs_rtu_server(plant: Any, *, device_id: int = 1, baudrate: int = 19200,
                               parity: str = "E") -> PcsRtuServer:
    """Serve `plant`'s PCS (SunSpec, vendor block, FC20) over Modbus RTU on a new pty pair."""
    if parity not in ("N", "E", "O"):
        raise ValueError(f"parity must be N, E or O, got {parity!r}")
    image = _build_image(plant, device_id)
    master_fd, slave_fd = os.openpty()
    try:
        # Raw slave: no echo, no line editing, no CR/LF translation of binary frames, even
        # before a client configures it. The server keeps this fd open so that reading the
        # master never fails with EIO while no client has the port open.
        tty.setraw(slave_fd)
        os.set_blocking(master_fd, False)
        port_path = os.ttyname(slave_fd)
        server = _PtyRtuServer(image.sim_devices, master_fd=master_fd, framer=FramerType.RTU,
                               port=port_path, baudrate=baudrate, parity=parity,
                               custom_pdu=image.custom_pdu)
        await server.serve_forever(background=True)
    except BaseException:
        os.close(master_fd)
        os.close(slave_fd)
        raise
    log.info("simulated PCS on RTU %s (%d baud, parity %s), device id %d",
             port_path, baudrate, parity, device_id)
    return PcsRtuServer(port_path=port_path, device_id=device_id, baudrate=baudrate, parity=parity,
                        device=image.device, vendor=image.vendor, recorder=image.recorder,
                        _server=server, _master_fd=master_fd, _slave_fd=slave_fd)
