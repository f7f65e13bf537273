"""C1 — SCADA point-to-point check (commissioning).

Procedure:
  1 reads   every readable point of the PCS's point map is read: it answers, and its value
            lies in the range or enumeration the map declares (the point list and values are
            kept as evidence). The event log and record list show one entry at a time: the
            newest is selected first, so their entry points show a real entry (an empty list
            shows nothing, and those points are then read but not range-checked);
  2 agrees  for each operating point of the profile (P and Q both non-zero):
            setup    the PCS runs at the operating point and settles;
            stimulus none — a nominal-voltage "transient" of the grid simulator only starts
                     the oscilloscope (its trigger output), nothing changes at the PCC;
            capture  PCC voltages and PCS currents for the profile's capture time, the PCS's
                     telemetry (SunSpec 701/713/714 and vendor points) polled throughout and
                     averaged, the DC source's own voltage and current read in the middle;
            judge    every telemetry point that measures what the bench measures agrees with
                     it within the profile's tolerance: P, Q, S and PF against P/Q from the
                     scope's waveforms (bench.analysis), per-phase and line-to-line voltage,
                     per-phase current and frequency against the scope, DC voltage and current
                     against the DC source. Where the bench has a power analyzer, it is read at
                     its update interval through the capture and every quantity it measures is
                     judged against its mean instead (P, Q, S, PF, f, and the per-phase voltages
                     and currents its wiring gives); each judged value names its reference. Two
                     points with different Q also show a reactive power reading that does not
                     follow (a frozen channel);
  3 writes  with the PCS stopped (a setting change then acts on nothing), every writable
            setting of the map is written with a valid value other than its present one,
            read back, and restored — the restore runs in a `finally`, so the PCS is never
            left with a changed setting, and each restore is read back too. Commands and
            selection registers (the profile's `c1.procedure.not_settings`) and write-only
            points are not written.
Writing settings (3) and commanding the operating points (2) needs --allow-control on a
real PCS; the virtual PCS always allows control.
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

import csv
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pytest

from bench.capture import CaptureSettings
from bench.plugin import PROFILE_KEY
from bench.point_check import (error_pct_of_base, error_pct_of_reading, range_problem, reference_readings,
                               same_point_value, with_analyzer, write_test_value)
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES, capture_transient, energise_bench, run_pcs_at
from dut.errors import DutError
from dut.event_log import EVENT_POINTS
from dut.records import RECORD_POINTS
from instruments.grid_simulator import GridSegment

pytestmark = [pytest.mark.test_id("C1"), pytest.mark.profile_sections("c1")]

MARKER_SEGMENT_S = 0.05  # the nominal-voltage "transient" whose trigger output starts the scope
SCOPE_REFERENCE = "oscilloscope"
DC_REFERENCE = "DC source"
STOPPED_STATES = ("OFF", "STANDBY")


@dataclass(frozen=True)
class OperatingPoint:
    p_pu: float
    q_pu: float

    @property
    def label(self) -> str:
        return f"P{self.p_pu:+.2f}pu-Q{self.q_pu:+.2f}pu"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "operating_point" in metafunc.fixturenames:
        profile = metafunc.config.stash[PROFILE_KEY]
        points = [OperatingPoint(float(p["p_pu"]), float(p["q_pu"]))
                  for p in profile.setting("c1.procedure.operating_points")]
        metafunc.parametrize("operating_point", points, ids=[p.label for p in points])


@pytest.fixture(scope="module")
def point_map(pcs):
    if pcs.vendor is None:
        pytest.fail("the bench's PCS connection has no point map: C1 checks the points of the PCS's map "
                    "(set point_map in the bench file)")
    return pcs.vendor.map


def _evidence_csv(run_folder, test_name: str, file_name: str, header: list[str], rows: list[list]) -> None:
    folder = run_folder.captures_dir / test_name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / file_name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _show_newest_entries(pcs, point_map) -> set[str]:
    """Select the newest entry of each selection window (event log, record list), so that the
    points showing an entry hold a real one; returns the points that show nothing (empty list),
    whose value is then not range-checked."""
    showing_nothing: set[str] = set()
    for count_name, select_name, *shown in (EVENT_POINTS, RECORD_POINTS):
        if not all(point_map.has(name) for name in (count_name, select_name, *shown)):
            continue
        count = int(pcs.vendor.read_one(count_name))
        if count >= 1:
            pcs.vendor.write({select_name: count})
        else:
            showing_nothing.update(shown)
    return showing_nothing


def test_C1_points_read_and_in_range(point_map, pcs, profile, measurements, run_folder, request):
    failures_max = profile.clause("c1.points.failures_max", "points")
    not_settings = set(profile.setting("c1.procedure.not_settings"))
    showing_nothing = _show_newest_entries(pcs, point_map)
    readable = [p for p in point_map.points.values() if p.readable]
    values = pcs.vendor.read_each([p.name for p in readable])
    unreadable, out_of_range, rows = [], [], []
    for point in readable:
        value = values.get(point.name)
        if isinstance(value, DutError) or point.name not in values:
            unreadable.append(f"{point.name} ({point.address}): {value}")
            rows.append([point.name, point.address, "", point.units or "", f"no answer: {value}"])
            continue
        if point.name in showing_nothing:
            rows.append([point.name, point.address, value, point.units or "", "not judged: the list is empty"])
            continue
        problem = None if point.name in not_settings else range_problem(point, value)
        if problem:
            out_of_range.append(f"{point.name} ({point.address}) {problem}")
        rows.append([point.name, point.address, value, point.units or "", problem or "ok"])
    _evidence_csv(run_folder, request.node.name, "points_read.csv", ["point", "address", "value", "units", "check"], rows)

    measurements.record("points_read", float(len(readable)), "points")
    measurements.record(
        "points_not_reading", float(len(unreadable)), "points", clause=failures_max, high=failures_max.value,
        fail_message=f"{len(unreadable)} of {len(readable)} points of map {point_map.name} do not read: "
                     + "; ".join(unreadable))
    measurements.record(
        "points_out_of_declared_range", float(len(out_of_range)), "points", clause=failures_max,
        high=failures_max.value,
        fail_message=f"{len(out_of_range)} points of map {point_map.name} read outside what the map declares: "
                     + "; ".join(out_of_range))
    measurements.verdict()


@pytest.fixture(scope="module")
def energised(bench_config, dc_source, grid_simulator, clock):
    energise_bench(bench_config, dc_source, grid_simulator, clock)


def _mean_of(snapshots: list, field: str, index: int | None = None) -> float | None:
    values = []
    for snapshot in snapshots:
        value = getattr(snapshot, field)
        if value is not None and index is not None:
            value = value[index]
        if value is not None:
            values.append(float(value))
    return float(np.mean(values)) if values and len(values) == len(snapshots) else None


def test_C1_telemetry_agrees_with_reference(operating_point: OperatingPoint, energised, bench_config, profile,
                                            pcs, dc_source, grid_simulator, capture, clock, measurements,
                                            run_folder, power_readings, request):
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("c1.procedure")
    s_rated_va = pcs_cfg.s_rated_va

    # --- setup: the operating point --------------------------------------------------
    run_pcs_at(pcs, clock, operating_point.p_pu * s_rated_va, s_rated_va)
    pcs.set_reactive_power_var(operating_point.q_pu * s_rated_va)
    clock.wait(procedure["settle_s"])

    # --- capture: scope, PCS telemetry (and the power analyzer) throughout, DC source in the middle
    snapshots: list = []
    poller = clock.every(procedure["telemetry_poll_s"], lambda now_s: snapshots.append(pcs.telemetry()),
                         name="PCS telemetry")
    dc_readings: list[tuple[float, float]] = []
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["capture_s"],
                               pretrigger_s=procedure["capture_s"] / 2)
    analyzer_log = power_readings.logger() if power_readings is not None else None
    try:
        with analyzer_log or nullcontext():
            frame = capture_transient(
                capture, clock, grid_simulator,
                [GridSegment(MARKER_SEGMENT_S, (pcs_cfg.v_ln_nom_v,) * 3, pcs_cfg.f_nom_hz)], settings,
                test_name=request.node.name, capture_name="steady_waveforms",
                metadata={"operating_point": operating_point.label},
                during=(0.0, lambda: dc_readings.append((dc_source.measure_voltage_v(),
                                                         dc_source.measure_current_a()))))
    finally:
        poller.cancel()
    reference = reference_readings(frame[PHASE_VOLTAGES].to_numpy().T, frame[PHASE_CURRENTS].to_numpy().T,
                                   sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz)
    from_analyzer: set[str] = set()
    if analyzer_log is not None:
        power_readings.save(request.node.name, "analyzer_readings", analyzer_log.readings,
                            metadata={"operating_point": operating_point.label})
        reference, from_analyzer = with_analyzer(reference, analyzer_log.readings)
    measurements.record("reference_is_power_analyzer", 0.0 if analyzer_log is None else 1.0, "bool")
    vdc_ref_v, idc_ref_a = dc_readings[0]

    def source_of(field: str, index: int | None) -> str:
        if field in ("vdc_v", "idc_a"):
            return DC_REFERENCE
        key = field if index is None else f"{field}[{index}]"
        return power_readings.description if key in from_analyzer else SCOPE_REFERENCE

    # --- judge: each reported quantity against the bench's ---------------------------------
    clauses = {name: profile.clause(f"c1.agreement.{name}", units) for name, units in (
        ("active_power", "% of reading"), ("reactive_power", "% of reading"), ("apparent_power", "% of reading"),
        ("power_factor", "pu"), ("voltage", "% of nominal"), ("current", "% of rated"), ("frequency", "Hz"),
        ("dc_voltage", "% of nominal"), ("dc_current", "% of rated"))}
    v_ll_nom_v = pcs_cfg.v_ln_nom_v * np.sqrt(3.0)
    i_dc_rated_a = s_rated_va / pcs_cfg.vdc_nominal_v
    comparisons = [  # (measurement, telemetry field, phase index, reference, error function, clause, units)
        ("active_power_error", "p_w", None, reference.p_w, error_pct_of_reading, "active_power", "W"),
        ("reactive_power_error", "q_var", None, reference.q_var, error_pct_of_reading, "reactive_power", "var"),
        ("apparent_power_error", "s_va", None, reference.s_va, error_pct_of_reading, "apparent_power", "VA"),
        *[(f"voltage_{n[-1]}_error", "v_ln_rms_v", k, reference.v_ln_rms_v[k],
           lambda r, ref: error_pct_of_base(r, ref, pcs_cfg.v_ln_nom_v), "voltage", "V")
          for k, n in enumerate(PHASE_VOLTAGES)],
        ("voltage_line_to_line_error", "v_ll_rms_v", None, reference.v_ll_rms_v,
         lambda r, ref: error_pct_of_base(r, ref, v_ll_nom_v), "voltage", "V"),
        *[(f"current_{n[-1]}_error", "i_rms_a", k, reference.i_rms_a[k],
           lambda r, ref: error_pct_of_base(r, ref, pcs_cfg.i_rated_a), "current", "A")
          for k, n in enumerate(PHASE_CURRENTS)],
        ("dc_voltage_error", "vdc_v", None, vdc_ref_v,
         lambda r, ref: error_pct_of_base(r, ref, pcs_cfg.vdc_nominal_v), "dc_voltage", "V"),
        ("dc_current_error", "idc_a", None, idc_ref_a,
         lambda r, ref: error_pct_of_base(r, ref, i_dc_rated_a), "dc_current", "A"),
        ("power_factor_error", "pf", None, reference.pf, lambda r, ref: None if r is None else r - ref,
         "power_factor", "pu"),
        ("frequency_error", "freq_hz", None, reference.freq_hz, lambda r, ref: None if r is None else r - ref,
         "frequency", "Hz"),
    ]
    rows = []
    for name, field, index, ref, error_of, clause_name, units in comparisons:
        reported = _mean_of(snapshots, field, index)
        error = error_of(reported, ref)
        clause = clauses[clause_name]
        what = field if index is None else f"{field}[{'ABC'[index]}]"
        source = source_of(field, index)
        rows.append([what, reported, ref, units, error, clause.units, source])
        measurements.record(
            name, error, clause.units, clause=clause, low=-clause.value, high=clause.value,
            fail_message=(f"the PCS does not report {what}" if reported is None else
                          f"the PCS reports {what} = {reported:.6g} {units} where the bench measures {ref:.6g} {units} "
                          f"({error:+.3g} {clause.units})") +
                         f" at {operating_point.label}; at most ±{clause.value:g} {clause.units} is allowed"
                         f" (reference: {source})")
    _evidence_csv(run_folder, request.node.name, "telemetry_vs_reference.csv",
                  ["telemetry", "reported (mean)", "reference", "units", "error", "error units", "reference instrument"],
                  rows)
    measurements.record("telemetry_reads_averaged", float(len(snapshots)), "reads")
    measurements.verdict()


@pytest.fixture
def stopped_pcs(pcs, clock):
    """The PCS stopped, so that a setting under test acts on nothing."""
    pcs.set_reactive_power_var(0.0)
    pcs.stop()
    clock.wait_until(lambda: pcs.telemetry().state in STOPPED_STATES, timeout_s=5.0, poll_s=0.1,
                     what="the PCS to stop")
    return pcs


def test_C1_writable_points_accept_and_restore(stopped_pcs, point_map, profile, measurements, run_folder,
                                               request):
    pcs = stopped_pcs
    procedure = profile.setting("c1.procedure")
    failures_max = profile.clause("c1.points.failures_max", "points")
    settings = [p for p in point_map.points.values()
                if p.writable and p.readable and p.name not in procedure["not_settings"]]
    rows = []
    for point in settings:
        present = pcs.vendor.read_one(point.name)
        test_value = write_test_value(point, present, procedure["write_step_registers"])
        accepted, restored, problem = False, False, ""
        try:
            pcs.vendor.write({point.name: test_value})       # read back register for register
            read_back = pcs.vendor.read_one(point.name)
            accepted = same_point_value(point, read_back, test_value)
            if not accepted:
                problem = f"wrote {test_value!r}, read back {read_back!r}"
        except DutError as exc:
            problem = f"refused {test_value!r}: {exc}"
        finally:
            # Never leave a setting changed: the present value goes back whatever happened.
            try:
                pcs.vendor.write({point.name: present})
                restored = same_point_value(point, pcs.vendor.read_one(point.name), present)
            except DutError as exc:
                problem += f"; RESTORING {present!r} FAILED: {exc}"
            if not restored and "RESTORING" not in problem:
                problem += f"; NOT RESTORED to {present!r}"
        rows.append([point.name, present, test_value, accepted, restored, problem])
        units = f" {point.units}" if point.units else ""
        measurements.record(
            f"write_check_{point.name}", 0.0 if accepted and restored else 1.0, "points", clause=failures_max,
            high=failures_max.value,
            fail_message=f"setting {point.name} ({point.address}, present {present!r}{units}): {problem.lstrip('; ')}")
    _evidence_csv(run_folder, request.node.name, "write_check.csv",
                  ["point", "present", "written", "accepted", "restored", "problem"], rows)
    measurements.record("settings_write_checked", float(len(settings)), "points")
    measurements.verdict()
