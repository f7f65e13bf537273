"""End to end: `bessbench qualify` on the virtual bench, healthy and with seeded defects.

Each run starts its own virtual bench process; ports are chosen by the OS, so runs in
parallel do not collide.
"""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bench.config import DEFAULT_BENCH
from plan_runs import measurement_rows, qualify

ROOT = Path(__file__).resolve().parent.parent





def test_healthy_pcs_passes_lvrt_with_evidence(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "lvrt", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS  T7" in result.stdout
    assert (out / "report.html").stat().st_size > 10_000
    rows = measurement_rows(out)
    names = {r["name"] for r in rows}
    assert {"continuous_current", "reactive_current_response_time", "active_power_recovery_time"} <= names
    assert all(r["outcome"] == "PASS" for r in rows)
    assert all(r["clause"] for r in rows if r["low"] or r["high"])
    captures = list((out / "captures").rglob("*.parquet"))
    assert len(captures) == 6          # four balanced sags, a single-phase and a two-phase one
    frame = pd.read_parquet(captures[0])
    assert frame.attrs["units"]["i_a"] == "A"
    assert list((out / "plots").rglob("*.png"))
    identities = json.loads((out / "instruments.json").read_text())
    assert identities["pcs"]["serial"] == "VPCS-0001"
    assert identities["oscilloscope"]["model"].startswith("MSO5")
    assert "git_revision" in json.loads((out / "software.json").read_text())
    steps = json.loads((out / "safe_state.json").read_text())[-1]
    assert [s["role"] for s in steps] == ["pcs", "ac_load", "load_bank", "genset", "grid_simulator", "dc_source", "power_analyzer"]
    assert all(s["outcome"] == "done" for s in steps)


def test_trip_on_sag_fails_with_what_was_seen(tmp_path):
    result = qualify("-k", "lvrt", "--defect", "trip_on_sag", "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T7" in result.stdout
    assert "current ceased" in result.stdout
    assert "mandatory operation requires continuous current" in result.stdout


def test_no_reactive_injection_fails_on_the_reactive_current(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "lvrt", "--defect", "no_reactive_injection", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    failed = {r["name"] for r in measurement_rows(out) if r["outcome"] == "FAIL"}
    assert "reactive_current_injection" in failed


def test_bad_bench_file_exits_2(tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(DEFAULT_BENCH.read_text().replace('driver = "ametek_mx"', 'driver = "nope"'))
    result = qualify("--bench", str(bench), timeout_s=120)
    assert result.returncode == 2
    assert "instruments.grid_simulator.driver" in result.stderr


def test_selection_matching_nothing_exits_2(tmp_path):
    result = qualify("-k", "no_such_test", "--out", str(tmp_path / "run"), timeout_s=300)
    assert result.returncode == 2


def test_unknown_defect_exits_2():
    result = qualify("--defect", "gremlins", timeout_s=120)
    assert result.returncode == 2
    assert "gremlins" in result.stderr


def test_pcs_with_another_serial_is_never_commanded(tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(DEFAULT_BENCH.read_text().replace('\nserial = "VPCS-0001"', '\nserial = "VPCS-9999"'))
    out = tmp_path / "run"
    result = qualify("--bench", str(bench), "-k", "lvrt", "--out", str(out))
    assert result.returncode == 1
    assert "VPCS-9999" in result.stdout and "VPCS-0001" in result.stdout
    log = (out / "virtual_bench.log").read_text()
    assert "modbus write" not in log.lower()


def test_pcs_killed_mid_test_ends_safe_with_evidence(tmp_path):
    out = tmp_path / "run"
    plan = ROOT / "tests" / "fault_plans" / "plan_pcs_killed.py"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(plan), "-p", "bench.plugin", "--out", str(out),
         "-p", "no:cacheprovider", "-q", "--rootdir", str(plan.parent)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "FAIL" in result.stdout
    assert list((out / "captures").rglob("before_the_loss.parquet"))
    steps = json.loads((out / "safe_state.json").read_text())[-1]
    outcome = {s["role"]: s["outcome"] for s in steps}
    assert outcome["grid_simulator"] == "done" and outcome["dc_source"] == "done"
    assert outcome["pcs"].startswith("FAILED")
