"""The protocol-neutral PCS interface that test plans use.

A plan talks about watts, vars, per-unit voltages and seconds; it never sees a register
address or a protocol. Implementations (SunSpec over Modbus today, vendor maps later) check
setpoints against the PCS ratings before anything is sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from .errors import NotSupportedByPcs, SetpointOutOfRange


@dataclass(frozen=True)
class PcsIdentity:
    manufacturer: str
    model: str
    serial: str
    version: str | None = None  # firmware; reported, not compared


@dataclass(frozen=True)
class PcsRatings:
    """Nameplate ratings as the PCS reports them (None where it does not)."""

    s_rated_va: float
    p_max_w: float
    i_max_a: float | None
    v_nom_v: float | None  # nominal AC voltage as reported (line-to-line for three-phase PCS)
    q_max_injected_var: float | None = None
    q_max_absorbed_var: float | None = None
    p_charge_max_w: float | None = None
    p_discharge_max_w: float | None = None
    v_min_v: float | None = None
    v_max_v: float | None = None
    abnormal_operation_category: str | None = None  # "CAT_1" | "CAT_2" | "CAT_3"

    @property
    def p_range_w(self) -> tuple[float, float]:
        """Allowed active power setpoints: charging negative, discharging positive."""
        charge = self.p_charge_max_w if self.p_charge_max_w is not None else self.p_max_w
        discharge = self.p_discharge_max_w if self.p_discharge_max_w is not None else self.p_max_w
        return (-charge, discharge)

    @property
    def q_range_var(self) -> tuple[float, float]:
        """Allowed reactive power setpoints: absorbing negative, injecting positive."""
        absorbed = self.q_max_absorbed_var if self.q_max_absorbed_var is not None else self.s_rated_va
        injected = self.q_max_injected_var if self.q_max_injected_var is not None else self.s_rated_va
        return (-absorbed, injected)


# States a PCS can report. The first six are the plant's vocabulary; STANDBY is the SunSpec
# standby state, which the plant's vocabulary does not have.
PCS_STATES = ("OFF", "STARTING", "RUNNING", "MOMENTARY_CESSATION", "TRIPPED", "FAULT", "STANDBY")


@dataclass(frozen=True)
class TelemetrySnapshot:
    """One telemetry read. Fields the device does not report are None.

    Sign convention: p_w > 0 exports (discharges) to the AC side; q_var > 0 injects reactive
    power (capacitive, supporting voltage).
    """

    timestamp_s: float  # bench clock at the read, not the PC clock
    state: str | None
    v_ln_rms_v: tuple[float | None, float | None, float | None] | None
    v_ll_rms_v: float | None
    i_rms_a: tuple[float | None, float | None, float | None] | None
    p_w: float | None
    q_var: float | None
    s_va: float | None
    pf: float | None
    freq_hz: float | None
    vdc_v: float | None
    idc_a: float | None
    soc_pct: float | None
    temperature_c: float | None
    current_limited: bool | None
    ride_through_active: bool | None
    trip_reason: str | None
    alarms: tuple[str, ...] = ()
    device_state: str | None = None  # the state exactly as the device names it, for evidence
    device_time_s: float | None = None  # the PCS's own clock at the values, where it reports it


@dataclass(frozen=True)
class PcsEvent:
    """One entry of the PCS's event log, time on the PCS clock (as device_time_s)."""

    time_s: float
    code: str  # STATE | TRIP | LIMIT_ENTER | LIMIT_EXIT | RT_ENTER | RT_EXIT | MC_ENTER | ...
    value: int  # STATE: the new state code; TRIP: the trip code; others 0


@dataclass(frozen=True)
class RecordInfo:
    """One disturbance record (COMTRADE) the PCS holds."""

    index: int  # position in the device's list, 1 = oldest held
    trigger_time_s: float | None  # PCS clock
    cause: str | None  # FAULT | TRIP | LIMIT_ENTER | PHASE_JUMP | ...
    file_number: int | None = None  # Modbus FC20: the .cfg file; the .dat is file_number + 1
    location: str | None = None  # records published another way: a path or URL


# Control modes a plan may ask for; a point map translates them into vendor codes.
CONTROL_MODES = ("GFL", "GFM_DROOP", "GFM_VSM")
# Mission priorities, named by the mission served first.
MISSION_PRIORITIES = ("RIDE_THROUGH_RESERVE", "DEMAND_RESPONSE", "SMOOTHING")


@dataclass(frozen=True)
class RideThroughSettings:
    """Voltage ride-through as trip curves (the semantics the simulated PCS follows too).

    lv_must_trip: (v_pu, t_s) points: trip when the lowest phase voltage stays below v_pu for
    longer than t_s. hv_must_trip likewise above. Current ceases while V < lv_mom_cess_v_pu or
    V > hv_mom_cess_v_pu and resumes after.
    """

    lv_must_trip: tuple[tuple[float, float], ...] = field(default_factory=tuple)
    hv_must_trip: tuple[tuple[float, float], ...] = field(default_factory=tuple)
    lv_mom_cess_v_pu: float | None = None
    hv_mom_cess_v_pu: float | None = None


@dataclass(frozen=True)
class VoltVarSettings:
    """Volt-var: reactive power as a piecewise-linear function of voltage.

    points: (v_pu, q_pu) pairs, v in per unit of nominal voltage, q in per unit of the rated
    apparent power (PcsRatings.s_rated_va); q > 0 injects reactive power (supports voltage).
    """

    enabled: bool
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class FrequencyDroopSettings:
    """Frequency droop (frequency-watt): active power response outside a deadband.

    deadband_hz applies on both sides of nominal; droop_pct is the frequency change, in % of
    nominal frequency, that moves the active power by 1 pu (5 % = full power over 3 Hz at
    60 Hz). response_time_s is the open-loop response time (None: leave / not reported).
    """

    enabled: bool
    deadband_hz: float
    droop_pct: float
    response_time_s: float | None = None


def check_in_range(name: str, value: float, low: float, high: float, unit: str) -> None:
    """Raise SetpointOutOfRange unless low <= value <= high."""
    if not low <= value <= high:
        raise SetpointOutOfRange(f"{name} = {value:g} {unit} is outside {low:g}..{high:g} {unit}")


class Pcs(ABC):
    """What a plan may ask of the PCS under test."""

    @abstractmethod
    def identity(self) -> PcsIdentity: ...

    @abstractmethod
    def ratings(self) -> PcsRatings: ...

    @abstractmethod
    def verify_identity(self, expected: PcsIdentity) -> PcsIdentity:
        """Read the identity; raise IdentityMismatch unless manufacturer, model, serial match."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def standby(self) -> None: ...

    @abstractmethod
    def set_active_power_w(self, p_w: float) -> None: ...

    @abstractmethod
    def set_reactive_power_var(self, q_var: float) -> None: ...

    @abstractmethod
    def set_active_power_ramp_w_per_s(self, ramp_w_per_s: float) -> None: ...

    @abstractmethod
    def set_ride_through(self, settings: RideThroughSettings) -> None: ...

    @abstractmethod
    def ride_through(self) -> RideThroughSettings: ...

    # Grid-support functions a PCS may lack: the defaults refuse plainly.
    def _function_not_supported(self, what: str) -> NotSupportedByPcs:
        return NotSupportedByPcs(f"{type(self).__name__}: this PCS interface does not support {what}")

    def set_volt_var(self, settings: VoltVarSettings) -> None:
        """Write and activate a volt-var curve, and enable or disable the function."""
        raise self._function_not_supported("volt-var settings")

    def volt_var(self) -> VoltVarSettings:
        """The active volt-var curve and whether the function is enabled."""
        raise self._function_not_supported("volt-var settings")

    def set_frequency_droop(self, settings: FrequencyDroopSettings) -> None:
        """Write and activate frequency-droop settings, and enable or disable the function."""
        raise self._function_not_supported("frequency-droop settings")

    def frequency_droop(self) -> FrequencyDroopSettings:
        """The active frequency-droop settings and whether the function is enabled."""
        raise self._function_not_supported("frequency-droop settings")

    @abstractmethod
    def telemetry(self) -> TelemetrySnapshot: ...

    @abstractmethod
    def alarms(self) -> tuple[str, ...]: ...

    def reset_alarms(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot reset alarms")

    def set_limit_priority(self, priority: str) -> None:
        """Current-limit priority "P" | "Q" | "mixed" where the PCS exposes it."""
        raise NotImplementedError(f"{type(self).__name__} cannot set the limit priority")

    # Functions SunSpec does not standardise: they need a vendor point map. The defaults say
    # so plainly instead of failing with NotImplementedError.
    def _not_supported(self, what: str) -> NotSupportedByPcs:
        return NotSupportedByPcs(
            f"{type(self).__name__}: this PCS's point map has no {what} "
            "(give the bench's PCS connection a point_map that describes it)"
        )

    def set_control_mode(self, mode: str) -> None:
        """"GFL" (grid following) | "GFM_DROOP" | "GFM_VSM" (grid forming)."""
        raise self._not_supported("control mode point")

    def set_k_factor(self, k_pu_per_pu: float) -> None:
        """Reactive current injection gain (ΔIq_pu per ΔV_pu)."""
        raise self._not_supported("k-factor point")

    def set_droop(self, f_pct: float, v_pct: float) -> None:
        """Grid-forming P–f and Q–V droops in %."""
        raise self._not_supported("droop points")

    def set_smoothing(self, enabled: bool, ramp_pu_per_s: float | None = None) -> None:
        """Load smoothing on/off and its grid-side ramp limit (per unit of rating per second)."""
        raise self._not_supported("load-smoothing points")

    def set_soc_band(self, min_pct: float, max_pct: float) -> None:
        raise self._not_supported("state-of-charge band points")

    def set_mission_priority(self, first: str) -> None:
        """The mission served first: one of MISSION_PRIORITIES."""
        raise self._not_supported("mission priority point")

    def dispatch(self, target_w: float, within_s: float) -> None:
        """Demand-response dispatch: reach target_w (export > 0) within within_s."""
        raise self._not_supported("demand-response dispatch points")

    def black_start(self) -> None:
        raise self._not_supported("black-start command")

    def island(self) -> None:
        """Open the PCC breaker and keep the bus (grid forming)."""
        raise self._not_supported("island-transfer command")

    def reconnect(self) -> None:
        """Resynchronise and close the PCC breaker."""
        raise self._not_supported("island-transfer command")

    def events_since(self, t_s: float) -> list[PcsEvent]:
        """Event-log entries with time_s >= t_s (PCS clock), oldest first."""
        raise self._not_supported("event log points")

    def disturbance_records(self) -> list[RecordInfo]:
        raise self._not_supported("disturbance record points")

    def fetch_record(self, info: RecordInfo) -> tuple[str, bytes]:
        """(cfg text, dat bytes) of one disturbance record, as the PCS holds them."""
        raise self._not_supported("disturbance record points")

    @abstractmethod
    def close(self) -> None: ...
