"""Role: the DC source emulating the battery on the PCS's DC side (two-quadrant, voltage priority)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from instruments.dc_source.battery import BatteryEmulation, HostBatteryEmulation
from instruments.errors import InstrumentError
from instruments.scpi import ScpiInstrument

#: what a bench file writes to let the bench emulate the battery on a source without one
HOST_BATTERY_OPTION = ("battery_emulation", "host")


class NoBatteryEmulation(InstrumentError):
    """The family keeps no battery of its own and the bench file did not opt in to the
    host-side approximation (nothing was sent)."""


class DcSource(ScpiInstrument, ABC):
    """Role interface: a bidirectional DC supply in voltage priority (a battery emulator)."""

    ROLE = "dc_source"
    #: the family as people name it, for messages ("Keysight RP7900")
    FAMILY: ClassVar[str] = ""
    #: the battery feature of the family's own SCPI: "" (none) or "output_resistance"
    #: (terminal voltage = setpoint - R x current, applied by the instrument)
    BATTERY_FEATURE: ClassVar[str] = ""

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
        self.stop_host_battery()
        return self._send_safely(["OUTP OFF"])

    # -- battery emulation ----------------------------------------------------------------
    def configure_battery_emulation(self, emulation: BatteryEmulation) -> HostBatteryEmulation:
        """Present ``emulation`` at the output: OCV(SOC) behind the internal resistance.

        Everything is checked first (the curve, the highest OCV against the instrument's
        voltage range and the bench's ``max_dc_voltage_v``, the resistance against the
        family's output-resistance range): a refused setting sends nothing. A family whose
        SCPI keeps no battery raises :class:`NoBatteryEmulation` naming it, unless the bench
        file opts in with ``options.battery_emulation = "host"``; then the bench counts the
        coulombs and follows the OCV itself (:class:`HostBatteryEmulation`, returned: the
        plan schedules ``clock.every(period_s, emulation.update)``), with the family's own
        output resistance where it has one. The output is left as it was (on or off)."""
        self.check_battery_emulation(emulation)
        key, wanted = HOST_BATTERY_OPTION
        if self.options.get(key) != wanted:
            feature = (" (its output resistance alone is not a battery: the OCV would not follow "
                       "the charge)" if self.BATTERY_FEATURE == "output_resistance" else "")
            raise NoBatteryEmulation(
                self.role, self.resource_name,
                f"{self.family_name} keeps no battery emulation (OCV over SOC, capacity, coulomb "
                f"count) in its own SCPI{feature}; set options.{key} = \"{wanted}\" in the bench "
                "file to let the bench approximate one from the source's current readings; "
                "nothing was sent")
        native_resistance = self.BATTERY_FEATURE == "output_resistance"
        self.stop_host_battery()
        host = HostBatteryEmulation(self, emulation, native_resistance=native_resistance)
        if native_resistance:
            self.set_output_resistance_ohm(emulation.r_internal_ohm)
        self.set_voltage_v(host.voltage_setpoint_v(0.0))
        self._host_battery = host
        return host

    def battery_emulation_off(self) -> None:
        """Back to a plain voltage source at the present setpoint: the host's updates stop and
        the family's output resistance (if it has one) returns to 0."""
        self.stop_host_battery()
        if self.BATTERY_FEATURE == "output_resistance":
            self.set_output_resistance_ohm(0.0)

    def stop_host_battery(self) -> None:
        host: HostBatteryEmulation | None = getattr(self, "_host_battery", None)
        if host is not None:
            host.stop()
            self._host_battery = None

    def set_output_resistance_ohm(self, r_ohm: float) -> None:
        """The family's programmable output resistance (only where BATTERY_FEATURE says so)."""
        raise NoBatteryEmulation(self.role, self.resource_name,
                                 f"{self.family_name} has no programmable output resistance; "
                                 "nothing was sent")

    def check_battery_emulation(self, emulation: BatteryEmulation) -> None:
        """LimitError (nothing sent) for an impossible battery or one the bench may not apply."""
        try:
            emulation.check()
        except ValueError as exc:
            raise self.limit_error(f"battery emulation: {exc}; nothing was sent",
                                   quantity="battery_emulation") from None
        low_v, high_v = emulation.ocv_span_v
        voltage_range = self.range_of("output_voltage_v")
        for what, volts in (("lowest OCV", low_v), ("highest OCV", high_v)):
            self.check_value(f"battery emulation {what}", volts, valid_range=voltage_range,
                             units="V", safety_limit="max_dc_voltage_v")
        if self.BATTERY_FEATURE == "output_resistance":
            self.check_value("battery emulation r_internal_ohm", emulation.r_internal_ohm,
                             valid_range=self.range_of("output_resistance_ohm"), units="ohm")

    @property
    def family_name(self) -> str:
        return self.FAMILY or type(self).__name__


__all__ = ["BatteryEmulation", "DcSource", "HostBatteryEmulation", "NoBatteryEmulation",
           "HOST_BATTERY_OPTION"]
