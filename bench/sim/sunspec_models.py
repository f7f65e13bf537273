"""Register layouts of SunSpec models, read from pysunspec2's shipped JSON definitions.

The simulated PCS builds its Modbus register image from these layouts so that point
offsets, types and sizes come from the SunSpec definitions themselves, never from a table
typed by hand here. This is the simulator's own reading of the definitions: it does not
share code with `dut/` on purpose (a misread on one side must not hide one on the other).

Offsets are relative to the model's first register (the `ID` point is offset 0, `L` is 1),
so `L` = layout length - 2. Repeating groups (e.g. 707/708 `Crv` x NCrvSet, `Pt` x NPt)
are expanded with the counts the caller chooses; their points get paths such as
`Crv[1].MustTrip.Pt[2].V` (indices 1-based, as SunSpec's AdptCrvReq counts curves).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

# --- not-implemented values, per SunSpec point type ------------------------------------
# A reader must be able to tell "not implemented" from a real zero, so unimplemented
# points carry these sentinels (accumulators use 0, as the SunSpec spec says).
_NOT_IMPLEMENTED_INT: dict[str, int] = {
    "int16": 0x8000, "uint16": 0xFFFF, "acc16": 0, "enum16": 0xFFFF, "bitfield16": 0xFFFF,
    "count": 0, "sunssf": 0x8000, "pad": 0x8000,
    "int32": 0x8000_0000, "uint32": 0xFFFF_FFFF, "acc32": 0, "enum32": 0xFFFF_FFFF,
    "bitfield32": 0xFFFF_FFFF, "ipaddr": 0,
    "int64": 0x8000_0000_0000_0000, "uint64": 0xFFFF_FFFF_FFFF_FFFF, "acc64": 0,
}
_SIGNED_TYPES = {"int16", "sunssf", "int32", "int64"}
_FLOAT_TYPES = {"float32": ">f", "float64": ">d"}


@dataclass(frozen=True)
class PointLayout:
    """One point of a model, placed at a register offset within the model."""

    path: str                 # "WSet", "PFWInj.PF", "Crv[1].MustTrip.Pt[2].Tms"
    name: str                 # the point's own name ("Tms")
    type: str                 # SunSpec type: uint16, int32, string, sunssf, ...
    offset_regs: int          # from the model's ID register
    size_regs: int
    access: str               # "R" or "RW" as the definition says
    sf: str | int | None      # scale factor: a point name (resolved in the same model) or a constant
    units: str
    label: str
    mandatory: bool
    static: bool
    symbols: Mapping[str, int] = field(default_factory=dict)  # enum/bitfield names -> values

    @property
    def writable_by_definition(self) -> bool:
        return self.access == "RW"


@dataclass(frozen=True)
class ModelLayout:
    """The full register layout of one model instance (fixed group counts)."""

    model_id: int
    name: str
    label: str
    length_regs: int                  # including ID and L
    points: tuple[PointLayout, ...]
    group_counts: Mapping[str, int]   # the counts used to expand repeating groups

    @property
    def l_value(self) -> int:
        """The `L` register value: model length without ID and L."""
        return self.length_regs - 2

    def point(self, path: str) -> PointLayout:
        for point in self.points:
            if point.path == path:
                return point
        raise KeyError(f"model {self.model_id} has no point {path!r}")

    def point_at(self, offset_regs: int) -> PointLayout:
        """The point that covers a register offset (points tile the model without gaps)."""
        for point in self.points:
            if point.offset_regs <= offset_regs < point.offset_regs + point.size_regs:
                return point
        raise KeyError(f"model {self.model_id} has no point at offset {offset_regs}")

    def scale_factor_point(self, point: PointLayout) -> PointLayout | None:
        """The sunssf point that scales `point`, if its scale factor is a point name."""
        if not isinstance(point.sf, str):
            return None
        return self.point(point.sf)


def model_json_folder():
    """The folder of model JSON files inside the installed pysunspec2 package."""
    return resources.files("sunspec2").joinpath("models", "json")


@cache
def load_model_definition(model_id: int) -> dict[str, Any]:
    text = model_json_folder().joinpath(f"model_{model_id}.json").read_text(encoding="utf-8")
    definition = json.loads(text)
    if definition.get("id") != model_id:
        raise ValueError(f"model_{model_id}.json declares id {definition.get('id')}")
    return definition


def _group_repeat_count(group: Mapping[str, Any], group_counts: Mapping[str, int],
                        model_id: int) -> int | None:
    """None for a plain (non-repeating) group, else how many instances to lay out."""
    count = group.get("count")
    if count is None:
        return None
    if isinstance(count, int):
        return count
    if count not in group_counts:
        raise ValueError(f"model {model_id}: group {group['name']!r} repeats {count!r} times;"
                         f" pass group_counts={{{count!r}: n}}")
    return int(group_counts[count])


def build_model_layout(model_id: int, group_counts: Mapping[str, int] | None = None) -> ModelLayout:
    """Lay out a model from its JSON definition, expanding repeating groups by `group_counts`
    (keys are the count names the definition uses, e.g. {"NCrvSet": 1, "NPt": 4})."""
    counts = dict(group_counts or {})
    definition = load_model_definition(model_id)
    top = definition["group"]
    points: list[PointLayout] = []

    def add_group(group: Mapping[str, Any], prefix: str, offset_regs: int) -> int:
        for p in group.get("points", []):
            size = int(p["size"])
            points.append(PointLayout(
                path=prefix + p["name"], name=p["name"], type=p["type"],
                offset_regs=offset_regs, size_regs=size, access=p.get("access", "R"),
                sf=p.get("sf"), units=p.get("units", ""), label=p.get("label", ""),
                mandatory=p.get("mandatory") == "M", static=p.get("static") == "S",
                symbols={s["name"]: int(s["value"]) for s in p.get("symbols", [])},
            ))
            offset_regs += size
        for sub in group.get("groups", []):
            repeat = _group_repeat_count(sub, counts, model_id)
            if repeat is None:
                offset_regs = add_group(sub, f"{prefix}{sub['name']}.", offset_regs)
            else:
                for index in range(1, repeat + 1):
                    offset_regs = add_group(sub, f"{prefix}{sub['name']}[{index}].", offset_regs)
        return offset_regs

    length = add_group(top, "", 0)
    return ModelLayout(model_id=model_id, name=top["name"], label=top.get("label", ""),
                       length_regs=length, points=tuple(points), group_counts=counts)


# --- value <-> registers ----------------------------------------------------------------

def not_implemented_registers(point: PointLayout) -> list[int]:
    """The registers a device shows for a point it does not implement."""
    if point.type == "string":
        return [0] * point.size_regs
    if point.type in _FLOAT_TYPES:
        return encode_point(point, math.nan)
    return _int_to_registers(_NOT_IMPLEMENTED_INT[point.type], point.size_regs)


def _int_to_registers(raw: int, size_regs: int) -> list[int]:
    raw &= (1 << (16 * size_regs)) - 1
    return [(raw >> (16 * (size_regs - 1 - i))) & 0xFFFF for i in range(size_regs)]


def _registers_to_int(registers: list[int]) -> int:
    raw = 0
    for register in registers:
        raw = (raw << 16) | (register & 0xFFFF)
    return raw


def encode_point(point: PointLayout, value: int | float | str) -> list[int]:
    """Registers for a raw (unscaled) point value; raises ValueError if it does not fit."""
    if point.type == "string":
        data = str(value).encode("utf-8")
        capacity = 2 * point.size_regs
        if len(data) > capacity:
            raise ValueError(f"{point.path}: {value!r} longer than {capacity} bytes")
        data = data.ljust(capacity, b"\x00")
        return [int.from_bytes(data[i:i + 2], "big") for i in range(0, capacity, 2)]
    if point.type in _FLOAT_TYPES:
        data = struct.pack(_FLOAT_TYPES[point.type], float(value))
        return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    raw = int(value)
    bits = 16 * point.size_regs
    if point.type in _SIGNED_TYPES:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    if not low <= raw <= high:
        raise ValueError(f"{point.path}: {raw} outside {point.type} range")
    return _int_to_registers(raw, point.size_regs)


def decode_point(point: PointLayout, registers: list[int]) -> int | float | str | None:
    """Raw (unscaled) value of a point from its registers; None if not implemented."""
    if len(registers) != point.size_regs:
        raise ValueError(f"{point.path}: need {point.size_regs} registers, got {len(registers)}")
    if point.type == "string":
        data = b"".join(r.to_bytes(2, "big") for r in registers)
        return data.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    if point.type in _FLOAT_TYPES:
        data = b"".join(r.to_bytes(2, "big") for r in registers)
        value = struct.unpack(_FLOAT_TYPES[point.type], data)[0]
        return None if math.isnan(value) else value
    raw = _registers_to_int(registers)
    if point.type not in {"acc16", "acc32", "acc64", "count", "ipaddr"} and \
            raw == _NOT_IMPLEMENTED_INT.get(point.type):
        return None
    if point.type in _SIGNED_TYPES and raw >= 1 << (16 * point.size_regs - 1):
        raw -= 1 << (16 * point.size_regs)
    return raw


# --- scaling ----------------------------------------------------------------------------

def fit_scale_factor(max_abs: float, *, signed: bool) -> int:
    """Smallest power-of-ten scale factor that keeps `max_abs` inside a 16-bit register."""
    limit = 32766 if signed else 65534            # the top value is the not-implemented sentinel
    sf = -4
    while max_abs / 10.0 ** sf > limit:
        sf += 1
    return sf


def to_raw(value: float | None, sf: int) -> int | None:
    """Register value of an engineering value at scale factor `sf` (None stays None)."""
    return None if value is None or not math.isfinite(value) else round(value / 10.0 ** sf)


def point_value(layout: ModelLayout, model_registers: list[int], path: str) -> int | float | str | None:
    """Raw value of one point out of a whole model's registers (index 0 = the ID register)."""
    point = layout.point(path)
    return decode_point(point, model_registers[point.offset_regs:point.offset_regs + point.size_regs])
