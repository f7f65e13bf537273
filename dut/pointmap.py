"""Vendor point maps: registers outside SunSpec, described in a TOML file.

A point map is the client's transcription of one vendor manual page. It says, per point,
where the point lives and how to turn registers into engineering values, so that the code
above it (`VendorPoints`, `SunSpecPcs`) speaks point names only.

File format (one file per vendor register block; `dut/pointmaps/README.md` has an example)
------------------------------------------------------------------------------------------
    [map]                          # required
    name = "vpcs250"               # required; how error messages name the map
    description = "..."            # optional free text
    manufacturer = "bessbench"     # optional, informational: a map is chosen by the bench
    model = "VPCS-250"             #   file, never by the identity the PCS reports
    version_point = "map_version"  # optional: a point checked at connection ...
    version = 1                    #   ... to hold this value (a wrong map fails early)

    [[point]]                      # one table per point, in any order
    name = "k_factor"              # required, unique, [a-z0-9_]+
    address = 41003                # required, 0-based holding register, 0..65535
    type = "uint16"                # required: uint16 int16 uint32 int32 enum16 float32 string
    size = 8                       # registers; required for string, implied for the others
    scale = 0.01                   # optional: value = raw × scale          } at most
    sf = "k_sf"                    # optional: value = raw × 10^(sf point)  } one of them
    units = "pu/pu"                # optional
    access = "RW"                  # required: R, RW or W (write-only: reads are meaningless)
    min = 0.0                      # optional, engineering units: writes outside are refused
    max = 10.0                     #   before anything is sent
    values = { 0 = "NO", 1 = "YES" }  # enum16 only, and required there: raw value = "NAME"
    description = "..."            # optional

32-bit values are high word first; strings two characters per register, high byte first.
An sf point must be an int16 of the same map. Points of the same map may not share a register.

The PCS layer (`SunSpecPcs`) looks points up by conventional names (`state`, `vdc`,
`control_mode`, ...) and expects their enumerations in its own vocabulary; the README lists
them. A vendor map translates the vendor's codes into those names: that is its job.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DutError

POINT_TYPES: dict[str, int] = {
    "uint16": 1, "int16": 1, "enum16": 1, "uint32": 2, "int32": 2, "float32": 2, "string": 0,
}
# Raw ranges of the integer types (the whole register range: vendor blocks have no
# SunSpec "not implemented" codes unless their manual says so).
RAW_RANGE: dict[str, tuple[int, int]] = {
    "uint16": (0, 0xFFFF), "enum16": (0, 0xFFFF), "int16": (-0x8000, 0x7FFF),
    "uint32": (0, 0xFFFF_FFFF), "int32": (-0x8000_0000, 0x7FFF_FFFF),
}
ACCESS_MODES = ("R", "RW", "W")
POINT_FIELDS = {"name", "address", "type", "size", "scale", "sf", "units", "access", "min", "max",
                "values", "description"}
MAP_FIELDS = {"name", "description", "manufacturer", "model", "version_point", "version"}
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SHIPPED_MAP_DIRECTORY = Path(__file__).parent / "pointmaps"


class PointMapError(DutError):
    """A point-map file is invalid; `problems` lists every problem found, each located."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n  ".join(problems)
        super().__init__(f"invalid point map {source} ({len(problems)} problem(s)):\n  {listing}")


@dataclass(frozen=True)
class VendorPoint:
    name: str
    address: int
    point_type: str
    size: int  # registers
    access: str
    scale: float | None = None
    sf: str | None = None
    units: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    values: dict[int, str] = field(default_factory=dict)  # enum16: raw -> symbol
    description: str = ""

    @property
    def end(self) -> int:
        """One past the last register of the point."""
        return self.address + self.size

    @property
    def readable(self) -> bool:
        return "R" in self.access

    @property
    def writable(self) -> bool:
        return "W" in self.access

    def raw_of_symbol(self, symbol: str) -> int | None:
        for raw, name in self.values.items():
            if name == symbol:
                return raw
        return None


@dataclass(frozen=True)
class PointMap:
    name: str
    source: str
    points: dict[str, VendorPoint]  # in address order
    description: str = ""
    manufacturer: str | None = None
    model: str | None = None
    version_point: str | None = None
    version: int | None = None

    def point(self, name: str) -> VendorPoint:
        if name not in self.points:
            raise DutError(f"point map {self.name} has no point {name!r}")
        return self.points[name]

    def has(self, name: str) -> bool:
        return name in self.points


# ---------------------------------------------------------------------------- loading
def resolve_point_map_path(spec: str | Path) -> Path:
    """A shipped map's name ("vpcs250") or a path to a map file."""
    text = str(spec)
    if "/" not in text and "\\" not in text and not text.endswith(".toml"):
        path = SHIPPED_MAP_DIRECTORY / f"{text}.toml"
        if not path.is_file():
            shipped = sorted(p.stem for p in SHIPPED_MAP_DIRECTORY.glob("*.toml"))
            raise DutError(f"no shipped point map named {text!r} (shipped: {', '.join(shipped)})")
        return path
    path = Path(text)
    if not path.is_file():
        raise DutError(f"point map file {path} does not exist")
    return path


def load_point_map(spec: str | Path) -> PointMap:
    path = resolve_point_map_path(spec)
    return parse_point_map(path.read_text(encoding="utf-8"), str(path))


def parse_point_map(text: str, source: str = "<point map>") -> PointMap:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PointMapError(source, [f"{source}: not valid TOML: {exc}"]) from None
    return _Validator(source).build(document)


class _Validator:
    """Collects every problem before failing, so one run fixes a whole file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, where: str, field_name: str | None, message: str) -> None:
        located = f"{self.source}: {where}" + (f", field {field_name!r}" if field_name else "")
        self.problems.append(f"{located}: {message}")

    def build(self, document: dict[str, Any]) -> PointMap:
        header = document.get("map")
        if not isinstance(header, dict):
            self.problem("[map]", None, "missing [map] table with at least name = \"...\"")
            header = {}
        for key in sorted(set(header) - MAP_FIELDS):
            self.problem("[map]", key, f"unknown field (allowed: {', '.join(sorted(MAP_FIELDS))})")
        for key in sorted(set(document) - {"map", "point"}):
            self.problem(f"[{key}]", None, "unknown table (allowed: [map], [[point]])")
        map_name = header.get("name")
        if not isinstance(map_name, str) or not map_name:
            self.problem("[map]", "name", "required non-empty string")
            map_name = Path(self.source).stem

        raw_points = document.get("point", [])
        if not isinstance(raw_points, list):
            self.problem("point", None, "points must be an array of tables ([[point]])")
            raw_points = []
        points: dict[str, VendorPoint] = {}
        for index, raw in enumerate(raw_points, start=1):
            point = self._point(index, raw)
            if point is None:
                continue
            if point.name in points:
                self.problem(f"point {point.name!r} (#{index})", "name",
                             f"duplicate name (first defined at address {points[point.name].address})")
                continue
            points[point.name] = point
        self._check_overlaps(points)
        self._check_scale_factor_points(points)

        version_point = header.get("version_point")
        version = header.get("version")
        if version_point is not None and version_point not in points:
            self.problem("[map]", "version_point", f"names no point of this map: {version_point!r}")
        if (version_point is None) != (version is None):
            self.problem("[map]", "version", "version_point and version go together")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            self.problem("[map]", "version", f"must be an integer, got {version!r}")
        if self.problems:
            raise PointMapError(self.source, self.problems)
        ordered = dict(sorted(points.items(), key=lambda item: item[1].address))
        return PointMap(
            name=map_name,
            source=self.source,
            points=ordered,
            description=str(header.get("description", "")),
            manufacturer=header.get("manufacturer"),
            model=header.get("model"),
            version_point=version_point,
            version=version,
        )

    def _point(self, index: int, raw: Any) -> VendorPoint | None:
        if not isinstance(raw, dict):
            self.problem(f"point #{index}", None, "must be a table")
            return None
        name = raw.get("name")
        where = f"point {name!r}" if isinstance(name, str) else f"point #{index}"
        before = len(self.problems)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.problem(where, "name", "required, lower-case letters, digits and _ (e.g. soc_min)")
        for key in sorted(set(raw) - POINT_FIELDS):
            self.problem(where, key, f"unknown field (allowed: {', '.join(sorted(POINT_FIELDS))})")

        point_type = raw.get("type")
        if point_type not in POINT_TYPES:
            self.problem(where, "type", f"unknown type {point_type!r} (known: {', '.join(POINT_TYPES)})")
        size = POINT_TYPES.get(point_type, 1) if isinstance(point_type, str) else 1
        if point_type == "string":
            size = raw.get("size")
            if not _is_int(size) or size < 1:
                self.problem(where, "size", "a string needs size = number of registers (>= 1)")
                size = 1
        elif "size" in raw and raw["size"] != size:
            self.problem(where, "size", f"{point_type} is {size} register(s), not {raw['size']!r}")

        address = raw.get("address")
        if not _is_int(address):
            self.problem(where, "address", f"required integer register address, got {address!r}")
            address = 0
        elif not 0 <= address <= 0xFFFF:
            self.problem(where, "address", f"{address} is outside 0..65535")
        elif address + size - 1 > 0xFFFF:
            self.problem(where, "address", f"{address} + {size} registers runs past 65535")

        access = raw.get("access")
        if access not in ACCESS_MODES:
            self.problem(where, "access", f"must be one of {', '.join(ACCESS_MODES)}, got {access!r}")

        scale = raw.get("scale")
        sf = raw.get("sf")
        if scale is not None and sf is not None:
            self.problem(where, "scale", "scale and sf are both given; use one of them")
        if scale is not None and (not _is_number(scale) or scale == 0 or not math.isfinite(scale)):
            self.problem(where, "scale", f"must be a finite non-zero number, got {scale!r}")
        if sf is not None and not isinstance(sf, str):
            self.problem(where, "sf", f"must name an int16 point of this map, got {sf!r}")
        if (scale is not None or sf is not None) and point_type in ("enum16", "string"):
            self.problem(where, "scale" if scale is not None else "sf", f"a {point_type} point is not scaled")

        values = self._enumeration(where, raw.get("values"), point_type)
        minimum, maximum = raw.get("min"), raw.get("max")
        for key, bound in (("min", minimum), ("max", maximum)):
            if bound is not None and not _is_number(bound):
                self.problem(where, key, f"must be a number, got {bound!r}")
            elif bound is not None and point_type in ("enum16", "string"):
                self.problem(where, key, f"a {point_type} point takes its allowed values from 'values'")
        if _is_number(minimum) and _is_number(maximum) and minimum > maximum:
            self.problem(where, "min", f"min {minimum} is above max {maximum}")
        units = raw.get("units")
        if units is not None and not isinstance(units, str):
            self.problem(where, "units", f"must be a string, got {units!r}")

        if len(self.problems) > before:
            return None
        return VendorPoint(
            name=name, address=address, point_type=point_type, size=size, access=access,
            scale=float(scale) if scale is not None else None, sf=sf, units=units or None,
            minimum=float(minimum) if minimum is not None else None,
            maximum=float(maximum) if maximum is not None else None,
            values=values, description=str(raw.get("description", "")),
        )

    def _enumeration(self, where: str, raw: Any, point_type: Any) -> dict[int, str]:
        if point_type != "enum16":
            if raw is not None:
                self.problem(where, "values", f"only enum16 points have values (type is {point_type!r})")
            return {}
        if not isinstance(raw, dict) or not raw:
            self.problem(where, "values", "an enum16 point needs values = { 0 = \"NAME\", ... }")
            return {}
        values: dict[int, str] = {}
        for key, symbol in raw.items():
            try:
                code = int(key)
            except ValueError:
                self.problem(where, "values", f"key {key!r} is not an integer register value")
                continue
            if not 0 <= code <= 0xFFFF:
                self.problem(where, "values", f"value {code} does not fit a register (0..65535)")
            if not isinstance(symbol, str) or not symbol:
                self.problem(where, "values", f"value {code} needs a non-empty name, got {symbol!r}")
                continue
            if symbol in values.values():
                self.problem(where, "values", f"name {symbol!r} is used twice")
            values[code] = symbol
        return values

    def _check_overlaps(self, points: dict[str, VendorPoint]) -> None:
        ordered = sorted(points.values(), key=lambda p: (p.address, p.end))
        for previous, current in zip(ordered, ordered[1:]):
            if current.address < previous.end:
                self.problem(
                    f"point {current.name!r}", "address",
                    f"registers {current.address}..{current.end - 1} overlap point "
                    f"{previous.name!r} ({previous.address}..{previous.end - 1})",
                )

    def _check_scale_factor_points(self, points: dict[str, VendorPoint]) -> None:
        for point in points.values():
            if point.sf is None:
                continue
            target = points.get(point.sf)
            if target is None:
                self.problem(f"point {point.name!r}", "sf", f"names no point of this map: {point.sf!r}")
            elif target.point_type != "int16" or target.scale is not None or target.sf is not None:
                self.problem(f"point {point.name!r}", "sf",
                             f"scale-factor point {point.sf!r} must be an unscaled int16")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
