"""Bench files: load a TOML bench description and validate it completely.

A bench file says what is on the bench (instruments by role, the PCS and how to reach it),
how far the bench may be pushed (safety limits) and which requirement profile judges the
run. Validation collects every problem before reporting, so a user fixes a file in one pass;
unknown keys are errors because a misspelt limit silently ignored is a hazard.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ProblemsError

PACKAGED_BENCHES = Path(__file__).parent / "benches"
DEFAULT_BENCH = PACKAGED_BENCHES / "virtual.toml"
VIRTUAL_RESOURCE = "virtual"

ROLES = ("grid_simulator", "dc_source", "oscilloscope", "ac_load", "power_analyzer", "genset", "load_bank")
REQUIRED_ROLES = ("grid_simulator", "dc_source", "oscilloscope")


class BenchFileError(ProblemsError):
    """A bench file that cannot be used; `problems` lists every finding."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = Path(path)
        super().__init__(f"bench file {self.path}", problems)


@dataclass(frozen=True)
class PcsIdentityConfig:
    manufacturer: str
    model: str
    serial: str


@dataclass(frozen=True)
class PcsConfigEntry:
    s_rated_va: float
    v_ll_nom_v: float
    f_nom_hz: float
    i_max_a: float
    vdc_min_v: float
    vdc_max_v: float
    vdc_nominal_v: float
    identity: PcsIdentityConfig
    connection: dict[str, Any]

    @property
    def v_ln_nom_v(self) -> float:
        return self.v_ll_nom_v / 3**0.5

    @property
    def i_rated_a(self) -> float:
        return self.s_rated_va / (3**0.5 * self.v_ll_nom_v)


@dataclass(frozen=True)
class ScopeChannel:
    """One oscilloscope input: which quantity it sees and through what probe."""

    name: str             # the name plans use: v_a, v_b, v_c, i_a, i_b, i_c, ...
    channel: int          # scope input number
    quantity: str         # "voltage" | "current"
    units: str            # "V" | "A"
    ratio: float          # physical units per volt at the scope input (probe / CT ratio)
    full_scale: float     # largest expected magnitude in physical units (sets V/div)


@dataclass(frozen=True)
class InstrumentConfig:
    role: str
    driver: str
    resource: str
    expected_model: str | None = None
    timeout_s: float = 5.0
    options: dict[str, Any] = field(default_factory=dict)
    channels: tuple[ScopeChannel, ...] = ()


@dataclass(frozen=True)
class SafetyLimits:
    max_ac_voltage_ln_v: float
    max_ac_current_a: float
    max_dc_voltage_v: float
    max_dc_current_a: float

    def as_driver_limits(self) -> dict[str, float]:
        return {
            "max_voltage_ln_v": self.max_ac_voltage_ln_v,
            "max_current_a": self.max_ac_current_a,
            "max_dc_voltage_v": self.max_dc_voltage_v,
            "max_dc_current_a": self.max_dc_current_a,
        }


@dataclass(frozen=True)
class VirtualBenchConfig:
    scr: float = 5.0
    x_over_r: float = 7.0
    defects: tuple[str, ...] = ()
    # The simulated PCS is a product with its own nameplate; [pcs.identity] says which one the
    # bench expects, so a mismatch is caught on the virtual bench exactly as on a real one.
    pcs_serial: str | None = None


@dataclass(frozen=True)
class BenchConfig:
    path: Path
    name: str
    profile: str
    pcs: PcsConfigEntry
    instruments: dict[str, InstrumentConfig]
    safety: SafetyLimits
    virtual: VirtualBenchConfig | None
    raw_text: str
    calibration_dir: Path | None = None   # None: the records shipped in calibration/records

    @property
    def is_virtual(self) -> bool:
        return self.virtual is not None


# ---------------------------------------------------------------- schema helpers

_NUMBER = (int, float)


class _Checker:
    """Walks a parsed TOML document, collecting problems with their dotted keys."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"key '{key}': {message}")

    def table(self, doc: dict, key: str, prefix: str = "", required: bool = True) -> dict:
        full = f"{prefix}{key}"
        if key not in doc:
            if required:
                self.problem(full, "missing table")
            return {}
        value = doc[key]
        if not isinstance(value, dict):
            self.problem(full, f"must be a table, got {type(value).__name__} {value!r}")
            return {}
        return value

    def unknown_keys(self, doc: dict, allowed: set[str], prefix: str) -> None:
        for key in doc:
            if key not in allowed:
                self.problem(f"{prefix}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def number(self, doc: dict, key: str, prefix: str, *, low: float | None = None,
               high: float | None = None, strictly_positive: bool = False,
               default: float | None = None) -> float:
        full = f"{prefix}{key}"
        if key not in doc:
            if default is not None:
                return default
            self.problem(full, "missing (a number is required)")
            return float("nan")
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, _NUMBER):
            self.problem(full, f"value {value!r} is not a number")
            return float("nan")
        value = float(value)
        if strictly_positive and value <= 0:
            self.problem(full, f"value {value:g} must be > 0")
        if low is not None and value < low:
            self.problem(full, f"value {value:g} is below the allowed minimum {low:g}")
        if high is not None and value > high:
            self.problem(full, f"value {value:g} is above the allowed maximum {high:g}")
        return value

    def string(self, doc: dict, key: str, prefix: str, *, default: str | None = None,
               choices: tuple[str, ...] | None = None) -> str:
        full = f"{prefix}{key}"
        if key not in doc:
            if default is not None:
                return default
            self.problem(full, "missing (a string is required)")
            return ""
        value = doc[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(full, f"value {value!r} must be a non-empty string")
            return ""
        if choices is not None and value not in choices:
            self.problem(full, f"value {value!r} is not allowed (allowed: {', '.join(choices)})")
        return value


# ---------------------------------------------------------------- sections

def _parse_pcs(c: _Checker, doc: dict) -> PcsConfigEntry:
    pcs = c.table(doc, "pcs")
    p = "pcs."
    c.unknown_keys(pcs, {"s_rated_va", "v_ll_nom_v", "f_nom_hz", "i_max_a", "vdc_min_v",
                         "vdc_max_v", "vdc_nominal_v", "identity", "connection"}, p)
    s_rated_va = c.number(pcs, "s_rated_va", p, strictly_positive=True)
    v_ll_nom_v = c.number(pcs, "v_ll_nom_v", p, strictly_positive=True)
    f_nom_hz = c.number(pcs, "f_nom_hz", p, low=16.0, high=400.0)
    i_max_a = c.number(pcs, "i_max_a", p, strictly_positive=True)
    vdc_min_v = c.number(pcs, "vdc_min_v", p, strictly_positive=True)
    vdc_max_v = c.number(pcs, "vdc_max_v", p, strictly_positive=True)
    vdc_nominal_v = c.number(pcs, "vdc_nominal_v", p, strictly_positive=True)
    if vdc_min_v >= vdc_max_v:
        c.problem("pcs.vdc_min_v", f"value {vdc_min_v:g} must be below pcs.vdc_max_v {vdc_max_v:g}")
    elif not vdc_min_v <= vdc_nominal_v <= vdc_max_v:
        c.problem("pcs.vdc_nominal_v", f"value {vdc_nominal_v:g} must lie in [{vdc_min_v:g}, {vdc_max_v:g}]")

    ident = c.table(pcs, "identity", p)
    ip = "pcs.identity."
    c.unknown_keys(ident, {"manufacturer", "model", "serial"}, ip)
    identity = PcsIdentityConfig(
        manufacturer=c.string(ident, "manufacturer", ip),
        model=c.string(ident, "model", ip),
        serial=c.string(ident, "serial", ip),
    )

    conn = c.table(pcs, "connection", p)
    cp = "pcs.connection."
    transport = c.string(conn, "transport", cp, choices=("tcp", "rtu"))
    common = {"transport", "device_id", "timeout_s", "retries", "point_map", "fc6_for_single_register",
              "base_address"}
    if transport == "tcp":
        c.unknown_keys(conn, common | {"host", "port"}, cp)
        host = c.string(conn, "host", cp)
        if host != VIRTUAL_RESOURCE:
            c.number(conn, "port", cp, low=1, high=65535)
    elif transport == "rtu":
        c.unknown_keys(conn, common | {"port", "baudrate", "parity", "stopbits", "bytesize",
                                       "inter_frame_delay_s"}, cp)
        c.string(conn, "port", cp)
        c.number(conn, "baudrate", cp, low=300, high=1_000_000)
        c.string(conn, "parity", cp, default="N", choices=("N", "E", "O"))
    if "point_map" in conn:
        conn = dict(conn)
        spec = str(conn["point_map"])
        if spec.endswith(".toml") or "/" in spec:   # a file, relative to the bench file
            conn["point_map"] = str((c.path.parent / spec).resolve())
        from dut.errors import DutError
        from dut.pointmap import load_point_map

        try:
            load_point_map(conn["point_map"])
        except DutError as exc:
            c.problem(f"{cp}point_map", str(exc))
    c.number(conn, "device_id", cp, low=0, high=247, default=1)
    c.number(conn, "timeout_s", cp, strictly_positive=True, default=1.0)
    c.number(conn, "retries", cp, low=0, high=10, default=2)

    return PcsConfigEntry(s_rated_va, v_ll_nom_v, f_nom_hz, i_max_a, vdc_min_v, vdc_max_v,
                          vdc_nominal_v, identity, dict(conn))


def _parse_channels(c: _Checker, raw: Any, prefix: str) -> tuple[ScopeChannel, ...]:
    if not isinstance(raw, list):
        c.problem(prefix.rstrip("."), "must be an array of tables ([[...channels]])")
        return ()
    channels: list[ScopeChannel] = []
    seen_numbers: set[int] = set()
    seen_names: set[str] = set()
    for index, entry in enumerate(raw):
        p = f"{prefix}[{index}]."
        if not isinstance(entry, dict):
            c.problem(p.rstrip("."), "must be a table")
            continue
        c.unknown_keys(entry, {"name", "channel", "quantity", "ratio", "full_scale"}, p)
        name = c.string(entry, "name", p)
        number = c.number(entry, "channel", p, low=1, high=16)
        quantity = c.string(entry, "quantity", p, choices=("voltage", "current"))
        ratio = c.number(entry, "ratio", p, strictly_positive=True)
        full_scale = c.number(entry, "full_scale", p, strictly_positive=True)
        if name in seen_names:
            c.problem(f"{p}name", f"channel name {name!r} is used twice")
        if number == number and int(number) in seen_numbers:
            c.problem(f"{p}channel", f"scope input {int(number)} is used twice")
        seen_names.add(name)
        if number == number:
            seen_numbers.add(int(number))
        units = "V" if quantity == "voltage" else "A"
        channels.append(ScopeChannel(name, int(number) if number == number else 0, quantity,
                                     units, ratio, full_scale))
    return tuple(channels)


def _check_driver_options(c: _Checker, driver_class: Any, options: dict, resource: str, prefix: str,
                          pcs: PcsConfigEntry) -> dict:
    """A Modbus driver's options (map, ratings, steps) and resource form; the options with the
    map's path resolved and the bench's nominal voltage as the default rated voltage."""
    from instruments.errors import InstrumentError
    from instruments.modbus_device import modbus_connection

    if resource and resource != VIRTUAL_RESOURCE:
        try:
            modbus_connection(prefix.rstrip("."), resource)
        except InstrumentError as exc:
            c.problem(f"{prefix}resource", exc.message)
    normalised, problems = driver_class.check_options(options, bench_dir=c.path.parent,
                                                      defaults={"v_ll_rated_v": pcs.v_ll_nom_v}
                                                      if "v_ll_rated_v" in driver_class.OPTIONS else {})
    for key, message in problems:
        c.problem(f"{prefix}options.{key}", message)
    return normalised


def _parse_instruments(c: _Checker, doc: dict, virtual: bool, pcs: PcsConfigEntry) -> dict[str, InstrumentConfig]:
    from instruments.registry import DRIVERS  # bench depends on instruments, not the reverse

    table = c.table(doc, "instruments")
    instruments: dict[str, InstrumentConfig] = {}
    for role in REQUIRED_ROLES:
        if role not in table:
            c.problem(f"instruments.{role}", "missing: this bench needs one")
    for role, entry in table.items():
        p = f"instruments.{role}."
        if role not in ROLES:
            c.problem(f"instruments.{role}", f"unknown role (known roles: {', '.join(ROLES)})")
            continue
        if not isinstance(entry, dict):
            c.problem(f"instruments.{role}", "must be a table")
            continue
        c.unknown_keys(entry, {"driver", "resource", "expected_model", "timeout_s", "options",
                               "channels"}, p)
        driver = c.string(entry, "driver", p)
        if driver and driver not in DRIVERS:
            c.problem(f"{p}driver", f"unknown driver {driver!r} (known: {', '.join(sorted(DRIVERS))})")
        resource = c.string(entry, "resource", p)
        if resource == VIRTUAL_RESOURCE and not virtual:
            c.problem(f"{p}resource", "'virtual' is only allowed on a bench with a [virtual] table")
        expected_model = entry.get("expected_model")
        if expected_model is not None and not isinstance(expected_model, str):
            c.problem(f"{p}expected_model", f"value {expected_model!r} must be a string")
        timeout_s = c.number(entry, "timeout_s", p, strictly_positive=True, default=5.0)
        options = entry.get("options", {})
        if not isinstance(options, dict):
            c.problem(f"{p}options", "must be a table")
            options = {}
        channels: tuple[ScopeChannel, ...] = ()
        if role == "oscilloscope":
            if "channels" not in entry:
                c.problem(f"{p}channels", "missing: the oscilloscope needs its channel map")
            else:
                channels = _parse_channels(c, entry["channels"], f"{p}channels")
        elif "channels" in entry:
            c.problem(f"{p}channels", "only an oscilloscope has a channel map")
        driver_class = DRIVERS.get(driver)
        if driver_class is not None and hasattr(driver_class, "check_options"):
            # Modbus roles (genset, load bank): their options are the instrument's nameplate
            # and register map, checked here so a bad bench file fails before anything starts
            options = _check_driver_options(c, driver_class, options, resource, p, pcs)
        instruments[role] = InstrumentConfig(role, driver, resource, expected_model, timeout_s,
                                             dict(options), channels)
    return instruments


def _parse_safety(c: _Checker, doc: dict) -> SafetyLimits:
    s = c.table(doc, "safety")
    p = "safety."
    c.unknown_keys(s, {"max_ac_voltage_ln_v", "max_ac_current_a", "max_dc_voltage_v",
                       "max_dc_current_a"}, p)
    return SafetyLimits(
        max_ac_voltage_ln_v=c.number(s, "max_ac_voltage_ln_v", p, strictly_positive=True),
        max_ac_current_a=c.number(s, "max_ac_current_a", p, strictly_positive=True),
        max_dc_voltage_v=c.number(s, "max_dc_voltage_v", p, strictly_positive=True),
        max_dc_current_a=c.number(s, "max_dc_current_a", p, strictly_positive=True),
    )


def _parse_virtual(c: _Checker, doc: dict) -> VirtualBenchConfig | None:
    if "virtual" not in doc:
        return None
    v = c.table(doc, "virtual")
    p = "virtual."
    c.unknown_keys(v, {"scr", "x_over_r", "defects", "pcs_serial"}, p)
    defects = v.get("defects", [])
    if not isinstance(defects, list) or not all(isinstance(d, str) for d in defects):
        c.problem(f"{p}defects", f"value {defects!r} must be a list of defect names")
        defects = []
    else:
        from bench.sim.defects import DEFECTS

        for name in defects:
            if name not in DEFECTS:
                c.problem(f"{p}defects", f"unknown defect {name!r} (see `bessbench sim --list-defects`)")
    return VirtualBenchConfig(
        scr=c.number(v, "scr", p, strictly_positive=True, default=5.0),
        x_over_r=c.number(v, "x_over_r", p, strictly_positive=True, default=7.0),
        defects=tuple(defects),
        pcs_serial=c.string(v, "pcs_serial", p) if "pcs_serial" in v else None,
    )


def load_bench(path: Path | str | None = None) -> BenchConfig:
    """Read and validate a bench file; raise BenchFileError listing every problem."""
    path = Path(path) if path is not None else DEFAULT_BENCH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchFileError(path, [f"is not valid TOML: {exc}"]) from None

    c = _Checker(path)
    c.unknown_keys(doc, {"bench", "pcs", "instruments", "safety", "virtual"}, "")
    head = c.table(doc, "bench")
    c.unknown_keys(head, {"name", "profile", "calibration_dir"}, "bench.")
    name = c.string(head, "name", "bench.")
    profile = c.string(head, "profile", "bench.")
    calibration_dir = None
    if "calibration_dir" in head:
        calibration_dir = path.parent / c.string(head, "calibration_dir", "bench.")
        if not calibration_dir.is_dir():
            c.problem("bench.calibration_dir", f"folder {calibration_dir} does not exist")
    virtual = _parse_virtual(c, doc)
    pcs = _parse_pcs(c, doc)
    if virtual is None and pcs.connection.get("host") == VIRTUAL_RESOURCE:
        c.problem("pcs.connection.host", "'virtual' is only allowed on a bench with a [virtual] table")
    instruments = _parse_instruments(c, doc, virtual is not None, pcs)
    safety = _parse_safety(c, doc)
    if c.problems:
        raise BenchFileError(path, c.problems)
    return BenchConfig(path, name, profile, pcs, instruments, safety, virtual, text, calibration_dir)


def virtual_plant_config(bench: BenchConfig, extra_defects: tuple[str, ...] | list[str] = ()):
    """The plant that stands behind a virtual bench file's instruments and PCS."""
    from bench.sim.plant import GridConfig, PcsConfig, PlantConfig

    if bench.virtual is None:
        raise BenchFileError(bench.path, ["has no [virtual] table: it describes a real bench"])
    pcs = bench.pcs
    defects = tuple(dict.fromkeys((*bench.virtual.defects, *extra_defects)))
    nameplate = PcsConfig()
    serial = bench.virtual.pcs_serial or nameplate.serial
    return PlantConfig(
        grid=GridConfig(v_ll_nom_v=pcs.v_ll_nom_v, f_nom_hz=pcs.f_nom_hz,
                        scr=bench.virtual.scr, x_over_r=bench.virtual.x_over_r),
        pcs=PcsConfig(s_rated_va=pcs.s_rated_va, v_ll_nom_v=pcs.v_ll_nom_v,
                      f_nom_hz=pcs.f_nom_hz, i_max_a=pcs.i_max_a, vdc_min_v=pcs.vdc_min_v,
                      vdc_max_v=pcs.vdc_max_v, manufacturer=nameplate.manufacturer,
                      model=nameplate.model, serial=serial),
        defects=defects,
        genset=_virtual_genset(bench),
    )


def _virtual_genset(bench: BenchConfig):
    """The plant's genset when the bench lists a genset controller: the set its entry describes
    (rating and ISO 8528-5 class), at the bench's nominal voltage and frequency."""
    entry = bench.instruments.get("genset")
    if entry is None:
        return None
    from bench.sim.genset import GensetConfig

    return GensetConfig(iso_class=str(entry.options["iso_class"]), s_rated_va=float(entry.options["s_rated_va"]),
                        v_ll_nom_v=bench.pcs.v_ll_nom_v, f_nom_hz=bench.pcs.f_nom_hz)
