"""Chroma 62000P programmable DC power supplies (62012P … 62150P) as the DC-side source.

SCPI as the 62000P series uses it (our reference notes and public drivers for the 62012P,
62050P and 62050H): ``SOUR:VOLT`` and ``SOUR:CURR`` are the voltage and current setpoints
(the unit regulates voltage until the load draws ``SOUR:CURR``, then current),
``SOUR:VOLT:PROT:HIGH`` is the over-voltage protection level, ``SOUR:CURR:LIM:HIGH|LOW``
bound what ``SOUR:CURR`` may be set to, the output relay is ``CONF:OUTP ON|OFF`` (queried
with ``CONF:OUTP?``), and ``FETC:VOLT?`` / ``FETC:CURR?`` / ``FETC:POW?`` return the latest
readings. Serial and some firmware need ``CONF:REM ON`` before settings are accepted.

The 62000P is a *source only*: it cannot absorb current. A PCS that charges the emulated
battery needs a bidirectional unit (Chroma 62000D, or a regenerative load in parallel), so a
non-zero sink limit is refused here unless the bench file says the unit can sink
(``options.sink_capable = true``); then ``SOUR:CURR:LIM:LOW`` is programmed to the negative
sink limit, which is our reading of the 62000D — unconfirmed (the twin assumes the same).
A bench file that says ``sink_capable`` for a unit whose ``*IDN?`` names a P model
(``62150P-1000-15``) is refused at open: that unit would refuse the negative limit, or
worse, a plan would believe the PCS can charge.
"""

from __future__ import annotations

import re
from typing import Any

from instruments.dc_source import DcSource
from instruments.errors import IdentityError
from instruments.scpi import control, measurement

_ON_OFF = {True: "ON", False: "OFF"}
#: the DC-specific current limit wins over the bench-wide one
_CURRENT_LIMIT_KEYS = ("max_dc_current_a", "max_current_a")
#: 62000P / 62000D model numbers: 62<kW x 10>P-<V>-<A> (source only) or ...D... (bidirectional)
_SERIES_LETTER = re.compile(r"^62\d{3}([PD])", re.IGNORECASE)


class Chroma62000P(DcSource):
    """62000P series (and 62000D when ``sink_capable``)."""

    MODEL_PATTERNS = ("620*", "621*")      # 62012P-600-8 … 62150P-1000-15, 62000D
    MANUFACTURERS = ("Chroma",)
    FAMILY = "Chroma 62000P"

    output_voltage_v = control(
        "SOUR:VOLT?", "SOUR:VOLT {value}", "Output voltage setpoint.",
        valid_range="voltage_span_v", units="V", safety_limit="max_dc_voltage_v")
    output_current_a = control(
        "SOUR:CURR?", "SOUR:CURR {value}",
        "Output current setpoint: the most the unit delivers before it regulates current.",
        valid_range="source_current_span_a", units="A", safety_limit=_CURRENT_LIMIT_KEYS)
    current_limit_high_a = control(
        "SOUR:CURR:LIM:HIGH?", "SOUR:CURR:LIM:HIGH {value}",
        "Upper bound of the current setpoint.",
        valid_range="source_current_span_a", units="A", safety_limit=_CURRENT_LIMIT_KEYS)
    current_limit_low_a = control(
        "SOUR:CURR:LIM:LOW?", "SOUR:CURR:LIM:LOW {value}",
        "Lower bound of the current setpoint (negative = sink, bidirectional units only).",
        valid_range="sink_current_span_a", units="A", safety_limit=_CURRENT_LIMIT_KEYS)
    overvoltage_protection_v = control(
        "SOUR:VOLT:PROT:HIGH?", "SOUR:VOLT:PROT:HIGH {value}", "Over-voltage protection level.",
        valid_range="protection_span_v", units="V", safety_limit="max_dc_voltage_v")
    output_enabled = control("CONF:OUTP?", "CONF:OUTP {value}", "Output relay on.",
                             choices=_ON_OFF)

    measured_voltage_v = measurement("FETC:VOLT?", "Output voltage.", units="V")
    measured_current_a = measurement("FETC:CURR?", "Output current (> 0 delivered).", units="A")
    measured_power_w = measurement("FETC:POW?", "Output power (> 0 delivered).", units="W")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # 62000P models span 100 V … 1200 V and 5 A … 375 A; the bench file states its unit's
        rated_v = float(self.options.get("rated_voltage_v", 1200.0))
        rated_a = float(self.options.get("rated_current_a", 375.0))
        self.sink_capable = bool(self.options.get("sink_capable", False))
        self.voltage_span_v = (0.0, rated_v)
        self.protection_span_v = (0.0, rated_v * 1.1)
        self.source_current_span_a = (0.0, rated_a)
        self.sink_current_span_a = (-rated_a if self.sink_capable else 0.0, rated_a)

    def initialize(self) -> None:
        self._check_sink_claim()
        super().initialize()
        if self.options.get("remote_on_open", True):
            self.write("CONF:REM ON")
        ovp_v = self.options.get("overvoltage_protection_v")
        if ovp_v is not None:
            self.overvoltage_protection_v = float(ovp_v)      # range + safety checked first
        self.check_errors("opening the DC source")

    def _check_sink_claim(self) -> None:
        """A source-only (P) model cannot be the bidirectional unit the bench file claims."""
        model = self.identity.model if self.identity is not None else ""
        match = _SERIES_LETTER.match(model)
        if self.sink_capable and match and match.group(1).upper() == "P":
            raise IdentityError(
                self.role, self.resource_name,
                f"options.sink_capable = true, but the instrument identifies as {model}, a "
                "source-only 62000P (a bidirectional unit is a 62000D); nothing was sent",
                expected="62xxxD", answered=model)

    # -- role methods ---------------------------------------------------------------------
    def set_voltage_v(self, v: float) -> None:
        self.output_voltage_v = v
        self.check_errors(f"setting the voltage to {v:g} V")

    def set_current_limits_a(self, source_a: float, sink_a: float) -> None:
        source_a, sink_a = float(source_a), abs(float(sink_a))
        self.check_value("source_a", source_a, valid_range=self.source_current_span_a, units="A",
                         safety_limit=_CURRENT_LIMIT_KEYS)
        if sink_a > 0 and not self.sink_capable:
            raise self.limit_error(
                f"sink_a = {sink_a:g} A: a 62000P cannot absorb current (set options.sink_capable "
                "for a bidirectional 62000D); nothing was sent", quantity="sink_a", value=sink_a,
                limit=0.0)
        self.check_value("sink_a", -sink_a, valid_range=self.sink_current_span_a, units="A",
                         safety_limit=_CURRENT_LIMIT_KEYS)
        self.current_limit_high_a = source_a          # the bound first, then the setpoint under it
        self.current_limit_low_a = -sink_a
        self.output_current_a = source_a
        self.check_errors("setting the current limits")

    def output_on(self) -> None:
        self.output_enabled = True
        self.check_errors("turning the output on")

    def safe_state(self) -> bool:
        self.stop_host_battery()
        return self._send_safely(["CONF:OUTP OFF"])
