"""SunSpec models 703, 705, 709, 710, 711, 714 and 802 of the simulated PCS.

`modbus_pcs.SunSpecPcsDevice` places these models in its chain and calls the functions here:
`MODEL_VALUES[id](dev, layout, telemetry)` gives the raw register values of a read (points
left out read as SunSpec "not implemented"), `MODEL_WRITERS[id](dev, model, changes, merged)`
validates a write and returns the closure that applies it, `WRITABLE[id]` lists the points
this PCS implements for writing (every other point is read-only: ILLEGAL_DATA_ADDRESS).
Layouts come from pysunspec2's JSON (`sunspec_models.build_model_layout`), with the group
counts of `MODEL_PLAN`.

Mappings (SunSpec point <-> plant), from the point labels/descriptions of the JSON:

703 enter service (writes apply at once; SunSpec has no adoption step here)
    ES        "Permit enter service"              <-> es_enabled (ENABLED/DISABLED)
    ESVHi/Lo  thresholds, % of nominal voltage    <-> es_v_high_pu / es_v_low_pu (x100)
    ESHzHi/Lo thresholds, Hz                      <-> es_f_high_hz / es_f_low_hz
    ESDlyTms  delay before entering service, s    <-> es_delay_s (whole seconds)
    ESRndTms, ESRmpTms, ESDlyRemTms: not modelled by the plant -> not implemented
705 volt-var, one stored curve of VV_CURVE_POINTS points (Crv[1] is also the active curve)
    Ena       <-> vv_enabled (at once)
    Crv[1].ActPt, Pt[n].V (% of nominal V), Pt[n].Var (% of VarMax, + = injection)
              <-> vv_points [(v_pu, q_pu)] with q in per unit of the rating (VarMax = S rated,
              see 702); staged until AdptCrvReq = 1 adopts them, as for 707/708
    Crv[1].RspTms (open-loop response time, s) <-> vv_olrt_s, staged with the curve
    DeptRef   only VAR_MAX_PCT; Pri, VRef*, Rvrt*: not modelled -> not implemented
709 / 710 LF / HF trip, one curve set of FREQ_TRIP_POINTS points, adoption as 707/708
    Crv[1].MustTrip.ActPt, Pt[n].Hz (Hz), Pt[n].Tms (s) <-> lf_must_trip / hf_must_trip
              [(f_hz, t_s)]: "trip when f stays beyond f_hz for longer than t_s"
    Ena       only ENABLED (the PCS's protective trip cannot be switched off)
    MayTrip / MomCess: not modelled (ActPt 0, read-only), as in 707/708
711 frequency droop, one control Ctl[1], adoption by AdptCtlReq = 1 (as 707/708); AdptCtlReq
    reads 1 (Ctl[1] is the active control) and refuses 0 ("no active control": use Ena)
    Ena       <-> fw_enabled (at once)
    Ctl[1].DbOf / DbUf (Hz) <-> fw_deadband_hz; the plant has one deadband, so adoption
              fails unless both are equal
    Ctl[1].KOf / KUf ("per-unit frequency change for 1 pu power change") <-> fw_droop_pct/100,
              one droop: both must be equal
    Ctl[1].RspTms (open-loop response time, s) <-> fw_olrt_s, staged with the control
    PMin, Rvrt*: not modelled -> not implemented
714 DC measurement, one port (the battery)
    DCA, Prt[1].DCA <- telemetry idc_a (+ = out of the battery, i.e. discharging);
    Prt[1].DCV <- vdc_v; DCW, Prt[1].DCW <- vdc_v * idc_a; PrtTyp ESS; DCSta ON while the PCS
    runs, ERROR with a DC-link alarm; DCAlrm / PrtAlrms from the plant's DC-link alarm texts.
    DC energies and port temperature: not modelled -> not implemented
802 battery base (the battery emulator behind the PCS)
    WHRtg <- PcsConfig.battery_capacity_wh; AHRtg = WHRtg / nominal voltage (the battery
    emulator's DcSourceConfig.voltage_v; 802 has no nominal-voltage point of its own);
    WChaRteMax / WDisChaRteMax and AChaMax / ADisChaMax <- the emulator's sink / source current
    limits (x nominal voltage for the W ratings); VMax / VMin <- the PCS's DC window
    (vdc_max_v / vdc_min_v); SoC <- soc_pct, DoD = 100 - SoC, SoH 100 % (the emulated
    battery does not fade); SoCMax/SoCMin 100/0 % (the plant's SoC range);
    SocRsvMax / SoCRsvMin <-> soc_max_pct / soc_min_pct (the SOC band, also vendor points);
    V, A, W <- vdc_v, idc_a, vdc_v * idc_a; ChaSt from DC power and SoC; State CONNECTED
    while the DC link has voltage; Evt1 DC over/under-voltage; AlmRst 1 -> reset_alarms;
    CtrlHb stores what the controller writes. SetOp / SetInvState are read-only (the PCS
    cannot switch the bench's battery emulator; its own state is in 701/715).
    Cell voltages, cycle count, warranty, requests: not modelled -> not implemented

`SettingsBridge` reads and writes these settings through plant.pcs_settings when it has the
field (bench/sim/plant.py has them all since the grid-following outer loop landed) and keeps
them in the server otherwise, so an older plant without them still serves the models.
ESDlyTms has no scale factor (whole seconds): a plant delay of 0.2 s reads 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes

from bench.sim.sunspec_models import (
    ModelLayout,
    PointLayout,
    build_model_layout,
    fit_scale_factor,
    point_value,
    to_raw,
)
from bench.sim.vendor_block import WriteRejected

VV_CURVE_POINTS = 4            # the four points of IEEE 1547's volt-var characteristic
FREQ_TRIP_POINTS = 4           # as NPt of 707/708
DC_PORTS = 1
MODEL_PLAN: dict[int, dict[str, int]] = {
    703: {},
    705: {"NCrv": 1, "NPt": VV_CURVE_POINTS},
    709: {"NCrvSet": 1, "NPt": FREQ_TRIP_POINTS},
    710: {"NCrvSet": 1, "NPt": FREQ_TRIP_POINTS},
    711: {"NCtl": 1},
    714: {"NPrt": DC_PORTS},
    802: {},
}
# Written-by-the-client points that reads never overwrite, with their value at power-up.
INITIAL_VALUES: dict[int, dict[str, int]] = {802: {"CtrlHb": 0}}
# Models whose curve/control edits wait for an adopt request, and their result point.
ADOPT_RESULT_POINT: dict[int, str] = {705: "AdptCrvRslt", 709: "AdptCrvRslt",
                                      710: "AdptCrvRslt", 711: "AdptCtlRslt"}

PCS_ON_STATES = frozenset({"STARTING", "RUNNING", "MOMENTARY_CESSATION"})
_POWER_IDLE_FRACTION = 0.01    # below 1 % of rating the battery counts as holding (PCS losses)
BATTERY_SOH_PCT = 100.0        # the emulated battery does not fade (713 and 802 SoH)


def _layout(model_id: int) -> ModelLayout:
    return build_model_layout(model_id, MODEL_PLAN[model_id])


def _symbols(model_id: int, path: str) -> dict[str, int]:
    return dict(_layout(model_id).point(path).symbols)


ENABLED = _symbols(703, "ES")["ENABLED"]
DISABLED = _symbols(703, "ES")["DISABLED"]


# ---------------------------------------------------------------------------------------
# Write validation (shared with modbus_pcs)
# ---------------------------------------------------------------------------------------

def require(condition: bool, reason: str) -> None:
    """Refuse the write with ILLEGAL_DATA_VALUE unless `condition` holds."""
    if not condition:
        raise WriteRejected(ExcCodes.ILLEGAL_VALUE, reason)


def enum_value(point: PointLayout, raw: Any, allowed: Iterable[str] | None = None) -> int:
    """`raw` if it is one of the point's symbols (or of `allowed`), else ILLEGAL_DATA_VALUE."""
    names = list(allowed) if allowed is not None else list(point.symbols)
    require(raw is not None and raw in {point.symbols[n] for n in names},
            f"{point.path}={raw} not one of {names}")
    return int(raw)


def _in_range(path: str, value: float | None, low: float, high: float, units: str) -> float:
    require(value is not None and low <= value <= high,
            f"{path} {value} {units} outside {low:g}..{high:g} {units}")
    return float(value)


# open-loop response time of 705/711: the plant's range (bench/sim/plant.py)
_OLRT_RANGE_S = (0.01, 600.0)


def _check_response_time(path: str, raw: Any, sf: int) -> float:
    return _in_range(path, None if raw is None else raw * 10.0 ** sf, *_OLRT_RANGE_S, "s")


# ---------------------------------------------------------------------------------------
# Settings of 703, 705, 709-711
# ---------------------------------------------------------------------------------------

def default_settings(f_nom_hz: float) -> dict[str, Any]:
    """IEEE 1547-2018 defaults (Category III for the frequency trips), used only for the
    fields a plant's PcsSettings lacks; frequencies are offsets from nominal."""
    return {
        "es_enabled": True, "es_v_low_pu": 0.917, "es_v_high_pu": 1.05,
        "es_f_low_hz": f_nom_hz - 0.5, "es_f_high_hz": f_nom_hz + 0.1, "es_delay_s": 300.0,
        "vv_enabled": False, "vv_olrt_s": 5.0, "fw_olrt_s": 5.0,
        "vv_points": [(0.92, 0.44), (0.98, 0.0), (1.02, 0.0), (1.08, -0.44)],
        "fw_enabled": True, "fw_deadband_hz": 0.036, "fw_droop_pct": 5.0,
        "lf_must_trip": [(f_nom_hz - 1.5, 300.0), (f_nom_hz - 3.5, 0.16)],
        "hf_must_trip": [(f_nom_hz + 1.2, 300.0), (f_nom_hz + 2.0, 0.16)],
    }


@dataclass
class SettingsBridge:
    """A setting lives in plant.pcs_settings when that has the field, else in `stored`, so
    the models work against a plant with or without the fields (written while the plant
    was growing them; the current plant has them all)."""

    plant: Any
    stored: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        settings = self.plant.pcs_settings    # looked up each time: the plant may swap it
        return getattr(settings, name) if hasattr(settings, name) else self.stored[name]

    def set(self, name: str, value: Any) -> None:
        settings = self.plant.pcs_settings
        if hasattr(settings, name):
            setattr(settings, name, value)
        else:
            self.stored[name] = value


def extra_scale_factors(plant: Any, power_headroom: float) -> dict[str, int | None]:
    """Scale factors of the models here, fixed for the device's life (sunssf is static)."""
    config = plant.config.pcs
    s_rated = float(config.s_rated_va)
    vdc_max = float(config.vdc_max_v)
    vdc_min = float(config.vdc_min_v)
    battery = battery_ratings(plant)
    sf: dict[str, int | None] = {
        "EsV": -2, "EsHz": -3,                    # 703: 0.01 % of Vnom, 1 mHz
        "VvV": -2, "VvVar": -2,                   # 705: 0.01 % of Vnom, 0.01 % of VarMax
        "RspTms": -2,                             # 705/711 open-loop response time, 10 ms
        "FHz": -3, "FTms": -3,                    # 709/710: 1 mHz, 1 ms
        "Db": -3, "K": -3,                        # 711: 1 mHz, 0.001 pu/pu (0.1 % droop)
        # DC side: power through the PCS is bounded by its rating; current by that power at
        # the lowest DC voltage the PCS runs at
        "DCW": fit_scale_factor(s_rated * power_headroom, signed=True),
        "DCA": fit_scale_factor(s_rated * power_headroom / vdc_min, signed=True),
        "DCV": fit_scale_factor(2.0 * vdc_max, signed=False),
        "SoC": -1,
        "AMax": fit_scale_factor(max(battery.i_charge_max_a, battery.i_discharge_max_a), signed=False),
        "WChaDis": fit_scale_factor(max(battery.w_charge_max, battery.w_discharge_max), signed=False),
        "WHRtg": None, "AHRtg": None,
    }
    if battery.wh_rated:
        sf["WHRtg"] = fit_scale_factor(battery.wh_rated, signed=False)
        sf["AHRtg"] = fit_scale_factor(battery.wh_rated / battery.v_nom_v, signed=False)
    return sf


@dataclass(frozen=True)
class _BatteryRatings:
    wh_rated: float | None
    v_nom_v: float
    i_charge_max_a: float
    i_discharge_max_a: float

    @property
    def w_charge_max(self) -> float:
        return self.i_charge_max_a * self.v_nom_v

    @property
    def w_discharge_max(self) -> float:
        return self.i_discharge_max_a * self.v_nom_v


def _battery_ratings(pcs_config: Any, dc_source: Any = None) -> _BatteryRatings:
    """Nameplate of the emulated battery: capacity from PcsConfig, voltage and current limits
    of the battery emulator (DcSourceConfig); fallbacks keep a bare PcsConfig usable."""
    capacity = getattr(pcs_config, "battery_capacity_wh", None)
    wh = float(capacity) if isinstance(capacity, (int, float)) and capacity > 0 else None
    v_nom = float(getattr(dc_source, "voltage_v", 0.0) or 0.0)
    if v_nom <= 0.0:        # no emulator settings: the middle of the PCS's DC window
        v_nom = 0.5 * (float(pcs_config.vdc_min_v) + float(pcs_config.vdc_max_v))
    i_default = float(pcs_config.s_rated_va) / float(pcs_config.vdc_min_v)
    return _BatteryRatings(
        wh_rated=wh, v_nom_v=v_nom,
        i_charge_max_a=float(getattr(dc_source, "current_limit_neg_a", i_default)),
        i_discharge_max_a=float(getattr(dc_source, "current_limit_a", i_default)),
    )


def battery_ratings(plant: Any) -> _BatteryRatings:
    config = plant.config
    return _battery_ratings(config.pcs, getattr(config, "dc_source", None))


# ---------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------

def _model_703(dev: Any, layout: ModelLayout, t: dict) -> dict:
    s, sf = dev.settings_bridge, dev.sf
    delay_s = float(s.get("es_delay_s"))
    return {
        "ES": ENABLED if s.get("es_enabled") else DISABLED,
        "ESVHi": to_raw(100.0 * float(s.get("es_v_high_pu")), sf["EsV"]),
        "ESVLo": to_raw(100.0 * float(s.get("es_v_low_pu")), sf["EsV"]),
        "ESHzHi": to_raw(float(s.get("es_f_high_hz")), sf["EsHz"]),
        "ESHzLo": to_raw(float(s.get("es_f_low_hz")), sf["EsHz"]),
        "ESDlyTms": round(delay_s) if math.isfinite(delay_s) else None,
        "V_SF": sf["EsV"], "Hz_SF": sf["EsHz"],
    }


def _adoption_header(dev: Any, layout: ModelLayout) -> dict:
    """AdptCrvReq reads 0 once handled (a request, as in 707/708); 711's AdptCtlReq names
    the active control ("0 = No active control"), which is always the one control, Ctl[1]."""
    result_path = ADOPT_RESULT_POINT[layout.model_id]
    if result_path == "AdptCtlRslt":
        return {"AdptCtlReq": 1, result_path: dev.adopt_result[layout.model_id]}
    return {"AdptCrvReq": 0, result_path: dev.adopt_result[layout.model_id]}


def _model_705(dev: Any, layout: ModelLayout, t: dict) -> dict:
    s, sf = dev.settings_bridge, dev.sf
    values: dict[str, Any] = {
        **_adoption_header(dev, layout),
        "Ena": ENABLED if s.get("vv_enabled") else DISABLED,
        "NPt": VV_CURVE_POINTS, "NCrv": 1,
        "V_SF": sf["VvV"], "DeptRef_SF": sf["VvVar"], "RspTms_SF": sf["RspTms"],
        "Crv[1].ReadOnly": layout.point("Crv[1].ReadOnly").symbols["RW"],
    }
    if dev.curve_edits_pending[layout.model_id]:
        return values                        # show the staged edits until adopted
    points = list(s.get("vv_points"))[:VV_CURVE_POINTS]
    values["Crv[1].ActPt"] = len(points)
    values["Crv[1].DeptRef"] = layout.point("Crv[1].DeptRef").symbols["VAR_MAX_PCT"]
    values["Crv[1].RspTms"] = to_raw(float(s.get("vv_olrt_s")), sf["RspTms"])
    for i in range(1, VV_CURVE_POINTS + 1):
        v_pu, q_pu = points[i - 1] if i <= len(points) else (0.0, 0.0)
        values[f"Crv[1].Pt[{i}].V"] = to_raw(100.0 * v_pu, sf["VvV"])
        values[f"Crv[1].Pt[{i}].Var"] = to_raw(100.0 * q_pu, sf["VvVar"])
    return values


_FREQ_TRIP_SETTING = {709: "lf_must_trip", 710: "hf_must_trip"}


def _model_freq_trip(dev: Any, layout: ModelLayout, t: dict) -> dict:
    sf = dev.sf
    values: dict[str, Any] = {
        **_adoption_header(dev, layout),
        "Ena": ENABLED, "NPt": FREQ_TRIP_POINTS, "NCrvSet": 1,
        "Hz_SF": sf["FHz"], "Tms_SF": sf["FTms"],
        "Crv[1].ReadOnly": layout.point("Crv[1].ReadOnly").symbols["RW"],
    }
    for curve in ("MayTrip", "MomCess"):     # not modelled: empty curves
        values[f"Crv[1].{curve}.ActPt"] = 0
        for i in range(1, FREQ_TRIP_POINTS + 1):
            values[f"Crv[1].{curve}.Pt[{i}].Hz"] = 0
            values[f"Crv[1].{curve}.Pt[{i}].Tms"] = 0
    if dev.curve_edits_pending[layout.model_id]:
        return values
    points = list(dev.settings_bridge.get(_FREQ_TRIP_SETTING[layout.model_id]))[:FREQ_TRIP_POINTS]
    values["Crv[1].MustTrip.ActPt"] = len(points)
    for i in range(1, FREQ_TRIP_POINTS + 1):
        f_hz, t_s = points[i - 1] if i <= len(points) else (0.0, 0.0)
        values[f"Crv[1].MustTrip.Pt[{i}].Hz"] = to_raw(f_hz, sf["FHz"])
        values[f"Crv[1].MustTrip.Pt[{i}].Tms"] = to_raw(t_s, sf["FTms"])
    return values


def _model_711(dev: Any, layout: ModelLayout, t: dict) -> dict:
    s, sf = dev.settings_bridge, dev.sf
    values: dict[str, Any] = {
        **_adoption_header(dev, layout),
        "Ena": ENABLED if s.get("fw_enabled") else DISABLED, "NCtl": 1,
        "Db_SF": sf["Db"], "K_SF": sf["K"], "RspTms_SF": sf["RspTms"],
        "Ctl[1].ReadOnly": layout.point("Ctl[1].ReadOnly").symbols["RW"],
    }
    if dev.curve_edits_pending[layout.model_id]:
        return values
    deadband = to_raw(float(s.get("fw_deadband_hz")), sf["Db"])
    k = to_raw(float(s.get("fw_droop_pct")) / 100.0, sf["K"])
    values.update({"Ctl[1].DbOf": deadband, "Ctl[1].DbUf": deadband,
                   "Ctl[1].KOf": k, "Ctl[1].KUf": k,
                   "Ctl[1].RspTms": to_raw(float(s.get("fw_olrt_s")), sf["RspTms"])})
    return values


# DC-link alarm texts of bench/sim/plant.py ("DC link overvoltage 1050.0 V > ...").
_DC_ALARMS = ((re.compile(r"^dc link overvoltage", re.IGNORECASE), "over"),
              (re.compile(r"^dc link undervoltage", re.IGNORECASE), "under"))


def _dc_alarm_kinds(t: dict) -> set[str]:
    texts = [str(a) for a in t.get("alarms", [])] + [str(t.get("trip_reason", "") or "")]
    return {kind for text in texts for pattern, kind in _DC_ALARMS if pattern.search(text)}


def _dc_values(t: dict) -> tuple[float, float, float]:
    vdc_v, idc_a = float(t.get("vdc_v", 0.0)), float(t.get("idc_a", 0.0))
    return vdc_v, idc_a, vdc_v * idc_a


def _model_714(dev: Any, layout: ModelLayout, t: dict) -> dict:
    sf = dev.sf
    vdc_v, idc_a, pdc_w = _dc_values(t)
    alarms = _dc_alarm_kinds(t)
    alarm_bits = layout.point("Prt[1].DCAlrm").symbols
    dc_alarm = sum(1 << alarm_bits[name] for kind, name in (("over", "INPUT_OVER_VOLTAGE"),
                                                            ("under", "INPUT_UNDER_VOLTAGE"))
                   if kind in alarms)
    status = "ERROR" if dc_alarm else "ON" if str(t.get("state", "OFF")) in PCS_ON_STATES else "OFF"
    return {
        "PrtAlrms": 1 if dc_alarm else 0, "NPrt": DC_PORTS,
        "DCA": to_raw(idc_a, sf["DCA"]), "DCW": to_raw(pdc_w, sf["DCW"]),
        "DCA_SF": sf["DCA"], "DCV_SF": sf["DCV"], "DCW_SF": sf["DCW"],
        "Prt[1].PrtTyp": layout.point("Prt[1].PrtTyp").symbols["ESS"],
        "Prt[1].ID": 1, "Prt[1].IDStr": "battery",
        "Prt[1].DCA": to_raw(idc_a, sf["DCA"]), "Prt[1].DCV": to_raw(vdc_v, sf["DCV"]),
        "Prt[1].DCW": to_raw(pdc_w, sf["DCW"]),
        "Prt[1].DCSta": layout.point("Prt[1].DCSta").symbols[status],
        "Prt[1].DCAlrm": dc_alarm,
    }


def _charge_status(t: dict, soc_pct: float | None, pdc_w: float, s_rated: float) -> str:
    if pdc_w > _POWER_IDLE_FRACTION * s_rated:
        return "DISCHARGING"
    if pdc_w < -_POWER_IDLE_FRACTION * s_rated:
        return "CHARGING"
    if soc_pct is not None and soc_pct <= 0.0:
        return "EMPTY"
    if soc_pct is not None and soc_pct >= 100.0:
        return "FULL"
    return "HOLDING" if str(t.get("state", "OFF")) in PCS_ON_STATES else "OFF"


def _model_802(dev: Any, layout: ModelLayout, t: dict) -> dict:
    sf, config = dev.sf, dev.config
    battery = battery_ratings(dev.plant)
    settings = dev.plant.pcs_settings
    vdc_v, idc_a, pdc_w = _dc_values(t)
    soc = t.get("soc_pct")
    soc_pct = None if soc is None else float(soc)
    alarms = _dc_alarm_kinds(t)
    events = layout.point("Evt1").symbols
    state = str(t.get("state", "OFF"))
    inverter = "INVERTER_STARTED" if state in PCS_ON_STATES else \
        "INVERTER_STANDBY" if state == "STANDBY" else "INVERTER_STOPPED"
    t_s = float(getattr(dev.plant, "t_s", t.get("t_s", 0.0)))
    symbol = lambda path, name: layout.point(path).symbols[name]   # noqa: E731
    values: dict[str, Any] = {
        "WChaRteMax": to_raw(battery.w_charge_max, sf["WChaDis"]),
        "WDisChaRteMax": to_raw(battery.w_discharge_max, sf["WChaDis"]),
        "SoCMax": to_raw(100.0, sf["SoC"]), "SoCMin": to_raw(0.0, sf["SoC"]),
        "SocRsvMax": to_raw(float(settings.soc_max_pct), sf["SoC"]),
        "SoCRsvMin": to_raw(float(settings.soc_min_pct), sf["SoC"]),
        "SoC": to_raw(soc_pct, sf["SoC"]),
        "DoD": None if soc_pct is None else to_raw(100.0 - soc_pct, sf["SoC"]),
        "SoH": to_raw(BATTERY_SOH_PCT, 0),               # SoH_SF 0
        "ChaSt": symbol("ChaSt", _charge_status(t, soc_pct, pdc_w, float(config.s_rated_va))),
        "LocRemCtl": symbol("LocRemCtl", "REMOTE"),
        "Hb": math.floor(t_s + 1e-9) % 0xFFFF,           # wraps before the 0xFFFF sentinel
        "AlmRst": 0,
        "Typ": symbol("Typ", "NOT APPLICABLE_UNKNOWN"),   # an emulator: no chemistry
        "State": symbol("State", "CONNECTED" if vdc_v >= 0.5 * float(config.vdc_min_v) else "DISCONNECTED"),
        "Evt1": sum(1 << events[name] for kind, name in (("over", "OVER_VOLT_ALARM"),
                                                         ("under", "UNDER_VOLT_ALARM")) if kind in alarms),
        "Evt2": 0, "EvtVnd1": 0, "EvtVnd2": 0,
        "V": to_raw(vdc_v, sf["DCV"]),
        "VMax": to_raw(float(config.vdc_max_v), sf["DCV"]),
        "VMin": to_raw(float(config.vdc_min_v), sf["DCV"]),
        "A": to_raw(idc_a, sf["DCA"]),
        "AChaMax": to_raw(battery.i_charge_max_a, sf["AMax"]),
        "ADisChaMax": to_raw(battery.i_discharge_max_a, sf["AMax"]),
        "W": to_raw(pdc_w, sf["DCW"]),
        "SetInvState": symbol("SetInvState", inverter),
        "WChaDisChaMax_SF": sf["WChaDis"], "SoC_SF": sf["SoC"], "DoD_SF": sf["SoC"], "SoH_SF": 0,
        "V_SF": sf["DCV"], "A_SF": sf["DCA"], "AMax_SF": sf["AMax"], "W_SF": sf["DCW"],
    }
    if battery.wh_rated:
        values.update({"WHRtg": to_raw(battery.wh_rated, sf["WHRtg"]), "WHRtg_SF": sf["WHRtg"],
                       "AHRtg": to_raw(battery.wh_rated / battery.v_nom_v, sf["AHRtg"]),
                       "AHRtg_SF": sf["AHRtg"]})
    return values
    # CtrlHb is not listed: it keeps whatever the controller last wrote.


MODEL_VALUES: dict[int, Callable[[Any, ModelLayout, dict], dict]] = {
    703: _model_703, 705: _model_705, 709: _model_freq_trip, 710: _model_freq_trip,
    711: _model_711, 714: _model_714, 802: _model_802,
}


# ---------------------------------------------------------------------------------------
# Writes: each writer validates everything and returns the closure that applies it
# ---------------------------------------------------------------------------------------

def _write_703(dev: Any, model: Any, changes: dict, merged: list[int]):
    layout, sf, f_nom = model.layout, dev.sf, float(dev.config.f_nom_hz)
    bridge = dev.settings_bridge
    new: dict[str, Any] = {}
    for path, raw in changes.items():
        if path == "ES":
            new["es_enabled"] = enum_value(layout.point(path), raw) == ENABLED
        elif path in ("ESVHi", "ESVLo"):
            pct = None if raw is None else raw * 10.0 ** sf["EsV"]
            low, high = (100.0, 150.0) if path == "ESVHi" else (50.0, 100.0)
            new["es_v_high_pu" if path == "ESVHi" else "es_v_low_pu"] = _in_range(path, pct, low, high, "%") / 100.0
        elif path in ("ESHzHi", "ESHzLo"):
            hz = None if raw is None else raw * 10.0 ** sf["EsHz"]
            low, high = (f_nom, 1.1 * f_nom) if path == "ESHzHi" else (0.9 * f_nom, f_nom)
            new["es_f_high_hz" if path == "ESHzHi" else "es_f_low_hz"] = _in_range(path, hz, low, high, "Hz")
        elif path == "ESDlyTms":
            new["es_delay_s"] = _in_range(path, raw, 0, 3600, "s")
    # the window must stay a window, whichever end this request moves
    v_low = new.get("es_v_low_pu", bridge.get("es_v_low_pu"))
    v_high = new.get("es_v_high_pu", bridge.get("es_v_high_pu"))
    f_low = new.get("es_f_low_hz", bridge.get("es_f_low_hz"))
    f_high = new.get("es_f_high_hz", bridge.get("es_f_high_hz"))
    require(v_low < v_high, f"ESVLo {100 * v_low:g} % must stay below ESVHi {100 * v_high:g} %")
    require(f_low < f_high, f"ESHzLo {f_low:g} Hz must stay below ESHzHi {f_high:g} Hz")

    def apply() -> None:
        for name, value in new.items():
            bridge.set(name, value)
    return apply


def _write_adopting(dev: Any, model: Any, changes: dict, *, request: str,
                    check_edit: Callable[[str, Any], None], adopt: Callable[[], dict[str, Any] | None],
                    enable_setting: str | None):
    """Curve/control edits are staged (reads show them) until `request` = 1 adopts them:
    `adopt()` returns the settings to apply, or None when the staged set is inconsistent
    (result FAILED, nothing changes). Ena applies at once to `enable_setting`; without one,
    Ena can only stay ENABLED."""
    layout = model.layout
    adopt_requested, enable = False, None
    for path, raw in changes.items():
        point = layout.point(path)
        if path == "Ena":
            allowed = None if enable_setting else ["ENABLED"]
            enable = enum_value(point, raw, allowed) == ENABLED
        elif path == request:
            # 0 is an idle request for a curve; for 711 it would mean "no active control",
            # which this PCS does not offer (Ena switches the droop off)
            allowed = (1,) if request == "AdptCtlReq" else (0, 1)
            require(raw in allowed, f"{path} {raw}: only {' or '.join(map(str, allowed))}")
            adopt_requested = raw == 1
        else:
            check_edit(path, raw)
    edits = any(p not in ("Ena", request) for p in changes)
    result_symbols = layout.point(ADOPT_RESULT_POINT[model.model_id]).symbols

    def apply() -> None:
        if enable is not None and enable_setting:
            dev.settings_bridge.set(enable_setting, enable)
        if edits:
            dev.curve_edits_pending[model.model_id] = True
        if adopt_requested:
            adopted = adopt()
            for name, value in (adopted or {}).items():
                dev.settings_bridge.set(name, value)
            dev.adopt_result[model.model_id] = result_symbols["FAILED" if adopted is None else "COMPLETED"]
            dev.curve_edits_pending[model.model_id] = False     # show the active settings again
    return apply


def _write_705(dev: Any, model: Any, changes: dict, merged: list[int]):
    layout, sf = model.layout, dev.sf

    def check(path: str, raw: Any) -> None:
        if path.endswith("ActPt"):
            _in_range(path, raw, 0, VV_CURVE_POINTS, "points")
        elif path.endswith("DeptRef"):
            enum_value(layout.point(path), raw, ["VAR_MAX_PCT"])    # q in pu of the rating
        elif path.endswith(".V"):
            _in_range(path, None if raw is None else raw * 10.0 ** sf["VvV"], 0.0, 200.0, "%")
        elif path.endswith(".Var"):
            _in_range(path, None if raw is None else raw * 10.0 ** sf["VvVar"], -100.0, 100.0, "%")
        elif path.endswith("RspTms"):
            _check_response_time(path, raw, sf["RspTms"])

    def adopt() -> dict[str, Any] | None:
        """A volt-var curve: 2..NPt points, voltage rising from above 0, reactive power
        never rising (the plant needs v > 0 and rising; a falling Q(V) is what 1547 asks)."""
        act = point_value(layout, merged, "Crv[1].ActPt")
        if act is None or not 2 <= act <= VV_CURVE_POINTS:
            return None
        points = []
        for i in range(1, act + 1):
            v = point_value(layout, merged, f"Crv[1].Pt[{i}].V")
            q = point_value(layout, merged, f"Crv[1].Pt[{i}].Var")
            if v is None or q is None:
                return None
            points.append((v * 10.0 ** sf["VvV"] / 100.0, q * 10.0 ** sf["VvVar"] / 100.0))
        rising = points[0][0] > 0.0 and all(b[0] > a[0] for a, b in zip(points, points[1:]))
        droops = all(b[1] <= a[1] for a, b in zip(points, points[1:]))
        rsp = point_value(layout, merged, "Crv[1].RspTms")
        if not (rising and droops) or rsp is None:
            return None
        return {"vv_points": points, "vv_olrt_s": rsp * 10.0 ** sf["RspTms"]}

    return _write_adopting(dev, model, changes, request="AdptCrvReq", check_edit=check,
                           adopt=adopt, enable_setting="vv_enabled")


def _write_freq_trip(dev: Any, model: Any, changes: dict, merged: list[int]):
    layout, sf, f_nom = model.layout, dev.sf, float(dev.config.f_nom_hz)
    low_side = model.model_id == 709

    def check(path: str, raw: Any) -> None:
        if path.endswith("ActPt"):
            _in_range(path, raw, 0, FREQ_TRIP_POINTS, "points")
        elif path.endswith(".Hz"):
            _in_range(path, None if raw is None else raw * 10.0 ** sf["FHz"], 0.0, 2.0 * f_nom, "Hz")
        elif path.endswith(".Tms"):
            require(raw is not None, f"{path} not implemented value")

    def beyond_nominal(f_hz: float) -> bool:     # the side of nominal this model guards
        return 0.5 * f_nom < f_hz < f_nom if low_side else f_nom < f_hz < 1.5 * f_nom

    def adopt() -> dict[str, Any] | None:
        act = point_value(layout, merged, "Crv[1].MustTrip.ActPt")
        if act is None or not 1 <= act <= FREQ_TRIP_POINTS:
            return None
        points = []
        for i in range(1, act + 1):
            f_raw = point_value(layout, merged, f"Crv[1].MustTrip.Pt[{i}].Hz")
            t_raw = point_value(layout, merged, f"Crv[1].MustTrip.Pt[{i}].Tms")
            if f_raw is None or t_raw is None:
                return None
            f_hz = f_raw * 10.0 ** sf["FHz"]
            if not beyond_nominal(f_hz):
                return None
            points.append((f_hz, t_raw * 10.0 ** sf["FTms"]))
        return {_FREQ_TRIP_SETTING[model.model_id]: points}

    return _write_adopting(dev, model, changes, request="AdptCrvReq", check_edit=check,
                           adopt=adopt, enable_setting=None)


# 711 limits: deadband up to 1 Hz (IEEE 1547's range is 0.017-1.0 Hz); droop 0.5-10 %, the
# plant's range for its grid-forming P-f droop.
_DB_MAX_HZ = 1.0
_DROOP_PCT_RANGE = (0.5, 10.0)


def _write_711(dev: Any, model: Any, changes: dict, merged: list[int]):
    layout, sf = model.layout, dev.sf

    def check(path: str, raw: Any) -> None:
        if path.startswith("Ctl[1].Db"):
            _in_range(path, None if raw is None else raw * 10.0 ** sf["Db"], 0.0, _DB_MAX_HZ, "Hz")
        elif path.startswith("Ctl[1].K"):
            pct = None if raw is None else 100.0 * raw * 10.0 ** sf["K"]
            _in_range(path, pct, *_DROOP_PCT_RANGE, "% droop")
        elif path == "Ctl[1].RspTms":
            _check_response_time(path, raw, sf["RspTms"])

    def adopt() -> dict[str, Any] | None:
        """The plant has one deadband and one droop for both directions."""
        db = {point_value(layout, merged, f"Ctl[1].{name}") for name in ("DbOf", "DbUf")}
        k = {point_value(layout, merged, f"Ctl[1].{name}") for name in ("KOf", "KUf")}
        rsp = point_value(layout, merged, "Ctl[1].RspTms")
        if len(db) != 1 or len(k) != 1 or None in db or None in k or rsp is None:
            return None
        db_hz, droop_pct = db.pop() * 10.0 ** sf["Db"], 100.0 * k.pop() * 10.0 ** sf["K"]
        olrt_s = rsp * 10.0 ** sf["RspTms"]
        if not (0.0 <= db_hz <= _DB_MAX_HZ and _DROOP_PCT_RANGE[0] <= droop_pct <= _DROOP_PCT_RANGE[1]
                and _OLRT_RANGE_S[0] <= olrt_s <= _OLRT_RANGE_S[1]):
            return None
        return {"fw_deadband_hz": db_hz, "fw_droop_pct": droop_pct, "fw_olrt_s": olrt_s}

    return _write_adopting(dev, model, changes, request="AdptCtlReq", check_edit=check,
                           adopt=adopt, enable_setting="fw_enabled")


def _write_802(dev: Any, model: Any, changes: dict, merged: list[int]):
    sf = dev.sf
    settings = dev.plant.pcs_settings
    band: dict[str, float] = {}
    reset = False
    for path, raw in changes.items():
        if path in ("SocRsvMax", "SoCRsvMin"):
            pct = None if raw is None else raw * 10.0 ** sf["SoC"]
            band["soc_max_pct" if path == "SocRsvMax" else "soc_min_pct"] = _in_range(path, pct, 0.0, 100.0, "%")
        elif path == "AlmRst":
            require(raw in (0, 1), f"AlmRst {raw}: 1 resets, 0 does nothing")
            reset = raw == 1
        # CtrlHb: any value; pymodbus stores it and reads give it back
    soc_min = band.get("soc_min_pct", float(settings.soc_min_pct))
    soc_max = band.get("soc_max_pct", float(settings.soc_max_pct))
    require(not band or soc_min < soc_max - 1e-9,
            f"SoCRsvMin {soc_min:g} % must stay below SocRsvMax {soc_max:g} %")

    def apply() -> None:
        for name, value in band.items():
            setattr(dev.plant.pcs_settings, name, value)
        if reset:
            dev.plant.pcs_command("reset_alarms")
    return apply


MODEL_WRITERS: dict[int, Callable[..., Callable[[], None]]] = {
    703: _write_703, 705: _write_705, 709: _write_freq_trip, 710: _write_freq_trip,
    711: _write_711, 802: _write_802,
}

_FREQ_TRIP_WRITABLE = frozenset(
    {"Ena", "AdptCrvReq", "Crv[1].MustTrip.ActPt"}
    | {f"Crv[1].MustTrip.Pt[{i}].{name}" for i in range(1, FREQ_TRIP_POINTS + 1) for name in ("Hz", "Tms")}
)
WRITABLE: dict[int, frozenset[str]] = {
    703: frozenset({"ES", "ESVHi", "ESVLo", "ESHzHi", "ESHzLo", "ESDlyTms"}),
    705: frozenset({"Ena", "AdptCrvReq", "Crv[1].ActPt", "Crv[1].DeptRef", "Crv[1].RspTms"}
                   | {f"Crv[1].Pt[{i}].{name}" for i in range(1, VV_CURVE_POINTS + 1) for name in ("V", "Var")}),
    709: _FREQ_TRIP_WRITABLE,
    710: _FREQ_TRIP_WRITABLE,
    711: frozenset({"Ena", "AdptCtlReq", "Ctl[1].DbOf", "Ctl[1].DbUf", "Ctl[1].KOf", "Ctl[1].KUf",
                    "Ctl[1].RspTms"}),
    802: frozenset({"SocRsvMax", "SoCRsvMin", "CtrlHb", "AlmRst"}),
}
