"""T1 — Telemetry verification and data integrity.

Procedure, for each operating point of the profile (10/50/75/100 % of rated power):
  setup    the PCS exports the point's power at unity power factor and settles;
  stimulus the grid simulator steps the frequency at its trigger (which starts the scope);
           later the PCS's P and Q setpoints step, so P, Q, V, I and f all move in the record;
  capture  the oscilloscope records PCC voltages and PCS currents over the whole window while
           the PCS's telemetry is polled at the profile's rate (bench-clock read times, PCS
           time stamps);
  judge    in each steady part: P and Q error of reading, V, I and f errors against the
           reference; every channel the profile lists present in every read; every varied
           channel follows the change the reference saw (no flatline); the P and Q steps where
           the PCS's time stamps (placed on the bench clock) put them: the reference, processed
           as the PCS declares its telemetry (window, filter) and read at those stamps, must
           agree with the telemetry without a shift (a PCS refreshing every 100 ms shows a step
           up to 100 ms after it happened, correctly stamped; that is not misalignment).
Then once: the PCS is stopped while the scope records; the STATE event of its log, placed on
the bench clock, must match the moment its current collapses, and the log's time stamps must
show 1 ms resolution.

The reference is the bench's own measurement. Where the bench has a power analyzer (role
power_analyzer), it is polled on the bench clock at its update interval throughout the record
and judges the steady-state error of every quantity it measures (P, Q, f, and the per-phase V
and I its wiring gives; a 3P3W analyzer has no voltages to neutral, and the scope stands in
for those). The oscilloscope's calibrated waveforms (bench.analysis) always time the P and Q
steps: an analyzer's update interval is far coarser than the 5 ms alignment budget. On a bench
without an analyzer the scope is the reference for everything; it is not a class 0.5S meter,
and the run records which instrument was the reference for each quantity.
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bench.capture import CaptureSettings  # noqa: E402
from bench.current_limit import current_space_vector_pu  # noqa: E402
from bench.plugin import PROFILE_KEY  # noqa: E402
from bench.procedures import (PHASE_CURRENTS, PHASE_VOLTAGES, RETURN_SEGMENT_S, capture_transient,  # noqa: E402
                              energise_bench, run_pcs_at)
from bench.telemetry_check import (PHASE_CURRENT_COLUMNS, PHASE_VOLTAGE_COLUMNS, PartMeans,  # noqa: E402
                                   ReferenceSeries, StepTimes, aligned_step_times, clock_offset_s,
                                   distinct_device_samples, drop_time_s, error_pct_of_base, error_pct_of_reading,
                                   evident_resolution_s, largest_change, missing_fields, part_means,
                                   prefer_reference, reference_from_readings, reference_from_waveforms,
                                   settled_parts, tracking_ratio)
from dut.errors import NotSupportedByPcs  # noqa: E402
from dut.telemetry import TelemetryPoller  # noqa: E402
from instruments.grid_simulator import GridSegment  # noqa: E402

pytestmark = [pytest.mark.test_id("T1"), pytest.mark.profile_sections("telemetry")]

SCOPE_REFERENCE = "oscilloscope, not a class 0.5S meter"
SCOPE_REFERENCE_METHOD = ("calibrated PCC voltages and PCS currents from the oscilloscope; P, Q, V, I and f "
                          "through bench.analysis, averaged as the PCS declares it averages")
ANALYZER_REFERENCE_METHOD = "means over its update intervals, read on the bench clock"
PART_BEFORE_F_STEP, PART_AFTER_F_STEP, PART_AFTER_PQ_STEP = (
    "before the frequency step", "after the frequency step", "after the P/Q step")


@dataclass(frozen=True)
class OperatingPoint:
    p_pu: float
    p_step_pu: float      # active power step within the record, toward mid-range
    q_step_pu: float      # reactive power step within the record (from zero)

    @property
    def label(self) -> str:
        return f"{self.p_pu * 100:.0f}pct-rated"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "point" in metafunc.fixturenames:
        profile = metafunc.config.stash[PROFILE_KEY]
        points = [OperatingPoint(float(p["p_pu"]), float(p["p_step_pu"]), float(p["q_step_pu"]))
                  for p in profile.setting("telemetry.test_points")]
        metafunc.parametrize("point", points, ids=[p.label for p in points])


@pytest.fixture(scope="module")
def reference_meter(power_readings) -> str:
    """Which instrument judges the telemetry's steady-state accuracy: the power analyzer where
    the bench has one (the meter T1 asks for), else the oscilloscope."""
    return SCOPE_REFERENCE if power_readings is None else power_readings.description


@pytest.fixture(scope="module")
def energised_bench(reference_meter, bench_config, dc_source, grid_simulator, clock):
    """DC source and grid simulator at nominal (once the reference is settled: nothing is
    energised for a plan that cannot be judged)."""
    energise_bench(bench_config, dc_source, grid_simulator, clock)


@pytest.fixture
def at_operating_point(point: OperatingPoint, energised_bench, bench_config, profile, pcs, clock):
    """The PCS settled at the point's active power, no reactive power; its Q step undone after."""
    s_rated_va = bench_config.pcs.s_rated_va
    pcs.set_reactive_power_var(0.0)
    run_pcs_at(pcs, clock, point.p_pu * s_rated_va, s_rated_va)
    clock.wait(profile.setting("telemetry.procedure")["settle_s"])
    yield point
    # the next plan expects unity power factor (run_pcs_at sets Q only when it restarts)
    pcs.set_reactive_power_var(0.0)


def test_T1_telemetry_at_operating_point(point: OperatingPoint, at_operating_point, reference_meter, bench_config,
                                         profile, grid_simulator, capture, pcs, clock, measurements,
                                         run_folder, power_readings, request):
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("telemetry.procedure")
    s_rated_va = pcs_cfg.s_rated_va
    nominal_v = (pcs_cfg.v_ln_nom_v,) * 3
    step_after_trigger_s = procedure["step_after_trigger_s"]
    after_trigger_s = step_after_trigger_s + procedure["post_step_s"]

    # --- stimulus and capture -----------------------------------------------------
    # The frequency step starts with the trigger and lasts the record; the list then ends at
    # nominal, where the grid simulator stays.
    frequency_step = [GridSegment(after_trigger_s, nominal_v, pcs_cfg.f_nom_hz + procedure["frequency_step_hz"]),
                      GridSegment(RETURN_SEGMENT_S, nominal_v, pcs_cfg.f_nom_hz)]
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"],
                               duration_s=procedure["pretrigger_s"] + after_trigger_s,
                               pretrigger_s=procedure["pretrigger_s"])
    p_after_w = (point.p_pu + point.p_step_pu) * s_rated_va
    q_after_var = point.q_step_pu * s_rated_va
    step_sent = {}

    def step_setpoints() -> None:
        step_sent["t_s"] = clock.now_s()
        pcs.set_reactive_power_var(q_after_var)
        pcs.set_active_power_w(p_after_w)

    # the analyzer (if any) is read at its update interval through the whole record
    analyzer_log = power_readings.logger() if power_readings is not None else None
    with TelemetryPoller(pcs, clock, procedure["poll_period_s"], name="T1 telemetry") as poller, \
            (analyzer_log or nullcontext()):
        frame = capture_transient(
            capture, clock, grid_simulator, frequency_step, settings, test_name=request.node.name,
            capture_name="reference_waveforms", metadata={"operating_point": point.label},
            during=(step_after_trigger_s, step_setpoints))
    telemetry = poller.frame()
    telemetry.attrs.update({"operating_point": point.label, "reference": reference_meter})
    run_folder.save_capture(request.node.name, "pcs_telemetry", telemetry)
    if analyzer_log is not None:
        power_readings.save(request.node.name, "analyzer_readings", analyzer_log.readings,
                            metadata={"operating_point": point.label})
    snapshots = [snapshot for _, snapshot, _ in poller.samples]

    # --- analysis -----------------------------------------------------------------
    step_s = step_sent["t_s"]
    trigger_s = step_s - step_after_trigger_s   # the scope's t = 0 on the bench clock
    guard_s = procedure["guard_s"]
    # the scope's waveforms: step timing always, and the fallback reference
    reference = reference_from_waveforms(
        trigger_s + float(frame.index[0]), frame[PHASE_VOLTAGES].to_numpy().T, frame[PHASE_CURRENTS].to_numpy().T,
        sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
        window_cycles=procedure["reference_window_cycles"], step_fraction=procedure["reference_step_fraction"],
        source=f"{SCOPE_REFERENCE}: {SCOPE_REFERENCE_METHOD}")
    parts = {PART_BEFORE_F_STEP: (trigger_s - settings.pretrigger_s, trigger_s),
             PART_AFTER_F_STEP: (trigger_s + guard_s, step_s),
             PART_AFTER_PQ_STEP: (step_s + guard_s, trigger_s + after_trigger_s)}
    read_t_s = telemetry.index.to_numpy()
    device_t_s = telemetry["device_time_s"].to_numpy(dtype=float, na_value=np.nan)
    columns = {name: telemetry[name].to_numpy(dtype=float, na_value=np.nan) for name in telemetry.columns
               if name in reference.values}
    scope_means = part_means(reference, read_t_s, columns, parts)
    sources = {column: SCOPE_REFERENCE for column in reference.values}
    means, analyzer_reference = scope_means, None
    if analyzer_log is not None:
        analyzer_reference = reference_from_readings(analyzer_log.readings,
                                                     source=f"{reference_meter}: {ANALYZER_REFERENCE_METHOD}")
        # a read's values may describe up to two update intervals before it (the interval it
        # completed last, read late in the next): only reads that far into a part describe it
        analyzer_means = part_means(analyzer_reference, read_t_s, columns,
                                    settled_parts(parts, 2.0 * analyzer_reference.window_s))
        means = prefer_reference(analyzer_means, scope_means)
        sources.update({column: reference_meter for column in analyzer_reference.values})
    # PCS clock → bench clock from the reads before the step, where nothing under test moves
    offset_s = clock_offset_s(read_t_s[read_t_s < step_s], device_t_s[read_t_s < step_s])
    where = f"at {point.p_pu:.0%} of rated power"

    # --- judge: accuracy, each quantity at its worst steady part ------------------------
    measurements.record("reference_is_class_0_5S_meter", 0.0 if analyzer_log is None else 1.0,
                        "bool")   # recorded, not judged: a power analyzer is at least that
    measurements.record("reference_is_power_analyzer", 0.0 if analyzer_log is None else 1.0, "bool")
    judge = _ErrorJudge(measurements, means, where, sources)
    judge.record("p_error_of_reading", "P", ["p_w"], profile.clause("telemetry.p_error", "% of reading"),
                 error_pct_of_reading, scale=1e3, units="kW")
    # Q: an error of reading where |Q| is large enough for one to mean something, else of S rated
    floor_var = profile.clause("telemetry.q_reading_floor", "pu of S rated").value * s_rated_va
    judge.record("q_error_of_reading", "Q", ["q_var"], profile.clause("telemetry.q_error", "% of reading"),
                 error_pct_of_reading, scale=1e3, units="kvar", where_reference=lambda q: abs(q) >= floor_var)
    judge.record("q_error_near_zero", "Q", ["q_var"], profile.clause("telemetry.q_error_near_zero", "% of S rated"),
                 lambda pcs_var, ref_var: error_pct_of_base(pcs_var, ref_var, s_rated_va), scale=1e3, units="kvar",
                 where_reference=lambda q: abs(q) < floor_var)
    judge.record("voltage_error", "V", PHASE_VOLTAGE_COLUMNS, profile.clause("telemetry.v_error", "% of V nominal"),
                 lambda pcs_v, ref_v: error_pct_of_base(pcs_v, ref_v, pcs_cfg.v_ln_nom_v), scale=1.0, units="V")
    judge.record("current_error", "I", PHASE_CURRENT_COLUMNS, profile.clause("telemetry.i_error", "% of I rated"),
                 lambda pcs_a, ref_a: error_pct_of_base(pcs_a, ref_a, pcs_cfg.i_rated_a), scale=1.0, units="A")
    judge.record("frequency_error", "f", ["freq_hz"], profile.clause("telemetry.f_error", "Hz"),
                 lambda pcs_hz, ref_hz: None if pcs_hz is None else pcs_hz - ref_hz, scale=1.0, units="Hz")

    # --- judge: data integrity ---------------------------------------------------------
    missing_limit = profile.clause("telemetry.missing_channels", "channels")
    missing = [f"{name} ({n} of {len(snapshots)} reads)"
               for name, n in missing_fields(snapshots, procedure["channels"]).items() if n]
    measurements.record(
        "missing_channels", float(len(missing)), "channels", clause=missing_limit, high=missing_limit.value,
        fail_message=f"the PCS telemetry lacks {', '.join(missing)} {where}; every read must carry "
                     f"{', '.join(procedure['channels'])}")
    measurements.record("missed_polls", float(len(poller.missed)), "polls")
    measurements.record("pcs_clock_offset", None if offset_s is None else offset_s * 1e3, "ms")

    bases = {"p_w": s_rated_va, "q_var": s_rated_va, "freq_hz": pcs_cfg.f_nom_hz,
             **{name: pcs_cfg.v_ln_nom_v for name in PHASE_VOLTAGE_COLUMNS},
             **{name: pcs_cfg.i_rated_a for name in PHASE_CURRENT_COLUMNS}}
    tracking = profile.clause("telemetry.flatline.min_tracking", "pu of the reference change")
    min_change = profile.clause("telemetry.flatline.min_reference_change", "pu")
    for column, base in bases.items():
        change = largest_change(means, column)
        if change is None or abs(change[1].reference - change[0].reference) < min_change.value * base:
            continue   # the reference did not move enough to tell a frozen channel from a steady one
        before, after = change
        ratio = tracking_ratio(before.reference, after.reference, before.telemetry, after.telemetry)
        moved = "nothing (no value)" if ratio is None else f"{after.telemetry - before.telemetry:+.4g}"
        measurements.record(
            f"tracking_{column}", ratio, "pu of the reference change", clause=tracking, low=tracking.value,
            fail_message=f"flatlined channel: the PCS's {column} reading moved by {moved} while the reference "
                         f"moved by {after.reference - before.reference:+.4g} ({before.part} → {after.part}, "
                         f"{where}); it must show at least {tracking.value:.0%} of the change"
                         f" (reference: {sources[column]})")

    # --- judge: time alignment of the P and Q steps (timed on the scope's waveforms) ---------
    alignment = profile.clause("telemetry.time_alignment", "ms")
    steps = {}
    for column, name in (("p_w", "P"), ("q_var", "Q")):
        before, after = _part(scope_means, PART_AFTER_F_STEP, column), _part(scope_means, PART_AFTER_PQ_STEP, column)
        steps[column] = aligned_step_times(
            reference.t_s, reference.values[column], (before.reference, after.reference), device_t_s,
            columns[column], (before.telemetry, after.telemetry), offset_s, after_s=parts[PART_AFTER_F_STEP][0],
            window_s=reference.window_s, filter_s=procedure["declared_filter_s"],
            max_shift_s=procedure["post_step_s"] / 2)
        misalignment_ms = steps[column].misalignment_ms
        measurements.record(
            f"time_alignment_{name.lower()}", misalignment_ms, "ms", clause=alignment, low=-alignment.value,
            high=alignment.value,
            fail_message=(f"the PCS telemetry never showed the {name} step" if misalignment_ms is None else
                          f"the PCS telemetry shows the {name} step {misalignment_ms:+.1f} ms from the reference")
                         + f" ({where}; PCS time stamps placed on the bench clock through the offset seen on "
                           f"reads before the step); at most ±{alignment.value:g} ms is allowed"
                         f" (step timing: {SCOPE_REFERENCE})")

    # --- evidence plot --------------------------------------------------------------
    plot = _plot_window(
        f"T1 telemetry vs reference, {point.p_pu:.0%} of rated power ({profile.id})", reference, telemetry,
        offset_s, parts, step_s, steps, run_folder.plot_path(request.node.name, "telemetry_vs_reference"),
        analyzer=analyzer_reference)
    measurements.plots.append(plot)
    measurements.verdict()


def test_T1_event_log_time_alignment(energised_bench, reference_meter, bench_config, profile, grid_simulator,
                                     capture, pcs, clock, measurements, run_folder, request):
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("telemetry.procedure")
    s_rated_va = pcs_cfg.s_rated_va

    # --- setup: running at the event point, settled ------------------------------------
    pcs.set_reactive_power_var(0.0)
    run_pcs_at(pcs, clock, procedure["event_p_pu"] * s_rated_va, s_rated_va)
    clock.wait(procedure["settle_s"])

    # --- stimulus and capture: stop the PCS during a record ----------------------------
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["event_record_s"],
                               pretrigger_s=procedure["event_pretrigger_s"])
    # a transient at nominal changes nothing at the PCC: it only starts the scope
    marker = [GridSegment(settings.duration_s - settings.pretrigger_s, (pcs_cfg.v_ln_nom_v,) * 3, pcs_cfg.f_nom_hz)]
    stop_sent = {}

    def stop_pcs() -> None:
        stop_sent["t_s"] = clock.now_s()
        pcs.stop()

    with TelemetryPoller(pcs, clock, procedure["poll_period_s"], name="T1 telemetry (clock offset)") as poller:
        frame = capture_transient(
            capture, clock, grid_simulator, marker, settings, test_name=request.node.name,
            capture_name="stop_waveforms", during=(procedure["event_stop_after_trigger_s"], stop_pcs))
    telemetry = poller.frame()
    run_folder.save_capture(request.node.name, "pcs_telemetry", telemetry)
    stop_s = stop_sent["t_s"]
    trigger_s = stop_s - procedure["event_stop_after_trigger_s"]
    read_t_s = telemetry.index.to_numpy()
    device_t_s = telemetry["device_time_s"].to_numpy(dtype=float, na_value=np.nan)
    before_stop = read_t_s < stop_s
    offset_s = clock_offset_s(read_t_s[before_stop], device_t_s[before_stop])
    stamped_before_stop = device_t_s[before_stop][np.isfinite(device_t_s[before_stop])]
    try:
        # what the PCS logged from its last value read before the stop (its whole log when it
        # stamps no telemetry: the alignment cannot be judged then, the resolution still can)
        events = pcs.events_since(float(stamped_before_stop.max()) if stamped_before_stop.size else 0.0)
        no_log = None
    except NotSupportedByPcs as exc:
        events, no_log = [], str(exc)

    # --- analysis -----------------------------------------------------------------
    t_s = trigger_s + frame.index.to_numpy()
    current_pu = current_space_vector_pu(frame[PHASE_CURRENTS].to_numpy().T, pcs_cfg.i_rated_a)
    bench_stop_s = drop_time_s(t_s, current_pu, procedure["event_current_fraction"], level_until_s=stop_s)
    state_event = next((e for e in events if e.code == "STATE"), None)
    event_on_bench_s = None if state_event is None or offset_s is None else state_event.time_s + offset_s

    # --- judge --------------------------------------------------------------------
    note = f" (reference: {SCOPE_REFERENCE}; the stop is timed on its waveforms)"
    resolution = profile.clause("telemetry.event_resolution", "ms")
    evident_s = evident_resolution_s([e.time_s for e in events])
    measurements.record(
        "event_time_resolution", None if evident_s is None else evident_s * 1e3, "ms", clause=resolution,
        high=resolution.value,
        fail_message=(f"the PCS has no event log ({no_log})" if no_log else
                      "the PCS logged no event when it was stopped" if evident_s is None else
                      f"the PCS's event time stamps ({', '.join(f'{e.time_s:.4f} s' for e in events)}) show a "
                      f"resolution of {evident_s * 1e3:g} ms") + f"; at most {resolution.value:g} ms is allowed")
    alignment = profile.clause("telemetry.time_alignment", "ms")
    misalignment_ms = (None if event_on_bench_s is None or bench_stop_s is None
                       else (event_on_bench_s - bench_stop_s) * 1e3)
    measurements.record(
        "event_time_alignment", misalignment_ms, "ms", clause=alignment, low=-alignment.value, high=alignment.value,
        fail_message=("the PCS logged no STATE event for the stop" if state_event is None else
                      "the bench did not see the PCS current collapse" if bench_stop_s is None else
                      f"the PCS's log puts its stop (STATE event at {state_event.time_s:.3f} s PCS time) "
                      f"{misalignment_ms:+.1f} ms from the moment the bench saw its current collapse")
                     + f" (PCS clock placed on the bench clock through the offset seen on telemetry reads); "
                       f"at most ±{alignment.value:g} ms is allowed" + note)
    measurements.record("pcs_clock_offset", None if offset_s is None else offset_s * 1e3, "ms")

    # --- evidence plot --------------------------------------------------------------
    plot = _plot_stop(f"T1 event log vs bench capture: PCS stopped at {procedure['event_p_pu']:.0%} ({profile.id})",
                      t_s - stop_s, current_pu, stop_s, bench_stop_s, event_on_bench_s,
                      run_folder.plot_path(request.node.name, "event_alignment"))
    measurements.plots.append(plot)
    measurements.verdict()


# ------------------------------------------------------------------ small helpers

def _part(means: list[PartMeans], part: str, column: str) -> PartMeans:
    return next(m for m in means if m.part == part and m.column == column)


class _ErrorJudge:
    """Records one quantity's error at its worst steady part (and phase), against one clause,
    naming the instrument that was the reference for it (``sources``: column → instrument)."""

    def __init__(self, measurements, means: list[PartMeans], where: str, sources: Mapping[str, str]):
        self.measurements, self.means, self.where, self.sources = measurements, means, where, sources

    def record(self, name: str, quantity: str, columns, clause, error: Callable[[float | None, float], float | None],
               *, scale: float, units: str, where_reference: Callable[[float], bool] = lambda _: True) -> None:
        judged = [(m, error(m.telemetry, m.reference)) for m in self.means
                  if m.column in columns and m.reference is not None and where_reference(m.reference)]
        if not judged:
            return    # no part fell in this rule's range (e.g. Q never left zero)
        # a quantity the PCS did not report cannot pass: it is the worst case
        unreported = [entry for entry in judged if entry[1] is None]
        m, value = unreported[0] if unreported else max(judged, key=lambda entry: abs(entry[1]))
        label = quantity if len(columns) == 1 else f"{quantity} ({m.column})"
        if value is None:
            message = f"the PCS reported no {label} ({m.part}, {self.where})"
        else:
            message = (f"PCS telemetry {label} read {m.telemetry / scale:.4g} {units} where the reference measured "
                       f"{m.reference / scale:.4g} {units} ({m.part}, {self.where}): {value:+.3g} {clause.units}")
        self.measurements.record(
            name, value, clause.units, clause=clause, low=-clause.value, high=clause.value,
            fail_message=f"{message}; at most ±{clause.value:g} {clause.units} is allowed"
                         f" (reference: {self.sources.get(m.column, SCOPE_REFERENCE)})")


def _plot_window(title: str, reference: ReferenceSeries, telemetry, offset_s: float | None,
                 parts: dict[str, tuple[float, float]], step_s: float,
                 steps: dict[str, StepTimes], path: Path, analyzer: ReferenceSeries | None = None) -> Path:
    """Left: reference and telemetry P and Q over the record, the judged steady parts shaded
    (and the power analyzer's reads, where the bench has one). Right: the P/Q step, zoomed,
    with the time each series shows it."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 6.6), gridspec_kw={"width_ratios": [2.2, 1]})
    device_t_s = telemetry["device_time_s"].to_numpy(dtype=float, na_value=np.nan)
    # the zoom reaches the later of the two step marks, however late the telemetry is
    marks_ms = [(t - step_s) * 1e3 for times in steps.values() for t in (times.reference_s, times.telemetry_s)
                if t is not None]
    zoom_ms = (-60.0, max([140.0] + [m + 60.0 for m in marks_ms]))
    reference_label = reference.source.split(",")[0]
    for row, (column, label, unit) in enumerate((("p_w", "P", "kW"), ("q_var", "Q", "kvar"))):
        values = telemetry[column].to_numpy(dtype=float, na_value=np.nan)
        pcs_t, pcs_v = distinct_device_samples(device_t_s, values)
        if offset_s is not None:
            pcs_x_s, pcs_label = pcs_t + offset_s - step_s, f"{label}, PCS telemetry at its time stamp"
        else:
            pcs_x_s, values_shown = telemetry.index.to_numpy() - step_s, values
            pcs_v, pcs_label = values_shown, f"{label}, PCS telemetry at read time (no PCS time stamp)"
        full, zoom = axes[row]
        for ax, scale in ((full, 1.0), (zoom, 1e3)):
            ax.plot((reference.t_s - step_s) * scale, reference.values[column] / 1e3, lw=1.1,
                    label=f"{label}, reference ({reference_label}; one-cycle mean at its end)")
            ax.plot(pcs_x_s * scale, pcs_v / 1e3, ".-", ms=4, lw=0.6, color="tab:orange", label=pcs_label)
            if analyzer is not None and ax is full:
                ax.plot(analyzer.t_s - step_s, analyzer.values[column] / 1e3, "s", ms=3, color="tab:green",
                        label=f"{label}, {analyzer.source.split(':')[0]} (at read time)")
            ax.set_ylabel(unit)
            ax.grid(True, alpha=0.3)
        for name, (start_s, end_s) in parts.items():
            full.axvspan(start_s - step_s, end_s - step_s, color="tab:green", alpha=0.08)
            if row == 1:   # mid-height of the Q panel: clear of Q before and after its step
                full.annotate(name, ((start_s + end_s) / 2 - step_s, 0.5), xycoords=("data", "axes fraction"),
                              ha="center", va="center", fontsize=7, color="tab:green")
        ref_step_s, pcs_step_s = steps[column].reference_s, steps[column].telemetry_s
        if ref_step_s is not None:
            zoom.axvline((ref_step_s - step_s) * 1e3, color="tab:blue", ls="--", lw=1,
                         label="reference shows the step (50 %)")
        if pcs_step_s is not None:
            shift = "" if ref_step_s is None else f", {steps[column].misalignment_ms:+.1f} ms"
            zoom.axvline((pcs_step_s - step_s) * 1e3, color="tab:orange", ls="--", lw=1,
                         label=f"where the PCS stamps put the step{shift}")
        zoom.set_xlim(*zoom_ms)
        full.legend(loc="best", fontsize=7)
        zoom.legend(loc="best", fontsize=6)
    axes[1][0].set_xlabel("time from the P/Q setpoint step (s, bench clock)")
    axes[1][1].set_xlabel("time from the P/Q setpoint step (ms, bench clock)")
    axes[0][0].set_title(title, fontsize=10)
    axes[0][1].set_title("the P/Q step", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_stop(title: str, t_from_stop_s: np.ndarray, current_pu: np.ndarray, stop_s: float,
               bench_stop_s: float | None, event_on_bench_s: float | None, path: Path) -> Path:
    """The PCS current magnitude around the stop, with the bench's and the log's time marks."""
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t_from_stop_s * 1e3, current_pu, lw=1, label="|i| from the scope (pu of rated peak)")
    ax.axvline(0.0, color="tab:gray", ls=":", lw=1, label="stop command sent")
    if bench_stop_s is not None:
        ax.axvline((bench_stop_s - stop_s) * 1e3, color="tab:blue", ls="--", lw=1.2, label="bench: current collapses")
    if event_on_bench_s is not None:
        shift = "" if bench_stop_s is None else f", {(event_on_bench_s - bench_stop_s) * 1e3:+.1f} ms"
        ax.axvline((event_on_bench_s - stop_s) * 1e3, color="tab:orange", ls="--", lw=1.2,
                   label=f"PCS log: STATE event, on the bench clock{shift}")
    marks_ms = [(t - stop_s) * 1e3 for t in (bench_stop_s, event_on_bench_s) if t is not None]
    ax.set_xlim(min([-20.0] + [m - 20.0 for m in marks_ms]), max([40.0] + [m + 20.0 for m in marks_ms]))
    ax.set_xlabel("time from the stop command (ms, bench clock)")
    ax.set_ylabel("pu")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
