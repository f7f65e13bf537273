"""Chroma 62000P series programmable DC power supply (battery emulator) twin.

No 62000P programming manual text was found in the reference corpora; the command set
follows public drivers of the 62000P/62000H family and the bench's reference notes:
`SOURce:VOLTage` (output voltage), `SOURce:CURRent` (the current setting: the output's
constant-current limit while it regulates voltage), `SOURce:VOLTage:LIMit:HIGH|LOW` and
`SOURce:CURRent:LIMit:HIGH|LOW` (the allowed span of the voltage and current *settings*,
not output limits), `SOURce:VOLTage:PROTection:HIGH` (over-voltage protection),
`SOURce:CURRent:PROTection:HIGH` and `SOURce:POWer:PROTection:HIGH` (stored), `CONFigure:
OUTPut ON|OFF` (queried as `ON`/`OFF`, as those drivers read it), `CONFigure:REMote`,
`FETCh|MEASure:VOLTage?|CURRent?|POWer?`, `OUTPut:PROTection:CLEar`.

Assumptions to cross-check on a real unit: a setting outside its LIMit span is refused
with -222 and leaves the setting; narrowing a LIMit span below the present setting is
refused with -221; OVP latches the output off until `OUTPut:PROTection:CLEar`.

Ratings, stretched for this bench: one 62150P-1000-10 gives 0–1000 V, 0–10 A, 15 kW.
The battery emulator of a 250 kW PCS needs ~300 A at 900 V, so the twin stands for 30
units answering as one (the data sheet's master/slave paralleling stops well short of
that; the stretch is the bench's, like the RP7900 twin's ten units). The 62000P is a
source only (the 62000D models are the bidirectional ones): the twin gives the plant no
sink current, so a PCS charging from this supply raises the DC link until something
trips, as it would on a real bench without a parallel load.

A bidirectional 62000D is the same twin with a sink rating (``Chroma62000PRatings.
sink_current_a`` > 0 and a "D" model): then the current setting's span may reach below
zero, ``SOURce:CURRent:LIMit:LOW -x`` is the sink limit given to the plant (down to the
rating). That reading of the 62000D is the driver's too (its ``options.sink_capable``) and
unconfirmed by a manual in both files; a 62000P refuses a negative LOW (-222) as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.sim.scpi.server import (
    Call,
    CommandTable,
    ScpiInstrument,
    data_out_of_range,
    format_nr3,
    settings_conflict,
)

if TYPE_CHECKING:
    from bench.sim.plant import Plant


@dataclass(frozen=True)
class Chroma62000PRatings:
    model: str = "62150P-1000-10"
    voltage_rating_v: float = 1000.0
    current_rating_a: float = 10.0  # per unit
    power_rating_w: float = 15_000.0  # per unit
    units_in_parallel: int = 30
    sink_current_a: float = 0.0  # per unit; a P model does not sink (a D model does)
    ovp_margin: float = 1.1  # OVP settable to 110 % of the rating (assumed)

    @property
    def current_max_a(self) -> float:
        return self.current_rating_a * self.units_in_parallel

    @property
    def power_max_w(self) -> float:
        return self.power_rating_w * self.units_in_parallel

    @property
    def sink_max_a(self) -> float:
        return self.sink_current_a * self.units_in_parallel


class Chroma62000P(ScpiInstrument):
    def __init__(self, plant: "Plant", *, ratings: Chroma62000PRatings = Chroma62000PRatings(),
                 serial: str = "621500000001") -> None:
        self.plant = plant
        self.ratings = ratings
        super().__init__(manufacturer="Chroma ATE", model=ratings.model, serial=serial, firmware="1.30")
        self.reset()

    def reset(self) -> None:
        """*RST: output off, 0 V, 0 A, full setting spans, protections at their maxima."""
        r = self.ratings
        self.voltage_v = 0.0
        self.current_a = 0.0
        self.voltage_span_v = (0.0, r.voltage_rating_v)
        self.current_span_a = (0.0, r.current_max_a)
        self.ovp_v = r.voltage_rating_v * r.ovp_margin
        self.ocp_a = r.current_max_a * 1.1
        self.opp_w = r.power_max_w * 1.1
        self.output_on = False
        self.protection_tripped = ""
        self.remote = True
        self._apply()

    def build_commands(self, t: CommandTable) -> None:
        t.add("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", set=self._set_voltage,
              query=lambda c: format_nr3(self.voltage_v))
        t.add("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", set=self._set_current,
              query=lambda c: format_nr3(self.current_a))
        t.add("[SOURce:]VOLTage:LIMit:HIGH", set=lambda c: self._set_span(c, "voltage", high=True),
              query=lambda c: format_nr3(self.voltage_span_v[1]))
        t.add("[SOURce:]VOLTage:LIMit:LOW", set=lambda c: self._set_span(c, "voltage", high=False),
              query=lambda c: format_nr3(self.voltage_span_v[0]))
        t.add("[SOURce:]CURRent:LIMit:HIGH", set=lambda c: self._set_span(c, "current", high=True),
              query=lambda c: format_nr3(self.current_span_a[1]))
        t.add("[SOURce:]CURRent:LIMit:LOW", set=lambda c: self._set_span(c, "current", high=False),
              query=lambda c: format_nr3(self.current_span_a[0]))
        t.add("[SOURce:]VOLTage:PROTection:HIGH", set=self._set_ovp, query=lambda c: format_nr3(self.ovp_v))
        t.add("[SOURce:]CURRent:PROTection:HIGH",
              set=lambda c: setattr(self, "ocp_a", c.number(unit="A", low=0.0, high=self.ratings.current_max_a * 1.1)),
              query=lambda c: format_nr3(self.ocp_a))
        t.add("[SOURce:]POWer:PROTection:HIGH",
              set=lambda c: setattr(self, "opp_w", c.number(unit="W", low=0.0, high=self.ratings.power_max_w * 1.1)),
              query=lambda c: format_nr3(self.opp_w))
        t.add("CONFigure:OUTPut", set=self._set_output, query=lambda c: "ON" if self._output_enabled() else "OFF")
        t.add("CONFigure:REMote", set=lambda c: setattr(self, "remote", c.boolean()),
              query=lambda c: "ON" if self.remote else "OFF")
        t.add("OUTPut:PROTection:CLEar", set=self._clear_protection)
        t.add("ABORt", set=lambda c: None)
        for verb in ("FETCh", "MEASure"):
            t.add(f"{verb}:VOLTage", query=lambda c: self._measure("voltage_v"))
            t.add(f"{verb}:CURRent", query=lambda c: self._measure("current_a"))
            t.add(f"{verb}:POWer", query=lambda c: self._measure("power_w"))

    # --- programming -------------------------------------------------------------------
    def _set_voltage(self, c: Call) -> None:
        low, high = self.voltage_span_v
        self.voltage_v = c.number(unit="V", low=low, high=high)
        self._check_overvoltage()
        self._apply()

    def _set_current(self, c: Call) -> None:
        low, high = self.current_span_a
        self.current_a = c.number(unit="A", low=low, high=high)
        self._apply()

    def _set_span(self, c: Call, quantity: str, *, high: bool) -> None:
        rating = self.ratings.voltage_rating_v if quantity == "voltage" else self.ratings.current_max_a
        unit = "V" if quantity == "voltage" else "A"
        # only a bidirectional (D) unit's current span reaches below zero: its sink limit
        lowest = -self.ratings.sink_max_a if quantity == "current" and not high else 0.0
        value = c.number(unit=unit, low=lowest, high=rating)
        span = list(self.voltage_span_v if quantity == "voltage" else self.current_span_a)
        span[1 if high else 0] = value
        if span[0] > span[1]:
            raise data_out_of_range(f"LOW {span[0]:g} above HIGH {span[1]:g}")
        setting = self.voltage_v if quantity == "voltage" else self.current_a
        if not span[0] <= setting <= span[1]:
            raise settings_conflict(f"present {quantity} setting {setting:g} {unit} outside the new span")
        if quantity == "voltage":
            self.voltage_span_v = (span[0], span[1])
        else:
            self.current_span_a = (span[0], span[1])
            self._apply()

    def _set_ovp(self, c: Call) -> None:
        self.ovp_v = c.number(unit="V", low=0.0, high=self.ratings.voltage_rating_v * self.ratings.ovp_margin)
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
        if self._output_enabled() and self.voltage_v > self.ovp_v:
            self.protection_tripped = "OVP"

    def _apply(self) -> None:
        # the sink limit: how far below zero the current span reaches (0 on a P unit)
        sink_a = min(max(-self.current_span_a[0], 0.0), self.ratings.sink_max_a)
        self.plant.set_dc_source(output_on=self._output_enabled(), voltage_v=self.voltage_v,
                                 current_limit_a=max(self.current_a, 0.0), current_limit_neg_a=sink_a)

    def _measure(self, key: str) -> str:
        return format_nr3(float(self.plant.dc_source_measurements()[key]))
