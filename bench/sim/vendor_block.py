"""The VPCS-250 vendor register block 41000-41049, implemented from docs/vendor_points_vpcs.md.

Pure logic, no sockets: `VendorBlock.refresh` fills the registers a read touches with live
values (plant settings, telemetry, event log, disturbance records), `VendorBlock.write`
validates a write completely and then applies it (a request is applied entirely or not at
all). `modbus_pcs` wires it into the pymodbus SimDevice next to the SunSpec models.

Exceptions, as the manual says: an unlisted address or a read-only point (also half of a
32-bit point) -> 02 ILLEGAL DATA ADDRESS; a value outside the allowed range or enumeration
-> 03 ILLEGAL DATA VALUE. A command the plant does not (yet) know -> 04 SERVER DEVICE
FAILURE with a log line: the PCS cannot carry it out, the request itself was fine.

Semantics the manual leaves to the device, chosen here:
- dr_execute / black_start accept 0 (does nothing) and 1 (act); they always read 0.
- island_request reads back the last accepted request (it is a request, not a state).
- event_select / record_select read 0 until written; a selection is a position in the log /
  record list as it stands at read time (newest last). Writing 0 or beyond the count -> 03.
- soc_min must stay below soc_max: a write that breaks this, alone or with both in one
  request, -> 03.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData

from bench.sim import plant as plant_module
from bench.sim.recorder import DisturbanceRecorder

log = logging.getLogger(__name__)

VENDOR_BASE_ADDR = 41000
VENDOR_END_ADDR = 41050                 # one past the block
MAP_VERSION = 1
EVENT_LOG_CAPACITY = 1000


class WriteRejected(Exception):
    """A write the device refuses; carries the Modbus exception code to answer with.
    (Shared by the SunSpec side in modbus_pcs.)"""

    def __init__(self, code: ExcCodes, reason: str):
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class VendorPoint:
    name: str
    address: int
    type: str                           # "uint16" | "int16" | "enum16" | "uint32" | "int32"
    access: str                         # "R" | "RW" | "W"
    scale: float = 1.0                  # engineering value = raw * scale
    raw_range: tuple[int, int] | None = None   # allowed raw values for writes (inclusive)
    enum: tuple[int, ...] = ()          # allowed raw values of an enum16 write

    @property
    def size_regs(self) -> int:
        return 2 if self.type.endswith("32") else 1

    @property
    def signed(self) -> bool:
        return self.type.startswith("int")

    @property
    def writable(self) -> bool:
        return "W" in self.access


def vendor_points(w_max_w: float) -> tuple[VendorPoint, ...]:
    """The manual's table; dr_target's range depends on the rating (WMax)."""
    w_max = int(round(w_max_w))
    p = VendorPoint
    return (
        p("map_version", 41000, "uint16", "R"),
        p("control_mode", 41001, "enum16", "RW", enum=(0, 1, 2)),
        p("limit_priority", 41002, "enum16", "RW", enum=(0, 1, 2)),
        p("k_factor", 41003, "uint16", "RW", 0.01, (0, 1000)),
        p("dvs_enable", 41004, "enum16", "RW", enum=(0, 1)),
        p("dvs_deadband", 41005, "uint16", "RW", 0.001, (0, 200)),
        p("droop_f", 41006, "uint16", "RW", 0.01, (50, 1000)),
        p("droop_v", 41007, "uint16", "RW", 0.01, (50, 1000)),
        p("vsm_inertia_h", 41008, "uint16", "RW", 0.01, (10, 2000)),
        p("vsm_damping", 41009, "uint16", "RW", 0.1, (0, 2000)),
        p("virtual_x", 41010, "uint16", "RW", 0.001, (0, 500)),
        p("smoothing_enable", 41011, "enum16", "RW", enum=(0, 1)),
        p("smoothing_ramp", 41012, "uint16", "RW", 0.1, (1, 1000)),
        p("soc_min", 41013, "uint16", "RW", 0.1, (0, 1000)),
        p("soc_max", 41014, "uint16", "RW", 0.1, (0, 1000)),
        p("mission_priority", 41015, "enum16", "RW", enum=(0, 1, 2)),
        p("dr_target", 41016, "int32", "RW", 1.0, (-w_max, w_max)),
        p("dr_time", 41018, "uint16", "RW", 0.1, (1, 6000)),
        p("dr_execute", 41019, "enum16", "W", enum=(0, 1)),
        p("black_start", 41020, "enum16", "W", enum=(0, 1)),
        p("island_request", 41021, "enum16", "RW", enum=(0, 1)),
        p("state", 41022, "enum16", "R"),
        p("current_limited", 41023, "enum16", "R"),
        p("ride_through_active", 41024, "enum16", "R"),
        p("trip_code", 41025, "uint16", "R"),
        p("telemetry_time", 41026, "uint32", "R", 0.001),
        p("vdc", 41028, "uint16", "R", 0.1),
        p("idc", 41029, "int16", "R", 0.1),
        p("temperature", 41030, "int16", "R", 0.1),
        p("event_count", 41031, "uint16", "R"),
        p("event_select", 41032, "uint16", "RW"),
        p("event_time", 41033, "uint32", "R", 0.001),
        p("event_code", 41035, "enum16", "R"),
        p("event_value", 41036, "int16", "R"),
        p("reserved", 41037, "uint16", "R"),
        p("record_count", 41040, "uint16", "R"),
        p("record_select", 41041, "uint16", "RW"),
        p("record_trigger_time", 41042, "uint32", "R", 0.001),
        p("record_file", 41044, "uint16", "R"),
        p("record_cause", 41045, "enum16", "R"),
        p("var_ramp", 41046, "uint16", "RW", 0.1, (0, 10000)),
    )


# --- enumerations: manual code <-> plant value ------------------------------------------------

CONTROL_MODES = ("GFL", "GFM_DROOP", "GFM_VSM")                 # 41001 codes 0, 1, 2
LIMIT_PRIORITIES = ("P", "Q", "mixed")                           # 41002
MISSION_PRIORITIES = ("RESERVE", "DEMAND_RESPONSE", "SMOOTHING") # 41015: which comes first
STATE_CODES = {"OFF": 0, "STARTING": 1, "RUNNING": 2, "MOMENTARY_CESSATION": 3,
               "TRIPPED": 4, "FAULT": 5, "STANDBY": 6}
EVENT_CODES = {"STATE": 1, "TRIP": 2, "FAULT": 2, "LIMIT_ENTER": 3, "LIMIT_EXIT": 4,
               "RT_ENTER": 5, "RT_EXIT": 6, "MC_ENTER": 7, "MC_EXIT": 8,
               "START_FAIL": 9, "ALARM": 9, "CMD": 10, "COMMAND": 10}
EVENT_ALARM = 9                         # any other plant event is reported as an alarm
TRIP_OTHER = 6


# Entries the plant logs about the bench rather than the PCS (a load bank switching); a PCS
# does not know about them. Any other code the manual does not list is shown as an ALARM.
BENCH_EVENT_CODES = frozenset({"LOAD_BANK"})


def known_plant_commands() -> frozenset[str]:
    """Commands the plant accepts, looked up at each write: the plant's command set grows as
    its physics does (kernel commands plus those of its supervisory layer)."""
    return frozenset(getattr(plant_module, "COMMAND_CODES", {})) | \
        frozenset(getattr(plant_module, "PYTHON_COMMANDS", ()))


def trip_code(reason: str) -> int:
    """41025 code of the plant's trip reason text (bench/sim/plant.py wording)."""
    text = reason.strip().lower()
    if not text:
        return 0
    if text.startswith("lv "):                     # LV must-trip, LV protection
        return 1
    if text.startswith("hv ") or text.startswith("ac instantaneous overvoltage"):
        return 2
    if text.startswith("dc link undervoltage"):
        return 3
    if text.startswith("dc link overvoltage"):
        return 4
    if "overcurrent" in text:
        return 5
    return TRIP_OTHER


def _index(options: tuple[str, ...], value: Any) -> int | None:
    return options.index(value) if value in options else None


# --- the block --------------------------------------------------------------------------------

@dataclass
class VendorBlock:
    plant: Any
    recorder: DisturbanceRecorder
    points: tuple[VendorPoint, ...] = field(init=False)
    event_select: int = 0
    record_select: int = 0
    island_request: int = 0

    def __post_init__(self) -> None:
        self._s_rated_va = float(self.plant.config.pcs.s_rated_va)
        self.points = vendor_points(self._s_rated_va)
        self.by_name = {p.name: p for p in self.points}
        self._unknown_states_logged: set[str] = set()

    # -- layout ------------------------------------------------------------------------------

    @staticmethod
    def owns(address: int) -> bool:
        return VENDOR_BASE_ADDR <= address < VENDOR_END_ADDR

    def sim_data(self) -> list[SimData]:
        """Listed points only (pymodbus answers 02 for the gaps), split where writability
        changes (pymodbus answers 02 to writes of read-only runs before our action runs)."""
        blocks: list[SimData] = []
        run: list[VendorPoint] = []

        def close_run() -> None:
            if run:
                count = sum(p.size_regs for p in run)
                blocks.append(SimData(address=run[0].address, values=[0] * count,
                                      datatype=DataType.REGISTERS, readonly=not run[0].writable))
                run.clear()
        for point in self.points:
            if run and (point.writable != run[-1].writable
                        or point.address != run[-1].address + run[-1].size_regs):
                close_run()
            run.append(point)
        close_run()
        return blocks

    # -- reads -------------------------------------------------------------------------------

    def refresh(self, registers: list[int], start_addr: int, address: int, count: int) -> None:
        """Rewrite the points the read [address, address+count) touches."""
        touched = [p for p in self.points
                   if p.address < address + count and address < p.address + p.size_regs]
        if not touched:
            return
        values = self._values(self.plant.pcs_telemetry_image())
        for point in touched:
            index = point.address - start_addr
            registers[index:index + point.size_regs] = _encode(point, values.get(point.name, 0))

    def _values(self, t: dict) -> dict[str, int]:
        s = self.plant.pcs_settings
        events = self._event_log()
        records = self.recorder.records
        event = events[self.event_select - 1] if 1 <= self.event_select <= len(events) else None
        record = records[self.record_select - 1] if 1 <= self.record_select <= len(records) else None
        trip_reason = str(t.get("trip_reason", "") or "")
        values = {
            "map_version": MAP_VERSION,
            "control_mode": _index(CONTROL_MODES, s.control_mode),
            "limit_priority": _index(LIMIT_PRIORITIES, s.limit_priority),
            "k_factor": _raw(s.k_factor, 0.01),
            "dvs_enable": int(bool(s.dvs_enabled)),
            "dvs_deadband": _raw(s.dvs_deadband_pu, 0.001),
            "droop_f": _raw(s.droop_f_pct, 0.01),
            "droop_v": _raw(s.droop_v_pct, 0.01),
            "vsm_inertia_h": _raw(s.vsm_inertia_h_s, 0.01),
            "vsm_damping": _raw(s.vsm_damping_pu, 0.1),
            "virtual_x": _raw(s.virtual_x_pu, 0.001),
            "smoothing_enable": int(bool(s.smoothing_enabled)),
            "smoothing_ramp": _raw(s.smoothing_ramp_pu_per_s * 100.0, 0.1),   # pu/s -> %/s
            "soc_min": _raw(s.soc_min_pct, 0.1),
            "soc_max": _raw(s.soc_max_pct, 0.1),
            "mission_priority": _index(MISSION_PRIORITIES, s.mission_priority),
            "dr_target": _raw(s.dr_target_w, 1.0),
            "dr_time": _raw(s.dr_time_s, 0.1),
            "dr_execute": 0, "black_start": 0,
            "island_request": self.island_request,
            "state": self._state_code(str(t.get("state", "OFF"))),
            "current_limited": int(bool(t.get("current_limited"))),
            "ride_through_active": int(bool(t.get("ride_through_active"))),
            "trip_code": trip_code(trip_reason),
            "telemetry_time": _ms(t.get("t_s", 0.0)),
            "vdc": _raw(t.get("vdc_v"), 0.1),
            "idc": _raw(t.get("idc_a"), 0.1),
            "temperature": _raw(t.get("temperature_c"), 0.1),
            "event_count": len(events),
            "event_select": self.event_select,
            "reserved": 0,
            "record_count": len(records),
            "record_select": self.record_select,
            # %/s of rated apparent power; 0 = the reactive-power setpoint applies as a step
            "var_ramp": _raw(s.q_ramp_var_per_s / self._s_rated_va * 100.0, 0.1),
        }
        if event is not None:
            t_s, code, text = event
            values.update({"event_time": _ms(t_s),
                           "event_code": EVENT_CODES.get(code, EVENT_ALARM),
                           "event_value": self._event_value(code, text)})
        if record is not None:
            values.update({"record_trigger_time": _ms(record.trigger_time_s),
                           "record_file": record.cfg_file_number,
                           "record_cause": record.cause_code})
        return {name: (0 if value is None else value) for name, value in values.items()}

    def _event_log(self) -> list[tuple[float, str, str]]:
        # the PCS holds the newest EVENT_LOG_CAPACITY entries of its own log
        own = [event for event in list(self.plant.pcs_events) if event[1] not in BENCH_EVENT_CODES]
        return own[-EVENT_LOG_CAPACITY:]

    def _state_code(self, state: str) -> int:
        if state in STATE_CODES:
            return STATE_CODES[state]
        if state not in self._unknown_states_logged:       # a plant state the manual lacks
            self._unknown_states_logged.add(state)
            log.warning("plant state %r has no 41022 code; reported as FAULT", state)
        return STATE_CODES["FAULT"]

    def _event_value(self, code: str, text: str) -> int:
        if code == "STATE":
            return self._state_code(text)
        if code in ("TRIP", "FAULT"):
            # FAULT is the plant's hardware over-current trip; its text says so
            return trip_code(text)
        return 0

    # -- writes ------------------------------------------------------------------------------

    def write(self, address: int, values: list[int]) -> None:
        """Validate the write of `values` at `address`, then apply it; raises WriteRejected."""
        end = address + len(values)
        changes: dict[str, int] = {}
        for point in self.points:
            p_end = point.address + point.size_regs
            if p_end <= address or end <= point.address:
                continue
            if point.address < address or end < p_end:
                raise WriteRejected(ExcCodes.ILLEGAL_ADDRESS, f"partial write of {point.name}")
            if not point.writable:
                raise WriteRejected(ExcCodes.ILLEGAL_ADDRESS, f"{point.name} is read-only")
            changes[point.name] = _decode(point, values[point.address - address:p_end - address])
        if not changes:
            raise WriteRejected(ExcCodes.ILLEGAL_ADDRESS, "no writable point")
        for name, raw in changes.items():
            self._check_value(self.by_name[name], raw)
        self._check_combination(changes)
        commands = self._commands(changes)
        self._apply(changes, commands)

    def _check_value(self, point: VendorPoint, raw: int) -> None:
        if point.enum and raw not in point.enum:
            raise WriteRejected(ExcCodes.ILLEGAL_VALUE, f"{point.name}={raw} not one of {point.enum}")
        if point.raw_range and not point.raw_range[0] <= raw <= point.raw_range[1]:
            lo, hi = point.raw_range
            raise WriteRejected(ExcCodes.ILLEGAL_VALUE,
                                f"{point.name}={raw} outside {lo}..{hi} (raw, scale {point.scale})")
        if point.name == "event_select" and not 1 <= raw <= len(self._event_log()):
            raise WriteRejected(ExcCodes.ILLEGAL_VALUE,
                                f"event_select={raw} outside 1..{len(self._event_log())}")
        if point.name == "record_select" and not 1 <= raw <= len(self.recorder.records):
            raise WriteRejected(ExcCodes.ILLEGAL_VALUE,
                                f"record_select={raw} outside 1..{len(self.recorder.records)}")

    def _check_combination(self, changes: dict[str, int]) -> None:
        s = self.plant.pcs_settings
        soc_min = changes["soc_min"] * 0.1 if "soc_min" in changes else s.soc_min_pct
        soc_max = changes["soc_max"] * 0.1 if "soc_max" in changes else s.soc_max_pct
        if ("soc_min" in changes or "soc_max" in changes) and not soc_min < soc_max - 1e-9:
            raise WriteRejected(ExcCodes.ILLEGAL_VALUE,
                                f"soc_min {soc_min:.1f} % must stay below soc_max {soc_max:.1f} %")

    def _commands(self, changes: dict[str, int]) -> list[str]:
        """Plant commands the write asks for, refused (04) if the plant does not know one."""
        commands: list[str] = []
        if changes.get("dr_execute") == 1:
            commands.append("dr_execute")
        if changes.get("black_start") == 1:
            commands.append("black_start")
        if "island_request" in changes:
            commands.append("island" if changes["island_request"] == 1 else "reconnect")
        known = known_plant_commands()
        for command in commands:
            if command not in known:
                raise WriteRejected(ExcCodes.DEVICE_FAILURE,
                                    f"PCS cannot execute {command!r}: the plant does not implement it")
        return commands

    def _apply(self, changes: dict[str, int], commands: list[str]) -> None:
        """Apply validated changes; the plant's own checks on a command (ValueError) still
        answer 04, after the settings of the same request took effect."""
        s = self.plant.pcs_settings
        setters: dict[str, Callable[[int], None]] = {
            "control_mode": lambda r: setattr(s, "control_mode", CONTROL_MODES[r]),
            "limit_priority": lambda r: setattr(s, "limit_priority", LIMIT_PRIORITIES[r]),
            "k_factor": lambda r: setattr(s, "k_factor", r * 0.01),
            "dvs_enable": lambda r: setattr(s, "dvs_enabled", bool(r)),
            "dvs_deadband": lambda r: setattr(s, "dvs_deadband_pu", r * 0.001),
            "droop_f": lambda r: setattr(s, "droop_f_pct", r * 0.01),
            "droop_v": lambda r: setattr(s, "droop_v_pct", r * 0.01),
            "vsm_inertia_h": lambda r: setattr(s, "vsm_inertia_h_s", r * 0.01),
            "vsm_damping": lambda r: setattr(s, "vsm_damping_pu", r * 0.1),
            "virtual_x": lambda r: setattr(s, "virtual_x_pu", r * 0.001),
            "smoothing_enable": lambda r: setattr(s, "smoothing_enabled", bool(r)),
            "smoothing_ramp": lambda r: setattr(s, "smoothing_ramp_pu_per_s", r * 0.1 / 100.0),
            "soc_min": lambda r: setattr(s, "soc_min_pct", r * 0.1),
            "soc_max": lambda r: setattr(s, "soc_max_pct", r * 0.1),
            "mission_priority": lambda r: setattr(s, "mission_priority", MISSION_PRIORITIES[r]),
            "dr_target": lambda r: setattr(s, "dr_target_w", float(r)),
            "dr_time": lambda r: setattr(s, "dr_time_s", r * 0.1),
            "island_request": lambda r: setattr(self, "island_request", r),
            "event_select": lambda r: setattr(self, "event_select", r),
            "record_select": lambda r: setattr(self, "record_select", r),
            "var_ramp": lambda r: setattr(s, "q_ramp_var_per_s", r * 0.1 / 100.0 * self._s_rated_va),
        }
        for name, raw in changes.items():
            if name in setters:
                setters[name](raw)
        # settings first, so one request can set the dispatch target and execute it
        for command in commands:
            try:
                self.plant.pcs_command(command)
            except ValueError as exc:
                raise WriteRejected(ExcCodes.DEVICE_FAILURE, f"PCS refused {command!r}: {exc}") from exc


# --- register coding --------------------------------------------------------------------------

def _raw(value: Any, scale: float) -> int | None:
    if value is None:
        return None
    value = float(value)
    return round(value / scale) if math.isfinite(value) else None


def _ms(t_s: Any) -> int:
    return round(float(t_s) * 1000.0)


def _encode(point: VendorPoint, value: int) -> list[int]:
    """Registers of a value, saturating at the type's range as a meter would."""
    bits = 16 * point.size_regs
    if point.signed:
        value = max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, value))
        value &= (1 << bits) - 1
    else:
        value = max(0, min((1 << bits) - 1, value))
    if point.size_regs == 2:
        return [(value >> 16) & 0xFFFF, value & 0xFFFF]        # high word first
    return [value]


def _decode(point: VendorPoint, regs: list[int]) -> int:
    value = 0
    for reg in regs:
        value = (value << 16) | (int(reg) & 0xFFFF)
    bits = 16 * point.size_regs
    if point.signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value
