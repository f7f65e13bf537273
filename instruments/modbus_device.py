"""Bench instruments reached over Modbus (genset controllers, load banks): the shared base.

Real products of these roles each have their own register map (a DEIF, a ComAp, a Woodward
easYgen and a DSE controller share no address), so their drivers are point-map driven: a
TOML map in the format of the PCS's vendor maps (`dut/pointmap.py`, described for these roles
in docs/modbus_instruments.md) says where each point lives and how to scale it, and the
driver speaks point names only. The bench file gives, per instrument:

- ``resource``: ``modbus-tcp://HOST[:PORT][?device_id=N]`` or
  ``modbus-rtu:///dev/ttyUSB0?baudrate=19200&parity=E&stopbits=1&device_id=N``;
- ``options.point_map``: a map shipped with the role's driver (by name) or a file (a path,
  relative to the bench file);
- ``options.allow_control``: whether plans may command it at all (default false: read-only).

The Modbus transport, the map loader and the point codec are the PCS client's
(`dut/modbus_transport.py`, `dut/pointmap.py`, `dut/vendor_points.py`): one implementation of
the wire and of the map format. Their errors come back here as `InstrumentError`s naming the
bench role, the address and the point and register.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from dut.connection import open_transport
from dut.errors import DutError, SetpointOutOfRange
from dut.modbus_transport import ModbusTransport
from dut.pointmap import PointMap, load_point_map
from dut.vendor_points import VendorPoints
from instruments.errors import InstrumentError, LimitError
from instruments.scpi import Identity

log = logging.getLogger(__name__)

MODBUS_SCHEMES = ("modbus-tcp", "modbus-rtu")
# query keys each scheme accepts (the serial settings are the PCS connection table's names)
_QUERY_KEYS = {"modbus-tcp": {"device_id"},
               "modbus-rtu": {"device_id", "baudrate", "parity", "stopbits", "bytesize"}}
_INTEGER_KEYS = {"device_id", "baudrate", "stopbits", "bytesize"}
RESOURCE_EXAMPLES = ("modbus-tcp://192.168.10.50:502?device_id=1",
                     "modbus-rtu:///dev/ttyUSB0?baudrate=19200&parity=E&device_id=3")
# Identity points a map may have (strings); without them the map header names the product.
IDENTITY_POINTS = ("manufacturer", "model", "serial", "firmware")
COMMON_OPTIONS = {"point_map", "allow_control"}


def is_modbus_resource(resource: str) -> bool:
    return urlsplit(str(resource).strip()).scheme.lower() in MODBUS_SCHEMES


def modbus_connection(role: str, resource: str, *, timeout_s: float = 1.0, retries: int = 2) -> dict[str, Any]:
    """The PCS-style connection table (dut/connection.py) a Modbus resource string describes;
    InstrumentError naming the resource and what is wrong with it."""
    text = str(resource).strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()

    def refuse(why: str) -> InstrumentError:
        return InstrumentError(role, text, f"malformed Modbus resource {text!r}: {why}; expected e.g. "
                                           + " or ".join(RESOURCE_EXAMPLES))

    if scheme not in MODBUS_SCHEMES:
        raise refuse(f"the scheme must be one of {', '.join(MODBUS_SCHEMES)}")
    query: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY_KEYS[scheme]:
            raise refuse(f"unknown setting {key!r} (allowed: {', '.join(sorted(_QUERY_KEYS[scheme]))})")
        if key in _INTEGER_KEYS:
            if not value.isdigit():
                raise refuse(f"{key} must be a whole number, got {value!r}")
            query[key] = int(value)
        else:
            query[key] = value
    device_id = query.pop("device_id", 1)
    if not 0 <= device_id <= 247:
        raise refuse(f"device_id {device_id} is outside 0..247")
    common = {"device_id": device_id, "timeout_s": timeout_s, "retries": retries}
    if scheme == "modbus-tcp":
        try:
            port = parts.port or 502
        except ValueError:
            raise refuse("the port is not a number in 1..65535") from None
        if not parts.hostname or parts.path not in ("", "/"):
            raise refuse("it needs a host (modbus-tcp://HOST:PORT) and nothing after it but ?settings")
        return {"transport": "tcp", "host": parts.hostname, "port": port, **common}
    if parts.netloc or not parts.path:
        raise refuse("a serial port is written modbus-rtu:///dev/ttyUSB0 (three slashes)")
    return {"transport": "rtu", "port": parts.path, **common, **query}


def resolve_map_path(spec: str, shipped_dir: Path, relative_to: Path | None = None) -> Path:
    """A map shipped with the driver, by name ("vgc1"), or a file (a path, relative to the
    bench file's folder). ValueError naming what was looked for."""
    text = str(spec)
    if "/" not in text and "\\" not in text and not text.endswith(".toml"):
        path = shipped_dir / f"{text}.toml"
        if not path.is_file():
            shipped = ", ".join(sorted(p.stem for p in shipped_dir.glob("*.toml"))) or "none"
            raise ValueError(f"no shipped point map named {text!r} (shipped: {shipped})")
        return path
    path = Path(text)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not path.is_file():
        raise ValueError(f"point map file {path} does not exist")
    return path.resolve()


@dataclass(frozen=True)
class RequiredPoint:
    """A point the driver cannot work without: its access and the enumeration names it uses."""

    name: str
    access: str = "R"                   # "R" readable, "W" writable, "RW" both
    symbols: tuple[str, ...] = ()       # enum16: names the map must define


class ModbusInstrument:
    """A bench instrument behind a Modbus transport and a point map.

    ``connect()`` builds it from a bench-file entry; ``open_instrument`` (instruments/registry.py)
    then identifies it and calls ``initialize()`` exactly as for a SCPI instrument.
    """

    ROLE: ClassVar[str] = ""
    #: model patterns / manufacturers accepted (empty: whatever the map's product reports)
    MODEL_PATTERNS: ClassVar[tuple[str, ...]] = ()
    MANUFACTURERS: ClassVar[tuple[str, ...]] = ()
    #: where maps shipped with the driver live (chosen by name in the bench file)
    MAP_DIRECTORY: ClassVar[Path]
    #: options this driver accepts besides point_map and allow_control
    OPTIONS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, transport: ModbusTransport, point_map: PointMap, role: str, resource_name: str, *,
                 limits: Mapping[str, float] | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.role = role
        self.resource_name = resource_name
        self.limits: dict[str, float] = {k: float(v) for k, v in dict(limits or {}).items()}
        self.options: dict[str, Any] = dict(options or {})
        self.point_map = point_map
        self.identity: Identity | None = None
        self._transport = transport
        self._points = VendorPoints(transport, point_map)
        self._closed = False
        missing = self.map_problems(point_map, self.options)
        if missing:
            raise self.error(f"point map {point_map.source} does not fit the {role} driver: " + "; ".join(missing))
        bad_options = self.option_problems(self.options)
        if bad_options:
            raise self.error("; ".join(f"options.{key}: {message}" for key, message in bad_options))

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def connect(cls, role: str, resource: str, *, limits: Mapping[str, float] | None = None,
                options: Mapping[str, Any] | None = None, timeout_s: float = 1.0) -> "ModbusInstrument":
        """Open the transport the resource names with the map the options name."""
        options = dict(options or {})
        connection = modbus_connection(role, resource, timeout_s=timeout_s)
        if "point_map" not in options:
            raise InstrumentError(role, resource, "options.point_map is missing: the driver needs the "
                                                  "instrument's register map (docs/modbus_instruments.md)")
        try:
            point_map = load_point_map(resolve_map_path(options["point_map"], cls.MAP_DIRECTORY))
        except (ValueError, DutError) as exc:
            raise InstrumentError(role, resource, f"options.point_map: {exc}") from None
        try:
            transport = open_transport(connection)
        except DutError as exc:
            raise InstrumentError(role, resource, f"does not answer: {exc}") from None
        try:
            return cls(transport, point_map, role, resource, limits=limits, options=options)
        except BaseException:
            transport.close()
            raise

    @classmethod
    def required_points(cls, options: Mapping[str, Any]) -> list[RequiredPoint]:
        """The points this driver reads and writes (may depend on the options)."""
        return []

    @classmethod
    def map_problems(cls, point_map: PointMap, options: Mapping[str, Any]) -> list[str]:
        """What the map lacks for this driver (empty when it fits)."""
        problems = []
        for need in cls.required_points(options):
            if not point_map.has(need.name):
                problems.append(f"no point {need.name!r}")
                continue
            point = point_map.point(need.name)
            if "W" in need.access and not point.writable:
                problems.append(f"point {need.name!r} must be writable (access {point.access})")
            if "R" in need.access and not point.readable:
                problems.append(f"point {need.name!r} must be readable (access {point.access})")
            absent = [s for s in need.symbols if point.raw_of_symbol(s) is None]
            if absent:
                problems.append(f"point {need.name!r} must be an enum16 with {', '.join(absent)}")
        return problems

    @classmethod
    def check_options(cls, options: Mapping[str, Any], *, bench_dir: Path | None,
                      defaults: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Validate a bench file's options for this driver: (options with the map path
        resolved and defaults filled in, [(option key, problem), ...])."""
        problems: list[tuple[str, str]] = []
        normalised = {**defaults, **dict(options)}
        for key in sorted(set(options) - COMMON_OPTIONS - cls.OPTIONS):
            problems.append((key, f"unknown option (allowed: {', '.join(sorted(COMMON_OPTIONS | cls.OPTIONS))})"))
        allow = normalised.setdefault("allow_control", False)
        if not isinstance(allow, bool):
            problems.append(("allow_control", f"value {allow!r} must be true or false"))
        spec = options.get("point_map")
        if not isinstance(spec, str) or not spec.strip():
            problems.append(("point_map", "missing: the instrument's register map (a shipped map's name "
                                          "or a path), see docs/modbus_instruments.md"))
        else:
            try:
                path = resolve_map_path(spec, cls.MAP_DIRECTORY, bench_dir)
                point_map = load_point_map(path)
            except (ValueError, DutError) as exc:
                problems.append(("point_map", str(exc)))
            else:
                # shipped names stay names; files become absolute so the run folder's copy works
                if "/" in spec or "\\" in spec or spec.endswith(".toml"):
                    normalised["point_map"] = str(path)
                if not problems:
                    problems += [("point_map", f"map {point_map.name}: {p}")
                                 for p in cls.map_problems(point_map, normalised)]
        problems += cls.option_problems(normalised)
        return normalised, problems

    @classmethod
    def option_problems(cls, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Driver-specific option checks (ratings, steps)."""
        return []

    # -- identification ---------------------------------------------------------------------
    def identify(self) -> Identity:
        """Identity points of the map (strings); the map header where the map has none."""
        present = [name for name in IDENTITY_POINTS if self.point_map.has(name)]
        values = self.read_points(present) if present else {}
        self.identity = Identity(
            manufacturer=str(values.get("manufacturer") or self.point_map.manufacturer or ""),
            model=str(values.get("model") or self.point_map.model or ""),
            serial=str(values.get("serial", "")),
            firmware=str(values.get("firmware", "")))
        return self.identity

    def initialize(self) -> None:
        """Check the device is the product the map was written for (its identity points against
        the map header) and the map's version point, so a wrong address or a map for other
        firmware fails before any write."""
        self._check_identity_against_map()
        version_point = self.point_map.version_point
        if version_point is None:
            return
        found = self.read_points([version_point])[version_point]
        if found != self.point_map.version:
            raise self.error(f"point map {self.point_map.name} is for register-block version "
                             f"{self.point_map.version}, the instrument reports {version_point} = {found}")

    def _check_identity_against_map(self) -> None:
        identity = self.identity if getattr(self, "identity", None) is not None else self.identify()
        for field, stated in (("manufacturer", self.point_map.manufacturer),
                              ("model", self.point_map.model)):
            if not self.point_map.has(field) or not stated:
                continue            # nothing to compare: the header fills the identity
            answered = getattr(identity, field)
            if answered.strip().upper() != str(stated).strip().upper():
                raise self.error(f"point map {self.point_map.name} is for {field} {stated!r}, but the "
                                 f"device at this address reports {answered!r} (point '{field}')")

    # -- points ------------------------------------------------------------------------------
    @property
    def control_allowed(self) -> bool:
        return self.options.get("allow_control") is True

    def read_points(self, names: Iterable[str]) -> dict[str, Any]:
        self._require_open()
        try:
            return self._points.read(list(names))
        except DutError as exc:
            raise self.error(str(exc)) from None

    def check_points(self, values: Mapping[str, Any]) -> None:
        """Raise LimitError for what write_points would refuse; send nothing."""
        try:
            self._points.check(values)
        except SetpointOutOfRange as exc:
            raise self.limit_error(f"{exc}; nothing was sent") from None
        except DutError as exc:
            raise self.error(str(exc)) from None

    def command(self, values: Mapping[str, Any], what: str) -> None:
        """Write points that change the bench (commands, contactors): only where the bench file
        allows control of this instrument, checked completely before anything is sent."""
        self._require_open()
        if not self.control_allowed:
            raise self.error(f"{what} refused: the bench file does not allow control of this {self.role} "
                             f"(instruments.{self.role}.options.allow_control = true); nothing was sent")
        self.check_points(values)
        try:
            self._points.write(values)
        except DutError as exc:
            raise self.error(f"{what}: {exc}") from None
        log.info("%s at %s: %s (%s)", self.role, self.resource_name, what, dict(values))

    # -- errors, safe state, close ----------------------------------------------------------
    def error(self, message: str) -> InstrumentError:
        return InstrumentError(self.role, self.resource_name, message)

    def limit_error(self, message: str, **details: Any) -> LimitError:
        return LimitError(self.role, self.resource_name, message, **details)

    def _require_open(self) -> None:
        if self._closed:
            raise self.error("the driver is closed")

    def safe_state(self) -> bool:
        """The instrument's safe state; never raises (False: a command did not go out)."""
        return True

    def close(self) -> None:
        """Release the transport (idempotent). Does not change anything: call safe_state()."""
        if self._closed:
            return
        self._closed = True
        try:
            self._transport.close()
        except Exception as exc:
            log.warning("%s at %s: closing the link failed: %s", self.role, self.resource_name, exc)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "ModbusInstrument":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} role={self.role!r} resource={self.resource_name!r} map={self.point_map.name!r}>"


__all__ = ["ModbusInstrument", "RequiredPoint", "is_modbus_resource", "modbus_connection", "resolve_map_path"]
