"""Reading and writing the points of a vendor point map over a Modbus transport.

One job: turn point names and engineering values into register transactions and back.
Reads of nearby points go out as one request, bridging registers of other readable points of
the map but never an unmapped register (a vendor block may answer an exception for those). Writes are checked against the map (access,
range, enumeration) for every point before anything is sent, and read back afterwards.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import DutError, ModbusPointError, SetpointOutOfRange
from .modbus_transport import MAX_READ_REGISTERS, MAX_WRITE_REGISTERS, ModbusTransport
from .pointmap import RAW_RANGE, PointMap, VendorPoint


class VendorPoints:
    def __init__(self, transport: ModbusTransport, point_map: PointMap) -> None:
        self.transport = transport
        self.map = point_map
        # Registers a read may span without being asked for: those of readable mapped points.
        self._bridgeable: frozenset[int] = frozenset(
            address
            for point in point_map.points.values()
            if point.readable
            for address in range(point.address, point.end)
        )

    # ------------------------------------------------------------------ reading
    def read(self, names: Iterable[str]) -> dict[str, Any]:
        """Values of the named points (scaled floats, enum symbols, ints, strings).

        Scale-factor points the named points need are read along with them. An enum raw value
        the map does not list comes back as the int.
        """
        wanted = list(names)
        points = self._points_to_read(wanted)
        registers = self._read_registers(points)
        return {point.name: self._decode(point, registers) for point in points if point.name in wanted}

    def read_one(self, name: str) -> Any:
        return self.read([name])[name]

    def read_each(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Like read(), but a run refused by the device is retried point by point; a point that
        still fails maps to its ModbusPointError instead of raising (for scans)."""
        wanted = list(names) if names is not None else [p.name for p in self.map.points.values() if p.readable]
        results: dict[str, Any] = {}
        for run in _runs(self._points_to_read(wanted), self._bridgeable):
            try:
                registers = self._read_run(run)
            except ModbusPointError as exc:
                if exc.exception_code is None:
                    raise  # no answer at all: the device is gone, not the points
                registers = {}
                for point in run:
                    try:
                        registers.update(self._read_run([point]))
                    except ModbusPointError as single:
                        if single.exception_code is None:
                            raise
                        results[point.name] = single
            for point in run:
                if point.name not in results:
                    try:
                        results[point.name] = self._decode(point, registers)
                    except DutError as exc:  # e.g. its sf point did not answer
                        results[point.name] = exc
        return {name: results[name] for name in wanted if name in results}

    def _points_to_read(self, names: Iterable[str]) -> list[VendorPoint]:
        selected: dict[str, VendorPoint] = {}
        for name in names:
            point = self.map.point(name)
            if not point.readable:
                raise DutError(f"point {self._label(point)} is write-only; it cannot be read")
            selected[name] = point
            if point.sf is not None:
                selected[point.sf] = self.map.point(point.sf)
        return sorted(selected.values(), key=lambda p: p.address)

    def _read_registers(self, points: Sequence[VendorPoint]) -> dict[int, int]:
        registers: dict[int, int] = {}
        for run in _runs(points, self._bridgeable):
            registers.update(self._read_run(run))
        return registers

    def _read_run(self, run: Sequence[VendorPoint]) -> dict[int, int]:
        start = run[0].address
        count = run[-1].end - start
        label = self._run_label(run)
        words = self.transport.read_holding(start, count, point=label)
        return {start + i: word for i, word in enumerate(words)}

    def _decode(self, point: VendorPoint, registers: Mapping[int, int]) -> Any:
        words = [registers[address] for address in range(point.address, point.end)]
        raw = decode_registers(point.point_type, words)
        if point.point_type == "enum16":
            return point.values.get(raw, raw)
        if point.point_type == "string":
            return raw
        if point.scale is not None:
            return _apply_scale(raw, point.scale)
        if point.sf is not None:
            exponent = decode_registers("int16", [registers[self.map.point(point.sf).address]])
            if not -10 <= exponent <= 10:
                raise DutError(f"point {self._label(point)}: scale factor {point.sf} = {exponent} "
                               "is outside -10..10")
            return raw * 10.0**exponent
        return raw

    # ------------------------------------------------------------------ writing
    def write(self, values: Mapping[str, Any], *, verify: bool = True) -> None:
        """Write points; adjacent points go in one FC16 request.

        Every value is checked (access, range, enumeration, encodability) before the first
        request is sent. With verify, readable written points are read back and compared
        register for register, so a device that clamps or ignores a value is caught.
        Write-only points (commands that read 0) are never compared.
        """
        encoded = [self._encode(self.map.point(name), value) for name, value in values.items()]
        for run in _write_runs(encoded):
            start = run[0][0].address
            words = [word for _, _, point_words in run for word in point_words]
            label = self._run_label([point for point, _, _ in run])
            self.transport.write_registers(start, words, point=label)
            if verify:
                self._verify(run)

    def check(self, values: Mapping[str, Any]) -> None:
        """Raise what write() would raise before sending; send nothing."""
        for name, value in values.items():
            self._encode(self.map.point(name), value)

    def _encode(self, point: VendorPoint, value: Any) -> tuple[VendorPoint, Any, list[int]]:
        label = self._label(point)
        if not point.writable:
            raise DutError(f"point {label} is read-only")
        if point.point_type == "enum16":
            raw = point.raw_of_symbol(value) if isinstance(value, str) else value
            if isinstance(raw, bool) or not isinstance(raw, int) or raw not in point.values:
                allowed = ", ".join(f"{code} {name}" for code, name in point.values.items())
                raise SetpointOutOfRange(f"{label}: {value!r} is not one of {allowed}")
            return point, value, [raw]
        if point.point_type == "string":
            data = str(value).encode("utf-8")
            if len(data) > 2 * point.size:
                raise SetpointOutOfRange(f"{label}: {value!r} is longer than {2 * point.size} bytes")
            data = data.ljust(2 * point.size, b"\x00")
            return point, value, [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SetpointOutOfRange(f"{label}: {value!r} is not a finite number")
        low = point.minimum if point.minimum is not None else -math.inf
        high = point.maximum if point.maximum is not None else math.inf
        if not low <= value <= high:
            units = f" {point.units}" if point.units else ""
            raise SetpointOutOfRange(f"{label} = {value:g}{units} is outside {low:g}..{high:g}{units}")
        if point.point_type == "float32":
            if abs(value) > 3.4028234e38:
                raise SetpointOutOfRange(f"{label}: {value!r} does not fit a float32")
            return point, value, list(struct.unpack(">HH", struct.pack(">f", float(value))))
        if point.sf is not None:
            # The exponent is the device's: read it now, so the encoding matches what it decodes.
            exponent = self.read_one(point.sf)
            raw = round(value / 10.0**exponent)
        elif point.scale is not None:
            raw = round(value / point.scale)
        else:
            if isinstance(value, float) and not value.is_integer():
                raise SetpointOutOfRange(f"{label}: {value!r} is not an integer and the point has no scale")
            raw = int(value)
        raw_low, raw_high = RAW_RANGE[point.point_type]
        if not raw_low <= raw <= raw_high:
            raise SetpointOutOfRange(
                f"{label}: {value!r} encodes to {raw}, outside the {point.point_type} range "
                f"{raw_low}..{raw_high}"
            )
        bits = 16 * point.size
        unsigned = raw & ((1 << bits) - 1)
        return point, value, [(unsigned >> (16 * (point.size - 1 - i))) & 0xFFFF for i in range(point.size)]

    def _verify(self, run: list[tuple[VendorPoint, Any, list[int]]]) -> None:
        readable = [entry for entry in run if entry[0].readable]
        if not readable:
            return
        start, end = readable[0][0].address, readable[-1][0].end
        label = self._run_label([point for point, _, _ in readable])
        words = self.transport.read_holding(start, end - start, point=label)
        for point, value, expected in readable:
            got = words[point.address - start : point.end - start]
            if got != expected:
                raise ModbusPointError(
                    self._label(point), point.address, self.transport.device,
                    f"read back {got} after writing {expected} ({value!r}); the device did not "
                    "accept the value as written",
                )

    # ------------------------------------------------------------------ labels
    def _label(self, point: VendorPoint) -> str:
        return f"{self.map.name}.{point.name}"

    def _run_label(self, run: Sequence[VendorPoint]) -> str:
        if len(run) == 1:
            return self._label(run[0])
        return f"{self.map.name}.{run[0].name}..{run[-1].name}"


# ---------------------------------------------------------------------------- helpers
def decode_registers(point_type: str, words: Sequence[int]) -> Any:
    """Raw value of a vendor point (no not-implemented codes: vendor blocks define their own)."""
    unsigned = 0
    for word in words:
        unsigned = (unsigned << 16) | (word & 0xFFFF)
    if point_type in ("int16", "int32"):
        bits = 16 * len(words)
        return unsigned - (1 << bits) if unsigned >= 1 << (bits - 1) else unsigned
    if point_type == "float32":
        return struct.unpack(">f", struct.pack(">HH", *words))[0]
    if point_type == "string":
        data = b"".join(word.to_bytes(2, "big") for word in words).split(b"\x00", 1)[0]
        return data.decode("utf-8", errors="replace").strip()
    return unsigned


def _apply_scale(raw: float, scale: float) -> float:
    # Decimal scales (0.1, 0.01, 0.001) divide by the exact inverse: 2771 × 0.1 would give
    # 277.10000000000002, 2771 / 10 gives 277.1 as the manual means it.
    inverse = 1.0 / scale
    if scale < 1.0 and abs(inverse - round(inverse)) < 1e-9:
        return raw / round(inverse)
    return raw * scale


def _runs(points: Sequence[VendorPoint], bridgeable: frozenset[int] = frozenset()) -> list[list[VendorPoint]]:
    """Points grouped into requests of at most 125 registers; a request may span a gap only
    when every register of the gap is in `bridgeable`."""
    runs: list[list[VendorPoint]] = []
    for point in sorted(points, key=lambda p: p.address):
        if runs:
            run = runs[-1]
            gap = range(run[-1].end, point.address)
            if (
                all(address in bridgeable for address in gap)
                and point.end - run[0].address <= MAX_READ_REGISTERS
            ):
                run.append(point)
                continue
        runs.append([point])
    return runs


def _write_runs(encoded: list[tuple[VendorPoint, Any, list[int]]]):
    runs: list[list[tuple[VendorPoint, Any, list[int]]]] = []
    for entry in sorted(encoded, key=lambda e: e[0].address):
        point = entry[0]
        if runs and runs[-1][-1][0].end == point.address and point.end - runs[-1][0][0].address <= MAX_WRITE_REGISTERS:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs
