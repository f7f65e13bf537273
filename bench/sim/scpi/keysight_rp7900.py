"""Keysight RP7900-series regenerative DC power supply (battery emulator) twin.

Commands after the "Keysight RP7900 Series Operating and Service Guide", SCPI reference;
the common Keysight-supply part (voltage, OVP, output, measurements) is in
``keysight_dc_supply``. This family adds `CURRent:LIMit[:POSitive]`, `CURRent:LIMit:NEGative`
(a negative value: the sink limit of the two-quadrant output), `FUNCtion VOLTage` (voltage
priority; the plant models only this one) and `VOLTage:RESistance[:LEVel]` (output
resistance in ohms, voltage priority only, *RST 0; "when units are paralleled, the
programmable output resistance for a single unit must be divided by the total number of
paralleled units"; needs firmware B.03.02.1232 and up on RP793xA/RP794xA, which this twin
reports). The guide refers the resistance range to each model's characteristics table,
which we do not have: the twin assumes 0 … rated voltage / rated current per unit (a
full-scale drop at full current), divided by the units in parallel.

The output resistance is the instrument's only battery feature: terminal voltage =
VOLTage − VOLTage:RESistance × current. It reaches the plant as the DC source's programmed
output resistance (voltage mode); the SOC-following open-circuit voltage of a battery is not
in this instrument (Keysight's battery emulation software runs on a PC).

Sign convention of the supply: negative current is sunk by the supply and regenerated to its
mains (the PCS charges the battery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.sim.scpi.keysight_dc_supply import KeysightDcSupply, SupplyRatings
from bench.sim.scpi.server import Call, CommandTable, format_nr3, settings_conflict

if TYPE_CHECKING:
    from bench.sim.plant import Plant


@dataclass(frozen=True)
class Rp7900Ratings(SupplyRatings):
    model: str = "RP7962A"
    voltage_rating_v: float = 950.0
    current_rating_a: float = 40.0  # per unit, both quadrants
    # The bench emulates a 250 kW battery with units paralleled into one system (the
    # primary unit answers SCPI for the whole group, ratings scale with the unit count).
    units_in_parallel: int = 10

    @property
    def output_resistance_max_ohm(self) -> float:
        return self.voltage_rating_v / self.current_rating_a / self.units_in_parallel


class KeysightRp7900(KeysightDcSupply):
    def __init__(self, plant: "Plant", *, ratings: Rp7900Ratings = Rp7900Ratings(),
                 serial: str = "MY59000001") -> None:
        super().__init__(plant, ratings=ratings, serial=serial, firmware="B.03.02.1232")

    def reset_family(self) -> None:
        """*RST: full current limits both ways, voltage priority, no output resistance."""
        self.current_limit_a = self.ratings.system_current_a
        self.current_limit_neg_a = -self.current_limit_a
        self.function = "VOLTAGE"
        self.output_resistance_ohm = 0.0

    def plant_current_limits_a(self) -> tuple[float, float]:
        # the supply states its sink limit as a negative current; the plant takes magnitudes
        return self.current_limit_a, abs(self.current_limit_neg_a)

    def plant_settings(self) -> dict:
        return {"output_resistance_ohm": self.output_resistance_ohm}

    def build_family_commands(self, t: CommandTable) -> None:
        t.add("[SOURce:]CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]", set=self._set_current_limit,
              query=lambda c: format_nr3(self.current_limit_a))
        t.add("[SOURce:]CURRent:LIMit:NEGative[:IMMediate][:AMPLitude]", set=self._set_current_limit_neg,
              query=lambda c: format_nr3(self.current_limit_neg_a))
        t.add("[SOURce:]FUNCtion", set=self._set_function, query=lambda c: self.function[:4])
        t.add("[SOURce:]VOLTage:RESistance[:LEVel][:IMMediate][:AMPLitude]", set=self._set_resistance,
              query=lambda c: format_nr3(self.output_resistance_ohm))

    # --- programming -------------------------------------------------------------------
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

    def _set_resistance(self, c: Call) -> None:
        self.output_resistance_ohm = c.number(unit="OHM", low=0.0,
                                              high=self.ratings.output_resistance_max_ohm)
        self._apply()
