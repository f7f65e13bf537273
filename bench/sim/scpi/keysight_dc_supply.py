"""What the Keysight DC-supply twins share (RP7900 regenerative system, N8900 autoranging supply).

Both families follow Keysight's power-supply SCPI tree, as the RP7900 Operating and Service
Guide prints it and the N8900 guide's table of contents lists the same subsystems
(programming the output, output protection, measurements):
`[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]` (the setpoint),
`[SOURce:]VOLTage:PROTection[:LEVel]` (over-voltage, latched), `OUTPut[:STATe]`,
`OUTPut:PROTection:CLEar` (the condition must be gone first; the output returns to its prior
state), `STATus:QUEStionable:CONDition?`, `MEASure|FETCh[:SCALar]:VOLTage|CURRent|POWer[:DC]?`.
Programming ranges are 0..102 % of the rating, as the RP7900 guide lists them (assumed the
same for the N8900, whose tables we did not find).

A family adds how it bounds the current (the RP7900's positive and negative limits, the
N8900's constant-current setting under its power rating) in ``build_family_commands`` and
``plant_current_limits_a``.

Sign convention of the supplies: positive current flows out of the + terminal (the supply
sources power: the PCS discharges the emulated battery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.sim.scpi.server import Call, CommandTable, ScpiInstrument, format_nr3

if TYPE_CHECKING:
    from bench.sim.plant import Plant

PROGRAMMING_MARGIN = 1.02  # "0 to 102% of rating"


@dataclass(frozen=True)
class SupplyRatings:
    """One unit's ratings and how many answer as one system (the primary unit speaks SCPI
    for the group; ratings scale with the unit count)."""

    model: str = ""
    voltage_rating_v: float = 0.0
    current_rating_a: float = 0.0
    units_in_parallel: int = 1

    @property
    def voltage_max_v(self) -> float:
        return self.voltage_rating_v * PROGRAMMING_MARGIN

    @property
    def system_current_a(self) -> float:
        return self.current_rating_a * self.units_in_parallel

    @property
    def current_max_a(self) -> float:
        return self.system_current_a * PROGRAMMING_MARGIN


class KeysightDcSupply(ScpiInstrument):
    """The common part of a Keysight DC-supply twin; families subclass it."""

    def __init__(self, plant: "Plant", *, ratings: SupplyRatings, serial: str, firmware: str) -> None:
        self.plant = plant
        self.ratings = ratings
        super().__init__(manufacturer="Keysight Technologies", model=ratings.model,
                         serial=serial, firmware=firmware)
        self.reset()

    # --- to extend ---------------------------------------------------------------------
    def reset_family(self) -> None:
        """The family's own *RST state (before the common state is applied to the plant)."""

    def build_family_commands(self, t: CommandTable) -> None:
        """The family's own commands (current limits, priority, output resistance …)."""

    def plant_current_limits_a(self) -> tuple[float, float]:
        """(source, sink) current the plant may draw from / push into the supply, as magnitudes."""
        raise NotImplementedError

    def plant_settings(self) -> dict:
        """Further plant.set_dc_source() keywords of the family (output resistance …)."""
        return {}

    # --- common state ------------------------------------------------------------------
    def reset(self) -> None:
        """*RST: output off, 0 V, OVP at its maximum, protection cleared."""
        self.voltage_v = 0.0
        self.ovp_level_v = self.ratings.voltage_max_v
        self.output_on = False
        self.protection_tripped = ""  # "" | "OV"
        self.reset_family()
        self._apply()

    def _apply(self) -> None:
        source_a, sink_a = self.plant_current_limits_a()
        self.plant.set_dc_source(output_on=self._output_enabled(), voltage_v=self.voltage_v,
                                 current_limit_a=source_a, current_limit_neg_a=sink_a,
                                 **self.plant_settings())

    def build_commands(self, t: CommandTable) -> None:
        t.add("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", set=self._set_voltage,
              query=lambda c: format_nr3(self.voltage_v))
        t.add("[SOURce:]VOLTage:PROTection[:LEVel]", set=self._set_ovp,
              query=lambda c: format_nr3(self.ovp_level_v))
        t.add("OUTPut[:STATe]", set=self._set_output, query=lambda c: "1" if self._output_enabled() else "0")
        t.add("OUTPut:PROTection:CLEar", set=self._clear_protection)
        t.add("STATus:QUEStionable:CONDition", query=lambda c: "1" if self.protection_tripped == "OV" else "0")
        for verb in ("MEASure", "FETCh"):
            t.add(f"{verb}[:SCALar]:VOLTage[:DC]", query=lambda c: self._measure("voltage_v"))
            t.add(f"{verb}[:SCALar]:CURRent[:DC]", query=lambda c: self._measure("current_a"))
            t.add(f"{verb}[:SCALar]:POWer[:DC]", query=lambda c: self._measure("power_w"))
        self.build_family_commands(t)

    # --- programming -------------------------------------------------------------------
    def _set_voltage(self, c: Call) -> None:
        self.voltage_v = c.number(unit="V", low=0.0, high=self.ratings.voltage_max_v)
        self._check_overvoltage()
        self._apply()

    def _set_ovp(self, c: Call) -> None:
        self.ovp_level_v = c.number(unit="V", low=0.0, high=self.ratings.voltage_max_v)
        self._check_overvoltage()
        self._apply()

    def _set_output(self, c: Call) -> None:
        self.output_on = c.boolean()
        self._check_overvoltage()
        self._apply()

    def _clear_protection(self, c: Call) -> None:
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
