"""The PCS interface over SunSpec models (1, 701, 702, 704, 705, 707, 708, 711, 713, 714, 715) and vendor points.

Safety first: the connection is read-only unless the bench file allows control, and even then
nothing is written before model 1 confirms that the device is the PCS the bench file names.
Setpoints are checked against the ratings the PCS reports before any write.

Point semantics, decided from the pysunspec2 model definitions:
- 704 WSet (int32, W, negative = charging) applies when WSetEna = ENABLED and WSetMod = WATTS;
  VarSet (Var) when VarSetEna = ENABLED and VarSetMod = VARS; VarSetPri = ACTIVE | REACTIVE |
  VENDOR is the current-limit priority; WRmp is in % of WMax per second (WRmpRef = W_MAX).
- 707/708: stored curves Crv[1..NCrvSet], each with MustTrip, MayTrip and MomCess sub-curves of
  NPt (V in % of nominal, Tms in s) points; AdptCrvReq = n adopts curve n as the active curve,
  which is Crv[1]; AdptCrvRslt reports IN_PROGRESS | COMPLETED | FAILED.
- 705 volt-var: stored curves Crv[1..NCrv] of NPt points (V in % of nominal voltage, Var in
  the unit DeptRef names: % of VarMax, VA max, W max or available vars); adoption as 707/708
  (AdptCrvReq / AdptCrvRslt, Crv[1] active); Ena switches the function.
- 711 frequency droop: stored controls Ctl[1..NCtl] with DbOf/DbUf (deadband, Hz), KOf/KUf
  ("per-unit frequency change ... corresponding to 1 per-unit power output change": droop % /
  100) and RspTms (open-loop response time, s). AdptCtlReq names the active control (0 = none),
  AdptCtlRslt reports the result; Ena switches the function.
- 715 OpCtl: STOP = 0, START = 1, ENTER_STANDBY = 2, EXIT_STANDBY = 3; AlarmReset 1 = reset;
  LocRemCtl LOCAL means the PCS refuses remote control.
- 701 InvSt + ThrotSrc + Alrm give the state; see `_state_from_701`.

With a vendor point map (the bench's `point_map` connection option, never chosen from the
identity the device reports), what SunSpec lacks comes from vendor points looked up by their
conventional names (dut/pointmaps/README.md): the precise state, current-limit and ride-through
flags, trip reason, DC voltage/current, temperature and the PCS's own time stamp, and the
grid-forming, smoothing, SOC band, dispatch, island and black-start controls, the event log
and the disturbance records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import (
    ControlNotAllowed,
    DutError,
    IDENTITY_FIELDS_COMPARED,
    IdentityMismatch,
    ModbusPointError,
    SetpointOutOfRange,
)
from .connection import open_transport, point_map_of, sunspec_bases
from .errors import NotSupportedByPcs
from .event_log import read_events_since
from .modbus_transport import ModbusTransport
from .pcs import (
    CONTROL_MODES,
    MISSION_PRIORITIES,
    Pcs,
    PcsEvent,
    PcsIdentity,
    PcsRatings,
    RecordInfo,
    FrequencyDroopSettings,
    RideThroughSettings,
    TelemetrySnapshot,
    VoltVarSettings,
    check_in_range,
)
from .pointmap import PointMap
from .records import RECORD_POINTS, ModbusFileRecordSource, RecordSource
from .sunspec import DEFAULT_BASE_ADDRESSES, SunSpecDevice, SunSpecModel
from .vendor_points import VendorPoints

# Alarms of 701 Alrm that mean the PCS tripped on its grid protection (not an internal fault).
GRID_TRIP_ALARMS = frozenset(
    {"AC_UNDER_VOLT", "AC_OVER_VOLT", "UNDER_FREQUENCY", "OVER_FREQUENCY", "GRID_DISCONNECT"}
)
RIDE_THROUGH_SOURCES = frozenset({"LVRT", "HVRT"})
# Internal temperatures that describe the PCS (ambient does not); the hottest one is reported.
PCS_TEMPERATURE_POINTS = ("TmpSw", "TmpSnk", "TmpTrns", "TmpCab", "TmpOt")
LIMIT_PRIORITY_SYMBOL = {"P": "ACTIVE", "Q": "REACTIVE", "mixed": "VENDOR"}
VENDOR_LIMIT_PRIORITY = {"P": "ACTIVE", "Q": "REACTIVE", "mixed": "MIXED"}
VENDOR_CONTROL_MODE = {"GFL": "GRID_FOLLOWING", "GFM_DROOP": "GRID_FORMING_DROOP",
                       "GFM_VSM": "GRID_FORMING_VSM"}
assert set(VENDOR_CONTROL_MODE) == set(CONTROL_MODES)
# Vendor telemetry points, read in one request when the map places them together.
VENDOR_TELEMETRY_POINTS = ("state", "current_limited", "ride_through_active", "trip_code",
                           "telemetry_time", "vdc", "idc", "temperature")
ADOPT_POLLS = 5
# Sanity bounds of the grid-support settings, checked before anything is written. The
# deadband bound is IEEE 1547-2018's largest allowed setting; a droop below 0.5 % (full power
# for 0.3 Hz at 60 Hz) or an instant response is refused as a likely unit mistake.
VV_V_PU_RANGE = (0.5, 1.5)
FREQ_DEADBAND_HZ_RANGE = (0.0, 1.0)
FREQ_DROOP_PCT_RANGE = (0.5, 100.0)
RESPONSE_TIME_S_RANGE = (0.01, 600.0)


class SunSpecPcs(Pcs):
    def __init__(
        self,
        transport: ModbusTransport,
        *,
        expected_identity: PcsIdentity | None,
        allow_control: bool,
        clock_now: Callable[[], float],
        base_addresses: tuple[int, ...] = DEFAULT_BASE_ADDRESSES,
        point_map: PointMap | None = None,
        record_source: RecordSource | None = None,
    ) -> None:
        self._transport = transport
        self._expected = expected_identity
        self._allow_control = allow_control
        self._clock_now = clock_now
        self._device = SunSpecDevice(transport, base_addresses=base_addresses)
        self._device.discover()
        self._identity_confirmed = False
        self._identity_refusal: IdentityMismatch | None = None
        self._ratings: PcsRatings | None = None
        self._vendor = VendorPoints(transport, point_map) if point_map is not None else None
        if self._vendor is not None:
            self._check_map_version()
        self._telemetry_points = tuple(
            name for name in VENDOR_TELEMETRY_POINTS if point_map is not None and point_map.has(name)
        )
        if record_source is None and point_map is not None and all(map(point_map.has, RECORD_POINTS)):
            record_source = ModbusFileRecordSource(transport, self._vendor)
        self._records = record_source

    @property
    def device(self) -> SunSpecDevice:
        """The SunSpec device, for diagnostics and vendor extensions (plans do not use it)."""
        return self._device

    @property
    def vendor(self) -> "_GatedVendorPoints | None":
        """The vendor points (point-by-point checks such as C1); writes pass the control gate."""
        return None if self._vendor is None else _GatedVendorPoints(self._vendor, self._require_control)

    def _check_map_version(self) -> None:
        assert self._vendor is not None
        point_map = self._vendor.map
        if point_map.version_point is None:
            return
        try:
            found = self._vendor.read_one(point_map.version_point)
        except ModbusPointError as exc:
            raise DutError(
                f"point map {point_map.name} does not fit {self._transport.device}: its "
                f"{point_map.version_point} point does not answer ({exc.message})"
            ) from None
        if found != point_map.version:
            raise DutError(
                f"point map {point_map.name} describes version {point_map.version} of the vendor "
                f"block, {self._transport.device} reports {point_map.version_point} = {found}"
            )

    # ------------------------------------------------------------------ identity and ratings
    def identity(self) -> PcsIdentity:
        common = self._device.model(1)
        common.read()
        return PcsIdentity(
            manufacturer=common.value("Mn") or "",
            model=common.value("Md") or "",
            serial=common.value("SN") or "",
            version=common.value("Vr"),
        )

    def verify_identity(self, expected: PcsIdentity) -> PcsIdentity:
        actual = self.identity()
        mismatch = IdentityMismatch(expected, actual)
        is_configured = self._expected is not None and all(
            getattr(expected, name) == getattr(self._expected, name) for name in IDENTITY_FIELDS_COMPARED
        )
        if mismatch.differing_fields:
            if is_configured:
                self._identity_refusal = mismatch  # latched: this connection never writes
            raise mismatch
        if is_configured:
            self._identity_confirmed = True
        return actual

    def ratings(self) -> PcsRatings:
        if self._ratings is None:
            self._ratings = self._read_ratings()
        return self._ratings

    def _read_ratings(self) -> PcsRatings:
        capacity = self._device.model(702)
        capacity.read()
        s_rated_va = capacity.value("VAMaxRtg")
        p_max_w = capacity.value("WMaxRtg")
        if s_rated_va is None or p_max_w is None:
            raise DutError(
                f"{self._transport.device} does not report VAMaxRtg/WMaxRtg in model 702; "
                "setpoints cannot be checked against ratings"
            )
        return PcsRatings(
            s_rated_va=s_rated_va,
            p_max_w=p_max_w,
            i_max_a=capacity.value("AMaxRtg"),
            v_nom_v=capacity.value("VNomRtg"),
            q_max_injected_var=capacity.value("VarMaxInjRtg"),
            q_max_absorbed_var=capacity.value("VarMaxAbsRtg"),
            p_charge_max_w=capacity.value("WChaRteMaxRtg"),
            p_discharge_max_w=capacity.value("WDisChaRteMaxRtg"),
            v_min_v=capacity.value("VMinRtg"),
            v_max_v=capacity.value("VMaxRtg"),
            abnormal_operation_category=capacity.symbol("AbnOpCatRtg"),
        )

    # ------------------------------------------------------------------ safety gate
    def _require_control(self) -> None:
        """Every write passes here first: allowed, identity confirmed, PCS in remote control."""
        if not self._allow_control:
            raise ControlNotAllowed(
                f"control of {self._transport.device} is not allowed: the connection is read-only "
                "(allow control in the bench file to command the PCS)"
            )
        if self._identity_refusal is not None:
            raise IdentityMismatch(self._identity_refusal.expected, self._identity_refusal.actual)
        if not self._identity_confirmed:
            if self._expected is None:
                raise ControlNotAllowed(
                    f"control of {self._transport.device} refused: no expected PCS identity is "
                    "configured, so the device cannot be confirmed"
                )
            self.verify_identity(self._expected)
        if self._device.has_model(715):
            control = self._device.model(715)
            control.read()
            if control.symbol("LocRemCtl") == "LOCAL":
                raise ControlNotAllowed(
                    f"{self._transport.device} is in LOCAL control mode (715 LocRemCtl); "
                    "it refuses remote commands"
                )

    # ------------------------------------------------------------------ operation
    def start(self) -> None:
        self._operation("START")

    def stop(self) -> None:
        self._operation("STOP")

    def standby(self) -> None:
        self._operation("ENTER_STANDBY")

    def exit_standby(self) -> None:
        self._operation("EXIT_STANDBY")

    def _operation(self, command: str) -> None:
        self._require_control()
        # A command register may return to idle once acted on, so it is not read back; the
        # plan confirms the effect from the telemetry state.
        self._device.model(715).write({"OpCtl": command}, verify=False)

    def reset_alarms(self) -> None:
        self._require_control()
        self._device.model(715).write({"AlarmReset": 1}, verify=False)

    # ------------------------------------------------------------------ setpoints
    def set_active_power_w(self, p_w: float) -> None:
        self._require_control()
        low, high = self.ratings().p_range_w
        check_in_range("active power setpoint", p_w, low, high, "W")
        controls = self._device.model(704)
        controls.read()
        self._write_enabled_setpoint(controls, "WSetEna", "WSetMod", "WATTS", "WSet", p_w)

    def set_reactive_power_var(self, q_var: float) -> None:
        self._require_control()
        low, high = self.ratings().q_range_var
        check_in_range("reactive power setpoint", q_var, low, high, "var")
        controls = self._device.model(704)
        controls.read()
        self._write_enabled_setpoint(controls, "VarSetEna", "VarSetMod", "VARS", "VarSet", q_var)

    @staticmethod
    def _write_enabled_setpoint(
        controls: SunSpecModel, enable: str, mode: str, mode_symbol: str, setpoint: str, value: float
    ) -> None:
        if controls.symbol(enable) == "ENABLED" and controls.symbol(mode) == mode_symbol:
            controls.write({setpoint: value})
            return
        values: dict[str, Any] = {enable: "ENABLED", mode: mode_symbol, setpoint: value}
        offsets = [controls.point(name).offset for name in (enable, mode)]
        setpoint_offset = controls.point(setpoint).offset
        if offsets == [setpoint_offset - 2, setpoint_offset - 1]:
            # Adjacent: one FC16 request applies them together, so the PCS never acts on a
            # stale setpoint with the function just enabled.
            controls.write(values)
            return
        # Otherwise the setpoint goes first, and the function is enabled once it holds.
        controls.write({setpoint: value})
        controls.write({enable: "ENABLED", mode: mode_symbol})

    def set_active_power_ramp_w_per_s(self, ramp_w_per_s: float) -> None:
        self._require_control()
        capacity = self._device.model(702)
        capacity.read()
        w_max_w = capacity.value("WMax") or self.ratings().p_max_w
        # WRmp is an unscaled integer in % of WMax per second: 1 %/s is the resolution.
        check_in_range("active power ramp", ramp_w_per_s, w_max_w / 100.0, 65534 * w_max_w / 100.0, "W/s")
        controls = self._device.model(704)
        controls.read()
        values: dict[str, Any] = {"WRmp": round(100.0 * ramp_w_per_s / w_max_w)}
        if controls.value("WRmpRef") is not None and controls.symbol("WRmpRef") != "W_MAX":
            values["WRmpRef"] = "W_MAX"
        controls.write(values)

    def set_limit_priority(self, priority: str) -> None:
        self._require_control()
        if priority not in LIMIT_PRIORITY_SYMBOL:
            raise SetpointOutOfRange(f"limit priority {priority!r} must be one of {sorted(LIMIT_PRIORITY_SYMBOL)}")
        if self._vendor is not None and self._vendor.map.has("limit_priority"):
            # The vendor point says "mixed" exactly; SunSpec can only say VENDOR.
            self._vendor_write({"limit_priority": VENDOR_LIMIT_PRIORITY[priority]})
            return
        self._device.model(704).write({"VarSetPri": LIMIT_PRIORITY_SYMBOL[priority]})

    # ------------------------------------------------------------------ ride-through
    def set_ride_through(self, settings: RideThroughSettings) -> None:
        self._require_control()
        plans = []
        for model_id, must_trip, mom_cess_v_pu in (
            (707, settings.lv_must_trip, settings.lv_mom_cess_v_pu),
            (708, settings.hv_must_trip, settings.hv_mom_cess_v_pu),
        ):
            if not must_trip and mom_cess_v_pu is None:
                continue
            model = self._device.model(model_id)
            curve_index, values = _trip_curve_values(model, must_trip, mom_cess_v_pu)
            model.check_encodable(values)  # both models validated before either is written
            plans.append((model, curve_index, values))
        for model, curve_index, values in plans:
            model.write(values)
            self._adopt_curve(model, curve_index, values)

    def _adopt_curve(
        self, model: SunSpecModel, curve_index: int, values: Mapping[str, Any], *, enable: bool = True
    ) -> None:
        # What was written (and verified) into the stored curve, register by register.
        written = _written_registers(model, values)
        model.write({"AdptCrvReq": curve_index}, verify=False)
        result = None
        for _ in range(ADOPT_POLLS):
            model.read()
            result = model.symbol("AdptCrvRslt")
            if result != "IN_PROGRESS":
                break
        if result != "COMPLETED":
            raise DutError(
                f"model {model.model_id} on {self._transport.device}: adopting curve {curve_index} "
                f"ended {result}"
            )
        wanted = "ENABLED" if enable else "DISABLED"
        if model.symbol("Ena") != wanted:
            model.write({"Ena": wanted})
        # The active curve (Crv[1]) must now hold what was written into the stored curve.
        prefix = f"Crv[{curve_index}]."
        self._check_active(model, {"Crv[1]." + path[len(prefix):]: words for path, words in written.items()},
                           f"active curve does not match adopted curve {curve_index} after AdptCrvReq")

    def _check_active(self, model: SunSpecModel, expected: Mapping[str, list[int]], message: str) -> None:
        """Raise unless each point of the last read holds the expected registers."""
        registers = model.registers or []
        for path, words in expected.items():
            point = model.point(path)
            if registers[point.offset : point.offset + point.size] != words:
                raise ModbusPointError(
                    f"{model.model_id}.{path}", model.register_of(path), self._transport.device, message
                )

    def ride_through(self) -> RideThroughSettings:
        lv_points, lv_mom_cess = self._active_trip_curve(707)
        hv_points, hv_mom_cess = self._active_trip_curve(708)
        return RideThroughSettings(
            lv_must_trip=lv_points,
            hv_must_trip=hv_points,
            lv_mom_cess_v_pu=lv_mom_cess,
            hv_mom_cess_v_pu=hv_mom_cess,
        )

    def _active_trip_curve(self, model_id: int) -> tuple[tuple[tuple[float, float], ...], float | None]:
        if not self._device.has_model(model_id):
            return (), None
        model = self._device.model(model_id)
        model.read()
        must_trip = _curve_points(model, "Crv[1].MustTrip")
        mom_cess = _curve_points(model, "Crv[1].MomCess")
        return must_trip, (mom_cess[0][0] if mom_cess else None)

    # ------------------------------------------------------------------ volt-var (705)
    def _grid_support_model(self, model_id: int, what: str) -> SunSpecModel:
        if not self._device.has_model(model_id):
            raise NotSupportedByPcs(
                f"{self._transport.device} has no SunSpec model {model_id}, so no {what} settings"
            )
        return self._device.model(model_id)

    def _var_bases(self) -> dict[str, tuple[float, float]]:
        """Per DeptRef symbol of 705: (injection, absorption) base in var of its percentages."""
        ratings = self.ratings()
        capacity = self._device.model(702)
        capacity.read()

        def first(*candidates: float | None) -> float:
            return next(float(c) for c in (*candidates, ratings.s_rated_va) if c)

        var_max = (first(capacity.value("VarMaxInj"), ratings.q_max_injected_var),
                   first(capacity.value("VarMaxAbs"), ratings.q_max_absorbed_var))
        va_max = first(capacity.value("VAMax"))
        w_max = first(capacity.value("WMax"), ratings.p_max_w)
        return {"VAR_MAX_PCT": var_max, "VA_MAX_PCT": (va_max, va_max), "W_MAX_PCT": (w_max, w_max)}

    def set_volt_var(self, settings: VoltVarSettings) -> None:
        self._require_control()
        model = self._grid_support_model(705, "volt-var")
        ratings = self.ratings()
        q_low, q_high = ratings.q_range_var
        points = tuple(sorted((float(v), float(q)) for v, q in settings.points))
        where = "volt-var curve"
        for v_pu, q_pu in points:
            check_in_range(f"{where} voltage", v_pu, *VV_V_PU_RANGE, "pu")
            check_in_range(f"{where} reactive power", q_pu, q_low / ratings.s_rated_va,
                           q_high / ratings.s_rated_va, "pu of rated VA")
        if any(b[0] <= a[0] for a, b in zip(points, points[1:])):
            raise SetpointOutOfRange(f"{where}: two points at the same voltage {points}")
        if any(b[1] > a[1] for a, b in zip(points, points[1:])):
            # A rising Q(V) would feed voltage deviations back (positive feedback).
            raise SetpointOutOfRange(f"{where}: reactive power must not rise with voltage {points}")
        model.read()
        point_count = int(model.value("NPt") or 0)
        if not 2 <= len(points) <= point_count:
            raise SetpointOutOfRange(
                f"{where}: {len(points)} points requested, the PCS takes 2..NPt={point_count}"
            )
        curve_index = _writable_stored_index(model, "NCrv", "Crv", active_index=1)
        inject_base, absorb_base = self._var_bases()["VAR_MAX_PCT"]
        prefix = f"Crv[{curve_index}]."
        values: dict[str, Any] = {prefix + "ActPt": len(points)}
        if model.symbol(prefix + "DeptRef") != "VAR_MAX_PCT":
            values[prefix + "DeptRef"] = "VAR_MAX_PCT"
        for number, (v_pu, q_pu) in enumerate(points, start=1):
            q_pct = 100.0 * q_pu * ratings.s_rated_va / (inject_base if q_pu > 0 else absorb_base)
            check_in_range(f"{where} reactive power", q_pct, -100.0, 100.0, "% of VarMax")
            values[f"{prefix}Pt[{number}].V"] = 100.0 * v_pu
            values[f"{prefix}Pt[{number}].Var"] = q_pct
        model.check_encodable(values)
        if not settings.enabled and model.symbol("Ena") != "DISABLED":
            model.write({"Ena": "DISABLED"})  # off before its curve changes
        model.write(values)
        self._adopt_curve(model, curve_index, values, enable=settings.enabled)

    def volt_var(self) -> VoltVarSettings:
        model = self._grid_support_model(705, "volt-var")
        model.read()
        reference = model.symbol("Crv[1].DeptRef")
        bases = self._var_bases()
        if reference not in bases:
            raise DutError(
                f"model 705 on {self._transport.device}: the active curve's reactive power is in "
                f"{reference} (DeptRef), which has no fixed value in per unit of rated VA"
            )
        inject_base, absorb_base = bases[reference]
        s_rated_va = self.ratings().s_rated_va
        points = []
        for index in range(1, int(model.value("Crv[1].ActPt") or 0) + 1):
            v_pct = model.value(f"Crv[1].Pt[{index}].V")
            q_pct = model.value(f"Crv[1].Pt[{index}].Var")
            if v_pct is None or q_pct is None:
                continue
            base = inject_base if q_pct > 0 else absorb_base
            points.append((round(v_pct / 100.0, 6), round(q_pct / 100.0 * base / s_rated_va, 6)))
        return VoltVarSettings(enabled=model.symbol("Ena") == "ENABLED", points=tuple(points))

    # ------------------------------------------------------------------ frequency droop (711)
    def set_frequency_droop(self, settings: FrequencyDroopSettings) -> None:
        self._require_control()
        model = self._grid_support_model(711, "frequency-droop")
        check_in_range("frequency droop deadband", settings.deadband_hz, *FREQ_DEADBAND_HZ_RANGE, "Hz")
        check_in_range("frequency droop", settings.droop_pct, *FREQ_DROOP_PCT_RANGE, "%")
        if settings.response_time_s is not None:
            check_in_range("frequency droop response time", settings.response_time_s,
                           *RESPONSE_TIME_S_RANGE, "s")
        model.read()
        active = int(model.value("AdptCtlReq") or 0)
        index = _writable_stored_index(model, "NCtl", "Ctl", active_index=active)
        prefix = f"Ctl[{index}]."
        k_pu = settings.droop_pct / 100.0  # per-unit frequency change for 1 pu power change
        values: dict[str, Any] = {
            prefix + "DbOf": settings.deadband_hz, prefix + "DbUf": settings.deadband_hz,
            prefix + "KOf": k_pu, prefix + "KUf": k_pu,
        }
        if settings.response_time_s is not None:
            values[prefix + "RspTms"] = settings.response_time_s
        model.check_encodable(values)
        if not settings.enabled and model.symbol("Ena") != "DISABLED":
            model.write({"Ena": "DISABLED"})  # off before its control changes
        model.write(values)
        written = _written_registers(model, values)
        # AdptCtlReq names the active control and reads it back once taken.
        model.write({"AdptCtlReq": index}, verify=False)
        result = None
        for _ in range(ADOPT_POLLS):
            model.read()
            result = model.symbol("AdptCtlRslt")
            if result != "IN_PROGRESS":
                break
        if result != "COMPLETED" or model.value("AdptCtlReq") != index:
            raise DutError(
                f"model 711 on {self._transport.device}: activating control {index} ended {result} "
                f"(active control {model.value('AdptCtlReq')})"
            )
        self._check_active(model, written, f"active control {index} does not hold what was written")
        wanted = "ENABLED" if settings.enabled else "DISABLED"
        if model.symbol("Ena") != wanted:
            model.write({"Ena": wanted})

    def frequency_droop(self) -> FrequencyDroopSettings:
        """The active control; with none active (AdptCtlReq 0) the first, reported disabled."""
        model = self._grid_support_model(711, "frequency-droop")
        model.read()
        active = int(model.value("AdptCtlReq") or 0)
        has_active = 1 <= active <= int(model.value("NCtl") or 0)
        prefix = f"Ctl[{active if has_active else 1}]."
        deadbands = {model.value(prefix + name) for name in ("DbOf", "DbUf")}
        gains = {model.value(prefix + name) for name in ("KOf", "KUf")}
        if len(deadbands) != 1 or len(gains) != 1 or None in deadbands or None in gains:
            raise DutError(
                f"model 711 on {self._transport.device}: {prefix} deadbands {sorted(map(str, deadbands))}"
                f" and droops {sorted(map(str, gains))} are not one symmetric setting"
            )
        return FrequencyDroopSettings(
            enabled=has_active and model.symbol("Ena") == "ENABLED",
            deadband_hz=deadbands.pop(),
            droop_pct=round(100.0 * gains.pop(), 6),
            response_time_s=model.value(prefix + "RspTms"),
        )

    # ------------------------------------------------------------------ telemetry
    def telemetry(self) -> TelemetrySnapshot:
        timestamp_s = self._clock_now()
        measurement = self._device.model(701)
        measurement.read()
        value = measurement.value
        state, device_state, trip_reason = _state_from_701(measurement)
        throttle_sources = measurement.bits("ThrotSrc") if value("ThrotSrc") is not None else None
        soc_pct = self._optional_value(713, "SoC")
        vdc_v = idc_a = None
        if not {"vdc", "idc"} <= set(self._telemetry_points or ()):
            vdc_v, idc_a = self._optional_values(714, "Prt[1].DCV", "DCA")   # one read of 714
        temperatures = [value(name) for name in PCS_TEMPERATURE_POINTS if value(name) is not None]
        v_ln = (value("VL1"), value("VL2"), value("VL3"))
        i_ph = (value("AL1"), value("AL2"), value("AL3"))
        current_limited = None  # SunSpec has no current-limit flag; needs a vendor point
        ride_through_active = (
            None if throttle_sources is None else bool(throttle_sources & RIDE_THROUGH_SOURCES)
        )
        temperature_c = max(temperatures) if temperatures else None
        device_time_s = None
        if self._telemetry_points:
            vendor = self._vendor.read(self._telemetry_points)  # type: ignore[union-attr]
            state = _symbol_or(vendor, "state", state)
            current_limited = _flag_or(vendor, "current_limited", current_limited)
            ride_through_active = _flag_or(vendor, "ride_through_active", ride_through_active)
            if "trip_code" in vendor:
                trip_reason = None if vendor["trip_code"] in ("NONE", 0) else str(vendor["trip_code"])
            vdc_v = vendor.get("vdc", vdc_v)
            idc_a = vendor.get("idc", idc_a)
            temperature_c = vendor.get("temperature", temperature_c)
            device_time_s = vendor.get("telemetry_time")
        return TelemetrySnapshot(
            timestamp_s=timestamp_s,
            state=state,
            v_ln_rms_v=None if all(v is None for v in v_ln) else v_ln,
            v_ll_rms_v=value("LLV"),
            i_rms_a=None if all(i is None for i in i_ph) else i_ph,
            p_w=value("W"),
            q_var=value("Var"),
            s_va=value("VA"),
            pf=value("PF"),
            freq_hz=value("Hz"),
            vdc_v=vdc_v,
            idc_a=idc_a,
            soc_pct=soc_pct,
            temperature_c=temperature_c,
            current_limited=current_limited,
            ride_through_active=ride_through_active,
            trip_reason=trip_reason,
            alarms=_alarm_names(measurement),
            device_state=device_state,
            device_time_s=device_time_s,
        )

    def _optional_value(self, model_id: int, path: str) -> Any:
        """A value from a model the PCS may lack or refuse; None rather than a failed read."""
        return self._optional_values(model_id, path)[0]

    def _optional_values(self, model_id: int, *paths: str) -> tuple[Any, ...]:
        """Values of one read of a model the PCS may lack or refuse; None where unavailable."""
        missing = (None,) * len(paths)
        if not self._device.has_model(model_id):
            return missing
        model = self._device.model(model_id)
        if not model.available:
            return missing
        try:
            model.read()
        except ModbusPointError as exc:
            if exc.exception_code is None:
                raise  # the device stopped answering: that is not a missing model
            return missing
        values = []
        for path in paths:
            try:
                values.append(model.value(path))
            except DutError:
                values.append(None)  # e.g. a model revision without this point
        return tuple(values)

    def alarms(self) -> tuple[str, ...]:
        measurement = self._device.model(701)
        measurement.read()
        return _alarm_names(measurement)

    def close(self) -> None:
        self._transport.close()

    # ------------------------------------------------------------------ vendor functions
    def _vendor_points_for(self, what: str, *names: str) -> VendorPoints:
        """The vendor points, or a clear error when the map lacks any of `names`."""
        if self._vendor is None:
            raise NotSupportedByPcs(
                f"{self._transport.device}: no point map is configured, so there is no {what} "
                "(set point_map in the bench's PCS connection)"
            )
        missing = [name for name in names if not self._vendor.map.has(name)]
        if missing:
            raise NotSupportedByPcs(
                f"this PCS's point map ({self._vendor.map.name}) has no {what} (missing {missing})"
            )
        return self._vendor

    def _vendor_write(self, values: Mapping[str, Any], *, what: str | None = None) -> None:
        """The vendor write path: points exist, control gate, every value checked, then written."""
        vendor = self._vendor_points_for(what or "+".join(values), *values)
        self._require_control()
        vendor.check(values)
        vendor.write(values)

    def set_control_mode(self, mode: str) -> None:
        self._vendor_points_for("control mode point", "control_mode")
        if mode not in VENDOR_CONTROL_MODE:
            raise SetpointOutOfRange(f"control mode {mode!r} must be one of {', '.join(CONTROL_MODES)}")
        self._vendor_write({"control_mode": VENDOR_CONTROL_MODE[mode]})

    def set_k_factor(self, k_pu_per_pu: float) -> None:
        self._vendor_write({"k_factor": k_pu_per_pu}, what="k-factor point")

    def set_droop(self, f_pct: float, v_pct: float) -> None:
        self._vendor_write({"droop_f": f_pct, "droop_v": v_pct}, what="droop points")

    def set_smoothing(self, enabled: bool, ramp_pu_per_s: float | None = None) -> None:
        values: dict[str, Any] = {"smoothing_enable": "ENABLED" if enabled else "DISABLED"}
        if ramp_pu_per_s is not None:
            values["smoothing_ramp"] = 100.0 * ramp_pu_per_s  # the point is in % of rating per s
        self._vendor_write(values, what="load-smoothing points")

    def set_soc_band(self, min_pct: float, max_pct: float) -> None:
        vendor = self._vendor_points_for("state-of-charge band points", "soc_min", "soc_max")
        if not min_pct < max_pct:
            raise SetpointOutOfRange(f"SOC band {min_pct:g}..{max_pct:g} %: the minimum must be below the maximum")
        self._require_control()
        vendor.check({"soc_min": min_pct, "soc_max": max_pct})
        # The PCS keeps soc_min below soc_max at every write, so the band moves one end at a
        # time in the order that keeps it valid (raising: the top first).
        current_max = vendor.read_one("soc_max")
        order = ("soc_max", "soc_min") if min_pct >= current_max else ("soc_min", "soc_max")
        wanted = {"soc_min": min_pct, "soc_max": max_pct}
        for name in order:
            vendor.write({name: wanted[name]})

    def set_mission_priority(self, first: str) -> None:
        self._vendor_points_for("mission priority point", "mission_priority")
        if first not in MISSION_PRIORITIES:
            raise SetpointOutOfRange(f"mission priority {first!r} must be one of {', '.join(MISSION_PRIORITIES)}")
        self._vendor_write({"mission_priority": first})

    def dispatch(self, target_w: float, within_s: float) -> None:
        vendor = self._vendor_points_for("demand-response dispatch points", "dr_target", "dr_time", "dr_execute")
        self._require_control()
        low, high = self.ratings().p_range_w
        check_in_range("demand-response target", target_w, low, high, "W")
        vendor.check({"dr_target": target_w, "dr_time": within_s, "dr_execute": "EXECUTE"})
        vendor.write({"dr_target": target_w, "dr_time": within_s})
        # The execute command reads 0 once taken, so it is not read back.
        vendor.write({"dr_execute": "EXECUTE"}, verify=False)

    def black_start(self) -> None:
        self._vendor_write({"black_start": "START"}, what="black-start command")

    def island(self) -> None:
        self._vendor_write({"island_request": "ISLANDED"}, what="island-transfer command")

    def reconnect(self) -> None:
        self._vendor_write({"island_request": "CONNECTED"}, what="island-transfer command")

    def events_since(self, t_s: float) -> list[PcsEvent]:
        vendor = self._vendor_points_for("event log points", "event_count", "event_select")
        # Reading the log means writing its select register: gated like any write.
        self._require_control()
        return read_events_since(vendor, t_s)

    def disturbance_records(self) -> list[RecordInfo]:
        source = self._record_source()
        if isinstance(source, ModbusFileRecordSource):
            self._require_control()  # listing selects records by writing record_select
        return source.list_records()

    def fetch_record(self, info: RecordInfo) -> tuple[str, bytes]:
        return self._record_source().fetch(info)

    def _record_source(self) -> RecordSource:
        if self._records is None:
            self._vendor_points_for("disturbance record points", *RECORD_POINTS)
            raise NotSupportedByPcs(f"{self._transport.device} has no disturbance record source")
        return self._records


# ---------------------------------------------------------------------------- helpers
def _symbol_or(values: Mapping[str, Any], name: str, default: Any) -> Any:
    value = values.get(name, default)
    return value if isinstance(value, str) or value is None else f"CODE_{value}"


def _flag_or(values: Mapping[str, Any], name: str, default: bool | None) -> bool | None:
    if name not in values:
        return default
    value = values[name]
    return value == "YES" if isinstance(value, str) else bool(value)


def _state_from_701(measurement: SunSpecModel) -> tuple[str | None, str | None, str | None]:
    """(state, device state, trip reason) from InvSt, ThrotSrc and Alrm.

    THROTTLED by LVRT/HVRT is read as momentary cessation; a stopped or faulted PCS with a
    grid-protection alarm (under/over voltage or frequency, grid disconnect) as TRIPPED.
    """
    device_state = measurement.symbol("InvSt")
    alarms = measurement.bits("Alrm")
    trip_alarms = sorted(alarms & GRID_TRIP_ALARMS)
    throttle = measurement.bits("ThrotSrc")
    if device_state is None:
        return None, None, None
    if device_state == "RUNNING":
        return "RUNNING", device_state, None
    if device_state == "THROTTLED":
        if throttle & RIDE_THROUGH_SOURCES:
            return "MOMENTARY_CESSATION", device_state, None
        return "RUNNING", device_state, None
    if device_state == "STARTING":
        return "STARTING", device_state, None
    if trip_alarms:
        return "TRIPPED", device_state, ", ".join(trip_alarms)
    if device_state == "FAULT":
        return "FAULT", device_state, None
    if device_state == "STANDBY":
        return "STANDBY", device_state, None
    return "OFF", device_state, None  # OFF, SLEEPING, SHUTTING_DOWN


def _alarm_names(measurement: SunSpecModel) -> tuple[str, ...]:
    names = sorted(measurement.bits("Alrm"))
    vendor_text = measurement.value("MnAlrmInfo")
    if vendor_text:
        names.append(f"MANUFACTURER: {vendor_text}")
    return tuple(names)


def _curve_points(model: SunSpecModel, curve: str) -> tuple[tuple[float, float], ...]:
    active = model.value(f"{curve}.ActPt") or 0
    points = []
    for index in range(1, int(active) + 1):
        v_pct = model.value(f"{curve}.Pt[{index}].V")
        t_s = model.value(f"{curve}.Pt[{index}].Tms")
        if v_pct is None or t_s is None:
            continue
        points.append((round(v_pct / 100.0, 6), t_s))
    return tuple(points)


def _writable_stored_index(model: SunSpecModel, count_point: str, group: str, active_index: int) -> int:
    """A writable stored curve/control of a model just read, preferring one that is not active
    (written, then adopted: the SunSpec adopt procedure)."""
    count = int(model.value(count_point) or 0)
    where = f"model {model.model_id}"
    if count < 1:
        raise DutError(f"{where} reports no stored {group} sets ({count_point}={count})")
    writable = [index for index in range(1, count + 1) if model.symbol(f"{group}[{index}].ReadOnly") != "R"]
    candidates = [index for index in writable if index != active_index] or writable
    if not candidates:
        raise DutError(f"{where} has no writable {group} set (all {count} are read-only)")
    return candidates[0]


def _written_registers(model: SunSpecModel, values: Mapping[str, Any]) -> dict[str, list[int]]:
    """The registers of the points just written (write() keeps them in the model's copy)."""
    registers = model.registers or []
    points = {path: model.point(path) for path in values}
    return {path: list(registers[p.offset : p.offset + p.size]) for path, p in points.items()}


def _trip_curve_values(
    model: SunSpecModel,
    must_trip: tuple[tuple[float, float], ...],
    mom_cess_v_pu: float | None,
) -> tuple[int, dict[str, Any]]:
    """Choose a writable stored curve of a 707/708 model and the point values to write into it."""
    model.read()
    curve_index = _writable_stored_index(model, "NCrvSet", "Crv", active_index=1)
    point_count = int(model.value("NPt") or 0)
    where = f"model {model.model_id}"
    if len(must_trip) > point_count:
        raise SetpointOutOfRange(
            f"{where}: {len(must_trip)} must-trip points requested, the PCS supports NPt={point_count}"
        )
    for v_pu, t_s in must_trip:
        check_in_range(f"{where} must-trip voltage", v_pu, 0.0, 2.0, "pu")
        check_in_range(f"{where} must-trip time", t_s, 0.0, 1e6, "s")
    prefix = f"Crv[{curve_index}]."
    values: dict[str, Any] = {}
    if must_trip:
        values[prefix + "MustTrip.ActPt"] = len(must_trip)
        for number, (v_pu, t_s) in enumerate(sorted(must_trip), start=1):
            values[f"{prefix}MustTrip.Pt[{number}].V"] = 100.0 * v_pu
            values[f"{prefix}MustTrip.Pt[{number}].Tms"] = t_s
    if mom_cess_v_pu is not None:
        check_in_range(f"{where} momentary-cessation voltage", mom_cess_v_pu, 0.0, 2.0, "pu")
        if point_count < 1:
            raise SetpointOutOfRange(f"{where}: no curve points for momentary cessation")
        # One point at zero time: current ceases as soon as V crosses the threshold.
        values[prefix + "MomCess.ActPt"] = 1
        values[prefix + "MomCess.Pt[1].V"] = 100.0 * mom_cess_v_pu
        values[prefix + "MomCess.Pt[1].Tms"] = 0.0
    return curve_index, values


# ---------------------------------------------------------------------------- factory
def connect_pcs(
    connection: Mapping[str, Any],
    *,
    expected_identity: PcsIdentity | None,
    allow_control: bool,
    clock_now: Callable[[], float],
) -> SunSpecPcs:
    """Open the PCS named by a bench-file connection table, discover SunSpec, check identity.

    With an expected identity the check happens here, so a wrong PCS on the bench stops the
    session before any plan runs, read-only or not. A `point_map` option ("vpcs250" or a path)
    adds the vendor points; an invalid map stops here too, before the device is touched.
    """
    point_map = point_map_of(connection)
    transport = open_transport(connection)
    # Defence in depth: without control the transport itself refuses writes.
    transport.read_only = not allow_control
    try:
        pcs = SunSpecPcs(
            transport,
            expected_identity=expected_identity,
            allow_control=allow_control,
            clock_now=clock_now,
            base_addresses=sunspec_bases(connection),
            point_map=point_map,
        )
        if expected_identity is not None:
            pcs.verify_identity(expected_identity)
    except BaseException:
        transport.close()
        raise
    return pcs


class _GatedVendorPoints:
    """Vendor points as a plan sees them: reads as they are, every write through the same gate
    as the PCS's own setters (control allowed, identity confirmed, PCS in remote)."""

    def __init__(self, points: VendorPoints, require_control: Callable[[], None]) -> None:
        self._points = points
        self._require_control = require_control

    def write(self, values: Mapping[str, Any], verify: bool = True) -> None:
        self._require_control()
        self._points.write(values, verify=verify)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._points, name)
