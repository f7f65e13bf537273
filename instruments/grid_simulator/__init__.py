"""Role: the programmable AC grid simulator feeding the PCS through the bench impedance.

Plans program steady conditions (nominal voltage and frequency) and transients (a list of
segments: sags, swells, frequency steps) and never see the instrument's SCPI dialect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from instruments.errors import InstrumentError
from instruments.scpi import ScpiInstrument

#: phases by the names a plan may use; the instruments number them 1, 2, 3
PHASE_NUMBERS: dict[object, int] = {1: 1, 2: 2, 3: 3, "A": 1, "B": 2, "C": 3,
                                    "a": 1, "b": 2, "c": 3}


@dataclass(frozen=True)
class GridSegment:
    """One step of a transient: hold these line-to-neutral rms voltages and this frequency."""

    duration_s: float
    v_ln_v: tuple[float, float, float]     # phases A, B, C, rms line-to-neutral
    freq_hz: float

    @property
    def balanced(self) -> bool:
        return self.v_ln_v[0] == self.v_ln_v[1] == self.v_ln_v[2]


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
    a voltage and a frequency setting, a transient list): AMETEK MX and Chroma 61800.

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

    def _phase_number(self, phase: int | str) -> int:
        try:
            return PHASE_NUMBERS[phase]
        except (KeyError, TypeError):
            raise self.limit_error(f"phase {phase!r} is not one of 1, 2, 3, 'A', 'B', 'C'",
                                   quantity="phase") from None


__all__ = ["GridSimulator", "GridSegment", "GridReading", "OutputImpedance", "NoProgrammableImpedance",
           "PHASE_NUMBERS", "PhaseSelectableGridSimulator"]
