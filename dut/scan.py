"""`bessbench scan`: what a device exposes, read-only.

For a commissioning engineer pointing the bench at an installed PCS: the SunSpec models
(id, address, length, whether they answer) and the vendor points of the bench's point map
that answer, with their values. Nothing is ever written: the transport is opened read-only,
so even a bug here cannot send a write.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .connection import open_transport, point_map_of, sunspec_bases
from .errors import DutError, ModbusPointError, SunSpecError
from .sunspec import SunSpecDevice
from .vendor_points import VendorPoints


@dataclass(frozen=True)
class ModelEntry:
    model_id: int
    address: int  # register of the model's ID
    length: int  # L
    available: bool
    name: str | None = None  # from pysunspec2's definition, None for unknown models
    reason: str | None = None  # why it is unavailable


@dataclass(frozen=True)
class VendorPointEntry:
    name: str
    address: int
    units: str | None
    access: str
    value: Any = None  # None when it did not answer
    error: str | None = None


@dataclass
class ScanReport:
    device: str
    sunspec_base: int | None = None
    sunspec_error: str | None = None
    identity: dict[str, str | None] = field(default_factory=dict)
    models: list[ModelEntry] = field(default_factory=list)
    point_map: str | None = None
    vendor_points: list[VendorPointEntry] = field(default_factory=list)
    duration_s: float = 0.0


def scan_device(connection: Mapping[str, Any]) -> ScanReport:
    """Discover and read everything a device exposes; never writes."""
    point_map = point_map_of(connection)  # a bad map fails before the device is touched
    started_s = time.perf_counter()
    transport = open_transport(connection)
    transport.read_only = True
    report = ScanReport(device=transport.device)
    try:
        _scan_sunspec(transport, connection, report)
        if point_map is not None:
            report.point_map = point_map.name
            values = VendorPoints(transport, point_map).read_each()
            for name, point in point_map.points.items():
                if not point.readable:
                    continue
                value = values.get(name)
                failed = isinstance(value, DutError)
                report.vendor_points.append(VendorPointEntry(
                    name=name, address=point.address, units=point.units, access=point.access,
                    value=None if failed else value,
                    error=(value.message if isinstance(value, ModbusPointError) else str(value)) if failed else None,
                ))
    finally:
        transport.close()
    report.duration_s = time.perf_counter() - started_s
    return report


def _scan_sunspec(transport, connection: Mapping[str, Any], report: ScanReport) -> None:
    device = SunSpecDevice(transport, base_addresses=sunspec_bases(connection))
    try:
        device.discover()
    except SunSpecError as exc:
        report.sunspec_error = str(exc)  # a device without SunSpec may still have vendor points
        return
    report.sunspec_base = device.base_address
    for model in device.models:
        name = (model.definition or {}).get("group", {}).get("name")
        try:
            values = model.read()
        except (ModbusPointError, SunSpecError) as exc:
            if isinstance(exc, ModbusPointError) and exc.exception_code is None:
                raise  # the device stopped answering: the scan cannot go on meaningfully
            report.models.append(ModelEntry(model.model_id, model.address, model.length, False, name, str(exc)))
            continue
        report.models.append(ModelEntry(model.model_id, model.address, model.length, True, name))
        if model.model_id == 1:
            report.identity = {key: values.get(point) for key, point in
                               (("manufacturer", "Mn"), ("model", "Md"), ("serial", "SN"), ("version", "Vr"))}


def format_scan(report: ScanReport) -> str:
    """A plain-text listing for the CLI."""
    lines = [f"device: {report.device}"]
    if report.identity:
        lines.append("identity: " + ", ".join(f"{key} {value!r}" for key, value in report.identity.items()))
    if report.sunspec_error is not None:
        lines.append(f"SunSpec: not found ({report.sunspec_error})")
    else:
        lines.append(f"SunSpec models (base {report.sunspec_base}):")
        lines.append(f"  {'id':>5}  {'address':>7}  {'length':>6}  status")
        for model in report.models:
            status = "available" if model.available else f"UNAVAILABLE: {model.reason}"
            label = f" {model.name}" if model.name else ""
            lines.append(f"  {model.model_id:>5}  {model.address:>7}  {model.length:>6}  {status}{label and ' —' + label}")
    if report.point_map is not None:
        answering = sum(point.error is None for point in report.vendor_points)
        lines.append(f"vendor points ({report.point_map}): {answering} of {len(report.vendor_points)} answer")
        for point in report.vendor_points:
            if point.error is None:
                units = f" {point.units}" if point.units else ""
                lines.append(f"  {point.address:>5}  {point.name:<22} {point.value}{units}")
            else:
                lines.append(f"  {point.address:>5}  {point.name:<22} no answer: {point.error}")
    lines.append(f"scan took {report.duration_s * 1e3:.0f} ms; nothing was written")
    return "\n".join(lines)
