"""AMETEK / California Instruments Asterion AC series (three-phase) grid simulator twin.

Only the front matter of the "ASTERION Series SCPI Programming Manual" (M330100-01 Rev A,
July 2016) is stored in the reference corpora, so this twin answers the tree the California
Instruments sources share (`california_instruments`, where the behaviour and its
assumptions are written down) with ratings that are the Asterion's as far as they could be
found, and **unconfirmed** otherwise:

- `*IDN?`: "AMETEK Programmable Power,AST6003-HV,…" — the model string's form is not in the
  stored pages (the driver accepts any model beginning with AST);
- voltage ranges 200 / 400 V L-N (a high-voltage range as on the MX -HV, so that the 480 V
  bench can swell to 1.2 pu), 16-1000 Hz; the current limit stands for a multi-chassis
  system sized for the 250 kVA PCS (stored and range checked, not enforced by the plant);
- lists of up to 100 points with dwells of 1 ms … 90 000 s (the Sequoia's documented
  `LIST:DWELl` range and list length, section 4.21);
- no programmable output impedance: `OUTPut:IMPedance…` is -113 (undefined header), and the
  plant's source impedance stays the bench's own wiring impedance (a weak grid on this
  bench is an external impedance, as for the Chroma 61800).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.sim.scpi.california_instruments import CaliforniaInstrumentsSource, SourceRatings

if TYPE_CHECKING:
    from bench.sim.plant import Plant


@dataclass(frozen=True)
class AsterionRatings(SourceRatings):
    """Programming limits of the model (refused with -222 outside them); see module notes."""

    model: str = "AST6003-HV"
    voltage_range_low_v: float = 200.0
    voltage_range_high_v: float = 400.0
    freq_min_hz: float = 16.0
    freq_max_hz: float = 1000.0
    current_limit_max_a: float = 500.0
    list_points_max: int = 100
    list_count_max: int = 65535
    dwell_min_s: float = 0.001
    dwell_max_s: float = 9.0e4
    programmable_impedance: bool = False
    freq_slew_max_hz_per_s: float = 1.0e4


class AmetekAsterion(CaliforniaInstrumentsSource):
    """The Asterion grid simulator."""

    def __init__(self, plant: "Plant", *, ratings: AsterionRatings = AsterionRatings(),
                 serial: str = "AST-SIM-0001", nominal_v_ln_v: float = 277.1,
                 nominal_freq_hz: float = 60.0) -> None:
        super().__init__(plant, ratings=ratings, serial=serial, firmware="2.1.0",
                         nominal_v_ln_v=nominal_v_ln_v, nominal_freq_hz=nominal_freq_hz)
