"""T1 (telemetry verification): the analysis it rests on, on synthetic data with known answers,
and proof on the virtual bench that the plan passes the healthy PCS and fails each telemetry
defect it exists to catch.

Each qualify run starts its own virtual bench; `-k` keeps the defect runs to one or two points.
"""
import math
import re

import numpy as np
import pytest

from bench.telemetry_check import (
    PartMeans,
    ReferenceSeries,
    clock_offset_s,
    distinct_device_samples,
    drop_time_s,
    error_pct_of_base,
    error_pct_of_reading,
    evident_resolution_s,
    largest_change,
    midpoint_crossing_s,
    missing_fields,
    part_means,
    prefer_reference,
    reference_from_readings,
    reference_from_waveforms,
    segment_mean,
    settled_parts,
    step_times,
    tracking_ratio,
)
from bench.config import DEFAULT_BENCH
from dut.pcs import TelemetrySnapshot
from instruments.power_analyzer import ElementReading, PowerReading
from plan_runs import failed_measurements, measurement_rows, qualify

F_NOM_HZ = 60.0
PERIOD_S = 1.0 / F_NOM_HZ







# ------------------------------------------------------------------ the reference from waveforms

def _three_phase(t_s, v_rms, i_rms, phi_rad, f_hz=F_NOM_HZ):
    """Balanced V and I; the current lags the voltage by phi (a scalar or one angle per sample;
    Q > 0 with S = V·conj(I))."""
    shifts = (0.0, -2 * np.pi / 3, 2 * np.pi / 3)
    w = 2 * np.pi * f_hz * t_s
    v = np.array([np.sqrt(2) * v_rms * np.cos(w + s) for s in shifts])
    i = np.array([np.sqrt(2) * i_rms * np.cos(w + s - phi_rad) for s in shifts])
    return v, i


def test_reference_gives_p_q_v_i_f_of_a_known_operating_point():
    fs = 10_000.0
    t = np.arange(0.0, 0.5, 1 / fs)
    v, i = _three_phase(t, 277.0, 200.0, math.radians(30.0), f_hz=60.05)
    ref = reference_from_waveforms(10.0, v, i, sample_rate_hz=fs, f_nominal_hz=F_NOM_HZ, window_cycles=1,
                                   step_fraction=0.25, source="synthetic")
    settled = slice(5, -5)
    assert ref.values["p_w"][settled] == pytest.approx(3 * 277.0 * 200.0 * math.cos(math.radians(30)), rel=2e-3)
    assert ref.values["q_var"][settled] == pytest.approx(3 * 277.0 * 200.0 * math.sin(math.radians(30)), rel=2e-3)
    assert ref.values["v_b_ln_v"][settled] == pytest.approx(277.0, rel=1e-3)
    assert ref.values["i_c_a"][settled] == pytest.approx(200.0, rel=1e-3)
    assert ref.values["freq_hz"][settled] == pytest.approx(60.05, abs=1e-3)
    # stamped at the end of each one-cycle window, on the bench clock of the first sample
    assert ref.t_s[0] == pytest.approx(10.0 + PERIOD_S, abs=1 / fs)
    assert np.diff(ref.t_s) == pytest.approx(0.25 * PERIOD_S)


def test_reference_shows_a_sharp_q_step_half_a_window_after_it_happens():
    fs = 10_000.0
    t = np.arange(0.0, 0.4, 1 / fs)
    step_s = 0.2031
    v_rms, i_rms = 277.0, 200.0
    v, i = _three_phase(t, v_rms, i_rms, np.where(t >= step_s, math.radians(20.0), 0.0))
    ref = reference_from_waveforms(0.0, v, i, sample_rate_hz=fs, f_nominal_hz=F_NOM_HZ, window_cycles=1,
                                   step_fraction=0.05, source="synthetic")
    q_after = 3 * v_rms * i_rms * math.sin(math.radians(20.0))
    crossing_s = midpoint_crossing_s(ref.t_s, ref.values["q_var"], 0.0, q_after, after_s=0.1)
    # a one-cycle mean stamped at its window's end is half-way through the step T/2 later
    assert crossing_s == pytest.approx(step_s + PERIOD_S / 2, abs=1e-3)


# ------------------------------------------------------------------ the reference from a power analyzer

def _reading(t_s: float, wiring: str, p_w: float, currents_a=(100.0, 101.0, 102.0)) -> PowerReading:
    count = 3 if wiring == "3P4W" else 2
    u = 277.0 if wiring == "3P4W" else 480.0
    elements = tuple(ElementReading(str(k + 1), u, currents_a[k], p_w / count, p_w / count, 0.0, 1.0, 60.01)
                     for k in range(count))
    return PowerReading(t_s, 0.05, wiring, elements,
                        ElementReading("sigma", u, 101.0, p_w, p_w, 5e3, 1.0, None))


def test_reference_from_readings_takes_what_the_wiring_measures():
    four = reference_from_readings([_reading(1.0, "3P4W", 1e5), _reading(1.05, "3P4W", 2e5)], source="WT")
    assert four.t_s.tolist() == [1.0, 1.05] and four.window_s == 0.05 and four.source == "WT"
    assert four.values["p_w"].tolist() == [1e5, 2e5] and four.values["q_var"].tolist() == [5e3, 5e3]
    assert four.values["freq_hz"].tolist() == [60.01, 60.01]          # the first element's, the unit's sync
    assert four.values["v_b_ln_v"].tolist() == [277.0, 277.0] and four.values["i_c_a"].tolist() == [102.0, 102.0]
    three = reference_from_readings([_reading(1.0, "3P3W", 1e5)], source="WT")
    assert set(three.values) == {"p_w", "q_var", "freq_hz", "i_a_a", "i_b_a"}   # no v to neutral, no i_c
    with pytest.raises(ValueError, match="no power-analyzer readings"):
        reference_from_readings([], source="WT")


def test_a_partial_reference_leaves_the_rest_to_the_fallback():
    t = np.arange(0.0, 2.0, 0.05)
    analyzer = reference_from_readings([_reading(x, "3P3W", 1e5 if x < 1.0 else 2e5) for x in t], source="WT")
    scope_values = {name: np.full(t.size, 7.0) for name in
                    ("p_w", "q_var", "v_a_ln_v", "v_b_ln_v", "v_c_ln_v", "i_a_a", "i_b_a", "i_c_a", "freq_hz")}
    scope = ReferenceSeries(t_s=t, values=scope_values, source="scope", window_s=PERIOD_S)
    telemetry = {name: np.full(t.size, 1.0) for name in scope_values}
    parts = {"one": (0.0, 1.0), "two": (1.0, 2.0)}
    # a read's values may describe two update intervals before it: the second part's first
    # two reads (1.0, 1.05 s) are left out of it
    assert settled_parts(parts, 0.1) == {"one": (0.1, 1.0), "two": (1.1, 2.0)}
    from_analyzer = part_means(analyzer, t, telemetry, settled_parts(parts, 0.1))
    assert [m.reference for m in from_analyzer if m.column == "v_a_ln_v"] == [None, None]
    combined = prefer_reference(from_analyzer, part_means(scope, t, telemetry, parts))
    by_key = {(m.part, m.column): m.reference for m in combined}
    assert by_key[("one", "p_w")] == pytest.approx(1e5) and by_key[("two", "p_w")] == pytest.approx(2e5)
    assert by_key[("two", "v_c_ln_v")] == 7.0 and by_key[("one", "i_c_a")] == 7.0    # the scope's
    assert by_key[("one", "i_b_a")] == 101.0                                          # the analyzer's
    with pytest.raises(ValueError, match="not the same parts"):
        prefer_reference(from_analyzer[:-1], combined)


# ------------------------------------------------------------------ clocks and time stamps

def test_clock_offset_is_the_freshest_read():
    rng = np.random.default_rng(1)
    read_s = np.sort(rng.uniform(0.0, 2.0, 200))
    device_s = np.floor((read_s - 0.25) / PERIOD_S) * PERIOD_S   # PCS clock 0.25 s behind, one-cycle updates
    device_s[5] = np.nan                                        # a read without a time stamp
    offset = clock_offset_s(read_s, device_s)
    assert 0.25 <= offset < 0.25 + 0.001
    assert clock_offset_s([1.0, 2.0], [np.nan, np.nan]) is None


def test_stale_values_show_as_clock_offset():
    read_s = np.arange(0.0, 1.0, 0.013)
    fresh = clock_offset_s(read_s, np.floor(read_s / PERIOD_S) * PERIOD_S)
    stale = clock_offset_s(read_s, np.floor((read_s - 0.120) / PERIOD_S) * PERIOD_S)
    assert stale - fresh == pytest.approx(0.120, abs=0.002)


def test_distinct_device_samples_drops_repeats_and_gaps():
    t, v = distinct_device_samples([1.0, 1.0, 1.0167, np.nan, 1.0333, 1.0333], [5.0, 5.0, 6.0, 7.0, np.nan, 8.0])
    assert t.tolist() == [1.0, 1.0167, 1.0333]
    assert v.tolist() == [5.0, 6.0, 8.0]


def test_evident_resolution_from_time_stamps():
    assert evident_resolution_s([12.347, 3.2, 3.2]) == pytest.approx(1e-3)
    assert evident_resolution_s([12.340, 3.2]) == pytest.approx(1e-2)       # a 10 ms log
    assert evident_resolution_s([4.0]) == pytest.approx(1.0)                 # one round stamp proves little
    assert evident_resolution_s([1.0000004]) == pytest.approx(1e-6)          # finer than the ladder: its finest rung
    assert evident_resolution_s([]) is None


@pytest.mark.parametrize("step_phase", [0.0, 0.13, 0.29, 0.5, 0.71, 0.93])
def test_block_averaged_telemetry_and_sliding_reference_see_a_step_within_a_tenth_of_a_cycle(step_phase):
    """The PCS's one-cycle block means, stamped at each block's end, interpolated against the
    reference's sliding one-cycle means stamped the same way: the method itself costs far less
    than the 5 ms budget, wherever the step falls in the PCS's block."""
    step_s = 1.0 + step_phase * PERIOD_S
    ends_s = np.arange(0.5, 1.5, PERIOD_S) + PERIOD_S
    block_means = np.clip((ends_s - step_s) / PERIOD_S, 0.0, 1.0)   # fraction of each block after the step
    ref_t_s = np.arange(0.5, 1.5, PERIOD_S / 20)
    ref = np.clip((ref_t_s - step_s) / PERIOD_S, 0.0, 1.0)
    pcs_crossing = midpoint_crossing_s(ends_s, block_means, 0.0, 1.0, after_s=0.8)
    ref_crossing = midpoint_crossing_s(ref_t_s, ref, 0.0, 1.0, after_s=0.8)
    assert abs(pcs_crossing - ref_crossing) <= 0.1 * PERIOD_S


# ------------------------------------------------------------------ values

def test_segment_mean_and_errors():
    t = np.arange(10) * 0.1
    y = np.array([1, 1, 1, np.nan, 2, 2, 2, 2, 3, 3], dtype=float)
    assert segment_mean(t, y, 0.0, 0.35) == pytest.approx(1.0)
    assert segment_mean(t, y, 0.35, 0.75) == pytest.approx(2.0)       # the gap is skipped
    assert segment_mean(t, y, 5.0, 6.0) is None
    assert error_pct_of_reading(103.0, 100.0) == pytest.approx(3.0)
    assert error_pct_of_reading(-97.0, -100.0) == pytest.approx(3.0)  # charging: % of |reading|
    assert error_pct_of_reading(None, 100.0) is None
    with pytest.raises(ValueError):
        error_pct_of_reading(1.0, 0.0)
    assert error_pct_of_base(1250.0, 0.0, 250e3) == pytest.approx(0.5)
    assert error_pct_of_base(None, 0.0, 250e3) is None


def test_tracking_ratio_tells_a_flatlined_channel():
    assert tracking_ratio(0.0, 25e3, 0.0, 25.1e3) == pytest.approx(1.004)
    assert tracking_ratio(0.0, 25e3, 120.0, 120.0) == 0.0                # frozen
    assert tracking_ratio(0.0, 25e3, None, 120.0) is None                # not reported
    assert tracking_ratio(5.0, 5.0, 1.0, 2.0) is None                    # reference did not move


def _snapshot(**changes) -> TelemetrySnapshot:
    fields = dict(timestamp_s=1.0, state="RUNNING", v_ln_rms_v=(277.0, 277.0, 277.0), v_ll_rms_v=480.0,
                  i_rms_a=(100.0, 100.0, 100.0), p_w=8e4, q_var=0.0, s_va=8e4, pf=1.0, freq_hz=60.0,
                  vdc_v=900.0, idc_a=90.0, soc_pct=50.0, temperature_c=30.0, current_limited=False,
                  ride_through_active=False, trip_reason=None, device_time_s=0.98)
    fields.update(changes)
    return TelemetrySnapshot(**fields)


def test_missing_fields_counts_absent_values_and_absent_phases():
    snapshots = [_snapshot(), _snapshot(i_rms_a=(100.0, None, 100.0)), _snapshot(soc_pct=None, device_time_s=None)]
    counts = missing_fields(snapshots, ["p_w", "i_rms_a", "soc_pct", "device_time_s"])
    assert counts == {"p_w": 0, "i_rms_a": 1, "soc_pct": 1, "device_time_s": 1}
    with pytest.raises(ValueError, match="soc_percent"):
        missing_fields(snapshots, ["soc_percent"])


def test_part_means_and_the_largest_change():
    t = np.arange(0.0, 3.0, 0.01)
    values = {name: np.full(t.size, 1.0) for name in
              ("p_w", "q_var", "v_a_ln_v", "v_b_ln_v", "v_c_ln_v", "i_a_a", "i_b_a", "i_c_a", "freq_hz")}
    values["q_var"] = np.where(t >= 2.0, 25e3, 0.0)
    ref = ReferenceSeries(t_s=t, values=values, source="synthetic", window_s=PERIOD_S)
    telemetry = dict(values, q_var=np.zeros(t.size))                     # a frozen Q
    parts = {"one": (0.0, 1.0), "two": (1.0, 2.0), "three": (2.0, 3.0)}
    means = part_means(ref, t, telemetry, parts)
    q = [m for m in means if m.column == "q_var"]
    assert [(m.part, m.reference, m.telemetry) for m in q] == [("one", 0.0, 0.0), ("two", 0.0, 0.0),
                                                              ("three", 25e3, 0.0)]
    before, after = largest_change(means, "q_var")
    assert (before.part, after.part) == ("two", "three")
    assert largest_change([PartMeans("one", "p_w", 1.0, 1.0)], "p_w") is None


# ------------------------------------------------------------------ timing of a change

def test_midpoint_crossing_of_a_ramp_and_of_no_change():
    t = np.arange(0.0, 1.0, 0.01)
    ramp = np.clip((t - 0.4) * 10.0, 0.0, 1.0)                          # 0 → 1 from 0.4 to 0.5 s
    assert midpoint_crossing_s(t, ramp, 0.0, 1.0, after_s=0.1) == pytest.approx(0.45)
    assert midpoint_crossing_s(t, 1.0 - ramp, 1.0, 0.0, after_s=0.1) == pytest.approx(0.45)
    assert midpoint_crossing_s(t, np.zeros(t.size), 0.0, 0.0, after_s=0.1) is None   # flatlined
    assert midpoint_crossing_s(t, ramp, 0.0, 1.0, after_s=0.6) is None                # already past
    assert midpoint_crossing_s(t, ramp, 0.0, 1.0, after_s=2.0) is None                # nothing after


def test_step_times_places_the_pcs_stamps_on_the_bench_clock():
    bench_t = np.arange(9.5, 10.5, 0.001)
    ramp = np.clip((bench_t - 10.0) * 10.0, 0.0, 1.0)                  # halfway at 10.05 s
    reads = np.repeat(np.arange(9.5, 10.5, PERIOD_S), 2)                  # each value read twice
    pcs_ramp = np.clip((reads - 0.030 - 10.0) * 10.0, 0.0, 1.0)          # the PCS shows it 30 ms late
    device_t = reads - 5.0                                               # its clock runs 5 s behind
    times = step_times(bench_t, ramp, (0.0, 1.0), device_t, pcs_ramp, (0.0, 1.0), offset_s=5.0, after_s=9.8)
    assert times.reference_s == pytest.approx(10.05, abs=1e-6)
    assert times.misalignment_ms == pytest.approx(30.0, abs=0.5)
    no_stamps = step_times(bench_t, ramp, (0.0, 1.0), device_t, pcs_ramp, (0.0, 1.0), offset_s=None, after_s=9.8)
    assert no_stamps.telemetry_s is None and no_stamps.misalignment_ms is None
    frozen = step_times(bench_t, ramp, (0.0, 1.0), device_t, np.zeros(reads.size), (0.0, 0.0), offset_s=5.0,
                        after_s=9.8)
    assert frozen.telemetry_s is None


def test_drop_time_of_a_collapsing_current():
    t = np.arange(-0.05, 0.05, 1e-5)
    i = np.where(t < 0.010, 1.0, np.exp(-(t - 0.010) / 0.001))
    assert drop_time_s(t, i, 0.5, level_until_s=0.0) == pytest.approx(0.010 + 0.001 * math.log(2), abs=2e-5)
    assert drop_time_s(t, np.ones(t.size), 0.5, level_until_s=0.0) is None
    assert drop_time_s(t, i, 0.5, level_until_s=-1.0) is None


# ------------------------------------------------------------------ T1 on the virtual bench

def test_T1_passes_the_healthy_pcs_at_every_point(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "test_T1_", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for point in ("10pct", "50pct", "75pct", "100pct"):
        assert f"PASS  T1   test_T1_telemetry_at_operating_point[{point}-rated]" in result.stdout
    assert "PASS  T1   test_T1_event_log_time_alignment" in result.stdout
    rows = measurement_rows(out)
    names = {r["name"] for r in rows}
    # the shipped virtual bench has a power analyzer: the meter T1 asks for judges the accuracy
    assert [float(r["value"]) for r in rows if r["name"] == "reference_is_power_analyzer"] == [1.0] * 4
    assert len(list((out / "captures").rglob("analyzer_readings.parquet"))) == 4
    assert {"p_error_of_reading", "q_error_of_reading", "q_error_near_zero", "voltage_error", "current_error",
            "frequency_error", "missing_channels", "tracking_p_w", "tracking_q_var", "tracking_freq_hz",
            "tracking_v_a_ln_v", "tracking_i_a_a", "time_alignment_p", "time_alignment_q",
            "event_time_resolution", "event_time_alignment", "reference_is_class_0_5S_meter"} <= names
    # every limited row names its profile clause
    assert all(r["clause"] for r in rows if r["high"] or r["low"])
    assert len(list((out / "plots").rglob("telemetry_vs_reference.png"))) == 4
    assert len(list((out / "plots").rglob("event_alignment.png"))) == 1
    assert len(list((out / "captures").rglob("pcs_telemetry.parquet"))) == 5


def test_T1_fails_a_pcs_that_reports_p_3_percent_high(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T1 and 50pct", "--defect", "telemetry_scale_error", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T1   test_T1_telemetry_at_operating_point[50pct-rated]" in result.stdout
    assert "PCS telemetry P read" in result.stdout and "+3 % of reading" in result.stdout
    assert "at most ±0.5 % of reading is allowed (reference: power analyzer YOKOGAWA WT5000" in result.stdout
    assert failed_measurements(out) == {"p_error_of_reading"}


def _bench_without_power_analyzer(tmp_path):
    text = DEFAULT_BENCH.read_text()
    text, removed = re.subn(r"\n\[instruments\.power_analyzer\]\n.*?\n\n", "\n\n", text, flags=re.S)
    assert removed == 1
    path = tmp_path / "scope_only.toml"
    path.write_text(text)
    return path


def test_T1_judges_against_the_scope_on_a_bench_without_a_power_analyzer(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T1 and 50pct", "--bench", str(_bench_without_power_analyzer(tmp_path)), "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS  T1   test_T1_telemetry_at_operating_point[50pct-rated]" in result.stdout
    rows = measurement_rows(out)
    assert [float(r["value"]) for r in rows if r["name"] == "reference_is_power_analyzer"] == [0.0]
    assert not list((out / "captures").rglob("analyzer_readings.parquet"))
    failing = tmp_path / "defect"
    result = qualify("-k", "T1 and 50pct", "--bench", str(_bench_without_power_analyzer(tmp_path)),
                     "--defect", "telemetry_scale_error", "--out", str(failing))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "+3 % of reading; at most ±0.5 % of reading is allowed (reference: oscilloscope, not a class 0.5S meter)" \
        in result.stdout
    assert failed_measurements(failing) == {"p_error_of_reading"}


def test_T1_fails_a_pcs_whose_q_reading_is_frozen(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T1 and 10pct", "--defect", "telemetry_flatline", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T1   test_T1_telemetry_at_operating_point[10pct-rated]" in result.stdout
    assert "flatlined channel: the PCS's q_var reading moved by +0" in result.stdout
    assert "it must show at least 50% of the change" in result.stdout
    assert {"tracking_q_var", "q_error_of_reading", "time_alignment_q"} <= failed_measurements(out)


def test_T1_fails_a_pcs_that_serves_stale_telemetry(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T1 and (75pct or event)", "--defect", "telemetry_timestamp_lag", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T1   test_T1_telemetry_at_operating_point[75pct-rated]" in result.stdout
    assert "the PCS telemetry shows the P step +1" in result.stdout          # ≈ +120 ms
    assert "at most ±5 ms is allowed" in result.stdout
    failed = failed_measurements(out)
    assert {"time_alignment_p", "time_alignment_q"} <= failed
    # the PCS clock is known only through its (stale) telemetry stamps, so its event log,
    # placed on the bench clock, is 120 ms late as well
    assert "event_time_alignment" in failed
    alignment = [float(r["value"]) for r in measurement_rows(out) if r["name"] == "time_alignment_p"]
    assert alignment == [pytest.approx(120.0, abs=5.0)]
