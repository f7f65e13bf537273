"""Role: the AC load on the PCS's AC side (an AI-factory load emulator, or an RLC bank).

Plans set a constant power or current, switch the load, and play load profiles — the
training-step power swings of a GPU cluster — without seeing the instrument's dialect.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

from instruments.errors import InstrumentError
from instruments.scpi import ScpiInstrument


class LoadCapabilityError(InstrumentError):
    """The instrument cannot draw this kind of load at all (not a range problem): a plan
    skips the test point and names why, instead of passing it or failing the PCS."""


@dataclass(frozen=True)
class AcLoadReading:
    """What the load measures at its input terminals."""

    v_rms_v: float
    i_rms_a: float
    p_w: float               # real power absorbed by the load, W
    freq_hz: float


@dataclass(frozen=True)
class LoadProfile:
    """A piecewise-constant power profile: ``powers_w[k]`` from ``times_s[k]`` on.

    ``times_s`` starts at 0 and increases strictly; the last level lasts until ``end_s``.
    """

    times_s: tuple[float, ...]
    powers_w: tuple[float, ...]
    end_s: float

    @property
    def dwells_s(self) -> tuple[float, ...]:
        edges = self.times_s + (self.end_s,)
        return tuple(b - a for a, b in zip(edges[:-1], edges[1:]))

    @classmethod
    def build(cls, times_s: Sequence[float], powers_w: Sequence[float],
              end_s: float | None = None) -> "LoadProfile":
        """Validate the shape (raises ``ValueError`` naming the fault)."""
        times = tuple(float(t) for t in times_s)
        powers = tuple(float(p) for p in powers_w)
        if not times or len(times) != len(powers):
            raise ValueError(f"times_s ({len(times)}) and powers_w ({len(powers)}) must be "
                             "non-empty and of equal length")
        if not all(math.isfinite(v) for v in times + powers):
            raise ValueError("profile values must be finite numbers")
        if times[0] != 0.0:
            raise ValueError(f"times_s must start at 0, not {times[0]:g}")
        if any(b <= a for a, b in zip(times[:-1], times[1:])):
            raise ValueError("times_s must increase strictly")
        if end_s is None:
            # without an end, the last level lasts as long as the one before it (or 1 s)
            end_s = times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1.0)
        if not end_s > times[-1]:
            raise ValueError(f"end_s = {end_s:g} must come after the last time {times[-1]:g}")
        return cls(times, powers, float(end_s))


class AcLoad(ScpiInstrument, ABC):
    """Role interface: a programmable (regenerative) AC load with a profile/list mode."""

    ROLE = "ac_load"

    @abstractmethod
    def set_constant_power_w(self, p: float) -> None: ...

    @abstractmethod
    def set_constant_current_a(self, i: float) -> None:
        """Constant rms current."""

    @abstractmethod
    def load_on(self) -> None: ...

    @abstractmethod
    def load_off(self) -> None: ...

    @abstractmethod
    def program_profile(self, times_s: Sequence[float], powers_w: Sequence[float], *,
                        end_s: float | None = None, repeat: int = 1) -> None:
        """Load a power profile (see :class:`LoadProfile`); checked entirely before sending."""

    @abstractmethod
    def start_profile(self) -> None: ...

    @abstractmethod
    def stop_profile(self) -> None: ...

    @abstractmethod
    def measure(self) -> AcLoadReading: ...

    def set_rlc_load(self, p_w: float, q_inductive_var: float, q_capacitive_var: float, *,
                     v_ln_nominal_v: float | None = None) -> None:
        """Draw a constant-impedance load, as an RLC load bank's steps are rated: a resistance
        drawing ``p_w``, an inductance drawing ``q_inductive_var`` and a capacitance drawing
        ``q_capacitive_var`` at nominal voltage (three-phase totals, star-connected per phase
        at ``v_ln_nominal_v``, or the bench file's ``options.v_ln_nominal_v``). Applied at
        once and the load switched in, as a bank's contactors do; all zero opens the load.
        Raises :class:`LoadCapabilityError` for a part the instrument cannot draw."""
        raise LoadCapabilityError(self.role, self.resource_name,
                                  f"{type(self).__name__} has no constant-impedance (RLC) load mode")

    def safe_state(self) -> bool:
        """Stop any profile and open the load; never raises."""
        return self._send_safely(["LOAD OFF"])


__all__ = ["AcLoad", "AcLoadReading", "LoadCapabilityError", "LoadProfile"]
