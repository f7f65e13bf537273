"""Role: the genset controller of a generator set on the bench's AC bus.

Plans start and stop the engine, close and open the generator breaker, and read what the
controller measures at the generator terminals. The set's rating and its ISO 8528-5
performance class come from the bench file (they are the set's nameplate, not something a
controller reports reliably), and the profile's class limits are chosen by that class.
"""
from __future__ import annotations

from dataclasses import dataclass

#: ISO 8528-5 performance classes (../shared/reference/criteria.md)
ISO_8528_5_CLASSES = ("G1", "G2", "G3")


@dataclass(frozen=True)
class GensetRating:
    """The set's nameplate as the bench file gives it."""

    s_rated_va: float
    iso_class: str          # "G1" | "G2" | "G3"


@dataclass(frozen=True)
class GensetReading:
    """What the controller reports (its own measurement at the generator terminals)."""

    engine_state: str                       # the map's enumeration name: STOPPED, STARTING, RUNNING, ...
    breaker_closed: bool
    freq_hz: float
    v_ln_rms_v: tuple[float, float, float]
    i_rms_a: tuple[float, float, float]
    p_w: float                              # delivered active power
    q_var: float                            # delivered reactive power (> 0: supplying lagging var)
    alarms: tuple[str, ...]                 # names of the alarm points that read ACTIVE

    @property
    def running(self) -> bool:
        return self.engine_state == "RUNNING"


__all__ = ["GensetRating", "GensetReading", "ISO_8528_5_CLASSES"]
