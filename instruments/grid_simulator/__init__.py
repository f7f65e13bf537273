"""Role: the programmable AC grid simulator feeding the PCS through the bench impedance.

Plans program steady conditions (nominal voltage and frequency) and transients (a list of
segments: sags, swells, frequency steps and ramps, phase jumps) and never see the
instrument's SCPI dialect.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from instruments.errors import InstrumentError
from instruments.scpi import ScpiInstrument

#: phases by the names a plan may use; the instruments number them 1, 2, 3
PHASE_NUMBERS: dict[object, int] = {1: 1, 2: 2, 3: 3, "A": 1, "B": 2, "C": 3,
                                    "a": 1, "b": 2, "c": 3}


#: a frequency ramp steeper than this is refused unless the bench says otherwise (instrument
#: option or safety limit ``max_rocof_hz_per_s``): twice the steepest ramp a grid code asks
#: a PCS to ride through (IEEE 2800 5 Hz/s), so a duration typed in ms instead of s is caught
DEFAULT_MAX_ROCOF_HZ_PER_S = 10.0
#: a phase jump is given within a half turn either way (beyond, it is the opposite jump)
PHASE_SHIFT_RANGE_DEG = (-180.0, 180.0)
NO_PHASE_SHIFT = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class GridSegment:
    """One step of a transient: hold these line-to-neutral rms voltages and this frequency.

    Two optional parts describe grid events beyond sags and frequency steps:

    * ``freq_start_hz``: the frequency ramps linearly from it to ``freq_hz`` over the
      segment (a RoCoF of ``rocof_hz_per_s``), instead of stepping to ``freq_hz``;
    * ``phase_shift_deg``: each phase's angle during the segment (A, B, C), in degrees
      from where that phase would be on the undisturbed waveform, positive leading.
      (20, 20, 20) is a positive-sequence jump of +20 deg, (60, 0, 0) phase A alone; a
      change between segments is a phase jump at the segment's start.
    """

    duration_s: float
    v_ln_v: tuple[float, float, float]     # phases A, B, C, rms line-to-neutral
    freq_hz: float                         # held (or reached, at the end of a ramp)
    freq_start_hz: float | None = None     # ramp start; None: no ramp
    phase_shift_deg: tuple[float, float, float] = NO_PHASE_SHIFT

    @property
    def balanced(self) -> bool:
        """Equal voltage magnitudes on the three phases (phase shifts aside)."""
        return self.v_ln_v[0] == self.v_ln_v[1] == self.v_ln_v[2]

    @property
    def ramps(self) -> bool:
        return self.freq_start_hz is not None and self.freq_start_hz != self.freq_hz

    @property
    def start_freq_hz(self) -> float:
        """The frequency at the segment's start (its held frequency when it does not ramp)."""
        return self.freq_start_hz if self.freq_start_hz is not None else self.freq_hz

    @property
    def rocof_hz_per_s(self) -> float:
        """Signed rate of the ramp (0 without one)."""
        return (self.freq_hz - self.start_freq_hz) / self.duration_s if self.ramps else 0.0

    @property
    def shifts_phase(self) -> bool:
        return any(angle != 0.0 for angle in self.phase_shift_deg)


@dataclass(frozen=True)
class GridReading:
    """What the grid simulator measures at its own output terminals."""

    v_ln_rms_v: tuple[float, float, float]
    i_rms_a: tuple[float, float, float]
    p_w: tuple[float, float, float]        # real power per phase, W (> 0 = delivered by the source)
    freq_hz: float

    @property
    def p_total_w(self) -> float:
        return sum(self.p_w)


@dataclass(frozen=True)
class OutputImpedance:
    """The source impedance the grid simulator emulates in series with its output, per phase."""

    r_ohm: float
    l_h: float

    @property
    def is_zero(self) -> bool:
        return self.r_ohm == 0.0 and self.l_h == 0.0


class NoProgrammableImpedance(InstrumentError):
    """The product family cannot emulate a source impedance: a weak grid needs an external
    (passive) impedance between the source and the PCC, which the bench file then states."""


class GridSimulator(ScpiInstrument, ABC):
    """Role interface: a three-phase programmable AC source."""

    ROLE = "grid_simulator"

    @abstractmethod
    def configure_nominal(self, v_ln_v: float, freq_hz: float) -> None:
        """Balanced three-phase at ``v_ln_v`` rms line-to-neutral and ``freq_hz``, phases 0/−120/+120°."""

    @abstractmethod
    def set_voltage_ln_v(self, v: float, phase: int | str | None = None) -> None:
        """Set the rms line-to-neutral voltage of one phase (1–3 or "A"–"C") or of all (None)."""

    @abstractmethod
    def set_frequency_hz(self, f: float) -> None: ...

    @abstractmethod
    def output_on(self) -> None: ...

    @abstractmethod
    def output_off(self) -> None: ...

    @abstractmethod
    def program_transient(self, segments: list[GridSegment]) -> None:
        """Load a transient; every segment is checked against the limits before anything is sent."""

    @abstractmethod
    def start_transient(self) -> None:
        """Run the loaded transient (and pulse the trigger output wired to the scope)."""

    @abstractmethod
    def abort_transient(self) -> None: ...

    @abstractmethod
    def measure(self) -> GridReading: ...

    @abstractmethod
    def set_output_impedance(self, r_ohm: float, l_h: float) -> None:
        """Emulate a series R-L source impedance per phase (weak-grid tests); (0, 0) turns the
        emulation off. Values outside the model's range are refused before anything is sent;
        a family without the function raises :class:`NoProgrammableImpedance`."""

    @abstractmethod
    def output_impedance(self) -> OutputImpedance:
        """The impedance the instrument emulates now, as it reports it ((0, 0) when off)."""

    def check_output_impedance(self, r_ohm: float, l_h: float, *, r_range_ohm: tuple[float, float],
                               l_range_h: tuple[float, float]) -> None:
        """Both parts against the model's range (LimitError), before a driver sends anything."""
        self.check_value("output_impedance r_ohm", float(r_ohm), valid_range=r_range_ohm, units="ohm")
        self.check_value("output_impedance l_h", float(l_h), valid_range=l_range_h, units="H")

    def safe_state(self) -> bool:
        """Stop any transient and open the output; never raises."""
        return self._send_safely(["ABORT", "OUTP OFF"])


class PhaseSelectableGridSimulator(GridSimulator):
    """What the families that program one phase at a time share (a coupled/selected phase,
    a voltage and a frequency setting, a transient list): the California Instruments sources
    (AMETEK MX, Asterion; ``california_instruments``) and the Chroma 61800.

    Subclasses declare the settings ``phases_coupled``, ``selected_phase``, ``voltage_ac_v``
    and ``frequency_hz``, the ranges ``voltage_span_v``, ``FREQUENCY_RANGE_HZ``,
    ``DWELL_RANGE_S`` and ``MAX_LIST_POINTS``.
    """

    def set_voltage_ln_v(self, v: float, phase: int | str | None = None) -> None:
        self._check_voltage(v)
        if phase is None:
            self.phases_coupled = True
            self.voltage_ac_v = v
        else:
            number = self._phase_number(phase)
            self.phases_coupled = False
            self.selected_phase = number
            self.voltage_ac_v = v
            self.phases_coupled = True
        self.check_errors(f"setting the voltage to {v:g} V")

    def set_frequency_hz(self, f: float) -> None:
        self._check_frequency(f)
        self.frequency_hz = f
        self.check_errors(f"setting the frequency to {f:g} Hz")

    # -- checks, before anything is sent ----------------------------------------------------
    def _check_voltage(self, v_ln_v: float, quantity: str = "v_ln_v") -> None:
        self.check_value(quantity, float(v_ln_v), valid_range=self.voltage_span_v, units="V",
                         safety_limit="max_voltage_ln_v")

    def _check_frequency(self, freq_hz: float, quantity: str = "freq_hz") -> None:
        self.check_value(quantity, float(freq_hz), valid_range=self.FREQUENCY_RANGE_HZ, units="Hz")
        self.check_safety_limit(quantity, float(freq_hz), "min_frequency_hz", units="Hz")
        self.check_safety_limit(quantity, float(freq_hz), "max_frequency_hz", units="Hz")

    def max_rocof_hz_per_s(self) -> float:
        """The steepest frequency ramp the bench allows this instrument (option, then the
        bench safety limit, both ``max_rocof_hz_per_s``; the role's default otherwise)."""
        limit = float(self.options.get("max_rocof_hz_per_s", DEFAULT_MAX_ROCOF_HZ_PER_S))
        return min(limit, self.limits.get("max_rocof_hz_per_s", limit))

    def _check_segments(self, segments: list[GridSegment]) -> None:
        if not segments:
            raise self.limit_error("a transient needs at least one segment", quantity="segments")
        max_points = int(self.options.get("max_list_points", self.MAX_LIST_POINTS))
        if len(segments) > max_points:
            raise self.limit_error(f"{len(segments)} segments exceed the {max_points}-point "
                                   "transient list; nothing was sent", quantity="segments",
                                   value=len(segments), limit=max_points)
        for number, segment in enumerate(segments, start=1):
            label = f"segment {number}"
            self.check_value(f"{label} duration_s", float(segment.duration_s),
                             valid_range=self.DWELL_RANGE_S, units="s")
            if len(segment.v_ln_v) != 3:
                raise self.limit_error(f"{label}: v_ln_v needs three phase voltages, got "
                                       f"{segment.v_ln_v!r}", quantity=f"{label} v_ln_v")
            for phase, v in zip("ABC", segment.v_ln_v):
                self._check_voltage(v, quantity=f"{label} phase {phase} v_ln_v")
            self._check_frequency(segment.freq_hz, quantity=f"{label} freq_hz")
            self._check_grid_events(segment, label)

    def _check_grid_events(self, segment: GridSegment, label: str) -> None:
        """A ramp's start frequency and rate, the phase shifts: refused before anything is sent."""
        if segment.freq_start_hz is not None:
            self._check_frequency(segment.freq_start_hz, quantity=f"{label} freq_start_hz")
        if segment.ramps:
            rocof = abs(segment.rocof_hz_per_s)
            limit = self.max_rocof_hz_per_s()
            if not rocof <= limit:
                raise self.limit_error(
                    f"{label} ramps {segment.start_freq_hz:g} -> {segment.freq_hz:g} Hz in "
                    f"{segment.duration_s:g} s, a RoCoF of {rocof:g} Hz/s beyond the bench's "
                    f"max_rocof_hz_per_s = {limit:g} Hz/s; nothing was sent",
                    quantity=f"{label} rocof_hz_per_s", value=rocof, limit=limit)
        shifts = segment.phase_shift_deg
        if len(shifts) != 3:
            raise self.limit_error(f"{label}: phase_shift_deg needs three angles (A, B, C), got "
                                   f"{shifts!r}", quantity=f"{label} phase_shift_deg")
        for phase, angle in zip("ABC", shifts):
            quantity = f"{label} phase {phase} phase_shift_deg"
            if not (isinstance(angle, (int, float)) and math.isfinite(angle)):
                raise self.limit_error(f"{quantity} = {angle!r} is not a finite number",
                                       quantity=quantity)
            self.check_value(quantity, float(angle), valid_range=PHASE_SHIFT_RANGE_DEG, units="deg")

    def _phase_number(self, phase: int | str) -> int:
        try:
            return PHASE_NUMBERS[phase]
        except (KeyError, TypeError):
            raise self.limit_error(f"phase {phase!r} is not one of 1, 2, 3, 'A', 'B', 'C'",
                                   quantity="phase") from None


__all__ = ["GridSimulator", "GridSegment", "GridReading", "OutputImpedance", "NoProgrammableImpedance",
           "PHASE_NUMBERS", "PhaseSelectableGridSimulator", "DEFAULT_MAX_ROCOF_HZ_PER_S", "NO_PHASE_SHIFT"]
