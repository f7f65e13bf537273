"""T12 (control transparency): the package check and the declared-vs-measured comparison it
rests on, and proof on the virtual bench that the plan passes the healthy PCS, refuses an
incomplete package, and fails the defects that change a declared response.

Each qualify run starts its own virtual bench (ports chosen by the OS); `-k` keeps them short.
"""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.profiles import load_profile
from bench.transparency import (DeclaredTrace, SubmissionError, compare_with_declared, decimated_trace,
                                distinct_operating_points, dq_point_problems, load_submission, missing_files,
                                parameter_gaps, read_declared_trace)
from plan_runs import ROOT, failed_measurements, measurement_rows, qualify

SHIPPED = ROOT / "testplans" / "submissions" / "vpcs250"
REQUIRED = load_profile("ieee2800_2022").setting("transparency.required_parameters")


@pytest.fixture
def package_copy(tmp_path) -> Path:
    """A copy of the shipped package to break."""
    return Path(shutil.copytree(SHIPPED, tmp_path / "vpcs250"))


def _edit_manifest(package: Path, old: str, new: str) -> None:
    manifest = package / "manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in the shipped manifest"
    manifest.write_text(text.replace(old, new, 1), encoding="utf-8")


def _drop_parameter(package: Path, name: str) -> None:
    manifest = package / "manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    block = re.compile(r'\[\[parameters\]\]\nname = "' + name + r'"\n(?:(?!\[\[).*\n)*')
    assert block.search(text)
    manifest.write_text(block.sub("", text, count=1), encoding="utf-8")


# ------------------------------------------------------------------ the shipped package

def test_the_shipped_package_is_complete():
    package = load_submission(SHIPPED)
    assert missing_files(package) == []
    assert parameter_gaps(package, REQUIRED) == {}
    assert package.emt_time_step_s == pytest.approx(50e-6)
    assert not any(dq_point_problems(package).values())
    assert distinct_operating_points(list(package.dq_points)) >= 4
    assert {r.name for r in package.responses} == {"active_power_step", "reactive_power_step", "sag_reactive_current"}
    for response in package.responses:
        trace = read_declared_trace(package.path(response.file))
        assert trace.window_s[0] < 0.0 < trace.window_s[1]   # the stimulus instant is inside the window


# ------------------------------------------------------------------ package check, unit level

def test_a_missing_model_file_is_named(package_copy):
    (package_copy / "model" / "vpcs250_averaged_emt.md").unlink()
    assert missing_files(load_submission(package_copy)) == ["model/vpcs250_averaged_emt.md"]


def test_a_missing_or_incomplete_parameter_is_named_with_the_reason(package_copy):
    _drop_parameter(package_copy, "pll_bandwidth_hz")
    _edit_manifest(package_copy, 'units = "pu/pu"\n', "")               # k_factor without units
    gaps = parameter_gaps(load_submission(package_copy), REQUIRED)
    assert gaps == {"pll_bandwidth_hz": "not in the parameter list", "k_factor": "listed without units"}


def test_an_unusable_dq_file_does_not_count_as_an_operating_point(package_copy):
    (package_copy / "dq_impedance" / "op5_pm050_q000.csv").write_text("f_hz,zdd_re_ohm\n1,2\n")
    package = load_submission(package_copy)
    problems = dq_point_problems(package)
    assert "missing column(s)" in problems["P-0.50 Q0.00"]
    assert distinct_operating_points([p for p in package.dq_points if not problems[p.label]]) == 4


def test_a_malformed_manifest_is_refused_with_every_problem(package_copy):
    _edit_manifest(package_copy, 'stimulus = "balanced_sag"', 'stimulus = "phase_jump"')
    _edit_manifest(package_copy, 'time_step_s = 50e-6', 'time_step_s = "fast"')
    with pytest.raises(SubmissionError) as error:
        load_submission(package_copy)
    assert "phase_jump" in str(error.value) and "time_step_s" in str(error.value)


# ------------------------------------------------------------------ comparison, known answers

def test_comparison_of_a_ramp_five_times_slower_than_declared():
    t = np.arange(-0.1, 1.5, 1 / 480)
    measured = 0.2 + np.clip(t, 0, None) * 0.2                         # 0.2 pu/s
    declared = DeclaredTrace(np.arange(-0.1, 1.5, 1 / 60), 0.2 + np.clip(np.arange(-0.1, 1.5, 1 / 60), 0, 0.6))
    result = compare_with_declared(t, measured, declared, band_pu=0.08)
    assert result.max_error_pu == pytest.approx(0.48, abs=2e-3)        # at the end of the declared ramp
    assert result.worst_t_s == pytest.approx(0.6, abs=1 / 60)
    assert result.first_beyond_band_s == pytest.approx(0.1, abs=1 / 60)  # 1 pu/s - 0.2 pu/s apart by 0.08 pu
    assert result.rms_error_pu > 0.25


def test_comparison_of_an_identical_trace_is_zero_and_never_leaves_the_band():
    t = np.linspace(-0.1, 1.0, 500)
    y = np.tanh(5 * np.clip(t, 0, None))
    result = compare_with_declared(t, y, decimated_trace(t, y, start_s=-0.1, end_s=1.0, step_s=0.01, decimals=6),
                                   band_pu=0.01)
    assert result.max_error_pu < 1e-5 and result.rms_error_pu < 1e-5
    assert result.first_beyond_band_s is None


def test_comparison_refuses_a_measurement_that_does_not_cover_the_declared_window():
    declared = DeclaredTrace(np.array([-0.1, 0.0, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="does not cover"):
        compare_with_declared(np.linspace(0.0, 1.0, 50), np.zeros(50), declared, band_pu=0.1)


# ------------------------------------------------------------------ T12 on the virtual bench

def _bench_judging_package(tmp_path: Path, package: Path) -> Path:
    """A virtual bench whose profile (ieee2800_2022 otherwise) names another submission package."""
    profile = tmp_path / "profile_t12.toml"
    profile.write_text(f'[profile]\nid = "t12_broken_package"\ntitle = "T12 broken package"\n'
                       f'inherits = "ieee2800_2022"\n\n[transparency]\nsubmission = "{package}"\n', encoding="utf-8")
    bench = tmp_path / "bench.toml"
    text = (ROOT / "bench" / "benches" / "virtual.toml").read_text(encoding="utf-8")
    bench.write_text(text.replace('profile = "ieee2800_2022"', f'profile = "{profile}"', 1), encoding="utf-8")
    return bench


def test_T12_package_check_fails_each_missing_item_with_a_clear_message(tmp_path, package_copy):
    (package_copy / "model" / "vpcs250_averaged_emt.md").unlink()
    _drop_parameter(package_copy, "pll_bandwidth_hz")
    _edit_manifest(package_copy, "time_step_s = 50e-6", "time_step_s = 100e-6")
    out = tmp_path / "run"
    result = qualify("--bench", str(_bench_judging_package(tmp_path, package_copy)), "-k", "T12 and package",
                     "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "FAIL  T12  test_T12_submission_package" in result.stdout
    assert "model/vpcs250_averaged_emt.md, listed in the submission manifest, is not in the package" in result.stdout
    assert "required parameter pll_bandwidth_hz is not in the parameter list" in result.stdout
    assert "declared time step is 100 µs; at most 50 µs is allowed" in result.stdout
    assert failed_measurements(out) == {"package_file_missing[model/vpcs250_averaged_emt.md]",
                                        "parameter_missing[pll_bandwidth_hz]", "declared_emt_time_step"}


def test_T12_passes_the_healthy_pcs(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T12", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS  T12  test_T12_submission_package" in result.stdout
    for name in ("active_power_step", "reactive_power_step", "sag_reactive_current"):
        assert f"PASS  T12  test_T12_declared_response[{name}]" in result.stdout
    rows = {r["name"]: r for r in measurement_rows(out)}
    assert {"declared_emt_time_step", "dq_impedance_operating_points", "active_power_step_rms_error",
            "active_power_step_max_error", "sag_reactive_current_worst_divergence_time"} <= set(rows)
    assert all(rows[n]["clause"] for n in rows if n.endswith(("_rms_error", "_max_error")))
    assert len(list((out / "plots").rglob("declared_vs_measured.png"))) == 3


def test_T12_fails_a_pcs_whose_active_power_step_is_slower_than_declared(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T12 and active_power_step", "--defect", "dr_slow_response", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T12  test_T12_declared_response[active_power_step]" in result.stdout
    assert "departs from the declared response by up to" in result.stdout
    assert "at most 0.08 pu is allowed" in result.stdout and "they diverge most 0.600 s after the stimulus" in result.stdout
    assert {"active_power_step_rms_error", "active_power_step_max_error"} <= failed_measurements(out)


def test_T12_fails_a_pcs_that_injects_no_reactive_current_in_a_sag(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T12 and sag", "--defect", "no_reactive_injection", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T12  test_T12_declared_response[sag_reactive_current]" in result.stdout
    assert "measured iq_pu is" in result.stdout and "at most 0.03 pu is allowed" in result.stdout
    assert {"sag_reactive_current_rms_error", "sag_reactive_current_max_error"} <= failed_measurements(out)
