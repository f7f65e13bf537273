"""Errors raised by the PCS-under-test layer.

Every error says what it was doing and to which device, so that a failed bench run can be
diagnosed from the report alone (which point, which register, which PCS).
"""

from __future__ import annotations

from typing import Any

# Fields compared when confirming that the bench talks to the PCS it expects. The firmware
# version is reported but not compared: a firmware update must not block a campaign.
IDENTITY_FIELDS_COMPARED: tuple[str, ...] = ("manufacturer", "model", "serial")


class DutError(Exception):
    """Base class of every error raised by `dut/`."""


class SunSpecError(DutError):
    """The device's SunSpec map is malformed: no marker, broken model chain, impossible counts."""


class ControlNotAllowed(DutError):
    """A write was requested on a connection that may only read (nothing was sent)."""


class SetpointOutOfRange(DutError):
    """A setpoint lies outside the PCS ratings or the point's encodable range (nothing was sent)."""


class NotSupportedByPcs(DutError):
    """The PCS (or the point map the bench gives for it) has no point for this function."""


class IdentityMismatch(DutError):
    """The device on the wire is not the PCS the bench file names; no write is ever sent to it."""

    def __init__(self, expected: Any, actual: Any) -> None:
        self.expected = expected
        self.actual = actual
        self.differing_fields: tuple[str, ...] = tuple(
            name
            for name in IDENTITY_FIELDS_COMPARED
            if _normalise(getattr(expected, name, None)) != _normalise(getattr(actual, name, None))
        )
        details = "; ".join(
            f"{name}: expected {getattr(expected, name, None)!r}, device reports "
            f"{getattr(actual, name, None)!r}"
            for name in self.differing_fields
        )
        super().__init__(f"PCS identity mismatch ({details}); control refused")


class ModbusPointError(DutError):
    """A Modbus transaction for one point failed (exception response, timeout, bad read-back)."""

    def __init__(
        self,
        point: str,
        register: int,
        device: str,
        message: str,
        *,
        exception_code: int | None = None,
    ) -> None:
        self.point = point
        self.register = register
        self.device = device
        self.message = message
        # Set when the device answered with a Modbus exception (as opposed to no answer).
        self.exception_code = exception_code
        super().__init__(
            f"point {point!r} at register {register} (0x{register:04X}) on {device}: {message}"
        )


def _normalise(value: Any) -> Any:
    """Identity strings come NUL/space padded from the device; compare them trimmed."""
    if isinstance(value, str):
        return value.strip().strip("\x00").strip()
    return value
