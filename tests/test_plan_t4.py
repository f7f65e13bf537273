"""T4 (AI-load buffering): the analysis it rests on, on synthetic signals with known answers,
and proof on the virtual bench that the plan passes the healthy PCS and fails a buffer whose
injection cannot keep up with the load (ramp_buffer_slow).

Each qualify run starts its own virtual bench (ports chosen by the OS).
"""

import numpy as np
import pytest

from bench.ai_buffering import (buffering_figures, held_ramp_w_per_s, moving_average, ramp_limited_w,
                                training_list, two_wattmeter_power_w)
from plan_runs import measurement_rows, qualify

BASE_W = 250e3





# ------------------------------------------------------------------ analysis on synthetic signals
def test_two_wattmeter_equals_three_wattmeter_on_a_three_wire_feeder():
    fs, f = 6000.0, 60.0
    t = np.arange(int(fs)) / fs
    angle = 2 * np.pi * f * t
    # unbalanced currents with no zero sequence, voltages with a zero-sequence offset on top
    v = [325 * np.cos(angle - k * 2 * np.pi / 3) + 40 * np.cos(angle) for k in range(3)]
    ia = 300 * np.cos(angle - 0.3)
    ib = 180 * np.cos(angle - 2 * np.pi / 3 - 0.1)
    ic = -(ia + ib)
    aron = two_wattmeter_power_w(*v, ia, ib, sample_rate_hz=fs, f_nominal_hz=f)
    three = np.mean(v[0] * ia + v[1] * ib + v[2] * ic)
    assert np.allclose(aron.p_w, three, rtol=1e-9)


def test_ramp_limiter_follows_within_its_rate():
    t = np.arange(0.0, 3.0, 0.01)
    step = np.where(t >= 0.5, 100e3, 0.0)
    limited = ramp_limited_w(t, step, 50e3)
    assert limited[t < 0.5].max() == 0.0
    assert limited[np.searchsorted(t, 1.5)] == pytest.approx(50e3, rel=0.02)
    assert limited[-1] == pytest.approx(100e3)
    assert np.max(np.diff(limited) / np.diff(t)) <= 50e3 * (1 + 1e-9)


def test_held_ramp_is_found_and_never_above_the_permitted_one():
    t = np.arange(0.0, 6.0, 1 / 60)
    it_load = np.where(t >= 1.0, 0.3 * BASE_W, 0.0)
    grid = ramp_limited_w(t, it_load, 0.18 * BASE_W, 0.0)
    assert held_ramp_w_per_s(t, grid, it_load, permitted_w_per_s=0.2 * BASE_W, initial_w=0.0) == \
        pytest.approx(0.18 * BASE_W, rel=0.01)
    too_fast = ramp_limited_w(t, it_load, 0.5 * BASE_W, 0.0)
    assert held_ramp_w_per_s(t, too_fast, it_load, permitted_w_per_s=0.2 * BASE_W, initial_w=0.0) == 0.2 * BASE_W


def test_moving_average_keeps_a_constant_and_spreads_a_spike():
    t = np.arange(0.0, 2.0, 0.01)
    assert np.allclose(moving_average(t, np.full_like(t, 3.0), 0.2), 3.0)
    spike = np.zeros_like(t)
    spike[100] = 20.0
    assert moving_average(t, spike, 0.2).max() == pytest.approx(1.0)


def test_figures_of_a_clean_buffer_and_of_a_buffer_that_lets_the_load_through():
    t = np.arange(0.0, 20.0, 1 / 60)
    profile = training_list(base_w=0.5 * BASE_W, swing_w=0.3 * BASE_W, period_s=2.0, compute_fraction=0.7,
                            duration_s=16.0)
    it_load = np.asarray(profile.powers_w)[np.searchsorted(profile.times_s, t, side="right") - 1]
    it_load[t >= profile.end_s] = 0.5 * BASE_W
    kwargs = dict(it_base_w=BASE_W, ramp_w_per_s=0.2 * BASE_W, ramp_window_s=1.0, tracking_window_s=0.2,
                  bands_hz=[(0.1, 1.0), (1.0, 5.0), (5.0, 20.0)], initial_grid_w=0.5 * BASE_W)
    clean = buffering_figures(t, ramp_limited_w(t, it_load, 0.18 * BASE_W, 0.5 * BASE_W), it_load, **kwargs)
    assert clean.ramp_fraction_per_s == pytest.approx(0.18, abs=0.005)
    assert clean.held_ramp_fraction_per_s == pytest.approx(0.18, abs=0.002)
    assert clean.tracking_error_fraction < 0.002
    assert clean.tracking_error_at_permitted_fraction == pytest.approx(0.03, abs=0.005)  # 10 % of 0.3 pu
    assert clean.it_load_ramp_fraction_per_s == pytest.approx(0.3, abs=0.01)
    passed_through = buffering_figures(t, it_load, it_load, **kwargs)
    assert passed_through.ramp_fraction_per_s == pytest.approx(0.3, abs=0.01)
    assert passed_through.tracking_error_fraction > 0.2
    assert passed_through.bands[1].amplitude_fraction > clean.bands[1].amplitude_fraction * 5


# ------------------------------------------------------------------ T4 on the virtual bench
def test_T4_passes_the_healthy_pcs_in_every_case(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T4", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for case in ("training", "step", "checkpoint"):
        assert f"PASS  T4   test_T4_ai_load_buffering[{case}]" in result.stdout
    rows = measurement_rows(out)
    judged = {"grid_side_ramp_rate", "tracking_error", "residual_oscillation_below_1hz",
              "residual_oscillation_from_1_to_5hz", "residual_oscillation_from_5_to_20hz"}
    assert judged <= {r["name"] for r in rows}
    assert all(r["clause"] and r["high"] for r in rows if r["name"] in judged)
    ramps = [float(r["value"]) for r in rows if r["name"] == "grid_side_ramp_rate"]
    assert max(ramps) < 0.2                  # the PCS held its ramp under the limit
    assert len(list((out / "plots").rglob("ai_buffering.png"))) == 3
    assert len(list((out / "captures").rglob("pcc_and_grid_feeder.parquet"))) == 3


def test_T4_fails_a_buffer_too_slow_for_the_load(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T4 and (training or checkpoint)", "--defect", "ramp_buffer_slow", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T4   test_T4_ai_load_buffering[training]" in result.stdout
    assert "FAIL  T4   test_T4_ai_load_buffering[checkpoint]" in result.stdout
    assert "grid-side power changed by" in result.stdout and "at most 20% per second is allowed" in result.stdout
    assert "away from the IT load ramp-limited" in result.stdout and "at most 2 % is allowed" in result.stdout
    failed = {r["name"] for r in measurement_rows(out) if r["outcome"] == "FAIL"}
    assert {"grid_side_ramp_rate", "tracking_error"} <= failed
