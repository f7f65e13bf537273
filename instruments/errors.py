"""Exceptions raised by the instrument drivers.

Every error names the bench *role* (``grid_simulator``, ``oscilloscope`` …) and the VISA
resource it was reached at, so a failure in a three-instrument test points at one box
and one cable without reading a traceback.
"""

from __future__ import annotations


class InstrumentError(Exception):
    """An instrument failed, refused a command, or answered something we cannot use."""

    def __init__(self, role: str, resource: str, message: str) -> None:
        self.role = role
        self.resource = resource
        self.message = message
        super().__init__(role, resource, message)

    def __str__(self) -> str:
        return f"{self.role} at {self.resource}: {self.message}"


class LimitError(InstrumentError, ValueError):
    """A setpoint lies outside the bench's safety limit or the instrument's range.

    Raised *before* anything is sent: the instrument never sees the refused value.
    Also a ``ValueError``, because the fault is in the argument, not in the instrument.
    """

    def __init__(self, role: str, resource: str, message: str, *,
                 quantity: str = "", value: float | None = None,
                 limit: float | tuple[float, float] | None = None) -> None:
        self.quantity = quantity
        self.value = value
        self.limit = limit
        super().__init__(role, resource, message)


class IdentityError(InstrumentError):
    """The instrument at the resource is not the model the bench file (or driver) expects."""

    def __init__(self, role: str, resource: str, message: str, *,
                 expected: str = "", answered: str = "") -> None:
        self.expected = expected
        self.answered = answered
        super().__init__(role, resource, message)
