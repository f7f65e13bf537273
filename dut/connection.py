"""From a bench file's PCS connection table to an open Modbus transport (and point map).

One place knows the keys of the table, so `connect_pcs` and `scan_device` accept exactly
the same connections.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import DutError
from .modbus_transport import ModbusTransport
from .pointmap import PointMap, load_point_map
from .sunspec import DEFAULT_BASE_ADDRESSES

COMMON_KEYS = {"transport", "device_id", "timeout_s", "retries", "fc6_for_single_register",
               "base_address", "point_map"}
TCP_KEYS = COMMON_KEYS | {"host", "port"}
RTU_KEYS = COMMON_KEYS | {"port", "baudrate", "parity", "stopbits", "bytesize", "inter_frame_delay_s"}


def open_transport(connection: Mapping[str, Any]) -> ModbusTransport:
    """Build the transport the table describes and connect it (DutError naming it if not)."""
    kind = connection.get("transport")
    if kind == "tcp":
        _check_keys(connection, TCP_KEYS, required={"host"})
        transport = ModbusTransport.tcp(
            connection["host"],
            int(connection.get("port", 502)),
            device_id=int(connection.get("device_id", 1)),
            timeout_s=float(connection.get("timeout_s", 1.0)),
            retries=int(connection.get("retries", 2)),
            fc6_for_single_register=bool(connection.get("fc6_for_single_register", False)),
        )
    elif kind == "rtu":
        _check_keys(connection, RTU_KEYS, required={"port"})
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
    transport.connect()
    return transport


def sunspec_bases(connection: Mapping[str, Any]) -> tuple[int, ...]:
    base = connection.get("base_address")
    return DEFAULT_BASE_ADDRESSES if base is None else (int(base),)


def point_map_of(connection: Mapping[str, Any]) -> PointMap | None:
    """The vendor point map the bench names ("vpcs250" or a path), or None.

    Only the bench decides: the identity a device reports never selects a map, so a PCS
    cannot talk the client into writing registers it merely claims to have.
    """
    spec = connection.get("point_map")
    return None if spec is None else load_point_map(spec)


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
