"""Role: the power analyzer — the bench's reference meter for U, I, P, S, Q, λ and f.

Unlike the oscilloscope it returns numbers, not waveforms: the instrument integrates over its
own update interval (and over whole periods of its synchronisation source inside it) and the
driver reads the latest completed interval's values. A plan that wants a series polls it on
the bench clock (``bench/power_capture.py``); every reading carries the bench-clock time of
the read, and its values were averaged over an interval that ended at most one update
interval before that time.

Wiring, as the bench file's ``options`` give it (``[instruments.power_analyzer.options]``):

* ``wiring = "3P4W"`` — three elements, element k across PCC phase k and neutral with the
  phase-k current: per-phase voltages to neutral and currents are measured;
* ``wiring = "3P3W"`` — two elements, the two-wattmeter (Aron) method: element 1 U = v_a − v_c
  with i_a, element 2 U = v_b − v_c with i_b; total P, Q, S are exact, per-phase voltages to
  neutral and the phase-C current are not measured;
* ``update_interval_s`` (the instrument's data update rate), ``ct_ratio`` / ``vt_ratio``
  (current / voltage transformer ratios the instrument scales by; one number or one per
  element), ``voltage_range_v`` / ``current_range_a`` (the input ranges, at the instrument's
  terminals, i.e. CT secondary), ``numeric_format`` ("ascii" or "float").
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from instruments.errors import InstrumentError
from instruments.scpi import ScpiInstrument

WIRINGS: dict[str, int] = {"3P4W": 3, "3P3W": 2}     # wiring → elements it takes
PHASES = ("a", "b", "c")


@dataclass(frozen=True)
class ElementReading:
    """One element's (or the Σ's) values, in primary units (transformer ratios applied).

    ``lambda_pf`` and ``freq_hz`` are None where the instrument has no value for them
    (λ with no current, f without a periodic signal).
    """

    name: str                 # "1", "2", "3" or "sigma"
    u_rms_v: float
    i_rms_a: float
    p_w: float
    s_va: float
    q_var: float              # > 0 when the current lags the voltage (the CT's direction: out of the PCS)
    lambda_pf: float | None
    freq_hz: float | None


@dataclass(frozen=True)
class PowerReading:
    """One read of the analyzer: every element and the Σ of the wiring unit.

    ``t_s`` is the bench-clock time of the read; the values are means over the update
    interval the instrument completed last, which ended within ``update_interval_s`` before it.
    """

    t_s: float
    update_interval_s: float
    wiring: str
    elements: tuple[ElementReading, ...]
    sigma: ElementReading

    def element(self, name: int | str) -> ElementReading:
        for reading in self.elements:
            if reading.name == str(name):
                return reading
        raise KeyError(f"no element {name} in this reading (elements: "
                       f"{', '.join(e.name for e in self.elements)})")

    @property
    def freq_hz(self) -> float | None:
        """The frequency of the first element's voltage (the unit's synchronisation source)."""
        return self.elements[0].freq_hz

    def phase_voltages_ln_v(self) -> dict[str, float]:
        """Per-phase rms voltages to neutral that this wiring measures (3P4W: a, b, c; 3P3W: none)."""
        if self.wiring != "3P4W":
            return {}
        return {phase: e.u_rms_v for phase, e in zip(PHASES, self.elements)}

    def phase_currents_a(self) -> dict[str, float]:
        """Per-phase rms currents this wiring measures (3P4W: a, b, c; 3P3W: a, b)."""
        return {phase: e.i_rms_a for phase, e in zip(PHASES, self.elements)}


@dataclass(frozen=True)
class AnalyzerSetup:
    """What the bench file asks of the analyzer (validated by :meth:`from_options`)."""

    wiring: str = "3P4W"
    update_interval_s: float = 0.2
    ct_ratios: tuple[float, ...] = (1.0, 1.0, 1.0)
    vt_ratios: tuple[float, ...] = (1.0, 1.0, 1.0)
    voltage_range_v: float | None = None
    current_range_a: float | None = None
    numeric_format: str = "ascii"

    @property
    def elements(self) -> tuple[int, ...]:
        return tuple(range(1, WIRINGS[self.wiring] + 1))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], error: Callable[[str], Exception]) -> "AnalyzerSetup":
        """The setup a bench file's options describe; ``error`` builds the exception naming the role."""
        known = {"wiring", "update_interval_s", "ct_ratio", "vt_ratio", "voltage_range_v", "current_range_a",
                 "numeric_format", "socket_block_reads"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise error(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        wiring = str(options.get("wiring", "3P4W")).upper()
        if wiring not in WIRINGS:
            raise error(f"options.wiring = {options.get('wiring')!r}; use one of {', '.join(WIRINGS)}")
        count = WIRINGS[wiring]
        numeric_format = str(options.get("numeric_format", "ascii")).lower()
        if numeric_format not in ("ascii", "float"):
            raise error(f"options.numeric_format = {numeric_format!r}; use 'ascii' or 'float'")
        return cls(wiring=wiring,
                   update_interval_s=_positive(options, "update_interval_s", 0.2, error),
                   ct_ratios=_per_element(options, "ct_ratio", count, error),
                   vt_ratios=_per_element(options, "vt_ratio", count, error),
                   voltage_range_v=_optional_positive(options, "voltage_range_v", error),
                   current_range_a=_optional_positive(options, "current_range_a", error),
                   numeric_format=numeric_format)


def _number(options: Mapping[str, Any], key: str, value: Any, error: Callable[[str], Exception]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise error(f"options.{key} = {value!r} must be a positive number")
    return float(value)


def _positive(options: Mapping[str, Any], key: str, default: float, error: Callable[[str], Exception]) -> float:
    return _number(options, key, options.get(key, default), error)


def _optional_positive(options: Mapping[str, Any], key: str, error: Callable[[str], Exception]) -> float | None:
    return None if key not in options else _number(options, key, options[key], error)


def _per_element(options: Mapping[str, Any], key: str, count: int,
                 error: Callable[[str], Exception]) -> tuple[float, ...]:
    value = options.get(key, 1.0)
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise error(f"options.{key} lists {len(value)} ratios; the wiring has {count} elements")
        return tuple(_number(options, key, v, error) for v in value)
    return (_number(options, key, value, error),) * count


class PowerAnalyzer(ScpiInstrument, ABC):
    """Role interface: a multi-element power analyzer read for its numeric values."""

    ROLE = "power_analyzer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # checked in initialize(), inside open_instrument's guard (a refusal closes the session)
        self.setup = AnalyzerSetup()
        started = time.monotonic()
        # until a bench clock is attached, readings are stamped with seconds since opening
        self._clock_now: Callable[[], float] = lambda: time.monotonic() - started

    def use_clock(self, now_s: Callable[[], float]) -> None:
        """Stamp readings with this clock (the bench clock's ``now_s``)."""
        self._clock_now = now_s

    def initialize(self) -> None:
        super().initialize()
        self.setup = AnalyzerSetup.from_options(self.options, self.error)
        self.configure(self.setup)

    @abstractmethod
    def configure(self, setup: AnalyzerSetup) -> None:
        """Wiring, transformer ratios, ranges, update interval and the numeric items to read."""

    @abstractmethod
    def measure(self) -> PowerReading:
        """The latest completed update interval's values, stamped with the bench clock."""

    def readings_over(self, wait: Callable[[float], Any], duration_s: float,
                      period_s: float | None = None) -> list[PowerReading]:
        """Read every ``period_s`` (default: the update interval) for ``duration_s``, letting time
        pass with ``wait`` (the bench clock's ``wait``): time-stamped readings on the bench clock.
        A plan that must read while something else runs uses a periodic task instead
        (``bench.power_capture.ReadingsLogger``)."""
        period = float(period_s or self.setup.update_interval_s)
        if not period > 0 or not duration_s >= 0:
            raise ValueError(f"period_s must be > 0 and duration_s >= 0, got {period_s!r}, {duration_s!r}")
        readings = []
        for _ in range(int(math.floor(duration_s / period + 1e-9))):
            wait(period)
            readings.append(self.measure())
        return readings

    def safe_state(self) -> bool:
        """A power analyzer has no output: nothing to switch off, nothing is sent."""
        return True


def element_label(reading: ElementReading) -> str:
    return "Σ" if reading.name == "sigma" else f"element {reading.name}"


__all__ = ["AnalyzerSetup", "ElementReading", "PowerAnalyzer", "PowerReading", "WIRINGS", "PHASES",
           "InstrumentError", "element_label"]
