"""DR (disturbance records), C1 (SCADA points) and C2 (settings): the reader and analysis they
rest on, and proof on the virtual bench that each plan passes the healthy PCS and fails the
defects it exists to catch.

The COMTRADE reader is checked against the public `comtrade` package on files written here
with known samples (binary and ASCII). Each qualify run starts its own virtual bench; `-k`
keeps them short.
"""
import csv
import datetime as dt
import math
import re
import struct
from pathlib import Path

import comtrade
import numpy as np
import pytest

from bench.comtrade_reader import ComtradeError, parse_cfg, read_comtrade
from bench.disturbance_records import (elapsed_time_mismatch_s, missing_channels, record_figures, record_onset_s,
                                       space_vector_magnitude, step_onset_s)
from bench.point_check import range_problem, same_point_value, write_test_value
from bench.settings_check import SettingsFileError, Tolerances, compare_curve, load_approved_settings
from dut.pointmap import VendorPoint
from plan_runs import failed_measurements, measurement_rows, qualify

ROOT = Path(__file__).resolve().parent.parent







# ------------------------------------------------------------------ a record with known samples
FS_HZ, F0_HZ, N = 960.0, 60.0, 96          # 16 samples/cycle, 0.1 s
START = dt.datetime(2026, 3, 4, 5, 6, 7, 250000)
TRIGGER = START + dt.timedelta(seconds=0.04)
A_VOLT, B_VOLT, A_AMP = 0.02, 1.5, 0.01


def _known_samples():
    t = np.arange(N) / FS_HZ
    amplitude = np.where(t < 0.04, 390.0, 200.0)   # a sag at 40 ms
    volts = [amplitude * np.cos(2 * np.pi * F0_HZ * t - k * 2 * np.pi / 3) for k in range(3)]
    raw_v = [np.round((v - B_VOLT) / A_VOLT).astype(int) for v in volts]
    raw_i = np.round(150.0 * np.sin(2 * np.pi * F0_HZ * t) / A_AMP).astype(int)
    raw_i[10] = -32768                               # one missing sample
    flag = (t >= 0.04).astype(int)
    return t, raw_v, raw_i, flag


def _cfg(file_type: str) -> str:
    lines = ["Test station,Recorder 7,2013", "6,4A,2D",
             *[f"{k + 1},V{p},{p},PCC,V,{A_VOLT},{B_VOLT},0,-32767,32767,1,1,P" for k, p in enumerate("ABC")],
             f"4,IA,A,PCS,A,{A_AMP},0,0,-32767,32767,1,1,P",
             "1,CURRENT_LIMITED,,,0", "2,TRIPPED,,,0",
             "60", "1", f"{FS_HZ:g},{N}",
             START.strftime("%d/%m/%Y,%H:%M:%S.%f"), TRIGGER.strftime("%d/%m/%Y,%H:%M:%S.%f"),
             file_type, "1", "0,0", "0,0"]
    return "\r\n".join(lines) + "\r\n"


def _binary_dat() -> bytes:
    _, raw_v, raw_i, flag = _known_samples()
    return b"".join(struct.pack("<II4hH", n + 1, round(n * 1e6 / FS_HZ), raw_v[0][n], raw_v[1][n], raw_v[2][n],
                                raw_i[n], flag[n]) for n in range(N))


def _ascii_dat() -> bytes:
    # missing sample as 99999: the `comtrade` package reads that (not an empty field) as missing
    _, raw_v, raw_i, flag = _known_samples()
    rows = [f"{n + 1},{round(n * 1e6 / FS_HZ)},{raw_v[0][n]},{raw_v[1][n]},{raw_v[2][n]},"
            f"{99999 if raw_i[n] == -32768 else raw_i[n]},{flag[n]},0" for n in range(N)]
    return ("\r\n".join(rows) + "\r\n").encode("ascii")


@pytest.mark.parametrize("file_type, dat", [("BINARY", _binary_dat), ("ASCII", _ascii_dat)])
def test_reader_agrees_with_the_public_comtrade_package(tmp_path, file_type, dat):
    cfg_text, dat_bytes = _cfg(file_type), dat()
    (tmp_path / "r.cfg").write_text(cfg_text, newline="")
    (tmp_path / "r.dat").write_bytes(dat_bytes)
    theirs = comtrade.Comtrade()
    theirs.load(str(tmp_path / "r.cfg"), str(tmp_path / "r.dat"))
    ours = read_comtrade(cfg_text, dat_bytes)

    assert [c.name for c in ours.config.analogs] == theirs.analog_channel_ids
    assert list(ours.digital) == theirs.status_channel_ids
    assert ours.config.start_time == theirs.start_timestamp
    assert ours.config.trigger_time == theirs.trigger_timestamp
    assert ours.sample_rate_hz == FS_HZ
    np.testing.assert_allclose(ours.time_s, theirs.time, atol=1e-6)
    for i, name in enumerate(theirs.analog_channel_ids):
        mine, other = ours.analog[name], np.asarray(theirs.analog[i], dtype=float)
        known = np.isfinite(mine)
        np.testing.assert_allclose(mine[known], other[known], rtol=1e-6)   # it computes in float32
    for i, name in enumerate(theirs.status_channel_ids):
        np.testing.assert_array_equal(ours.digital[name], np.asarray(theirs.status[i], dtype=bool))
    # and the known values themselves: a = 0.02 V/count, b = 1.5 V; the missing sample is NaN
    t, raw_v, raw_i, _ = _known_samples()
    np.testing.assert_allclose(ours.analog["VA"], raw_v[0] * A_VOLT + B_VOLT)
    assert math.isnan(ours.analog["IA"][10]) and ours.analog["IA"][11] == pytest.approx(raw_i[11] * A_AMP)
    assert ours.config.pre_trigger_s == pytest.approx(0.04)
    assert ours.duration_s == pytest.approx(0.1)


def test_reader_refuses_inconsistent_files_with_a_located_reason():
    with pytest.raises(ComtradeError, match="line 2"):
        parse_cfg(_cfg("BINARY").replace("6,4A,2D", "7,4A,2D"))
    with pytest.raises(ComtradeError, match="file type"):
        parse_cfg(_cfg("BINARY").replace("BINARY", "BINARY64"))
    with pytest.raises(ComtradeError, match="whole number"):
        read_comtrade(_cfg("BINARY"), _binary_dat()[:-3])
    with pytest.raises(ComtradeError, match="announces 96 samples"):
        read_comtrade(_cfg("BINARY"), _binary_dat()[:-18])             # one whole sample short


def test_reader_reads_what_the_virtual_pcs_writes():
    from bench.comtrade_writer import AnalogChannel, ComtradeRecord, DigitalChannel, write_comtrade
    values = np.linspace(-300.0, 300.0, 64)
    values[5] = np.nan
    files = write_comtrade(ComtradeRecord("st", "dev", 60.0, 1920.0, START, TRIGGER,
                                          [AnalogChannel("VA", "V", values, phase="A")],
                                          [DigitalChannel("TRIPPED", np.arange(64) > 30)]))
    record = read_comtrade(files.cfg.decode("ascii"), files.dat)
    np.testing.assert_allclose(np.delete(record.analog["VA"], 5), np.delete(values, 5), atol=600 / 65534)
    assert math.isnan(record.analog["VA"][5])
    assert record.digital["TRIPPED"].sum() == 33


# ------------------------------------------------------------------ DR analysis
def test_record_figures_and_channels_of_the_known_record():
    record = read_comtrade(_cfg("BINARY"), _binary_dat())
    figures = record_figures(record, 60.0)
    assert figures.samples_per_cycle == pytest.approx(16.0)
    assert figures.pre_trigger_cycles == pytest.approx(2.4)
    assert figures.duration_cycles == pytest.approx(6.0)
    assert missing_channels(record, ["VA", "VB", "VC", "IA", "IB", "P"], ["tripped", "Ride-Through Active"]) == \
        ["IB", "P", "Ride-Through Active"]


def test_step_onset_is_found_at_the_sample_it_happens_and_alignment_cancels_a_clock_offset():
    record = read_comtrade(_cfg("BINARY"), _binary_dat())
    # the sag starts at 40 ms; a 16 samples/cycle record resolves it within one sample period
    assert record_onset_s(record, ("VA", "VB", "VC"), 60.0) == pytest.approx(0.04, abs=1 / FS_HZ)
    fs = 10_000.0
    t = np.arange(-0.1, 0.2, 1 / fs)
    amp = np.where(t < 0.0123, 1.0, 0.6)
    phases = [amp * np.cos(2 * np.pi * 60 * t - k * 2 * np.pi / 3) for k in range(3)]
    onset = step_onset_s(t, space_vector_magnitude(*phases), steady_until_s=0.0)
    assert onset == pytest.approx(0.0123, abs=1 / fs)
    base = dt.datetime(2026, 1, 1)
    # records 1000 s ahead of the bench clock, both events 3 s apart: aligned
    assert elapsed_time_mismatch_s(base + dt.timedelta(seconds=1003.0), 3.0, base + dt.timedelta(seconds=1000.0),
                                   0.0) == pytest.approx(0.0)
    # a record stamped 7 ms late
    assert elapsed_time_mismatch_s(base + dt.timedelta(seconds=1003.007), 3.0,
                                   base + dt.timedelta(seconds=1000.0), 0.0) == pytest.approx(0.007)


# ------------------------------------------------------------------ C1 / C2 helpers
def test_write_test_values_stay_inside_the_declared_range_and_differ():
    k = VendorPoint("k_factor", 41003, "uint16", 1, "RW", scale=0.01, minimum=0.0, maximum=10.0)
    assert write_test_value(k, 2.0, 10) == pytest.approx(2.1)
    assert write_test_value(k, 10.0, 10) == pytest.approx(9.9)
    mode = VendorPoint("m", 1, "enum16", 1, "RW", values={0: "A", 1: "B", 2: "C"})
    assert write_test_value(mode, "C", 10) == "A"
    assert range_problem(mode, 7) and range_problem(mode, "B") is None
    assert "above its declared maximum" in range_problem(k, 10.5)
    assert same_point_value(k, 2.004, 2.0) and not same_point_value(k, 2.01, 2.0)


def test_curve_comparison_lists_each_point_with_expected_and_actual():
    tol = Tolerances(trip_voltage_pu=0.001, trip_time_s=0.002, setting_pct=0.5)
    out = compare_curve("lv", ((0.5, 2.0), (0.88, 21.0)), ((0.88, 21.0), (0.5, 2.5)), tol)
    bad = [(c.name, c.expected, c.actual) for c in out if not c.matches]
    assert bad == [("lv[1].t_s", 2.0, 2.5)]
    short = compare_curve("lv", ((0.5, 2.0), (0.88, 21.0)), ((0.5, 2.0),), tol)
    assert {c.name for c in short if not c.matches} == {"lv.points", "lv[2].v_pu", "lv[2].t_s"}


def test_shipped_settings_file_loads_and_a_bad_one_is_refused(tmp_path):
    approved = load_approved_settings(ROOT / "testplans" / "settings" / "vpcs_approved.toml")
    assert approved.ride_through_settings().lv_must_trip == ((0.50, 2.0), (0.88, 21.0))
    bad = tmp_path / "bad.toml"
    bad.write_text('[approval]\n[ride_through]\nlv_must_trip = [[0.5]]\n[ratings]\nwatts = 1\n')
    with pytest.raises(SettingsFileError) as exc:
        load_approved_settings(bad)
    assert "lv_must_trip[0]" in str(exc.value) and "ratings.watts" in str(exc.value)


# ------------------------------------------------------------------ DR on the virtual bench
def test_DR_passes_the_healthy_pcs_with_records_as_evidence(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "DR", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.count("PASS  DR") == 3
    names = {r["name"] for r in measurement_rows(out)}
    assert {"required_channels_missing", "record_sample_rate", "record_pre_trigger", "record_duration",
            "record_time_alignment"} <= names
    assert len(list((out / "captures").rglob("*LIMIT_ENTER.cfg"))) == 1
    assert len(list((out / "plots").rglob("record_overlay.png"))) == 3


def test_DR_fails_a_recorder_with_a_short_pre_trigger(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "DR and 1-sag", "--defect", "recorder_short_pretrigger", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  DR" in result.stdout
    assert "before its trigger; at least 2 cycles of pre-trigger data are required" in result.stdout
    assert "record_pre_trigger" in failed_measurements(out)


def test_DR_fails_a_recorder_that_drops_the_phase_currents(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "DR and 1-sag", "--defect", "recorder_missing_channels", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "lacks IA, IB, IC" in result.stdout
    assert failed_measurements(out) == {"required_channels_missing"}


# ------------------------------------------------------------------ C1 on the virtual bench
def test_C1_passes_the_healthy_pcs_and_leaves_every_setting_as_it_found_it(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "C1", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.count("PASS  C1") == 4
    checks = list(csv.DictReader(open(next((out / "captures").rglob("write_check.csv")))))
    assert len(checks) >= 15 and all(r["restored"] == "True" and r["accepted"] == "True" for r in checks)
    rows = measurement_rows(out)
    assert {"active_power_error", "reactive_power_error", "frequency_error", "dc_current_error"} <= \
        {r["name"] for r in rows}
    # the virtual bench has a power analyzer: it is the reference for what it measures
    assert [float(r["value"]) for r in rows if r["name"] == "reference_is_power_analyzer"] == [1.0, 1.0]
    compared = list(csv.DictReader(open(next((out / "captures").rglob("telemetry_vs_reference.csv")))))
    sources = {r["telemetry"]: r["reference instrument"] for r in compared}
    assert sources["p_w"].startswith("power analyzer YOKOGAWA WT5000")
    assert sources["i_rms_a[B]"].startswith("power analyzer")
    assert sources["v_ll_rms_v"] == "oscilloscope" and sources["vdc_v"] == "DC source"
    assert len(list((out / "captures").rglob("analyzer_readings.parquet"))) == 2


def test_C1_fails_a_wrong_active_power_scale(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "C1 and telemetry and P+0.80", "--defect", "telemetry_scale_error", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "the PCS reports p_w = 206000 W where the bench measures 200000 W (+3 % of reading)" in result.stdout
    assert "at most ±0.5 % of reading is allowed (reference: power analyzer YOKOGAWA WT5000" in result.stdout
    assert "active_power_error" in failed_measurements(out)


def test_C1_fails_a_frozen_reactive_power_channel(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "C1 and telemetry and P+0.80", "--defect", "telemetry_flatline", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    # the channel holds whatever it read when the PCS reached RUNNING (about 0 var)
    assert re.search(r"the PCS reports q_var = -?\d+ var where the bench measures 7(?:4999\.\d|5000) var "
                     r"\(-(?:100|99.9) % of reading\)", result.stdout), result.stdout[-3000:]
    assert "reactive_power_error" in failed_measurements(out)


# ------------------------------------------------------------------ C2 on the virtual bench
def test_C2_passes_the_healthy_pcs(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "C2", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS  C2" in result.stdout
    assert next((out / "captures").rglob("settings_approved_vs_pcs.csv")).exists()


def test_C2_fails_a_pcs_that_stores_a_trip_time_other_than_written(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "C2", "--defect", "trip_setting_drift", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "ride_through.lv_must_trip[1].t_s: approved 2 s (± 0.002 s), PCS has 2.5 s" in result.stdout
    # the read-back after writing sees it first, the settings comparison names the value
    assert failed_measurements(out) == {"trip_curves_stored_as_written", "ride_through.lv_must_trip[1].t_s"}
