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

    # Families declare the settings/measurements ``output_enabled``, ``measured_voltage_v``,
    # ``measured_current_a`` and ``measured_power_w`` with their own SCPI; the role's plain
    # operations on them are the same for all.
    def output_off(self) -> None:
        self.output_enabled = False

    def measure_voltage_v(self) -> float:
        return self.measured_voltage_v

    def measure_current_a(self) -> float:
        """Output current; > 0 when the source delivers (the PCS discharges the emulated battery)."""
        return self.measured_current_a

    def measure_power_w(self) -> float:
        return self.measured_power_w

    def safe_state(self) -> bool:
        """Open the output; never raises."""
        return self._send_safely(["OUTP OFF"])


__all__ = ["DcSource"]
