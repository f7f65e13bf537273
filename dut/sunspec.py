"""SunSpec devices over Modbus: discovery, model layouts from pysunspec2's JSON, point codecs.

Only the JSON files shipped inside the pysunspec2 package are used (located without importing
its Modbus client): the register map is never retyped by hand. A layout depends on the device
for models with repeating groups (their counts are points of the model), so it is built from
the model's registers as read.

Robustness rules learnt from field devices: a model that answers with a Modbus exception is
marked unavailable and the rest of the device stays usable; a malformed model chain or an
impossible repeating-group count is reported, never looped on.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import DutError, ModbusPointError, SetpointOutOfRange, SunSpecError
from .modbus_transport import MAX_READ_REGISTERS, MAX_WRITE_REGISTERS, ModbusTransport

HEADER_REGISTERS = 2  # every model starts with ID and L; L counts the registers after them

# Registers per fixed-size type; strings and pads take their size from the definition.
TYPE_REGISTERS: dict[str, int] = {
    "uint16": 1, "int16": 1, "acc16": 1, "enum16": 1, "bitfield16": 1, "count": 1,
    "sunssf": 1, "pad": 1,
    "uint32": 2, "int32": 2, "acc32": 2, "enum32": 2, "bitfield32": 2, "float32": 2,
    "ipaddr": 2,
    "uint64": 4, "int64": 4, "acc64": 4, "eui48": 4,
    "ipv6addr": 8,
}

# Ranges a value may take when written; the not-implemented code of each type is excluded.
WRITABLE_RANGE: dict[str, tuple[int, int]] = {
    "uint16": (0, 0xFFFE), "enum16": (0, 0xFFFE), "bitfield16": (0, 0x7FFF), "count": (0, 0xFFFE),
    "int16": (-0x7FFF, 0x7FFF), "sunssf": (-10, 10),
    "uint32": (0, 0xFFFF_FFFE), "enum32": (0, 0xFFFF_FFFE), "bitfield32": (0, 0x7FFF_FFFF),
    "int32": (-0x7FFF_FFFF, 0x7FFF_FFFF),
    "uint64": (0, 0xFFFF_FFFF_FFFF_FFFE), "int64": (-0x7FFF_FFFF_FFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF),
}


# ---------------------------------------------------------------------------- definitions
@lru_cache(maxsize=1)
def model_json_directory() -> Path:
    """Directory of pysunspec2's model_<id>.json files (found without importing sunspec2)."""
    spec = importlib.util.find_spec("sunspec2")
    if spec is None or spec.origin is None:
        raise DutError("pysunspec2 is not installed: its JSON model definitions are needed")
    directory = Path(spec.origin).parent / "models" / "json"
    if not directory.is_dir():
        raise DutError(f"pysunspec2 model definitions not found in {directory}")
    return directory


@lru_cache(maxsize=None)
def model_definition(model_id: int) -> dict[str, Any] | None:
    """The JSON definition of a SunSpec model, or None for models SunSpec does not define."""
    path = model_json_directory() / f"model_{model_id}.json"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class PointLayout:
    path: str  # e.g. "WSet" or "Crv[2].MustTrip.Pt[1].V" (group instances count from 1)
    point_type: str
    offset: int  # registers from the model's ID register
    size: int
    writable: bool
    sf_path: str | None = None  # scale factor given by another point of the model
    sf_fixed: int | None = None  # scale factor given as a constant in the definition
    units: str | None = None
    symbols: dict[str, int] = field(default_factory=dict)

    @property
    def scaled(self) -> bool:
        return self.sf_path is not None or self.sf_fixed is not None


@dataclass
class ModelLayout:
    model_id: int
    length: int  # L as read from the device
    points: dict[str, PointLayout]
    complete: bool  # False when counts could not be resolved yet or the model is shorter

    def point_at(self, offset: int) -> PointLayout | None:
        for point in self.points.values():
            if point.offset <= offset < point.offset + point.size:
                return point
        return None


@dataclass
class _Scope:
    names: dict[str, str] = field(default_factory=dict)  # point name -> path in this group


class _LayoutBuilder:
    def __init__(
        self,
        model_id: int,
        definition: dict[str, Any],
        length: int,
        registers: Sequence[int] | None,
        address: int | None,
    ) -> None:
        self.model_id = model_id
        self.definition = definition
        self.total = length + HEADER_REGISTERS
        self.length = length
        self.registers = registers
        self.where = f"model {model_id}" + (f" at register {address}" if address is not None else "")
        self.offset = 0
        self.points: dict[str, PointLayout] = {}
        self.pending_sf: dict[str, tuple[str, list[_Scope]]] = {}
        self.complete = True

    def build(self) -> ModelLayout:
        try:
            self._group(self.definition["group"], "", [], counted=False)
        except _StopLayout:
            self.complete = False
        self._resolve_scale_factors()
        return ModelLayout(self.model_id, self.length, self.points, self.complete)

    def _group(self, group: dict, prefix: str, outer: list[_Scope], *, counted: bool) -> None:
        scope = _Scope()
        chain = [scope, *outer]
        for point in group.get("points", []):
            self._point(point, prefix, chain, counted=counted)
        for sub in group.get("groups", []):
            count = self._group_count(sub, chain)
            repeated = "count" in sub
            if repeated:
                needed = self.offset + count * self._group_size(sub, chain)
                if needed > self.total:
                    raise SunSpecError(
                        f"{self.where}: repeating group {prefix}{sub['name']} with count "
                        f"{sub['count']}={count} needs {needed} registers but the model has "
                        f"{self.total} (L={self.length}); impossible count"
                    )
            for index in range(1, count + 1):
                name = f"{prefix}{sub['name']}[{index}]." if repeated else f"{prefix}{sub['name']}."
                self._group(sub, name, chain, counted=counted or repeated)

    def _point(self, point: dict, prefix: str, chain: list[_Scope], *, counted: bool) -> None:
        point_type = point["type"]
        size = int(point.get("size") or TYPE_REGISTERS.get(point_type, 1))
        if self.offset + size > self.total:
            if counted:
                raise SunSpecError(
                    f"{self.where}: point {prefix}{point['name']} runs past the model length "
                    f"L={self.length}"
                )
            # A model shorter than its definition (an older revision): later points are absent.
            raise _StopLayout()
        path = prefix + point["name"]
        sf = point.get("sf")
        layout = PointLayout(
            path=path,
            point_type=point_type,
            offset=self.offset,
            size=size,
            writable=point.get("access", "R") == "RW",
            sf_fixed=int(sf) if isinstance(sf, int) or (isinstance(sf, str) and _is_int(sf)) else None,
            units=point.get("units"),
            symbols={s["name"]: int(s["value"]) for s in point.get("symbols", [])},
        )
        self.points[path] = layout
        chain[0].names[point["name"]] = path
        if isinstance(sf, str) and not _is_int(sf):
            self.pending_sf[path] = (sf, chain)
        self.offset += size

    def _group_count(self, group: dict, chain: list[_Scope]) -> int:
        spec = group.get("count")
        if spec is None:
            return 1
        if isinstance(spec, int) or _is_int(spec):
            count = int(spec)
            if count == 0:  # "as many as fit": the count is implied by L
                size = self._group_size(group, chain)
                return (self.total - self.offset) // size if size else 0
            return count
        path = _lookup(spec, chain)
        if path is None:
            raise SunSpecError(f"{self.where}: group {group['name']} counts by unknown point {spec}")
        if self.registers is None:
            raise _StopLayout()  # counts come from the device; caller reads the registers first
        point = self.points[path]
        return int(self.registers[point.offset])

    def _group_size(self, group: dict, chain: list[_Scope]) -> int:
        size = sum(int(p.get("size") or TYPE_REGISTERS.get(p["type"], 1)) for p in group.get("points", []))
        for sub in group.get("groups", []):
            spec = sub.get("count")
            if spec is None:
                count = 1
            elif isinstance(spec, int) or _is_int(spec):
                count = max(int(spec), 0)
            else:
                path = _lookup(spec, chain)
                if path is None or self.registers is None:
                    raise _StopLayout()
                count = int(self.registers[self.points[path].offset])
            size += count * self._group_size(sub, chain)
        return size

    def _resolve_scale_factors(self) -> None:
        for path, (sf_name, chain) in self.pending_sf.items():
            sf_path = _lookup(sf_name, chain)
            point = self.points[path]
            # A scale factor missing from a truncated model leaves the point unscalable (None).
            self.points[path] = PointLayout(
                path=point.path, point_type=point.point_type, offset=point.offset, size=point.size,
                writable=point.writable, sf_path=sf_path or f"<missing {sf_name}>",
                units=point.units, symbols=point.symbols,
            )


class _StopLayout(Exception):
    """Internal: the layout cannot go further without more information."""


def _lookup(name: str, chain: list[_Scope]) -> str | None:
    # Scale factors and counts live in the point's own group or an enclosing one.
    for scope in chain:
        if name in scope.names:
            return scope.names[name]
    return None


def _is_int(text: Any) -> bool:
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return True


def build_layout(
    model_id: int,
    definition: dict[str, Any],
    length: int,
    registers: Sequence[int] | None = None,
    *,
    address: int | None = None,
) -> ModelLayout:
    """Lay out a model's points. Without registers, stops at the first device-given count."""
    return _LayoutBuilder(model_id, definition, length, registers, address).build()


# ---------------------------------------------------------------------------- codecs
def _unsigned(registers: Sequence[int]) -> int:
    value = 0
    for register in registers:
        value = (value << 16) | (register & 0xFFFF)
    return value


def _signed(registers: Sequence[int]) -> int:
    bits = 16 * len(registers)
    value = _unsigned(registers)
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def decode_raw(point_type: str, registers: Sequence[int]) -> Any:
    """Decode a point's registers; None when the device marks it not implemented."""
    if point_type == "pad":
        return None
    if point_type in ("int16", "sunssf", "int32", "int64"):
        value = _signed(registers)
        return None if value == -(1 << (16 * len(registers) - 1)) else value
    if point_type in ("acc16", "acc32", "acc64"):
        value = _unsigned(registers)
        return None if value == 0 else value  # SunSpec: an accumulator of 0 is not implemented
    if point_type == "float32":
        value = struct.unpack(">f", struct.pack(">HH", *registers))[0]
        return None if math.isnan(value) else value
    if point_type == "string":
        text = b"".join(struct.pack(">H", r) for r in registers).split(b"\x00", 1)[0]
        text = text.decode("utf-8", errors="replace").strip()
        return text or None
    if point_type == "ipaddr":
        value = _unsigned(registers)
        return None if value == 0 else ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))
    if point_type in ("ipv6addr", "eui48"):
        value = _unsigned(registers)
        return None if value == 0 else f"{value:0{4 * len(registers)}x}"
    # uint*, enum*, bitfield*, count: all ones means not implemented
    value = _unsigned(registers)
    return None if value == (1 << (16 * len(registers))) - 1 else value


def scale(raw: Any, sf: int | None) -> float | None:
    """value = raw · 10^sf; exact decimal steps for negative sf (raw / 10^-sf)."""
    if raw is None or sf is None:
        return None
    return raw / 10 ** (-sf) if sf < 0 else float(raw * 10**sf)


def encode_value(point: PointLayout, value: Any, sf: int | None, label: str) -> list[int]:
    """Encode a value for writing; refuses values the point's type cannot carry."""
    kind = point.point_type
    if kind == "string":
        data = str(value).encode("utf-8")
        if len(data) > 2 * point.size:
            raise SetpointOutOfRange(f"{label}: {value!r} longer than {2 * point.size} bytes")
        data = data.ljust(2 * point.size, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if kind == "float32":
        number = float(value)
        if not math.isfinite(number) or abs(number) > 3.4028234e38:
            raise SetpointOutOfRange(f"{label}: {value!r} is not a finite float32")
        return list(struct.unpack(">HH", struct.pack(">f", number)))
    if kind not in WRITABLE_RANGE:
        raise DutError(f"{label}: writing points of type {kind} is not supported")
    raw = _to_integer(point, value, sf, label)
    low, high = WRITABLE_RANGE[kind]
    if not low <= raw <= high:
        scale_text = f" at scale 10^{sf}" if point.scaled else ""
        raise SetpointOutOfRange(
            f"{label}: {value!r} encodes to {raw}{scale_text}, outside the {kind} range {low}..{high}"
        )
    registers = point.size
    raw_unsigned = raw & ((1 << (16 * registers)) - 1)
    return [(raw_unsigned >> (16 * (registers - 1 - i))) & 0xFFFF for i in range(registers)]


def _to_integer(point: PointLayout, value: Any, sf: int | None, label: str) -> int:
    if isinstance(value, str):
        if value not in point.symbols:
            raise DutError(f"{label}: unknown symbol {value!r}; valid: {sorted(point.symbols)}")
        return point.symbols[value]
    if point.point_type.startswith("bitfield") and isinstance(value, Iterable):
        bits = 0
        for name in value:
            if name not in point.symbols:
                raise DutError(f"{label}: unknown bit {name!r}; valid: {sorted(point.symbols)}")
            bits |= 1 << point.symbols[name]
        return bits
    if point.scaled:
        if sf is None:
            raise DutError(f"{label}: its scale factor is not implemented; cannot encode {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise SetpointOutOfRange(f"{label}: {value!r} is not a finite number")
        return round(number * 10**-sf) if sf < 0 else round(number / 10**sf)
    if isinstance(value, float):
        if not value.is_integer():
            raise SetpointOutOfRange(f"{label}: {value!r} is not an integer and the point has no scale")
    return int(value)


# ---------------------------------------------------------------------------- device
SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
DEFAULT_BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF


@lru_cache(maxsize=None)
def _static_layout(model_id: int, length: int) -> ModelLayout | None:
    """The layout of a model whose layout does not depend on its registers, else None."""
    definition = model_definition(model_id)
    if definition is None:
        return None
    layout = build_layout(model_id, definition, length, None)
    if not layout.complete:
        return None  # a count comes from the device, or the model is shorter than defined
    return layout


class _LazyValues(Mapping):
    """Point values of one read of a model, decoded on access."""

    def __init__(self, model: "SunSpecModel") -> None:
        self._model = model
        layout = model.layout
        self._points = {} if layout is None else {
            path: point for path, point in layout.points.items() if point.point_type != "pad"
        }
        # A copy: a later write updates the model's registers in place, not this read.
        self._registers = tuple(model.registers or ())

    def __getitem__(self, path: str) -> Any:
        point = self._points[path]  # KeyError for unknown paths, as a dict would
        registers = self._registers
        raw = decode_raw(point.point_type, registers[point.offset : point.offset + point.size])
        if not point.scaled:
            return raw
        if point.sf_fixed is not None:
            return scale(raw, point.sf_fixed)
        sf_point = self._points.get(point.sf_path or "")
        sf = None if sf_point is None else decode_raw(
            sf_point.point_type, registers[sf_point.offset : sf_point.offset + sf_point.size])
        return scale(raw, sf)

    def __iter__(self):
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)


class SunSpecModel:
    """One model instance on the device: reads it whole (in ≤125-register chunks), writes points."""

    def __init__(self, device: "SunSpecDevice", model_id: int, address: int, length: int) -> None:
        self.device = device
        self.model_id = model_id
        self.address = address  # register of the model's ID
        self.length = length  # L, registers after ID and L
        self.definition = model_definition(model_id)
        self.available = True
        self.unavailable_reason: str | None = None
        self.registers: list[int] | None = None
        self.layout: ModelLayout | None = None

    def __repr__(self) -> str:
        return f"SunSpecModel({self.model_id} at {self.address}, L={self.length})"

    # ------------------------------------------------------------------ reading
    def read(self) -> "Mapping[str, Any]":
        """Read the whole model; return its point values (scaled, None if not implemented).

        The values are decoded when looked up: telemetry reads a model many times a second
        and uses a handful of its points (dut-benchmark: decoding all of 701 cost 15 % of a
        snapshot).
        """
        self._require_available()
        total = self.length + HEADER_REGISTERS
        registers: list[int] = []
        for start in range(0, total, MAX_READ_REGISTERS):
            count = min(MAX_READ_REGISTERS, total - start)
            try:
                registers += self.device.transport.read_holding(
                    self.address + start, count, point=self._label_for_span(start, count)
                )
            except ModbusPointError as exc:
                if exc.exception_code is not None:
                    # The device refuses this model; keep the rest of it usable.
                    self.available = False
                    self.unavailable_reason = str(exc)
                raise
        if registers[0] != self.model_id:
            raise SunSpecError(
                f"model {self.model_id} at register {self.address} now reads ID {registers[0]}; "
                "the device's map changed since discovery"
            )
        if self.definition is not None:
            # Finding of dut-benchmark: rebuilding the layout at every read was a quarter of
            # the client time of a snapshot. A layout without device-given counts never
            # changes, so it is built once; one with counts is rebuilt from the new registers.
            static = _static_layout(self.model_id, self.length)
            self.layout = static if static is not None else build_layout(
                self.model_id, self.definition, self.length, registers, address=self.address
            )
        self.registers = registers
        return _LazyValues(self)

    def values(self) -> dict[str, Any]:
        """Values from the last read (no bus traffic)."""
        if self.layout is None or self.registers is None:
            return {}
        return {
            path: self._decode(point)
            for path, point in self.layout.points.items()
            if point.point_type != "pad"
        }

    def value(self, path: str) -> Any:
        """One point's value from the last read (reads the model if it was never read)."""
        if self.registers is None:
            self.read()
        return self._decode(self.point(path))

    def symbol(self, path: str) -> str | None:
        """The symbol name of an enum point's current value (None if not implemented/unknown)."""
        point = self.point(path)
        raw = self._raw(point)
        names = {value: name for name, value in point.symbols.items()}
        return None if raw is None else names.get(raw, str(raw))

    def bits(self, path: str) -> set[str]:
        """The names of the bits set in a bitfield point (empty if not implemented)."""
        point = self.point(path)
        raw = self._raw(point)
        if raw is None:
            return set()
        names = {value: name for name, value in point.symbols.items()}
        return {names.get(bit, f"BIT{bit}") for bit in range(16 * point.size) if raw >> bit & 1}

    def point(self, path: str) -> PointLayout:
        if self.layout is None:
            self.read()
        assert self.layout is not None
        if path not in self.layout.points:
            raise DutError(f"model {self.model_id} has no point {path!r} on {self.device.transport.device}")
        return self.layout.points[path]

    def register_of(self, path: str) -> int:
        return self.address + self.point(path).offset

    def _raw(self, point: PointLayout) -> Any:
        assert self.registers is not None
        return decode_raw(point.point_type, self.registers[point.offset : point.offset + point.size])

    def _scale_exponent(self, point: PointLayout) -> int | None:
        if point.sf_fixed is not None:
            return point.sf_fixed
        assert self.layout is not None and point.sf_path is not None
        sf_point = self.layout.points.get(point.sf_path)
        return None if sf_point is None else self._raw(sf_point)

    def _decode(self, point: PointLayout) -> Any:
        raw = self._raw(point)
        if not point.scaled:
            return raw
        return scale(raw, self._scale_exponent(point))

    def _label_for_span(self, offset: int, count: int) -> str:
        """A point-name label for an error on registers [offset, offset+count)."""
        layout = self.layout
        if layout is None and self.definition is not None:
            layout = build_layout(self.model_id, self.definition, self.length, None)
        first = layout.point_at(offset) if layout else None
        last = layout.point_at(offset + count - 1) if layout else None
        if first is None:
            return f"{self.model_id}.<registers +{offset}..+{offset + count - 1}>"
        if last is None or last.path == first.path:
            return f"{self.model_id}.{first.path}"
        return f"{self.model_id}.{first.path}..{last.path}"

    def _require_available(self) -> None:
        if not self.available:
            raise DutError(
                f"model {self.model_id} at register {self.address} is unavailable on "
                f"{self.device.transport.device}: {self.unavailable_reason}"
            )

    # ------------------------------------------------------------------ writing
    def write(self, values: Mapping[str, Any], *, verify: bool = True) -> None:
        """Encode and write points; contiguous points go in one FC16 request, then are read back.

        Nothing is sent unless every value encodes. Read-back compares registers, so a device
        that clamps or ignores a setting is caught and the point named.
        """
        encoded = self._encode(values)
        for run in _contiguous_runs(encoded):
            first_point = run[0][0]
            start = self.address + first_point.offset
            words = [word for _, _, registers in run for word in registers]
            label = "+".join(f"{self.model_id}.{point.path}" for point, _, _ in run)
            self.device.transport.write_registers(start, words, point=label)
            if verify:
                self._verify(run, start, words)
            assert self.registers is not None
            self.registers[first_point.offset : first_point.offset + len(words)] = words

    def check_encodable(self, values: Mapping[str, Any]) -> None:
        """Raise exactly what write() would raise before sending anything; send nothing."""
        self._encode(values)

    def _encode(self, values: Mapping[str, Any]) -> list[tuple[PointLayout, Any, list[int]]]:
        self._require_available()
        if self.registers is None or self.layout is None:
            self.read()
        encoded: list[tuple[PointLayout, Any, list[int]]] = []
        for path, value in values.items():
            point = self.point(path)
            label = f"{self.model_id}.{path}"
            if not point.writable:
                raise DutError(f"point {label} is read-only on {self.device.transport.device}")
            sf = self._scale_exponent(point) if point.scaled else None
            encoded.append((point, value, encode_value(point, value, sf, label)))
        return encoded

    def _verify(self, run: list[tuple[PointLayout, Any, list[int]]], start: int, words: list[int]) -> None:
        label = "+".join(f"{self.model_id}.{point.path}" for point, _, _ in run)
        read_back = self.device.transport.read_holding(start, len(words), point=label)
        position = 0
        for point, value, registers in run:
            got = read_back[position : position + point.size]
            if got != registers:
                raise ModbusPointError(
                    f"{self.model_id}.{point.path}",
                    start + position,
                    self.device.transport.device,
                    f"read back {got} after writing {registers} ({value!r}); the device did not "
                    "accept the value as written",
                )
            position += point.size


def _contiguous_runs(encoded: list[tuple[PointLayout, Any, list[int]]]):
    runs: list[list[tuple[PointLayout, Any, list[int]]]] = []
    for item in sorted(encoded, key=lambda entry: entry[0].offset):
        point = item[0]
        if runs:
            last_point = runs[-1][-1][0]
            run_size = sum(p.size for p, _, _ in runs[-1])
            if (
                last_point.offset + last_point.size == point.offset
                and run_size + point.size <= MAX_WRITE_REGISTERS
            ):
                runs[-1].append(item)
                continue
        runs.append([item])
    return runs


class SunSpecDevice:
    """A SunSpec device: finds the marker, walks the model chain, hands out models."""

    def __init__(
        self,
        transport: ModbusTransport,
        *,
        base_addresses: Sequence[int] = DEFAULT_BASE_ADDRESSES,
    ) -> None:
        self.transport = transport
        self.base_addresses = tuple(base_addresses)
        self.base_address: int | None = None
        self.models: list[SunSpecModel] = []

    def discover(self) -> list[SunSpecModel]:
        self.base_address = self._find_marker()
        self.models = self._walk_chain(self.base_address + 2)
        return self.models

    def _find_marker(self) -> int:
        tried: list[str] = []
        for base in self.base_addresses:
            try:
                words = self.transport.read_holding(base, 2, point="SunSpec marker")
            except ModbusPointError as exc:
                tried.append(f"{base}: {exc.message}")
                continue
            if tuple(words) == SUNSPEC_MARKER:
                return base
            tried.append(f"{base}: 0x{words[0]:04X}{words[1]:04X}")
        raise SunSpecError(
            f"no SunSpec marker 'SunS' (0x53756E53) on {self.transport.device}; tried "
            + "; ".join(tried)
        )

    def _walk_chain(self, address: int) -> list[SunSpecModel]:
        models: list[SunSpecModel] = []
        seen: set[int] = set()
        previous = "the SunS marker"
        while True:
            if address + 1 > 0xFFFF:
                raise SunSpecError(
                    f"SunSpec model chain on {self.transport.device} runs past register 65535 "
                    f"after {previous} without the end marker 0xFFFF"
                )
            if address in seen:
                raise SunSpecError(
                    f"SunSpec model chain on {self.transport.device} loops back to register "
                    f"{address} after {previous}"
                )
            seen.add(address)
            try:
                model_id, length = self.transport.read_holding(address, 2, point="model header")
            except ModbusPointError as exc:
                raise SunSpecError(
                    f"SunSpec model chain on {self.transport.device} broken at register {address} "
                    f"after {previous} (end marker 0xFFFF missing?): {exc.message}"
                ) from exc
            if model_id == END_MODEL_ID:
                return models
            last_register = address + HEADER_REGISTERS + length - 1
            if last_register > 0xFFFF:
                raise SunSpecError(
                    f"model {model_id} at register {address} on {self.transport.device} claims "
                    f"L={length}, running to register {last_register}, past 65535: corrupt model chain"
                )
            models.append(SunSpecModel(self, model_id, address, length))
            previous = f"model {model_id} at register {address}"
            address = last_register + 1

    def has_model(self, model_id: int) -> bool:
        return any(model.model_id == model_id for model in self.models)

    def model(self, model_id: int, index: int = 0) -> SunSpecModel:
        matches = [model for model in self.models if model.model_id == model_id]
        if len(matches) <= index:
            found = ", ".join(str(model.model_id) for model in self.models) or "none"
            raise DutError(
                f"{self.transport.device} has no SunSpec model {model_id}"
                + (f" instance {index + 1}" if index else "")
                + f" (models found: {found})"
            )
        return matches[index]
