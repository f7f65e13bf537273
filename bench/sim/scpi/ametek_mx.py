"""AMETEK / California Instruments MX-series three-phase AC source (grid simulator) twin.

Command set after the "BPS / MX / RS Series SCPI Programming Manual" (P/N 7003-961), the tree
the California Instruments sources share (`california_instruments`, where the behaviour and
its assumptions are written down). What is the MX's own:

- the -HV voltage ranges (200 / 400 V L-N), 16-1000 Hz;
- a list of up to 32 points (manual §6.4.3: "up to 32 settings (or points) in the list"),
  dwells from 0 s;
- a programmable output impedance (`OUTPut:IMPedance…`): REAL 0 to 1 ohm, REACtive 0 to
  1 mH (`MxRatings`), with the assumptions the shared module states (the MX manual's page
  on it was not found).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.sim.scpi.california_instruments import CaliforniaInstrumentsSource, SourceRatings

if TYPE_CHECKING:
    from bench.sim.plant import Plant


@dataclass(frozen=True)
class MxRatings(SourceRatings):
    """Programming limits of the model (refused with -222 outside them)."""

    # The bench runs a 480 V PCS and must swell to 1.2 pu (333 V L-N): the MX's high-voltage
    # option (-HV: 200/400 V L-N ranges instead of 150/300 V) is what such a lab buys.
    model: str = "MX45-3Pi-HV"
    voltage_range_low_v: float = 200.0  # L-N rms, low range
    voltage_range_high_v: float = 400.0  # L-N rms, high range
    freq_min_hz: float = 16.0
    freq_max_hz: float = 1000.0
    # The bench's source is sized for the 250 kVA PCS (several MX cabinets behind one
    # controller); the limit is not enforced by the plant, only stored and range checked.
    current_limit_max_a: float = 500.0
    list_points_max: int = 32  # manual §6.4.3: "up to 32 settings (or points) in the list"
    list_count_max: int = 65535
    dwell_min_s: float = 0.0
    dwell_max_s: float = 1.0e5
    programmable_impedance: bool = True
    impedance_real_max_ohm: float = 1.0     # programmable output impedance, resistive part
    impedance_reactive_max_mh: float = 1.0  # inductive part
    freq_slew_max_hz_per_s: float = 1.0e4   # LIST:FREQ:SLEW range top (MAX): a step


class AmetekMx(CaliforniaInstrumentsSource):
    """The MX grid simulator."""

    def __init__(self, plant: "Plant", *, ratings: MxRatings = MxRatings(), serial: str = "MX45-SIM-0001",
                 nominal_v_ln_v: float = 277.1, nominal_freq_hz: float = 60.0) -> None:
        super().__init__(plant, ratings=ratings, serial=serial, firmware="4.52",
                         nominal_v_ln_v=nominal_v_ln_v, nominal_freq_hz=nominal_freq_hz)
