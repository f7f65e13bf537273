"""Disturbance-record figures (plan DR): what a PCS's COMTRADE record holds, and when.

Pure functions, arrays and parsed records in, numbers out; the plan turns them into judged
measurements. Channels are recognised by what the cfg says they measure (unit and phase), not
by the vendor's channel names, so "VA", "Va", "PCC_V_L1" with unit V and phase A are all the
phase-A voltage. Status (digital) channels have only a name; they are matched by name with
case and punctuation ignored.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from bench.comtrade_reader import AnalogChannelInfo, ComtradeRecord

_VOLT_UNITS = {"v": 1.0, "kv": 1e3}
_AMP_UNITS = {"a": 1.0, "ka": 1e3}
_WATT_UNITS = {"w", "kw", "mw"}
_VAR_UNITS = {"var", "kvar", "mvar"}
_HZ_UNITS = {"hz"}
_PHASES = {"a": "A", "b": "B", "c": "C", "1": "A", "2": "B", "3": "C", "l1": "A", "l2": "B", "l3": "C",
           "r": "A", "s": "B", "t": "C"}


def _normal(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def channel_quantity(channel: AnalogChannelInfo) -> str:
    """What an analog channel measures: VA/VB/VC, IA/IB/IC, P, Q, F, or its own id when the
    unit does not say (an unknown quantity is kept under its name, never guessed)."""
    unit = _normal(channel.unit)
    phase = _PHASES.get(_normal(channel.phase))
    if unit in _VOLT_UNITS and phase:
        return f"V{phase}"
    if unit in _AMP_UNITS and phase:
        return f"I{phase}"
    if unit in _WATT_UNITS:
        return "P"
    if unit in _VAR_UNITS:
        return "Q"
    if unit in _HZ_UNITS:
        return "F"
    return channel.name


def channels_by_quantity(record: ComtradeRecord) -> dict[str, np.ndarray]:
    """Analog values keyed by quantity (see channel_quantity), in base units (V, A)."""
    out: dict[str, np.ndarray] = {}
    for channel in record.config.analogs:
        quantity = channel_quantity(channel)
        unit = _normal(channel.unit)
        scale = _VOLT_UNITS.get(unit) or _AMP_UNITS.get(unit) or 1.0
        out.setdefault(quantity, record.analog[channel.name] * scale)
    return out


def missing_channels(record: ComtradeRecord, analog: list[str], status: list[str]) -> list[str]:
    """The required channels the record does not hold (analog by quantity, status by name)."""
    held_analog = set(channels_by_quantity(record))
    held_status = {_normal(name) for name in record.digital}
    return ([name for name in analog if name not in held_analog] +
            [name for name in status if _normal(name) not in held_status])


@dataclass(frozen=True)
class RecordFigures:
    samples_per_cycle: float | None   # None: several sample rates or none (time-stamped)
    pre_trigger_cycles: float
    duration_cycles: float


def record_figures(record: ComtradeRecord, f_nominal_hz: float) -> RecordFigures:
    """Sample rate, pre-trigger and length of a record, in cycles of the nominal frequency."""
    rate_hz = record.sample_rate_hz
    return RecordFigures(samples_per_cycle=None if rate_hz is None else rate_hz / f_nominal_hz,
                         pre_trigger_cycles=record.config.pre_trigger_s * f_nominal_hz,
                         duration_cycles=record.duration_s * f_nominal_hz)


def space_vector_magnitude(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """|x_αβ| sample by sample: constant for a balanced set, so a balanced step in amplitude
    shows at the sample it happens, with no averaging window to delay it."""
    alpha = (2.0 * a - b - c) / 3.0
    beta = (b - c) / np.sqrt(3.0)
    return np.hypot(alpha, beta)


def step_onset_s(t_s: np.ndarray, magnitude: np.ndarray, *, steady_until_s: float,
                 steady_from_s: float | None = None) -> float | None:
    """Time at which `magnitude` first crosses halfway from its steady level (the median over
    [steady_from_s, steady_until_s)) to its largest departure after steady_until_s; linear
    interpolation between samples. None without a steady stretch or a departure after it.

    The same detector runs on the PCS's record and on the bench's capture, so whatever delay
    it has is the same on both sides and cancels in a comparison."""
    t = np.asarray(t_s, dtype=float)
    y = np.asarray(magnitude, dtype=float)
    start_s = t[0] if steady_from_s is None else steady_from_s
    steady = np.isfinite(y) & (t >= start_s) & (t < steady_until_s)
    after = np.isfinite(y) & (t >= steady_until_s)
    if steady.sum() < 2 or not after.any():
        return None
    level = float(np.median(y[steady]))
    low, high = np.percentile(y[after], [1.0, 99.0])
    departure = low if abs(low - level) > abs(high - level) else high
    if departure == level:
        return None
    halfway = level + 0.5 * (departure - level)
    beyond = np.flatnonzero(after & ((y - halfway) * np.sign(departure - level) >= 0.0))
    if beyond.size == 0:
        return None
    k = int(beyond[0])
    if k == 0 or not np.isfinite(y[k - 1]) or y[k] == y[k - 1]:
        return float(t[k])
    return float(t[k - 1] + (halfway - y[k - 1]) / (y[k] - y[k - 1]) * (t[k] - t[k - 1]))


def record_onset_s(record: ComtradeRecord, quantities: tuple[str, str, str], f_nominal_hz: float) -> float | None:
    """Onset of a balanced step in the three named quantities, s from the record's first
    sample. The steady level is taken before the record's trigger less one cycle (the
    recorder's detection may lag the onset by up to a cycle); None when the record holds
    less than that before its trigger."""
    channels = channels_by_quantity(record)
    if not all(q in channels for q in quantities):
        return None
    cycle_s = 1.0 / f_nominal_hz
    steady_until_s = record.config.pre_trigger_s - cycle_s
    if steady_until_s <= 0.0:
        return None
    magnitude = space_vector_magnitude(*(channels[q] for q in quantities))
    return step_onset_s(record.time_s, magnitude, steady_until_s=steady_until_s)


def elapsed_time_mismatch_s(record_onset: dt.datetime, bench_onset_s: float,
                            reference_record_onset: dt.datetime, reference_bench_onset_s: float) -> float:
    """Time between a reference event and this event as the PCS's records tell it, minus the
    same interval as the bench's own captures tell it. Zero when the record time stamps are
    aligned with the bench clock after removing one constant offset (estimated at the
    reference event), whatever that offset is."""
    record_elapsed_s = (record_onset - reference_record_onset).total_seconds()
    return record_elapsed_s - (bench_onset_s - reference_bench_onset_s)


def record_time(record: ComtradeRecord, t_from_start_s: float) -> dt.datetime:
    """The record's own clock at a time measured from its first sample."""
    return record.config.start_time + dt.timedelta(seconds=t_from_start_s)
