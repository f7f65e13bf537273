"""Telemetry verification (T1): the PCS's own readings against the bench's reference.

Pure functions, arrays in and numbers out. They know nothing of instruments, profiles or
verdicts; the plan turns their results into measurements.

Two clocks meet here. The bench clock stamps every telemetry read (``timestamp_s``) and,
through the trigger, every reference sample; the PCS clock stamps its telemetry values
(``device_time_s``) and its event log. The PCS clock is related to the bench clock by the
offset seen on reads: a value cannot be read before it exists, so the smallest apparent age
(read time minus value time) over many reads bounds the offset most tightly. A PCS that
serves stale values with their (correct) old time stamps therefore shows up as a clock offset,
and its telemetry and events, placed on the bench clock through that offset, are late by the
staleness: that is the time misalignment a SCADA system sees.

Reference values are stamped at the *end* of their averaging window, the convention of the
PCS's telemetry time stamp (the time of the values, i.e. of the window just completed) and of
a meter's aggregation intervals; a step then shows at the same time in both series.

Two references. A power analyzer (``reference_from_readings``) is the meter T1 asks for: it
judges the steady-state error of reading of every quantity it measures. Its reads are stamped
with the bench-clock time of the read, and each read's values come from an update interval
that ended up to one interval earlier, so only reads at least two intervals into a steady
part are sure to describe it (``settled_parts``). The oscilloscope's waveforms
(``reference_from_waveforms``) resolve a step to a fraction of a cycle: they time the steps,
and stand in for quantities the analyzer does not measure (per-phase voltages to neutral on a
3P3W analyzer) or on a bench without one (``prefer_reference``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bench.analysis import first_time_reaching, frequency_hz, per_cycle_power, per_cycle_rms
from instruments.power_analyzer import PowerReading

# Telemetry quantities compared with the reference, named as the columns of the telemetry
# poller's frame (dut/telemetry.py), so both sides index the same way.
PHASE_VOLTAGE_COLUMNS = ("v_a_ln_v", "v_b_ln_v", "v_c_ln_v")
PHASE_CURRENT_COLUMNS = ("i_a_a", "i_b_a", "i_c_a")
COMPARED_COLUMNS = ("p_w", "q_var", *PHASE_VOLTAGE_COLUMNS, *PHASE_CURRENT_COLUMNS, "freq_hz")

# Decade ladder of time-stamp resolutions a log may keep, finest first.
RESOLUTION_LADDER_S = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass(frozen=True)
class ReferenceSeries:
    """The bench's own measurement on the bench clock: one value per averaging window,
    ``t_s`` = the end of each window; ``values`` keyed like COMPARED_COLUMNS."""

    t_s: NDArray[np.float64]
    values: dict[str, NDArray[np.float64]]
    source: str                 # which instrument, and how the values were derived
    window_s: float


def reference_from_waveforms(t_first_s: float, v_abc_v: ArrayLike, i_abc_a: ArrayLike, *,
                             sample_rate_hz: float, f_nominal_hz: float, window_cycles: float,
                             step_fraction: float, source: str) -> ReferenceSeries:
    """P, Q, per-phase V and I RMS and f from sampled phase voltages and currents.

    Sliding windows of ``window_cycles`` nominal cycles advancing by ``step_fraction`` of a
    window, so a step's timing is resolved finer than the window; each value is stamped at the
    end of its window (see the module docstring). ``t_first_s`` is the bench time of the first
    sample.
    """
    v = np.asarray(v_abc_v, dtype=np.float64)
    i = np.asarray(i_abc_a, dtype=np.float64)
    window_s = window_cycles / f_nominal_hz
    common = dict(sample_rate_hz=sample_rate_hz, f_nominal_hz=f_nominal_hz,
                  window_cycles=window_cycles, step_fraction=step_fraction, t0_s=t_first_s)
    power = per_cycle_power(*v, *i, **common)
    v_rms = per_cycle_rms(v, **common)
    i_rms = per_cycle_rms(i, **common)
    freq = frequency_hz(*v, **common)
    # frequency estimates sit between successive window centres: put them on the same times
    f_at_centres = np.interp(power.t_s, freq.t_s, freq.f_hz)
    values = {"p_w": power.p_w, "q_var": power.q_var, "freq_hz": f_at_centres}
    values.update(zip(PHASE_VOLTAGE_COLUMNS, v_rms.rms))
    values.update(zip(PHASE_CURRENT_COLUMNS, i_rms.rms))
    return ReferenceSeries(t_s=power.t_s + 0.5 * window_s, values=values, source=source, window_s=window_s)


def reference_from_readings(readings: Sequence[PowerReading], *, source: str) -> ReferenceSeries:
    """The analyzer's reads as a reference series: Σ P and Q, the first element's frequency,
    and the per-phase voltages to neutral and currents its wiring measures (a column it does
    not measure is absent). ``t_s`` is each read's bench-clock time; ``window_s`` the update
    interval (the values' window ended within one interval before ``t_s``)."""
    if not readings:
        raise ValueError("no power-analyzer readings: nothing to judge against")
    values: dict[str, NDArray[np.float64]] = {
        "p_w": np.array([r.sigma.p_w for r in readings], dtype=np.float64),
        "q_var": np.array([r.sigma.q_var for r in readings], dtype=np.float64),
        "freq_hz": np.array([np.nan if r.freq_hz is None else r.freq_hz for r in readings], dtype=np.float64),
    }
    for columns, per_phase in ((PHASE_VOLTAGE_COLUMNS, PowerReading.phase_voltages_ln_v),
                               (PHASE_CURRENT_COLUMNS, PowerReading.phase_currents_a)):
        measured = [per_phase(r) for r in readings]
        for phase, column in zip("abc", columns):
            if all(phase in m for m in measured):
                values[column] = np.array([m[phase] for m in measured], dtype=np.float64)
    return ReferenceSeries(t_s=np.array([r.t_s for r in readings], dtype=np.float64), values=values,
                           source=source, window_s=float(readings[0].update_interval_s))


def settled_parts(parts: Mapping[str, tuple[float, float]], lag_s: float) -> dict[str, tuple[float, float]]:
    """The parts with their start moved ``lag_s`` later (a read-stamped reference whose values
    may describe up to ``lag_s`` before the read: only reads that late describe the part)."""
    return {name: (start_s + lag_s, end_s) for name, (start_s, end_s) in parts.items()}


def prefer_reference(primary: Sequence[PartMeans], fallback: Sequence[PartMeans]) -> list[PartMeans]:
    """Per part and column, the primary reference's means where it measured the column, else the
    fallback's (both lists from ``part_means`` over the same parts, in the same order)."""
    if len(primary) != len(fallback):
        raise ValueError(f"{len(primary)} primary and {len(fallback)} fallback means: not the same parts")
    out = []
    for first, second in zip(primary, fallback):
        if (first.part, first.column) != (second.part, second.column):
            raise ValueError(f"means out of step: {first.part}/{first.column} vs {second.part}/{second.column}")
        out.append(first if first.reference is not None else second)
    return out


# ------------------------------------------------------------------ clocks and time stamps

def clock_offset_s(read_t_s: ArrayLike, device_t_s: ArrayLike) -> float | None:
    """Bench time minus PCS time, from reads (bench clock) of values stamped by the PCS.

    The smallest read-minus-stamp over the reads: the freshest value seen bounds the offset
    most tightly (reads that fall at every phase of the PCS's update make it approach the true
    offset). None when no read carries a PCS time stamp.
    """
    read = np.asarray(read_t_s, dtype=np.float64)
    device = np.asarray(device_t_s, dtype=np.float64)
    apparent = read - device
    apparent = apparent[np.isfinite(apparent)]
    return float(apparent.min()) if apparent.size else None


def distinct_device_samples(device_t_s: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The telemetry values once per PCS time stamp, in time order.

    Polling faster than the PCS updates reads the same values twice; counting them twice
    would weight them twice. Reads without a time stamp or a value are left out.
    """
    t = np.asarray(device_t_s, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    unique_t, first = np.unique(t, return_index=True)
    return unique_t, v[first]


def evident_resolution_s(stamps_s: Sequence[float], ladder_s: Sequence[float] = RESOLUTION_LADDER_S,
                         tolerance_s: float = 1e-7) -> float | None:
    """The coarsest resolution of the ladder of which every time stamp is a whole multiple.

    What the stamps themselves show: a log keeping 1 ms puts a non-zero millisecond digit in
    most stamps; a 10 ms log never does. Stamps of events at arbitrary instants are needed
    (a single stamp at a round time proves little), so pass all the stamps available.
    None without stamps; the finest rung when even that does not divide them.
    """
    stamps = np.asarray(list(stamps_s), dtype=np.float64)
    if stamps.size == 0:
        return None
    for quantum_s in sorted(ladder_s, reverse=True):
        remainder = np.abs(stamps / quantum_s - np.round(stamps / quantum_s)) * quantum_s
        if np.all(remainder <= tolerance_s):
            return float(quantum_s)
    return float(min(ladder_s))


# ------------------------------------------------------------------ values

def segment_mean(t_s: ArrayLike, y: ArrayLike, start_s: float, end_s: float) -> float | None:
    """Mean of the finite values with start_s <= t < end_s; None if there is none."""
    t = np.asarray(t_s, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    inside = (t >= start_s) & (t < end_s) & np.isfinite(v)
    return float(v[inside].mean()) if inside.any() else None


@dataclass(frozen=True)
class PartMeans:
    """One quantity over one steady part of a record, as the reference and the PCS saw it."""

    part: str
    column: str
    reference: float | None
    telemetry: float | None


def part_means(reference: ReferenceSeries, telemetry_t_s: ArrayLike, telemetry: Mapping[str, ArrayLike],
               parts: Mapping[str, tuple[float, float]]) -> list[PartMeans]:
    """Means of every compared column over every part (bench time [start, end)), reference
    windows by their end time and telemetry by its read time; parts in the order given. A
    column the reference does not measure has no reference mean (None)."""
    out = []
    for part, (start_s, end_s) in parts.items():
        for column in COMPARED_COLUMNS:
            reference_mean = (segment_mean(reference.t_s, reference.values[column], start_s, end_s)
                              if column in reference.values else None)
            out.append(PartMeans(part, column, reference_mean,
                                 segment_mean(telemetry_t_s, telemetry[column], start_s, end_s)))
    return out


def largest_change(means: Sequence[PartMeans], column: str) -> tuple[PartMeans, PartMeans] | None:
    """The two consecutive parts between which the reference of ``column`` changed most."""
    series = [m for m in means if m.column == column and m.reference is not None]
    pairs = list(zip(series, series[1:]))
    if not pairs:
        return None
    return max(pairs, key=lambda pair: abs(pair[1].reference - pair[0].reference))


def error_pct_of_reading(measured: float | None, reference: float) -> float | None:
    """(measured − reference) in % of the reference reading; None if not measured."""
    if measured is None:
        return None
    if reference == 0:
        raise ValueError("an error of reading needs a non-zero reference reading")
    return 100.0 * (measured - reference) / abs(reference)


def error_pct_of_base(measured: float | None, reference: float, base: float) -> float | None:
    """(measured − reference) in % of a fixed base (a rating or a nominal value)."""
    if measured is None:
        return None
    if base <= 0:
        raise ValueError(f"base must be positive, got {base}")
    return 100.0 * (measured - reference) / base


def tracking_ratio(reference_before: float, reference_after: float,
                   telemetry_before: float | None, telemetry_after: float | None) -> float | None:
    """How much of a change the reference saw the telemetry shows: Δtelemetry / Δreference.

    About 1 for a channel that follows, about 0 for a flatlined one. None where the
    telemetry has no value or the reference did not change.
    """
    if telemetry_before is None or telemetry_after is None:
        return None
    change = reference_after - reference_before
    if change == 0:
        return None
    return (telemetry_after - telemetry_before) / change


def missing_fields(snapshots: Sequence[Any], fields: Sequence[str]) -> dict[str, int]:
    """For each field: in how many snapshots it is None (a per-phase tuple: any phase None)."""
    counts: dict[str, int] = {}
    for name in fields:
        missing = 0
        for snapshot in snapshots:
            if not hasattr(snapshot, name):
                raise ValueError(f"telemetry has no field {name!r}")
            value = getattr(snapshot, name)
            if value is None or (isinstance(value, tuple) and any(x is None for x in value)):
                missing += 1
        counts[name] = missing
    return counts


# ------------------------------------------------------------------ timing of a change

def midpoint_crossing_s(t_s: ArrayLike, y: ArrayLike, level_before: float, level_after: float,
                        after_s: float) -> float | None:
    """When a series passes halfway from one settled level to the next (interpolated between
    samples), at or after ``after_s``; None if it never does. Each series is judged against
    its own levels, so a gain error does not move the time."""
    t = np.asarray(t_s, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    direction = np.sign(level_after - level_before)
    midpoint = 0.5 * (level_before + level_after)
    start = np.flatnonzero(t >= after_s)
    # a series that shows no change, or is already past halfway where the search starts,
    # has no crossing to report (first_time_reaching would answer with the start itself)
    if direction == 0 or start.size == 0 or direction * (v[start[0]] - midpoint) >= 0:
        return None
    return first_time_reaching(t, v, midpoint, after_s)


def drop_time_s(t_s: ArrayLike, y: ArrayLike, fraction: float, level_until_s: float) -> float | None:
    """First time after ``level_until_s`` at which y falls to ``fraction`` of its level
    (the median of y up to ``level_until_s``); None if it never does or has no level."""
    t = np.asarray(t_s, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    before = t <= level_until_s
    if not before.any():
        return None
    level = float(np.median(v[before]))
    if not math.isfinite(level) or level <= 0:
        return None
    return first_time_reaching(t, v, fraction * level, level_until_s)


@dataclass(frozen=True)
class StepTimes:
    """When the reference and the telemetry show one step, both on the bench clock."""

    reference_s: float | None
    telemetry_s: float | None

    @property
    def misalignment_ms(self) -> float | None:
        """Telemetry minus reference: > 0 means the telemetry shows the step late."""
        if self.reference_s is None or self.telemetry_s is None:
            return None
        return (self.telemetry_s - self.reference_s) * 1e3


def step_times(reference_t_s: ArrayLike, reference_y: ArrayLike, reference_levels: tuple[float, float],
               device_t_s: ArrayLike, telemetry_y: ArrayLike, telemetry_levels: tuple[float | None, float | None],
               offset_s: float | None, after_s: float) -> StepTimes:
    """The halfway crossing of a step in the reference and in the telemetry (once per PCS time
    stamp, placed on the bench clock with ``offset_s``), each between its own settled levels.
    The telemetry time is None where it has no time stamps, no levels or no crossing."""
    reference_s = midpoint_crossing_s(reference_t_s, reference_y, *reference_levels, after_s)
    if offset_s is None or None in telemetry_levels:
        return StepTimes(reference_s, None)
    pcs_t_s, pcs_y = distinct_device_samples(device_t_s, telemetry_y)
    return StepTimes(reference_s, midpoint_crossing_s(pcs_t_s + offset_s, pcs_y, *telemetry_levels, after_s))


# ------------------------------------------------------------------ a PCS that refreshes slower than a cycle
# A real PCS refreshes its telemetry every 20-100 ms and smooths it; between refreshes a read
# returns the same values. Halfway crossings of such sparse samples move by up to half the
# refresh interval with where the step falls between two refreshes: that is quantisation, not
# misalignment of the time stamps. The PCS declares its processing (one-window means, a
# first-order filter) and stamps its values; the reference, processed the same way and read at
# the same stamps, shows what correctly stamped values are. The shift that makes the two agree
# is the time misalignment of the stamps.

def as_declared(reference_t_s: ArrayLike, reference_y: ArrayLike, at_s: ArrayLike, *, window_s: float,
                filter_s: float) -> NDArray[np.float64]:
    """What a PCS that declares one-window means (the reference's own window; a sliding
    reference stamped at window ends gives a mean ending anywhere) through a first-order filter
    of ``filter_s`` run once per window reports at ``at_s`` (bench clock): the filter's
    recursion y_n = y_(n-1) + a (x_n - y_(n-1)), a = 1 - exp(-window_s / filter_s), written out
    as its weights over the windows that end a whole number of windows before each instant.
    ``filter_s`` 0: the plain window means. Beyond the reference's ends its end values hold."""
    t = np.asarray(reference_t_s, dtype=np.float64)
    y = np.asarray(reference_y, dtype=np.float64)
    at = np.asarray(at_s, dtype=np.float64)
    if filter_s <= 0.0:
        return np.interp(at, t, y)
    a = 1.0 - math.exp(-window_s / filter_s)
    n_taps = max(int(math.ceil(math.log(1e-6) / math.log1p(-a))), 1) if a < 1.0 else 1
    weights = a * (1.0 - a) ** np.arange(n_taps)
    weights[-1] += (1.0 - a) ** n_taps          # the older history, at the oldest window's value
    windows = at[..., None] - window_s * np.arange(n_taps)
    return np.interp(windows, t, y) @ weights


def stamp_misalignment_s(reference_t_s: ArrayLike, reference_y: ArrayLike, stamps_s: ArrayLike,
                         telemetry_y: ArrayLike, *, window_s: float, filter_s: float, after_s: float,
                         max_shift_s: float, resolution_s: float = 2.5e-4) -> float | None:
    """How late (> 0) the PCS's time stamps put its values, judged on a change.

    ``stamps_s``: the telemetry's distinct time stamps placed on the bench clock, ``telemetry_y``
    its values at them. The reference, processed as the PCS declares (``as_declared``) and read
    at each stamp minus a shift, is fitted to the telemetry from ``after_s`` on with a gain and an
    offset of its own (a scale error, or levels that stale reads blur, do not move the time);
    the shift within +-``max_shift_s`` that leaves the least squared residual is the
    misalignment. Where a range of shifts fits equally well (no stamp fell inside the change),
    its middle. None when no stamp lies after ``after_s`` or the telemetry does not change."""
    stamps = np.asarray(stamps_s, dtype=np.float64)
    values = np.asarray(telemetry_y, dtype=np.float64)
    keep = np.isfinite(stamps) & np.isfinite(values) & (stamps >= after_s)
    observed = values[keep]
    if observed.size < 3 or np.ptp(observed) <= 1e-9 * max(float(np.max(np.abs(observed))), 1.0):
        return None
    shifts = np.arange(-max_shift_s, max_shift_s + 0.5 * resolution_s, resolution_s)
    model = as_declared(reference_t_s, reference_y, stamps[keep][None, :] - shifts[:, None],
                        window_s=window_s, filter_s=filter_s)
    # per shift, the least-squares line observed = offset + gain * model
    m_dev = model - model.mean(axis=1, keepdims=True)
    o_dev = observed - observed.mean()
    m_var = np.sum(m_dev ** 2, axis=1)
    fit = np.sum(m_dev * o_dev[None, :], axis=1)
    explained = np.divide(fit ** 2, m_var, out=np.zeros_like(fit), where=m_var > 0.0)
    residual = np.maximum(np.sum(o_dev ** 2) - explained, 0.0)
    residual[fit <= 0.0] = np.inf        # a change the other way round is no fit
    best = int(np.argmin(residual))
    if not np.isfinite(residual[best]):
        return None
    tie = residual <= residual[best] + 1e-9 * np.sum(o_dev ** 2)
    lo = hi = best
    while lo > 0 and tie[lo - 1]:
        lo -= 1
    while hi < len(shifts) - 1 and tie[hi + 1]:
        hi += 1
    return float(0.5 * (shifts[lo] + shifts[hi]))


def aligned_step_times(reference_t_s: ArrayLike, reference_y: ArrayLike, reference_levels: tuple[float, float],
                       device_t_s: ArrayLike, telemetry_y: ArrayLike,
                       telemetry_levels: tuple[float | None, float | None], offset_s: float | None, after_s: float,
                       *, window_s: float, filter_s: float, max_shift_s: float) -> StepTimes:
    """The reference's halfway crossing of a step (between its levels), and where the PCS's
    stamps put the same step: the crossing shifted by ``stamp_misalignment_s`` (its telemetry
    once per stamp, placed on the bench clock with ``offset_s``). The telemetry time is None
    where it has no time stamps, no levels or no change."""
    reference_s = midpoint_crossing_s(reference_t_s, reference_y, *reference_levels, after_s)
    if reference_s is None or offset_s is None or None in telemetry_levels:
        return StepTimes(reference_s, None)
    pcs_t_s, pcs_y = distinct_device_samples(device_t_s, telemetry_y)
    shift_s = stamp_misalignment_s(reference_t_s, reference_y, pcs_t_s + offset_s, pcs_y, window_s=window_s,
                                   filter_s=filter_s, after_s=after_s, max_shift_s=max_shift_s)
    return StepTimes(reference_s, None if shift_s is None else reference_s + shift_s)
