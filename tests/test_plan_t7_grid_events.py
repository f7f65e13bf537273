"""T7's grid events (frequency ride-through, RoCoF, phase-angle jump, two-phase sag): the
profiles they read, the figures they judge with, and proof on the virtual bench that each
sub-test passes the healthy PCS and fails the seeded defect it exists to catch.

The bench runs use the IEEE 1547 Category I and II profiles (new with these sub-tests) through
a short site profile in tmp_path that only trims hold times. Each run starts its own virtual
bench and runs the T7 plan module alone (as `bessbench qualify` runs the plans, without the
other plans' collection).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.analysis import RocofSeries
from bench.profiles import PROFILE_DIR, ProfileError, load_profile
from bench.procedures import RETURN_SEGMENT_S, frequency_excursion, phase_jump_event
from bench.ride_through import (applied_rocof_hz_per_s, frequency_bands, frequency_watt_expected_pu,
                                settling_time_s)
from bench.sim.defects import DEFECTS
from plan_runs import failed_measurements, measurement_rows

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "testplans" / "test_t7_ride_through.py"
NEW_PROFILES = ("ieee1547_cat1", "ieee1547_cat2")


# ------------------------------------------------------------------ profiles
@pytest.mark.parametrize("path", sorted(PROFILE_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_profile_loads_and_its_t7_grid_events_are_complete(path):
    profile = load_profile(path.stem)
    assert profile.regions("lvrt.regions")
    if profile.has("frt.bands"):
        bands = frequency_bands(profile, "frt.bands")
        assert bands and all(b.clause.clause for b in bands)
        for point in profile.setting("frt.test_points"):
            assert any(b.contains(point["f_hz"]) and point["duration_s"] <= b.duration_s for b in bands)
        for key, units in (("deadband", "Hz"), ("droop", "%"), ("response_time", "s"), ("tolerance", "pu")):
            assert profile.clause(f"frt.frequency_watt.{key}", units).clause
    if profile.has("rocof.test_points"):
        assert profile.clause("rocof.ride_through", "Hz/s").value > 0
    if profile.has("phase_jump.test_points"):
        for point in profile.setting("phase_jump.test_points"):
            assert profile.clause(f"phase_jump.{point['kind']}", "deg").value > 0
        assert profile.clause("phase_jump.cessation.max", "s").value == 0.5


def test_ieee1547_categories_have_their_rocof_and_cat_i_ii_regions():
    rocof = {name: load_profile(name).clause("rocof.ride_through", "Hz/s")
             for name in ("ieee1547_cat1", "ieee1547_cat2", "ieee1547_cat3", "ieee2800_2022")}
    assert {name: c.value for name, c in rocof.items()} == {
        "ieee1547_cat1": 0.5, "ieee1547_cat2": 2.0, "ieee1547_cat3": 3.0, "ieee2800_2022": 5.0}
    assert rocof["ieee1547_cat1"].confidence == "primary"
    for name in NEW_PROFILES:
        profile = load_profile(name)
        assert all(r.clause.confidence == "recall" for r in profile.regions("lvrt.regions"))
        assert profile.clause("phase_jump.single_phase", "deg").value == 60.0      # inherited from Cat III
        assert profile.region_for("lvrt.regions", 0.70).kind == "mandatory_operation"
    cat1 = load_profile("ieee1547_cat1")
    assert cat1.region_for("lvrt.regions", 0.71).duration_s == 0.7
    assert cat1.region_for("lvrt.regions", 0.5).kind == "permissive_operation"
    assert load_profile("ieee1547_cat2").region_for("lvrt.regions", 0.66).duration_s == 3.0


def test_a_frequency_band_missing_a_field_is_named(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('[profile]\nid = "site"\ntitle = "site"\ninherits = "ieee2800_2022"\n'
                    '[[frt.bands]]\nkind = "mandatory_operation"\nf_min_hz = 57.0\nduration_s = 10.0\n'
                    'clause = "x"\nconfidence = "site"\n')
    with pytest.raises(ProfileError, match=r"frt.bands\[0\]': missing f_max_hz"):
        frequency_bands(load_profile(str(path)), "frt.bands")


# ------------------------------------------------------------------ figures and stimuli
def test_frequency_watt_expectation_follows_the_droop_outside_its_deadband():
    # 5 % droop at 60 Hz: 1 pu per 3 Hz beyond the 0.036 Hz deadband
    assert frequency_watt_expected_pu(61.5, 60.0, 0.036, 5.0, 0.7) == pytest.approx(0.7 - 1.464 / 3)
    assert frequency_watt_expected_pu(58.6, 60.0, 0.036, 5.0, 0.5) == pytest.approx(0.5 + 1.364 / 3)
    assert frequency_watt_expected_pu(60.03, 60.0, 0.036, 5.0, 0.5) == 0.5
    assert frequency_watt_expected_pu(57.0, 60.0, 0.036, 5.0, 0.7) == 1.0             # within the rating
    assert frequency_watt_expected_pu(62.9, 60.0, 0.036, 2.0, 0.0) == -1.0            # a BESS charges


def test_settling_time_and_applied_rocof():
    t = np.arange(0.0, 1.0, 0.01)
    y = np.where(t < 0.3, 1.0 + 0.5 * np.cos(40 * t), 1.0)
    assert settling_time_s(t, y, 0.0, 1.0, 1.0, 0.05) == pytest.approx(0.3)
    assert settling_time_s(t, np.ones_like(t), 0.0, 1.0, 1.0, 0.05) == 0.0
    assert settling_time_s(t, 1.0 + np.sin(30 * t), 0.0, 0.99, 1.0, 0.05) is None    # never settles
    f = np.concatenate([np.full(10, 60.0), 60.0 - 2.0 * np.arange(1, 51) * 0.01, np.full(10, 59.0)])
    tf = np.arange(f.size) * 0.01
    slope = np.gradient(f, tf)
    assert applied_rocof_hz_per_s(RocofSeries(tf, slope), 0.1, 0.6) == pytest.approx(2.0)


def test_stimuli_of_the_grid_events():
    segments = frequency_excursion(58.0, 1.0, 277.0, 60.0, 5.0)
    assert [s.duration_s for s in segments] == pytest.approx([0.4, 1.0, 0.4, RETURN_SEGMENT_S])
    assert [s.rocof_hz_per_s for s in segments] == pytest.approx([-5.0, 0.0, 5.0, 0.0])
    assert segments[-1].freq_hz == 60.0 and not segments[-1].ramps
    stepped = frequency_excursion(61.5, 2.0, 277.0, 60.0, None)
    assert [(s.freq_hz, s.ramps) for s in stepped] == [(61.5, False), (60.0, False)]
    with pytest.raises(ValueError, match="rocof_hz_per_s"):
        frequency_excursion(58.0, 1.0, 277.0, 60.0, 0.0)
    jump = phase_jump_event((60.0, 0.0, 0.0), 0.5, 277.0, 60.0)
    assert jump[0].phase_shift_deg == (60.0, 0.0, 0.0) and not jump[1].shifts_phase


def test_the_t7_grid_event_defects_are_in_the_catalogue():
    for name in ("trip_on_rocof", "legacy_frequency_trip", "pll_loses_lock_on_jump", "trip_on_sag"):
        assert DEFECTS[name].caught_by == "T7" and DEFECTS[name].implemented


# ------------------------------------------------------------------ T7 on the virtual bench
SHORT = """
[profile]
id = "t7_short_{category}"
title = "IEEE 1547-2018 {category} with T7's grid-event holds shortened for the framework's tests"
inherits = "ieee1547_{category}"

[frt.procedure]
settle_window_s = 1.0
post_s = 1.0

[[frt.test_points]]
f_hz = 58.6
duration_s = 11.0
[[frt.test_points]]
f_hz = 61.5
duration_s = 11.0

[rocof.procedure]
post_s = 1.0

[[rocof.test_points]]
to_hz = 59.0
hold_s = 0.5

[phase_jump.procedure]
hold_s = 0.6
post_s = 1.0
"""


@pytest.fixture(scope="module")
def short_benches(tmp_path_factory):
    """Bench files judged against short Category I and II profiles next to them."""
    folder = tmp_path_factory.mktemp("t7_benches")
    text = (ROOT / "bench" / "benches" / "virtual.toml").read_text()
    head, _, rest = text.partition('profile = "ieee2800_2022"')
    assert rest, "the virtual bench file no longer names its profile as expected"
    benches = {}
    for category in ("cat1", "cat2"):
        (folder / f"t7_short_{category}.toml").write_text(SHORT.format(category=category))
        bench = folder / f"bench_{category}.toml"
        bench.write_text(head + f'profile = "t7_short_{category}.toml"' + rest)
        benches[category] = bench
    return benches


def run_t7(bench: Path, out: Path, keyword: str, *defects: str) -> subprocess.CompletedProcess:
    """The T7 plan alone, as `bessbench qualify` runs plans (plugin, bench file, run folder)."""
    args = [sys.executable, "-m", "pytest", str(PLAN), "-p", "bench.plugin", "--rootdir", str(PLAN.parent),
            "-c", str(PLAN.parent / "pytest.ini"), "--bench", str(bench), "--out", str(out),
            "-q", "--no-header", "-p", "no:cacheprovider", "--tb=short", "-k", keyword]
    for defect in defects:
        args += ["--defect", defect]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_T7_grid_events_pass_the_healthy_pcs_on_ieee1547_cat2(short_benches, tmp_path):
    out = tmp_path / "run"
    result = run_t7(short_benches["cat2"], out, "frequency_ride or rocof or phase_jump or BC")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for name in ("test_T7_frequency_ride_through[58.60Hz-11s]", "test_T7_frequency_ride_through[61.50Hz-11s]",
                 "test_T7_rocof[to-59.00Hz]", "test_T7_phase_jump[positive-sequence-lead]",
                 "test_T7_phase_jump[phase-A-lead]", "test_T7_lvrt_sag[0.70pu-3s-BC]"):
        assert f"PASS  T7   {name}" in result.stdout, result.stdout[-3000:]
    rows = measurement_rows(out)
    names = {r["name"] for r in rows}
    assert {"held_frequency", "frequency_response_error", "applied_rocof", "lowest_active_power_during_ramp",
            "current_ceased_total", "power_settling_time_after_jump", "power_settling_time_after_jump_back",
            "stayed_connected", "continuous_current"} <= names
    assert all(r["clause"] for r in rows if r["low"] or r["high"])
    applied = [float(r["value"]) for r in rows if r["name"] == "applied_rocof"]
    assert applied == pytest.approx([2.0], rel=0.02)
    jumps = sorted(float(r["value"]) for r in rows if r["name"] == "pcc_phase_jump")
    assert jumps[-1] == pytest.approx(20.0, abs=0.5)                  # the positive-sequence jump
    plots = {p.parent.name for p in (out / "plots").rglob("grid_event.png")}
    assert len(plots) == 5


@pytest.mark.parametrize("defect, category, keyword, complaint", [
    ("legacy_frequency_trip", "cat2", "frequency_ride and 58.60", "the PCS tripped during 11 s at 58.6 Hz"),
    ("trip_on_rocof", "cat1", "rocof", "the PCS tripped during a 0.5 Hz/s ramp to 59 Hz and back"),
    ("pll_loses_lock_on_jump", "cat2", "phase_jump and positive", "momentary cessation of at most 0.5 s"),
    ("trip_on_sag", "cat2", "lvrt and BC", "current ceased"),
])
def test_T7_grid_events_fail_the_defect_they_exist_to_catch(short_benches, tmp_path, defect, category, keyword,
                                                              complaint):
    out = tmp_path / "run"
    result = run_t7(short_benches[category], out, keyword, defect)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "FAIL  T7" in result.stdout and complaint in result.stdout, result.stdout[-3000:]
    assert "PASS  T7" not in result.stdout
    failed = failed_measurements(out)
    assert failed and failed <= {"stayed_connected", "continuous_current", "current_ceased_total",
                                 "lowest_active_power_during_ramp", "active_power_recovery_time",
                                 "frequency_response_error", "held_frequency", "reactive_current_injection",
                                 "power_settling_time_after_jump", "power_settling_time_after_jump_back"}
