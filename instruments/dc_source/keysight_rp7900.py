"""Keysight RP7900 series regenerative (two-quadrant) DC power system as battery emulator.

SCPI from the RP7900 Operating and Service Guide. In voltage priority (``FUNC VOLT``) the
output holds ``VOLT`` while the current stays between ``CURR:LIM:NEG`` (a negative value:
the unit absorbs current, which is the PCS charging the emulated battery) and ``CURR:LIM``
(the unit delivers: the PCS discharges the battery). ``VOLT:PROT`` is the hardware
over-voltage trip; ``OUTP:PROT:CLE`` resets it.

``VOLT:RES`` is the programmable output resistance (ohms, voltage priority only, *RST 0):
the guide refers its range to each model's characteristics table and divides a single
unit's range by the number of paralleled units. The bench file states the most its system
takes (``options.output_resistance_max_ohm``); without it the driver assumes rated voltage /
rated current / ``options.units_in_parallel`` (a full-scale drop at full current). It is the
family's only battery feature (``BATTERY_FEATURE``): the role's host-side battery emulation
uses it for the internal resistance.
"""

from __future__ import annotations

from typing import Any

from instruments.dc_source import DcSource
from instruments.scpi import control, measurement

_ON_OFF = {True: "ON", False: "OFF"}
#: the DC-specific current limit wins over the bench-wide one
_CURRENT_LIMIT_KEYS = ("max_dc_current_a", "max_current_a")


class KeysightRp7900(DcSource):
    """RP79xxA regenerative power system in voltage priority."""

    MODEL_PATTERNS = ("RP79*",)
    MANUFACTURERS = ("Keysight", "Agilent")
    FAMILY = "Keysight RP7900"
    BATTERY_FEATURE = "output_resistance"

    output_voltage_v = control(
        "VOLT?", "VOLT {value}", "Output voltage setpoint (voltage priority).",
        valid_range="voltage_span_v", units="V", safety_limit="max_dc_voltage_v")
    current_limit_a = control(
        "CURR:LIM?", "CURR:LIM {value}", "Positive current limit: the most the unit delivers.",
        valid_range="source_current_span_a", units="A", safety_limit=_CURRENT_LIMIT_KEYS)
    current_limit_negative_a = control(
        "CURR:LIM:NEG?", "CURR:LIM:NEG {value}",
        "Negative current limit (a value ≤ 0): the most the unit absorbs.",
        valid_range="sink_current_span_a", units="A", safety_limit=_CURRENT_LIMIT_KEYS)
    priority_mode = control(
        "FUNC?", "FUNC {value}", "Voltage or current priority.",
        choices={"voltage": "VOLTage", "current": "CURRent"})
    output_enabled = control("OUTP?", "OUTP {value}", "Output on.", choices=_ON_OFF)
    overvoltage_protection_v = control(
        "VOLT:PROT?", "VOLT:PROT {value}", "Over-voltage protection trip level.",
        valid_range="protection_span_v", units="V")

    output_resistance_ohm = control(
        "VOLT:RES?", "VOLT:RES {value}",
        "Output resistance: the output falls by this times the current (voltage priority only).",
        valid_range="output_resistance_span_ohm", units="ohm")

    measured_voltage_v = measurement("MEAS:VOLT?", "Output voltage.", units="V")
    measured_current_a = measurement("MEAS:CURR?", "Output current (> 0 delivered).", units="A")
    measured_power_w = measurement("MEAS:POW?", "Output power (> 0 delivered).", units="W")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ratings differ across the family (20 V … 2 kV); the bench file states the unit's,
        # the defaults are the family's extremes so only the safety limits bound them.
        rated_v = float(self.options.get("rated_voltage_v", 2000.0))
        rated_a = float(self.options.get("rated_current_a", 2000.0))
        self.voltage_span_v = (0.0, rated_v)
        self.protection_span_v = (0.0, rated_v * 1.2)
        self.source_current_span_a = (0.0, rated_a)
        self.sink_current_span_a = (-rated_a, 0.0)
        units = max(int(self.options.get("units_in_parallel", 1)), 1)
        self.output_resistance_span_ohm = (0.0, float(self.options.get(
            "output_resistance_max_ohm", rated_v / rated_a / units)))

    def initialize(self) -> None:
        super().initialize()
        # A hardware over-voltage trip backs up the software limits. Its range depends on the
        # unit's rating (about 1.02 × rated voltage), which the bench file states with it.
        ovp_v = self.options.get("overvoltage_protection_v")
        if ovp_v is not None:
            self.check_value("overvoltage_protection_v", float(ovp_v),
                             valid_range=self.protection_span_v, units="V",
                             safety_limit="max_dc_voltage_v")
            self.overvoltage_protection_v = float(ovp_v)
            self.check_errors("setting over-voltage protection")

    # -- role methods ---------------------------------------------------------------------
    def set_voltage_v(self, v: float) -> None:
        self.output_voltage_v = v
        self.check_errors(f"setting the voltage to {v:g} V")

    def set_current_limits_a(self, source_a: float, sink_a: float) -> None:
        """``sink_a`` is a magnitude; the RP7900 takes the negative limit as a negative number."""
        source_a, sink_a = float(source_a), abs(float(sink_a))
        self.check_value("source_a", source_a, valid_range=self.source_current_span_a, units="A",
                         safety_limit=_CURRENT_LIMIT_KEYS)
        self.check_value("sink_a", -sink_a, valid_range=self.sink_current_span_a, units="A",
                         safety_limit=_CURRENT_LIMIT_KEYS)
        self.current_limit_a = source_a
        self.current_limit_negative_a = -sink_a
        self.check_errors("setting the current limits")

    def output_on(self) -> None:
        self.priority_mode = "voltage"
        self.output_enabled = True
        self.check_errors("turning the output on")

    def set_output_resistance_ohm(self, r_ohm: float) -> None:
        self.output_resistance_ohm = r_ohm
        self.check_errors(f"setting the output resistance to {r_ohm:g} ohm")

    def clear_protection(self) -> None:
        """Reset a latched protection trip (over-voltage, over-current …)."""
        self.write("OUTP:PROT:CLE")
        self.check_errors("clearing output protection")

    def safe_state(self) -> bool:
        self.stop_host_battery()
        return self._send_safely(["OUTP OFF"])
