"""Keysight N8900 series autoranging system DC power supply as the DC-side source.

SCPI as Keysight's power supplies use it (our reference notes list ``VOLT``, ``CURR``,
``OUTP ON|OFF``, ``MEAS:VOLT?``, ``MEAS:CURR?``, ``MEAS:POW?``, ``VOLT:PROT``,
``OUTP:PROT:CLE`` and ``SYST:ERR?`` for the N8900): ``VOLT`` is the voltage setpoint, ``CURR``
the constant-current setting (the output regulates voltage until the load draws it),
``VOLT:PROT`` the latched over-voltage trip, ``OUTP:PROT:CLE`` its reset.

The N8900 is a one-quadrant source: its guide describes an autoranging output (rated current
up to the voltage where it makes rated power, power / voltage above), down-programming, SAS
operation, and no negative current limit or regenerative sink. A PCS that charges the
emulated battery needs a two-quadrant unit (RP7900) or a load in parallel, so any sink limit
is refused. Nor does its SCPI keep a battery or an output resistance: battery emulation is
the host's approximation, and only if the bench file opts in.

The bench file states the unit's ratings (``options.rated_voltage_v``, ``rated_current_a``,
``rated_power_w``; the defaults are the N8957A's as we recall them, 1500 V, 30 A, 15 kW,
times ``units_in_parallel``). Above the voltage where the rated current makes rated power
the unit delivers less than its current setting (``power_limited_current_a``); the setting
itself is not refused for that, since plans set the current before the voltage.
"""

from __future__ import annotations

from typing import Any

from instruments.dc_source import DcSource
from instruments.scpi import control, measurement

_ON_OFF = {True: "ON", False: "OFF"}
#: the DC-specific current limit wins over the bench-wide one
_CURRENT_LIMIT_KEYS = ("max_dc_current_a", "max_current_a")
_PROGRAMMING_MARGIN = 1.02     # Keysight supplies program 0 … 102 % of rating (assumed here)


class KeysightN8900(DcSource):
    """N89xxA autoranging supply (source only)."""

    MODEL_PATTERNS = ("N89*",)
    MANUFACTURERS = ("Keysight", "Agilent")
    FAMILY = "Keysight N8900"

    output_voltage_v = control(
        "VOLT?", "VOLT {value}", "Output voltage setpoint.",
        valid_range="voltage_span_v", units="V", safety_limit="max_dc_voltage_v")
    output_current_a = control(
        "CURR?", "CURR {value}",
        "Constant-current setting: the most the output delivers before it regulates current.",
        valid_range="current_span_a", units="A", safety_limit=_CURRENT_LIMIT_KEYS)
    overvoltage_protection_v = control(
        "VOLT:PROT?", "VOLT:PROT {value}", "Over-voltage protection trip level.",
        valid_range="voltage_span_v", units="V", safety_limit="max_dc_voltage_v")
    output_enabled = control("OUTP?", "OUTP {value}", "Output on.", choices=_ON_OFF)

    measured_voltage_v = measurement("MEAS:VOLT?", "Output voltage.", units="V")
    measured_current_a = measurement("MEAS:CURR?", "Output current (> 0 delivered).", units="A")
    measured_power_w = measurement("MEAS:POW?", "Output power (> 0 delivered).", units="W")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        units = max(int(self.options.get("units_in_parallel", 1)), 1)
        rated_v = float(self.options.get("rated_voltage_v", 1500.0))
        rated_a = float(self.options.get("rated_current_a", 30.0)) * units
        self.rated_power_w = float(self.options.get("rated_power_w", 15_000.0)) * units
        self.voltage_span_v = (0.0, rated_v * _PROGRAMMING_MARGIN)
        self.current_span_a = (0.0, rated_a * _PROGRAMMING_MARGIN)

    def initialize(self) -> None:
        super().initialize()
        ovp_v = self.options.get("overvoltage_protection_v")
        if ovp_v is not None:
            self.overvoltage_protection_v = float(ovp_v)      # range + safety checked first
            self.check_errors("setting over-voltage protection")

    # -- role methods ---------------------------------------------------------------------
    def set_voltage_v(self, v: float) -> None:
        self.output_voltage_v = v
        self.check_errors(f"setting the voltage to {v:g} V")

    def set_current_limits_a(self, source_a: float, sink_a: float) -> None:
        source_a, sink_a = float(source_a), abs(float(sink_a))
        self.check_value("source_a", source_a, valid_range=self.current_span_a, units="A",
                         safety_limit=_CURRENT_LIMIT_KEYS)
        if sink_a > 0:
            raise self.limit_error(
                f"sink_a = {sink_a:g} A: the {self.FAMILY} is a one-quadrant source and cannot "
                "absorb current (use a two-quadrant source or a load in parallel); nothing was sent",
                quantity="sink_a", value=sink_a, limit=0.0)
        self.output_current_a = source_a
        self.check_errors("setting the current limit")

    def power_limited_current_a(self, v: float) -> float:
        """What the autoranging output delivers at ``v`` volts: rated current up to rated
        power, power / voltage above."""
        return min(self.current_span_a[1], self.rated_power_w / max(v, 1e-9))

    def output_on(self) -> None:
        self.output_enabled = True
        self.check_errors("turning the output on")

    def clear_protection(self) -> None:
        """Reset a latched protection trip (over-voltage …)."""
        self.write("OUTP:PROT:CLE")
        self.check_errors("clearing output protection")

    def safe_state(self) -> bool:
        self.stop_host_battery()
        return self._send_safely(["OUTP OFF"])
