"""Role: the DC source emulating the battery on the PCS's DC side (two-quadrant, voltage priority)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from instruments.scpi import ScpiInstrument


class DcSource(ScpiInstrument, ABC):
    """Role interface: a bidirectional DC supply in voltage priority (a battery emulator)."""

    ROLE = "dc_source"

    @abstractmethod
    def set_voltage_v(self, v: float) -> None: ...

    @abstractmethod
    def set_current_limits_a(self, source_a: float, sink_a: float) -> None:
        """Current the source may deliver (``source_a``) and absorb (``sink_a``), both as magnitudes."""

    @abstractmethod
    def output_on(self) -> None: ...

    @abstractmethod
    def output_off(self) -> None: ...

    @abstractmethod
    def measure_voltage_v(self) -> float: ...

    @abstractmethod
    def measure_current_a(self) -> float:
        """Output current; > 0 when the source delivers (the PCS discharges the emulated battery)."""

    def safe_state(self) -> bool:
        """Open the output; never raises."""
        return self._send_safely(["OUTP OFF"])


__all__ = ["DcSource"]
