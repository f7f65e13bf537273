"""Capture over the power analyzer's numeric readings: polled on the bench clock, calibrated,
written to the run folder (Parquet, units and metadata) before anybody analyses them.

The analyzer integrates over its own update interval; a read returns the interval it
completed last. Polling once per update interval on the bench clock therefore sees every
interval (on the virtual bench exactly, plant time and bench time being one), and each read is
stamped with the bench-clock time it was made: its values belong to an interval that ended at
most one update interval earlier (`bench.telemetry_check` keeps that lag out of steady parts).

Calibration: a power analyzer's certificate gives corrections per input, voltage and current
of each element. Its record (calibration/records/) lists them as channels numbered
``10 × element + 1`` (the voltage input) and ``10 × element + 2`` (the current input): channel
11 is element 1's voltage, 12 its current, 21 element 2's voltage … ``probe_ratio`` of a
current channel is the CT ratio the certificate covers. Corrections apply to U and I
(gain × reading + offset) and, through the gains, to P, S and Q of that element; λ and Σ are
recomputed from the corrected elements.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bench.clock import BenchClock
from bench.evidence import RunFolder
from calibration.records import ChannelCorrection
from instruments.power_analyzer import WIRINGS, ElementReading, PowerAnalyzer, PowerReading

VOLTAGE_INPUT, CURRENT_INPUT = 1, 2


def input_channel(element: int, which: int) -> int:
    """Calibration channel number of an element's voltage (1) or current (2) input."""
    return 10 * int(element) + which


def analyzer_input_ratios(role: str, options: Mapping[str, Any]) -> list[tuple[int, float, str]]:
    """(calibration channel, ratio, label) for each transformer the bench file declares on a power
    analyzer, so a certificate covering another CT or VT can be caught; [] for other roles."""
    if not role.startswith("power_analyzer"):
        return []
    count = WIRINGS.get(str(options.get("wiring", "3P4W")).upper(), 3)
    out = []
    for key, which, label in (("vt_ratio", VOLTAGE_INPUT, "VT"), ("ct_ratio", CURRENT_INPUT, "CT")):
        value = options.get(key, 1.0)
        ratios = list(value) if isinstance(value, (list, tuple)) else [value] * count
        for element, ratio in enumerate(ratios[:count], 1):
            out.append((input_channel(element, which), float(ratio), f"element {element} {label}"))
    return out


# ------------------------------------------------------------------ corrections (pure)

def corrected_reading(reading: PowerReading, corrections: Mapping[int, ChannelCorrection]) -> PowerReading:
    """The reading with each element's certificate corrections applied and the Σ recomputed."""
    if not corrections:
        return reading
    elements = tuple(_corrected_element(e, corrections) for e in reading.elements)
    return dataclasses.replace(reading, elements=elements, sigma=sigma_of(reading.wiring, elements,
                                                                            reading.sigma))


def _corrected_element(e: ElementReading, corrections: Mapping[int, ChannelCorrection]) -> ElementReading:
    element = int(e.name)
    cu = corrections.get(input_channel(element, VOLTAGE_INPUT), ChannelCorrection(0))
    ci = corrections.get(input_channel(element, CURRENT_INPUT), ChannelCorrection(0))
    gain = cu.gain * ci.gain
    s_va = e.s_va * gain
    p_w = e.p_w * gain
    return dataclasses.replace(e, u_rms_v=cu.gain * e.u_rms_v + cu.offset, i_rms_a=ci.gain * e.i_rms_a + ci.offset,
                               p_w=p_w, s_va=s_va, q_var=e.q_var * gain,
                               lambda_pf=(p_w / s_va) if e.lambda_pf is not None and s_va > 0 else e.lambda_pf)


def sigma_of(wiring: str, elements: Sequence[ElementReading], measured: ElementReading) -> ElementReading:
    """Σ of a wiring unit from its elements, as the instrument computes it (Type 1: S summed for
    3P4W, √3/2 (S1 + S2) for 3P3W); the frequency is kept from the instrument."""
    p_w = sum(e.p_w for e in elements)
    q_var = sum(e.q_var for e in elements)
    s_va = sum(e.s_va for e in elements) * (math.sqrt(3.0) / 2.0 if wiring == "3P3W" else 1.0)
    return ElementReading(name="sigma", u_rms_v=float(np.mean([e.u_rms_v for e in elements])),
                          i_rms_a=float(np.mean([e.i_rms_a for e in elements])), p_w=p_w, s_va=s_va,
                          q_var=q_var, lambda_pf=p_w / s_va if s_va > 0 else None, freq_hz=measured.freq_hz)


# ------------------------------------------------------------------ frames (pure)

_SIGMA_COLUMNS = {"p_w": ("p_w", "W"), "q_var": ("q_var", "var"), "s_va": ("s_va", "VA"), "pf": ("lambda_pf", ""),
                  "u_mean_v": ("u_rms_v", "V"), "i_mean_a": ("i_rms_a", "A")}
_ELEMENT_COLUMNS = {"u{}_v": ("u_rms_v", "V"), "i{}_a": ("i_rms_a", "A"), "p{}_w": ("p_w", "W"),
                    "s{}_va": ("s_va", "VA"), "q{}_var": ("q_var", "var"), "pf{}": ("lambda_pf", ""),
                    "f{}_hz": ("freq_hz", "Hz")}


def readings_frame(readings: Sequence[PowerReading]) -> pd.DataFrame:
    """One row per read, indexed by the bench-clock read time ``t_s``: the Σ (p_w, q_var, s_va,
    pf, u_mean_v, i_mean_a, freq_hz) and every element (u1_v, i1_a, p1_w, …); units in attrs."""
    rows, units = [], {"freq_hz": "Hz"}
    for reading in readings:
        row: dict[str, float] = {}
        for column, (field, unit) in _SIGMA_COLUMNS.items():
            row[column] = _value(getattr(reading.sigma, field))
            units[column] = unit
        row["freq_hz"] = _value(reading.freq_hz)
        for element in reading.elements:
            for pattern, (field, unit) in _ELEMENT_COLUMNS.items():
                column = pattern.format(element.name)
                row[column] = _value(getattr(element, field))
                units[column] = unit
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index([r.t_s for r in readings], name="t_s", dtype=float))
    frame.attrs["units"] = units
    if readings:
        frame.attrs.update(wiring=readings[0].wiring, update_interval_s=readings[0].update_interval_s)
    return frame


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


# ------------------------------------------------------------------ polling on the bench clock

class ReadingsLogger:
    """Reads the analyzer as a periodic task of the bench clock (so it reads while a plan does
    other things: a scope capture, a transient), applying the calibration corrections.

    Used as a context manager; a read that fails (over range, no data, a lost link) raises out
    of the bench clock's ``wait`` into the plan, which then fails naming the instrument.
    """

    def __init__(self, analyzer: PowerAnalyzer, clock: BenchClock, *, period_s: float | None = None,
                 corrections: Mapping[int, ChannelCorrection] | None = None, name: str = "power analyzer"):
        self.analyzer = analyzer
        self.clock = clock
        self.period_s = float(period_s or analyzer.setup.update_interval_s)
        self.corrections = dict(corrections or {})
        self.name = name
        self.readings: list[PowerReading] = []
        self._task = None

    def __enter__(self) -> "ReadingsLogger":
        self._task = self.clock.every(self.period_s, lambda now_s: self.read(), name=self.name)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def read(self) -> PowerReading:
        reading = corrected_reading(self.analyzer.measure(), self.corrections)
        self.readings.append(reading)
        return reading

    def frame(self) -> pd.DataFrame:
        return readings_frame(self.readings)


class PowerReadings:
    """What plans get from the `power_readings` fixture: the analyzer with its clock, run folder,
    corrections and identity, ready to log or capture."""

    def __init__(self, analyzer: PowerAnalyzer, clock: BenchClock, run: RunFolder, *,
                 identity: Mapping[str, Any] | None = None,
                 corrections: Mapping[int, ChannelCorrection] | None = None,
                 valid_for_qualification: bool = True):
        self.analyzer = analyzer
        self.clock = clock
        self.run = run
        self.identity = dict(identity or {})
        self.corrections = dict(corrections or {})
        self.valid_for_qualification = valid_for_qualification

    @property
    def description(self) -> str:
        """Which instrument this is, for reports: "power analyzer YOKOGAWA WT5000 s/n …"."""
        who = " ".join(str(self.identity.get(k, "")) for k in ("manufacturer", "model")).strip()
        serial = self.identity.get("serial")
        return f"power analyzer {who}" + (f" s/n {serial}" if serial else "")

    @property
    def update_interval_s(self) -> float:
        return self.analyzer.setup.update_interval_s

    def logger(self, period_s: float | None = None) -> ReadingsLogger:
        return ReadingsLogger(self.analyzer, self.clock, period_s=period_s, corrections=self.corrections)

    def save(self, test_name: str, capture_name: str, readings: Sequence[PowerReading],
             metadata: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """The readings as a frame, on disk before it is returned."""
        frame = readings_frame(readings)
        frame.attrs.update({
            "instrument": self.identity,
            "time_reference": "t_s = bench-clock time of each read; its values are the analyzer's means over "
                              "an update interval that ended at most update_interval_s before",
            "calibration": {str(k): vars(v) for k, v in sorted(self.corrections.items())},
            "valid_for_qualification": self.valid_for_qualification,
            **dict(metadata or {}),
        })
        self.run.save_capture(test_name, capture_name, frame)
        return frame

    def capture(self, test_name: str, capture_name: str, duration_s: float, *, period_s: float | None = None,
                metadata: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Poll for ``duration_s`` of bench time; the frame is written before it is returned."""
        with self.logger(period_s) as logger:
            self.clock.wait(duration_s)
        return self.save(test_name, capture_name, logger.readings, metadata)


__all__ = ["PowerReadings", "ReadingsLogger", "analyzer_input_ratios", "corrected_reading", "input_channel",
           "readings_frame", "sigma_of"]
