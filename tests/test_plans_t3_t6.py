"""T3 (current limiting) and T6 (demand response): the analysis they rest on, and proof on the
virtual bench that each plan passes the healthy PCS and fails the defects it exists to catch.

Each qualify run starts its own virtual bench (ports chosen by the OS); `-k` keeps them short.
"""
import math

import numpy as np
import pytest

from bench.current_limit import (
    CurrentSplit,
    current_space_vector_pu,
    limited_current_split_pu,
    sag_current_reference_pu,
)
from bench.demand_response import dispatch_figures, dispatch_ramp_w_per_s, record_segments_s
from plan_runs import failed_measurements, measurement_rows, qualify








# ------------------------------------------------------------------ current-limit analysis
REFERENCE = CurrentSplit(id_pu=1.0, iq_pu=0.9)   # |I| 1.345 pu, beyond a 1.1 pu limit
LIMIT_PU = 1.1


def test_p_priority_keeps_active_current_and_gives_the_rest_to_iq():
    split = limited_current_split_pu(REFERENCE, LIMIT_PU, "P")
    assert split.id_pu == pytest.approx(1.0)
    assert split.iq_pu == pytest.approx(math.sqrt(1.1 ** 2 - 1.0))
    assert split.magnitude_pu == pytest.approx(LIMIT_PU)


def test_q_priority_keeps_reactive_current_and_gives_the_rest_to_id():
    split = limited_current_split_pu(REFERENCE, LIMIT_PU, "Q")
    assert split.iq_pu == pytest.approx(0.9)
    assert split.id_pu == pytest.approx(math.sqrt(1.1 ** 2 - 0.81))


def test_q_priority_clamps_a_reactive_demand_beyond_the_limit():
    split = limited_current_split_pu(CurrentSplit(0.5, 1.6), LIMIT_PU, "Q")
    assert (split.id_pu, split.iq_pu) == pytest.approx((0.0, LIMIT_PU))


def test_mixed_priority_scales_both_and_keeps_the_angle():
    split = limited_current_split_pu(REFERENCE, LIMIT_PU, "mixed")
    assert split.magnitude_pu == pytest.approx(LIMIT_PU)
    assert split.iq_pu / split.id_pu == pytest.approx(0.9)


def test_reference_within_the_limit_is_untouched_and_unknown_priority_refused():
    small = CurrentSplit(0.6, -0.3)
    assert limited_current_split_pu(small, LIMIT_PU, "P") == small
    with pytest.raises(ValueError, match="priority"):
        limited_current_split_pu(REFERENCE, LIMIT_PU, "sideways")


def test_sag_reference_adds_k_times_the_depression_to_the_held_currents():
    reference = sag_current_reference_pu(CurrentSplit(0.98, 0.05), v_pu=0.6, k_factor=2.0)
    assert (reference.id_pu, reference.iq_pu) == pytest.approx((0.98, 0.05 + 0.8))


def test_current_space_vector_is_flat_for_balanced_currents_and_shows_a_limit_cycle():
    fs, f0, i_rated = 10_000.0, 60.0, 300.0
    t = np.arange(0, 1.0, 1 / fs)
    wobble = 1.0 + 0.05 * np.sin(2 * np.pi * 10.0 * t)          # 10 Hz limit cycle, ±5 %
    phases = [np.sqrt(2) * i_rated * wobble * np.cos(2 * np.pi * f0 * t - k * 2 * np.pi / 3) for k in range(3)]
    magnitude = current_space_vector_pu(np.array(phases), i_rated)
    assert magnitude.min() == pytest.approx(0.95, abs=1e-3)
    assert magnitude.max() == pytest.approx(1.05, abs=1e-3)


# ------------------------------------------------------------------ dispatch analysis
def test_dispatch_ramp_arrives_in_the_commanded_time():
    assert dispatch_ramp_w_per_s(50e3, 200e3, 60.0) == pytest.approx(2.5e3)
    assert dispatch_ramp_w_per_s(225e3, -125e3, 2.0) == pytest.approx(175e3)


def test_record_segments_cover_the_dispatch_without_exceeding_a_record():
    assert record_segments_s(63.5, 20.0) == pytest.approx([20.0, 20.0, 20.0, 3.5])
    assert record_segments_s(5.5, 20.0) == pytest.approx([5.5])
    assert record_segments_s(40.0, 20.0) == pytest.approx([20.0, 20.0])


def test_dispatch_figures_of_a_ramp_that_stops_short():
    t = np.arange(-1.0, 6.0, 1 / 60)
    p = np.clip(50e3 + 100e3 * t, 50e3, 145e3)                 # ramp to 145 kW for a 150 kW target
    figures = dispatch_figures(t, p, target_w=150e3, settled_from_s=4.0, settled_to_s=6.0)
    assert figures.initial_w == pytest.approx(50e3)
    assert figures.response_time_s == pytest.approx(0.9, abs=0.02)   # 90 % of 100 kW = 140 kW
    assert figures.settled_error_pct == pytest.approx(-100 * 5 / 150)
    never = dispatch_figures(t, np.clip(p, 0, 100e3), target_w=150e3, settled_from_s=4.0, settled_to_s=6.0)
    assert never.response_time_s is None


# ------------------------------------------------------------------ T3 on the virtual bench
def test_T3_passes_the_healthy_pcs_in_every_priority_mode(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T3", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for mode in ("P", "Q", "mixed"):
        assert f"PASS  T3   test_T3_current_limit_priority[{mode}-priority]" in result.stdout
    names = {r["name"] for r in measurement_rows(out)}
    assert {"active_current_at_limit", "reactive_current_at_limit", "settled_current", "peak_phase_current",
            "time_to_limit", "limit_cycle_amplitude", "active_power_recovery_time"} <= names
    assert all(r["clause"] for r in measurement_rows(out) if r["high"] and r["name"] != "stayed_connected")
    assert len(list((out / "plots").rglob("current_limit.png"))) == 3


def test_T3_fails_a_limiter_that_ignores_its_priority(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T3 and P-priority", "--defect", "limit_priority_ignored", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T3" in result.stdout
    assert "Id at the current limit was" in result.stdout
    assert "active-current (P) priority gives" in result.stdout   # the declared priority
    assert {"active_current_at_limit", "reactive_current_at_limit"} <= failed_measurements(out)


def test_T3_fails_a_limiter_that_limit_cycles(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T3 and Q-priority", "--defect", "limiter_limit_cycle", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T3" in result.stdout
    assert "limit cycle" in result.stdout and "oscillated by" in result.stdout
    assert "limit_cycle_amplitude" in failed_measurements(out)


# ------------------------------------------------------------------ T6 on the virtual bench
def test_T6_passes_the_healthy_pcs_fast_and_slow(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T6", "--out", str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS  T6   test_T6_demand_response_dispatch[fast" in result.stdout
    assert "PASS  T6   test_T6_demand_response_dispatch[slow" in result.stdout
    rows = measurement_rows(out)
    assert {"dispatch_response_time", "dispatch_settled_error", "telemetry_response_time"} <= {r["name"] for r in rows}
    # evidence: the scope records (several for the 60 s dispatch) and the PCS's own telemetry
    slow = next(p for p in (out / "captures").iterdir() if "slow" in p.name)
    assert len(list(slow.glob("dispatch_record_*.parquet"))) >= 2
    assert (slow / "pcs_telemetry.parquet").exists()


def test_T6_fails_a_pcs_that_dispatches_slowly(tmp_path):
    out = tmp_path / "run"
    result = qualify("-k", "T6 and fast", "--defect", "dr_slow_response", "--out", str(out))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "FAIL  T6" in result.stdout
    assert "90 % of the" in result.stdout and "required within 2 s" in result.stdout
    assert "dispatch_response_time" in failed_measurements(out)
