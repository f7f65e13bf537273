"""The PCS interface over SunSpec models (1, 701, 702, 704, 707, 708, 713, 714, 715).

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
- 715 OpCtl: STOP = 0, START = 1, ENTER_STANDBY = 2, EXIT_STANDBY = 3; AlarmReset 1 = reset;
  LocRemCtl LOCAL means the PCS refuses remote control.
- 701 InvSt + ThrotSrc + Alrm give the state; see `_state_from_701`.
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
from .modbus_transport import ModbusTransport
from .pcs import (
    Pcs,
    PcsIdentity,
    PcsRatings,
    RideThroughSettings,
    TelemetrySnapshot,
    check_in_range,
)
from .sunspec import DEFAULT_BASE_ADDRESSES, SunSpecDevice, SunSpecModel

# Alarms of 701 Alrm that mean the PCS tripped on its grid protection (not an internal fault).
GRID_TRIP_ALARMS = frozenset(
    {"AC_UNDER_VOLT", "AC_OVER_VOLT", "UNDER_FREQUENCY", "OVER_FREQUENCY", "GRID_DISCONNECT"}
)
RIDE_THROUGH_SOURCES = frozenset({"LVRT", "HVRT"})
# Internal temperatures that describe the PCS (ambient does not); the hottest one is reported.
PCS_TEMPERATURE_POINTS = ("TmpSw", "TmpSnk", "TmpTrns", "TmpCab", "TmpOt")
LIMIT_PRIORITY_SYMBOL = {"P": "ACTIVE", "Q": "REACTIVE", "mixed": "VENDOR"}
ADOPT_POLLS = 5


class SunSpecPcs(Pcs):
    def __init__(
        self,
        transport: ModbusTransport,
        *,
        expected_identity: PcsIdentity | None,
        allow_control: bool,
        clock_now: Callable[[], float],
        base_addresses: tuple[int, ...] = DEFAULT_BASE_ADDRESSES,
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

    @property
    def device(self) -> SunSpecDevice:
        """The SunSpec device, for diagnostics and vendor extensions (plans do not use it)."""
        return self._device

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

    def _adopt_curve(self, model: SunSpecModel, curve_index: int, values: Mapping[str, Any]) -> None:
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
        if model.symbol("Ena") != "ENABLED":
            model.write({"Ena": "ENABLED"})
        # The active curve (Crv[1]) must now hold what was written into the stored curve.
        prefix = f"Crv[{curve_index}]."
        for path in values:
            active_path = "Crv[1]." + path[len(prefix):]
            written = model.point(path)
            active = model.point(active_path)
            registers = model.registers or []
            if (
                registers[written.offset : written.offset + written.size]
                != registers[active.offset : active.offset + active.size]
            ):
                raise ModbusPointError(
                    f"{model.model_id}.{active_path}",
                    model.register_of(active_path),
                    self._transport.device,
                    f"active curve does not match adopted curve {curve_index} after AdptCrvReq",
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

    # ------------------------------------------------------------------ telemetry
    def telemetry(self) -> TelemetrySnapshot:
        timestamp_s = self._clock_now()
        measurement = self._device.model(701)
        measurement.read()
        value = measurement.value
        state, device_state, trip_reason = _state_from_701(measurement)
        throttle_sources = measurement.bits("ThrotSrc") if value("ThrotSrc") is not None else None
        soc_pct = self._optional_value(713, "SoC")
        vdc_v = self._optional_value(714, "Prt[1].DCV")
        idc_a = self._optional_value(714, "DCA")
        temperatures = [value(name) for name in PCS_TEMPERATURE_POINTS if value(name) is not None]
        v_ln = (value("VL1"), value("VL2"), value("VL3"))
        i_ph = (value("AL1"), value("AL2"), value("AL3"))
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
            temperature_c=max(temperatures) if temperatures else None,
            current_limited=None,  # SunSpec has no current-limit flag; needs a vendor point
            ride_through_active=(
                None if throttle_sources is None else bool(throttle_sources & RIDE_THROUGH_SOURCES)
            ),
            trip_reason=trip_reason,
            alarms=_alarm_names(measurement),
            device_state=device_state,
        )

    def _optional_value(self, model_id: int, path: str) -> Any:
        """A value from a model the PCS may lack or refuse; None rather than a failed read."""
        if not self._device.has_model(model_id):
            return None
        model = self._device.model(model_id)
        if not model.available:
            return None
        try:
            model.read()
            return model.value(path)
        except ModbusPointError as exc:
            if exc.exception_code is None:
                raise  # the device stopped answering: that is not a missing model
            return None
        except DutError:
            return None  # e.g. a model revision without this point

    def alarms(self) -> tuple[str, ...]:
        measurement = self._device.model(701)
        measurement.read()
        return _alarm_names(measurement)

    def close(self) -> None:
        self._transport.close()


# ---------------------------------------------------------------------------- helpers
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


def _trip_curve_values(
    model: SunSpecModel,
    must_trip: tuple[tuple[float, float], ...],
    mom_cess_v_pu: float | None,
) -> tuple[int, dict[str, Any]]:
    """Choose a writable stored curve of a 707/708 model and the point values to write into it."""
    model.read()
    curve_count = int(model.value("NCrvSet") or 0)
    point_count = int(model.value("NPt") or 0)
    where = f"model {model.model_id}"
    if curve_count < 1:
        raise DutError(f"{where} reports no curves (NCrvSet={curve_count})")
    writable = [
        index
        for index in range(1, curve_count + 1)
        if model.symbol(f"Crv[{index}].ReadOnly") != "R"
    ]
    # Prefer a stored curve other than the active one, then adopt it (SunSpec adopt procedure).
    candidates = [index for index in writable if index > 1] or writable
    if not candidates:
        raise DutError(f"{where} has no writable curve (all {curve_count} are read-only)")
    curve_index = candidates[0]
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
_TCP_KEYS = {"transport", "host", "port", "device_id", "timeout_s", "retries",
             "fc6_for_single_register", "base_address"}
_RTU_KEYS = {"transport", "port", "baudrate", "parity", "stopbits", "bytesize", "device_id",
             "timeout_s", "retries", "inter_frame_delay_s", "fc6_for_single_register", "base_address"}


def connect_pcs(
    connection: Mapping[str, Any],
    *,
    expected_identity: PcsIdentity | None,
    allow_control: bool,
    clock_now: Callable[[], float],
) -> SunSpecPcs:
    """Open the PCS named by a bench-file connection table, discover SunSpec, check identity.

    With an expected identity the check happens here, so a wrong PCS on the bench stops the
    session before any plan runs, read-only or not.
    """
    kind = connection.get("transport")
    if kind == "tcp":
        _check_keys(connection, _TCP_KEYS, required={"host"})
        transport = ModbusTransport.tcp(
            connection["host"],
            int(connection.get("port", 502)),
            device_id=int(connection.get("device_id", 1)),
            timeout_s=float(connection.get("timeout_s", 1.0)),
            retries=int(connection.get("retries", 2)),
            fc6_for_single_register=bool(connection.get("fc6_for_single_register", False)),
        )
    elif kind == "rtu":
        _check_keys(connection, _RTU_KEYS, required={"port"})
        transport = ModbusTransport.rtu(
            str(connection["port"]),
            baudrate=int(connection.get("baudrate", 19200)),
            parity=str(connection.get("parity", "E")),
            stopbits=int(connection.get("stopbits", 1)),
            bytesize=int(connection.get("bytesize", 8)),
            device_id=int(connection.get("device_id", 1)),
            timeout_s=float(connection.get("timeout_s", 1.0)),
            retries=int(connection.get("retries", 2)),
            inter_frame_delay_s=connection.get("inter_frame_delay_s"),
            fc6_for_single_register=bool(connection.get("fc6_for_single_register", False)),
        )
    else:
        raise DutError(f"PCS connection transport must be 'tcp' or 'rtu', got {kind!r}")
    base = connection.get("base_address")
    bases = DEFAULT_BASE_ADDRESSES if base is None else (int(base),)
    transport.connect()
    try:
        pcs = SunSpecPcs(
            transport,
            expected_identity=expected_identity,
            allow_control=allow_control,
            clock_now=clock_now,
            base_addresses=bases,
        )
        if expected_identity is not None:
            pcs.verify_identity(expected_identity)
    except BaseException:
        transport.close()
        raise
    return pcs


def _check_keys(connection: Mapping[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(connection) - allowed)
    missing = sorted(required - set(connection))
    problems = []
    if unknown:
        problems.append(f"unknown keys {unknown} (allowed: {sorted(allowed)})")
    if missing:
        problems.append(f"missing keys {missing}")
    if problems:
        raise DutError(f"PCS connection {connection.get('transport')!r}: " + "; ".join(problems))
