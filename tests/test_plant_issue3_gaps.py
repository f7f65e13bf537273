"""Items of the plant issue (#3) that had code but no test: the numerical guard names the
component and the time, a profile returning garbage stops the run, defects combine,
`bessbench sim --list-defects` prints the catalogue, and the grid-forming current limit is
visible and keeps its declared priority. Short plant windows only."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.sim import kernel_emt as k
from bench.sim.ai_load import AiLoadProfile
from bench.sim.plant import Plant, PlantConfig, PlantNumericalError

P_RATED_W = 250e3
V_LN_NOM_V = 480.0 / math.sqrt(3.0)
I_RATED_A = P_RATED_W / (3.0 * V_LN_NOM_V)
REPO = Path(__file__).resolve().parents[1]
ISSUE_CATALOGUE = ("trip_on_sag", "no_reactive_injection", "gfm_underdamped", "limit_priority_ignored",
                   "limiter_limit_cycle", "telemetry_scale_error", "telemetry_flatline",
                   "telemetry_timestamp_lag", "ramp_buffer_slow", "dr_slow_response", "soc_drift",
                   "blackstart_overshoot", "island_transfer_gap", "genset_interaction_oscillation")


def energised(**config) -> Plant:
    plant = Plant(PlantConfig(ring_s=2.0, **config))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.3)
    return plant


def test_numerical_guard_names_the_dc_link_and_the_plant_time():
    plant = energised()
    plant.state[k.S_VDC] = np.nan
    with pytest.raises(PlantNumericalError, match=r"DC link voltage non-finite or runaway .* t = 0\.3000"):
        plant.advance(0.01)


class _BrokenProfile(AiLoadProfile):
    """A profile whose source data runs out into NaN after 50 ms."""

    def power_w(self, t_s: np.ndarray) -> np.ndarray:
        return np.where(t_s < 0.05, 50e3, np.nan)


def test_a_profile_that_returns_nan_stops_the_run_with_the_plant_time():
    plant = energised()
    plant.set_ai_load(_BrokenProfile())
    with pytest.raises(PlantNumericalError, match=r"AI-load profile returned a non-finite power at plant time"):
        plant.advance(0.2)


def test_two_defects_act_together():
    plant = energised(defects=("telemetry_scale_error", "trip_on_sag"))
    s = plant.pcs_settings
    s.p_ramp_w_per_s, s.p_set_w = 4 * P_RATED_W, 100e3
    plant.pcs_command("start")
    plant.advance(0.8)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "RUNNING"
    delivered_w = -plant.pcc_grid_measurements()["p_w"]            # no load: all of it into the grid
    assert delivered_w == pytest.approx(100e3, rel=5e-3)
    assert tel["p_w"] == pytest.approx(1.03 * delivered_w, rel=2e-3)  # reported 3 % high
    plant.set_source(v_ln_rms_v=0.8 * V_LN_NOM_V)                  # inside the ride-through band
    plant.advance(0.2)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "TRIPPED" and "LV protection 0.88" in tel["trip_reason"]


def test_sim_list_defects_prints_the_catalogue_with_the_catching_test():
    out = subprocess.run([sys.executable, "-m", "bench.cli", "sim", "--list-defects"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    for name in ISSUE_CATALOGUE:
        assert name in lines, f"{name} missing from --list-defects"
        assert lines[name].split()[1].startswith(("T", "C", "DR")), lines[name]


def test_grid_forming_current_limit_is_visible_and_keeps_reactive_priority():
    plant = energised()
    s = plant.pcs_settings
    s.p_ramp_w_per_s, s.p_set_w = 4 * P_RATED_W, 0.8 * P_RATED_W
    s.control_mode, s.limit_priority = "GFM_DROOP", "Q"
    plant.pcs_command("start")
    plant.advance(1.5)
    assert plant.pcs_telemetry()["grid_forming"]
    t_sag = plant.t_s
    plant.set_source(v_ln_rms_v=0.6 * V_LN_NOM_V)                  # the voltage source pushes > i_max
    plant.advance(0.3)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "RUNNING" and tel["current_limited"]
    assert max(tel["i_rms_a"]) <= 1.02 * plant.config.pcs.i_max_a
    v_mean = float(np.mean(tel["v_ln_rms_v"]))
    iq_pu = tel["q_var"] / (3.0 * v_mean) / I_RATED_A
    assert iq_pu > 0.9, f"reactive current {iq_pu:.2f} pu under Q priority"   # capacitive, supporting
    entries = [e for e in plant.pcs_events if e[0] >= t_sag and e[1] == "LIMIT_ENTER"]
    assert entries and "priority Q" in entries[0][2]


def test_sim_benchmark_reports_the_issues_keys(monkeypatch):
    """The JSON shape only, on short runs: the speed targets are printed, never asserted, and
    the two subprocess figures (a fresh numba compile, a 24 h phasor run) take minutes."""
    from bench.sim import benchmark

    timed = benchmark._x_realtime
    monkeypatch.setattr(benchmark, "_x_realtime",
                        lambda plant, run_s=0.0, repeats=0: timed(plant, run_s=0.1, repeats=1))
    monkeypatch.setattr(benchmark, "_compile_s", lambda: 1.0)
    monkeypatch.setattr(benchmark, "_phasor_24h_peak_mb", lambda: 1.0)
    figures = benchmark.sim_benchmark()
    for key in ("emt_single_pcs_x_realtime", "emt_full_bench_x_realtime", "phasor_full_bench_x_realtime",
                "phasor_24h_peak_mb", "compile_s"):
        assert isinstance(figures[key], float) and figures[key] > 0.0, key
