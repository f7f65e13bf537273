"""Keysight N8900-series autoranging system DC power supply twin.

The N8900 is a one-quadrant source: its Operating and Service Guide describes programming the
output, output protection, output steps, measurements, parallel operation, an autoranging
characteristic and SAS (solar-array) operation, and no negative current limit or
regenerative (sink) operation, unlike the RP7900. The common Keysight-supply part (voltage,
OVP, output, measurements) is in ``keysight_dc_supply``; this family adds
`[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]`: the constant-current setting, the most
the output delivers while it regulates voltage.

Autoranging: the output delivers its rated current only up to the voltage where that makes
its rated power; above it the current available is power / voltage. The twin gives the
plant min(CURRent setting, rated power / voltage setting) for the whole group (with a
battery emulator the output sits at its voltage setting, so the setting stands for the
output voltage).

Ratings as we recall the N8957A from the model table (1500 V, 30 A, 15 kW; unconfirmed).
The bench's 250 kW battery needs ~280 A at 900 V, where one N8957A gives 16.7 A: the twin
stands for 20 units answering as one (a stretch of the family's paralleling, like the
other DC twins' unit counts). Being a source only, the twin gives the plant no sink
current: a PCS charging from it raises the DC link until something trips, as on a real
bench without a parallel load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.sim.scpi.keysight_dc_supply import KeysightDcSupply, SupplyRatings
from bench.sim.scpi.server import Call, CommandTable, format_nr3

if TYPE_CHECKING:
    from bench.sim.plant import Plant

# below this voltage setting the power limit is taken at it (no division by ~0 V)
_POWER_LIMIT_FLOOR_V = 1.0


@dataclass(frozen=True)
class N8900Ratings(SupplyRatings):
    model: str = "N8957A"
    voltage_rating_v: float = 1500.0
    current_rating_a: float = 30.0      # per unit, at up to power / current volts
    units_in_parallel: int = 20
    power_rating_w: float = 15_000.0    # per unit

    @property
    def system_power_w(self) -> float:
        return self.power_rating_w * self.units_in_parallel


class KeysightN8900(KeysightDcSupply):
    def __init__(self, plant: "Plant", *, ratings: N8900Ratings = N8900Ratings(),
                 serial: str = "MY61000001") -> None:
        super().__init__(plant, ratings=ratings, serial=serial, firmware="A.02.01")

    def reset_family(self) -> None:
        """*RST: the current setting at the group's rating."""
        self.current_a = self.ratings.system_current_a

    def plant_current_limits_a(self) -> tuple[float, float]:
        ratings = self.ratings
        power_limited_a = ratings.system_power_w / max(self.voltage_v, _POWER_LIMIT_FLOOR_V)
        return min(self.current_a, power_limited_a), 0.0      # one quadrant: no sink

    def build_family_commands(self, t: CommandTable) -> None:
        t.add("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", set=self._set_current,
              query=lambda c: format_nr3(self.current_a))

    def _set_current(self, c: Call) -> None:
        self.current_a = c.number(unit="A", low=0.0, high=self.ratings.current_max_a)
        self._apply()
