"""Battery emulation settings of the DC-source role, and the host-side approximation.

:class:`BatteryEmulation` is what a plan asks for: an open-circuit-voltage curve over SOC,
the internal resistance, the capacity and the SOC to start from. It is checked here, free
of I/O (a family checks its ranges and the bench's safety limits on top).

None of our DC-source families keeps a battery (an OCV that follows a coulomb count) in the
instrument itself: the RP7900 has a programmable output resistance and no more, the N8900
and the Chroma 62000P not even that. A bench file may opt in to
:class:`HostBatteryEmulation` (``options.battery_emulation = "host"``): the bench counts the
coulombs from the source's own current readings and reprograms the voltage to the OCV at the
counted SOC, at the rate the plan schedules it (``clock.every(period_s, emulation.update)``).
The internal-resistance drop is the instrument's where it has an output resistance (exact,
at the instrument's bandwidth) and the host's otherwise (it then follows the current only at
the update rate: a step of load shows the old voltage for up to one period).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from instruments.dc_source import DcSource

MAX_OCV_POINTS = 100


@dataclass(frozen=True)
class BatteryEmulation:
    """A battery as the DC source should present it.

    ``ocv_curve``: (soc_pct, v) points, SOC strictly increasing within 0..100, voltage
    positive and never falling as SOC rises (flat beyond the ends). ``r_internal_ohm`` > 0,
    ``capacity_ah`` > 0, ``soc_pct`` within 0..100.
    """

    ocv_curve: tuple[tuple[float, float], ...]
    r_internal_ohm: float
    capacity_ah: float
    soc_pct: float

    @classmethod
    def build(cls, ocv_curve: Sequence[Sequence[float]], *, r_internal_ohm: float,
              capacity_ah: float, soc_pct: float) -> "BatteryEmulation":
        """Checked construction from plain sequences (ValueError naming what is wrong)."""
        try:
            curve = tuple((float(soc), float(v)) for soc, v in ocv_curve)
        except (TypeError, ValueError):
            raise ValueError(f"ocv_curve needs (soc_pct, v) pairs, got {ocv_curve!r}") from None
        emulation = cls(curve, float(r_internal_ohm), float(capacity_ah), float(soc_pct))
        emulation.check()
        return emulation

    def check(self) -> None:
        """ValueError naming the first impossible setting."""
        curve = self.ocv_curve
        if not 2 <= len(curve) <= MAX_OCV_POINTS:
            raise ValueError(f"ocv_curve: 2..{MAX_OCV_POINTS} points, got {len(curve)}")
        for soc, v in curve:
            if not (math.isfinite(soc) and 0.0 <= soc <= 100.0):
                raise ValueError(f"ocv_curve: SOC {soc!r} % outside 0..100")
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"ocv_curve: voltage {v!r} V at SOC {soc:g} % must be > 0")
        for (s0, v0), (s1, v1) in zip(curve, curve[1:]):
            if not s1 > s0:
                raise ValueError(f"ocv_curve: SOC points must increase, got {s0:g} % then {s1:g} %")
            if v1 < v0:
                raise ValueError(f"ocv_curve: not monotonic: {v0:g} V at {s0:g} % then "
                                 f"{v1:g} V at {s1:g} %")
        if not curve[-1][1] > curve[0][1]:
            raise ValueError(f"ocv_curve: flat ({curve[0][1]:g} V throughout); a battery's OCV "
                             "rises with its SOC")
        for name, value in (("r_internal_ohm", self.r_internal_ohm), ("capacity_ah", self.capacity_ah)):
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not (math.isfinite(self.soc_pct) and 0.0 <= self.soc_pct <= 100.0):
            raise ValueError(f"soc_pct must be within 0..100, got {self.soc_pct!r}")

    @property
    def ocv_span_v(self) -> tuple[float, float]:
        return self.ocv_curve[0][1], self.ocv_curve[-1][1]

    def ocv_v(self, soc_pct: float | None = None) -> float:
        """The open-circuit voltage at ``soc_pct`` (default: the starting SOC), linear between
        the curve's points and flat beyond its ends."""
        soc = self.soc_pct if soc_pct is None else soc_pct
        socs = [s for s, _ in self.ocv_curve]
        if soc <= socs[0]:
            return self.ocv_curve[0][1]
        if soc >= socs[-1]:
            return self.ocv_curve[-1][1]
        i = bisect.bisect_right(socs, soc)
        (s0, v0), (s1, v1) = self.ocv_curve[i - 1], self.ocv_curve[i]
        return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


class HostBatteryEmulation:
    """The bench's approximation of a battery on a source without one (opt-in).

    ``update(now_s)`` — meant for ``clock.every(period_s, emulation.update)`` — reads the
    source's current, counts the coulombs since the last update (trapezoid over the two
    readings; > 0 delivered: the battery discharges) and programs the OCV at the new SOC,
    less the internal-resistance drop unless the instrument applies it itself
    (``native_resistance``). The SOC is the bench's count, bounded to 0..100 as the OCV curve
    is: an emulated battery is not driven past its ends by the bench (the PCS's BMS should
    not try either, and the source's current limits stay in force).
    """

    def __init__(self, source: "DcSource", emulation: BatteryEmulation, *,
                 native_resistance: bool) -> None:
        self.source = source
        self.emulation = emulation
        self.native_resistance = native_resistance
        self.soc_pct = emulation.soc_pct
        self.active = True
        self._last: tuple[float, float] | None = None    # (time, current) of the last update

    def voltage_setpoint_v(self, current_a: float) -> float:
        drop_v = 0.0 if self.native_resistance else self.emulation.r_internal_ohm * current_a
        return self.emulation.ocv_v(self.soc_pct) - drop_v

    def update(self, now_s: float) -> None:
        if not self.active:
            return
        current_a = self.source.measure_current_a()
        if self._last is not None:
            last_s, last_a = self._last
            charge_c = 0.5 * (current_a + last_a) * max(now_s - last_s, 0.0)
            self.soc_pct -= charge_c / (self.emulation.capacity_ah * 3600.0) * 100.0
            self.soc_pct = min(max(self.soc_pct, 0.0), 100.0)
        self._last = (now_s, current_a)
        self.source.set_voltage_v(self.voltage_setpoint_v(current_a))

    def stop(self) -> None:
        """No more updates (the voltage stays where the last one put it)."""
        self.active = False


__all__ = ["BatteryEmulation", "HostBatteryEmulation", "MAX_OCV_POINTS"]
