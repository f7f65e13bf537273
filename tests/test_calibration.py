"""Calibration records, policy and corrections; the run refuses or marks expired instruments."""
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.config import DEFAULT_BENCH
from calibration.corrections import correct_channel
from calibration.policy import CalibrationRefused, calibration_status, enforce
from calibration.records import RECORDS_DIR, CalibrationRecordError, ChannelCorrection, load_record, load_records

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 27)
RECORD = """
[instrument]
manufacturer = "TEKTRONIX"
model = "MSO58"
serial = "C000001"
[calibration]
date = {date}
due = {due}
certificate = "CAL-1"
"""


def _record(tmp_path, date="2026-01-01", due="2027-01-01", extra=""):
    path = tmp_path / "scope.toml"
    path.write_text(RECORD.format(date=date, due=due) + extra)
    return path


def test_shipped_records_load():
    assert {r.serial for r in load_records()} >= {"C000001", "MY59000001", "MX45-SIM-0001"}


def test_missing_fields_and_due_before_date_are_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[instrument]\nmodel = "MSO58"\n[calibration]\ndate = 2026-05-01\ndue = 2026-04-01\n')
    with pytest.raises(CalibrationRecordError) as err:
        load_record(path)
    text = str(err.value)
    assert "instrument.serial: missing" in text and "calibration.certificate: missing" in text
    assert "is not after the calibration date" in text


def test_status_valid_due_soon_expired_and_missing(tmp_path):
    records = [load_record(_record(tmp_path, due="2026-12-15"))]
    assert calibration_status("oscilloscope", "MSO58", "C000001", records, TODAY).state == "due_soon"
    assert calibration_status("oscilloscope", "MSO58", "C000001", records, dt.date(2026, 6, 1)).state == "valid"
    expired = calibration_status("oscilloscope", "MSO58", "C000001", records, dt.date(2027, 2, 1))
    assert expired.state == "expired" and "2026-12-15" in expired.detail
    missing = calibration_status("oscilloscope", "MSO58", "C999999", records, TODAY)
    assert missing.state == "no_record"
    with pytest.raises(CalibrationRefused, match="expired"):
        enforce([expired], allow_uncalibrated=False)
    assert enforce([expired], allow_uncalibrated=True) is False


def test_corrections_gain_offset_and_deskew():
    t_s = np.arange(0, 1e-3, 1e-6)
    values = np.sin(2 * np.pi * 1e3 * t_s)
    corrected = correct_channel(t_s, values, ChannelCorrection(1, gain=1.01, offset=0.5))
    assert np.allclose(corrected, 1.01 * values + 0.5)
    # a channel that shows events 10 µs late is moved 10 µs earlier
    shifted = correct_channel(t_s, values, ChannelCorrection(1, deskew_s=10e-6))
    assert np.allclose(shifted[:-20], np.sin(2 * np.pi * 1e3 * (t_s[:-20] + 10e-6)), atol=1e-4)


def _bench_with_records(tmp_path, due="2026-02-01"):
    records = tmp_path / "records"
    shutil.copytree(RECORDS_DIR, records)
    scope = records / "virtual_tektronix_mso58_C000001.toml"
    scope.write_text(scope.read_text().replace("due = 2036-01-05", f"due = {due}"))
    bench = tmp_path / "bench.toml"
    bench.write_text(DEFAULT_BENCH.read_text().replace(
        'profile = "ieee2800_2022"', 'profile = "ieee2800_2022"\ncalibration_dir = "records"'))
    return bench


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_expired_scope_refuses_the_run_and_leaves_outputs_off(tmp_path):
    out = tmp_path / "run"
    result = _cli("qualify", "--bench", str(_bench_with_records(tmp_path)), "-k", "0.80pu", "--out", str(out))
    assert result.returncode == 1
    assert "oscilloscope: calibration expired on 2026-02-01" in result.stdout
    steps = json.loads((out / "safe_state.json").read_text())[-1]
    assert all(s["outcome"].startswith("done") or s["outcome"] == "not open" for s in steps)


def test_allow_uncalibrated_runs_and_marks_the_report(tmp_path):
    out = tmp_path / "run"
    result = _cli("qualify", "--bench", str(_bench_with_records(tmp_path)), "-k", "0.80pu", "--out", str(out),
                  "--allow-uncalibrated")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "NOT VALID FOR QUALIFICATION" in result.stdout
    assert "NOT VALID FOR QUALIFICATION" in (out / "report.html").read_text()
    assert json.loads((out / "run.json").read_text())["valid_for_qualification"] is False


def test_check_reports_expired_calibration_and_exits_1(tmp_path):
    result = _cli("check", "--bench", str(_bench_with_records(tmp_path)))
    assert result.returncode == 1
    assert "FAIL oscilloscope" in result.stdout and "expired" in result.stdout
    assert "OK   pcs" in result.stdout


def test_check_on_the_default_virtual_bench_passes():
    result = _cli("check")
    assert result.returncode == 0, result.stdout
    assert "all checks passed" in result.stdout
