"""Keysight RP7900-series regenerative DC power supply (battery emulator) twin.

Commands after the "Keysight RP7900 Series Operating and Service Guide", SCPI reference:
`[SOURce:]VOLTage`, `CURRent:LIMit[:POSitive]`, `CURRent:LIMit:NEGative` (a negative
value: the sink limit of the two-quadrant output), `FUNCtion VOLTage` (voltage priority;
the plant models only this one), `OUTPut[:STATe]`, `VOLTage:PROTection[:LEVel]`
(over-voltage, latched), `OUTPut:PROTection:CLEar`, `MEASure:VOLTage?|CURRent?|POWer?`.
Programming ranges are 0..102 % of the rating, as the guide lists them.

Sign convention of the supply: positive current flows out of the + terminal (the supply
sources power: the PCS discharges the emulated battery); negative current is sunk by the
supply and regenerated to its mains (the PCS charges the battery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.sim.scpi.server import (
    Call,
    CommandTable,
    ScpiInstrument,
    format_nr3,
    settings_conflict,
)

if TYPE_CHECKING:
    from bench.sim.plant import Plant

PROGRAMMING_MARGIN = 1.02  # "0 to 102% of rating"


@dataclass(frozen=True)
class Rp7900Ratings:
    model: str = "RP7962A"
    voltage_rating_v: float = 950.0
    current_rating_a: float = 40.0  # per unit, both quadrants
    # The bench emulates a 250 kW battery with units paralleled into one system (the
    # primary unit answers SCPI for the whole group, ratings scale with the unit count).
    units_in_parallel: int = 10

    @property
    def voltage_max_v(self) -> float:
        return self.voltage_rating_v * PROGRAMMING_MARGIN

    @property
    def current_max_a(self) -> float:
        return self.current_rating_a * self.units_in_parallel * PROGRAMMING_MARGIN


class KeysightRp7900(ScpiInstrument):
    def __init__(self, plant: "Plant", *, ratings: Rp7900Ratings = Rp7900Ratings(),
                 serial: str = "MY59000001") -> None:
        self.plant = plant
        self.ratings = ratings
        super().__init__(manufacturer="Keysight Technologies", model=ratings.model,
                         serial=serial, firmware="B.03.02.1232")
        self.reset()

    def reset(self) -> None:
        """*RST: output off, 0 V, full current limits, OVP at its maximum."""
        self.voltage_v = 0.0
        self.current_limit_a = self.ratings.current_rating_a * self.ratings.units_in_parallel
        self.current_limit_neg_a = -self.current_limit_a
        self.ovp_level_v = self.ratings.voltage_max_v
        self.output_on = False
        self.protection_tripped = ""  # "" | "OV"
        self.function = "VOLTAGE"
        self._apply()

    def _apply(self) -> None:
        # the supply states its sink limit as a negative current; the plant takes magnitudes
        self.plant.set_dc_source(output_on=self._output_enabled(),
                                 voltage_v=self.voltage_v, current_limit_a=self.current_limit_a,
                                 current_limit_neg_a=abs(self.current_limit_neg_a))

    def build_commands(self, t: CommandTable) -> None:
        t.add("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", set=self._set_voltage,
              query=lambda c: format_nr3(self.voltage_v))
        t.add("[SOURce:]CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]", set=self._set_current_limit,
              query=lambda c: format_nr3(self.current_limit_a))
        t.add("[SOURce:]CURRent:LIMit:NEGative[:IMMediate][:AMPLitude]", set=self._set_current_limit_neg,
              query=lambda c: format_nr3(self.current_limit_neg_a))
        t.add("[SOURce:]FUNCtion", set=self._set_function, query=lambda c: self.function[:4])
        t.add("[SOURce:]VOLTage:PROTection[:LEVel]", set=self._set_ovp,
              query=lambda c: format_nr3(self.ovp_level_v))
        t.add("OUTPut[:STATe]", set=self._set_output, query=lambda c: "1" if self._output_enabled() else "0")
        t.add("OUTPut:PROTection:CLEar", set=self._clear_protection)
        t.add("STATus:QUEStionable:CONDition", query=lambda c: "1" if self.protection_tripped == "OV" else "0")
        for verb in ("MEASure", "FETCh"):
            t.add(f"{verb}[:SCALar]:VOLTage[:DC]", query=lambda c: self._measure("voltage_v"))
            t.add(f"{verb}[:SCALar]:CURRent[:DC]", query=lambda c: self._measure("current_a"))
            t.add(f"{verb}[:SCALar]:POWer[:DC]", query=lambda c: self._measure("power_w"))

    # --- programming -------------------------------------------------------------------
    def _set_voltage(self, c: Call) -> None:
        self.voltage_v = c.number(unit="V", low=0.0, high=self.ratings.voltage_max_v)
        self._check_overvoltage()
        self._apply()

    def _set_current_limit(self, c: Call) -> None:
        self.current_limit_a = c.number(unit="A", low=0.0, high=self.ratings.current_max_a)
        self._apply()

    def _set_current_limit_neg(self, c: Call) -> None:
        self.current_limit_neg_a = c.number(unit="A", low=-self.ratings.current_max_a, high=0.0)
        self._apply()

    def _set_function(self, c: Call) -> None:
        function = c.choice(("VOLTage", "CURRent"))
        if function == "CURRENT":
            raise settings_conflict("current priority is not simulated on this bench")
        self.function = function

    def _set_ovp(self, c: Call) -> None:
        self.ovp_level_v = c.number(unit="V", low=0.0, high=self.ratings.voltage_max_v)
        self._check_overvoltage()
        self._apply()

    def _set_output(self, c: Call) -> None:
        self.output_on = c.boolean()
        self._check_overvoltage()
        self._apply()

    def _clear_protection(self, c: Call) -> None:
        # the guide: the condition must be removed first; the output returns to its prior state
        self.protection_tripped = ""
        self._check_overvoltage()
        self._apply()

    def _output_enabled(self) -> bool:
        return self.output_on and not self.protection_tripped

    def _check_overvoltage(self) -> None:
        """Latch OVP when the output would exceed the protection level."""
        if self._output_enabled() and self.voltage_v > self.ovp_level_v:
            self.protection_tripped = "OV"

    # --- measurements ------------------------------------------------------------------
    def _measure(self, key: str) -> str:
        return format_nr3(float(self.plant.dc_source_measurements()[key]))
