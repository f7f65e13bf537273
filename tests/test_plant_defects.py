"""Wave-2 seeded defects of the virtual PCS change the physics or the reporting the way a
faulty product would; the healthy PCS does not show them. Short windows, no timing asserts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.sim.defects import DEFECTS
from bench.sim.plant import GridConfig, Plant, PlantConfig

P_RATED_W = 250e3
I_RATED_A = 250e3 / (math.sqrt(3.0) * 480.0)


def running_plant(p_set_w: float = P_RATED_W, defects: tuple[str, ...] = ()) -> Plant:
    plant = Plant(PlantConfig(grid=GridConfig(), ring_s=3.0, defects=defects))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.3)
    plant.pcs_settings.p_ramp_w_per_s = 4 * P_RATED_W
    plant.pcs_settings.p_set_w = p_set_w
    plant.pcs_command("start")
    plant.advance(0.8)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    return plant


def current_magnitude_rms_a(plant: Plant, duration_s: float) -> np.ndarray:
    """|i_alpha,beta| / sqrt 2: the RMS current, sample by sample (balanced currents)."""
    n = int(round(duration_s * plant.sample_rate_hz))
    x = plant.read_ring(["pcs_ia_a", "pcs_ib_a", "pcs_ic_a"], plant.t_s - duration_s, n)
    i_al = (2 * x[0] - x[1] - x[2]) / 3.0
    i_be = (x[1] - x[2]) / math.sqrt(3.0)
    return np.hypot(i_al, i_be) / math.sqrt(2.0)


def dominant_frequency_hz(x: np.ndarray, dt_s: float) -> float:
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    freqs = np.fft.rfftfreq(x.size, dt_s)
    band = (freqs > 0.5) & (freqs < 60.0)
    return float(freqs[band][np.argmax(spectrum[band])])


def drive_into_limit(defects: tuple[str, ...]) -> Plant:
    plant = running_plant(defects=defects)
    plant.pcs_settings.limit_priority = "P"
    plant.pcs_settings.q_set_var = -200e3          # |S| demand 1.28 pu > 1.1 pu limit
    plant.advance(1.5)
    return plant


def test_healthy_limiter_settles_at_the_limit():
    plant = drive_into_limit(())
    mag = current_magnitude_rms_a(plant, 1.0)
    assert plant.pcs_telemetry()["current_limited"]
    assert mag.mean() == pytest.approx(plant.config.pcs.i_max_a, rel=0.01)
    assert np.ptp(mag) < 0.01 * I_RATED_A


def test_limiter_limit_cycle_oscillates_at_5_to_15_hz():
    plant = drive_into_limit(("limiter_limit_cycle",))
    mag = current_magnitude_rms_a(plant, 1.0)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    assert 5.0 <= dominant_frequency_hz(mag, plant.dt_s) <= 15.0
    assert 0.5 * np.ptp(mag) >= 0.05 * I_RATED_A          # sustained, >= 5 % of rated
    # sustained: the second half swings as much as the first
    half = mag.size // 2
    assert np.ptp(mag[half:]) > 0.8 * np.ptp(mag[:half])


def _p_after(plant: Plant, duration_s: float) -> float:
    plant.advance(duration_s)
    return plant.pcs_telemetry()["p_w"]


def test_dr_execute_ramps_linearly_and_arrives_at_90_percent_of_dr_time():
    plant = running_plant()
    plant.pcs_settings.dr_target_w = 50e3
    plant.pcs_settings.dr_time_s = 2.0
    plant.pcs_command("dr_execute")
    # linear ramp 250 -> 50 kW over 1.8 s: telemetry is a one-cycle average (lag 1/120 s)
    rate_w_per_s = 200e3 / 1.8
    p_mid = _p_after(plant, 0.9)
    assert p_mid == pytest.approx(250e3 - rate_w_per_s * (0.9 - 1 / 120), rel=0.02)
    p_end = _p_after(plant, 0.95)                       # t = 1.85 s > 1.8 s
    assert p_end == pytest.approx(50e3, rel=0.01)
    assert plant.pcs_settings.p_set_w == 50e3
    assert any(code == "CMD" and "dr_execute" in text for _, code, text in plant.pcs_events)


def test_dr_slow_response_takes_five_times_longer():
    plant = running_plant(defects=("dr_slow_response",))
    plant.advance(1.0)                                   # its start-up ramp is slow too
    assert plant.pcs_telemetry()["p_w"] == pytest.approx(P_RATED_W, rel=0.005)
    plant.pcs_settings.dr_target_w = 50e3
    plant.pcs_settings.dr_time_s = 2.0
    plant.pcs_command("dr_execute")
    p_at_deadline = _p_after(plant, 2.0)
    expected_w = 250e3 - 200e3 / 1.8 / 5.0 * (2.0 - 1 / 120)
    assert p_at_deadline == pytest.approx(expected_w, rel=0.02)
    assert p_at_deadline > 150e3                        # nowhere near the 50 kW target


def test_plain_setpoint_ramp_follows_p_ramp_and_defect_is_5x_slower():
    for defects, factor in (((), 1.0), (("dr_slow_response",), 5.0)):
        plant = running_plant(p_set_w=0.0, defects=defects)
        plant.pcs_settings.p_ramp_w_per_s = 100e3
        plant.pcs_settings.p_set_w = 200e3
        p_w = _p_after(plant, 1.0)
        assert p_w == pytest.approx(100e3 / factor * (1.0 - 1 / 120), rel=0.02)


def test_new_setpoint_cancels_a_dispatch_ramp_rate():
    plant = running_plant()
    plant.pcs_settings.dr_target_w = 0.0
    plant.pcs_settings.dr_time_s = 100.0                 # a slow dispatch ...
    plant.pcs_command("dr_execute")
    plant.advance(0.1)
    plant.pcs_settings.p_set_w = 100e3                   # ... overridden: normal ramp again
    assert _p_after(plant, 0.5) == pytest.approx(100e3, rel=0.01)


def test_telemetry_timestamp_lag_serves_values_120_ms_old():
    healthy = running_plant(p_set_w=0.0)
    lagging = running_plant(p_set_w=0.0, defects=("telemetry_timestamp_lag",))
    for plant in (healthy, lagging):
        plant.pcs_settings.p_ramp_w_per_s = 100e6           # a step
        plant.pcs_settings.p_set_w = 200e3
        plant.advance(0.06)
    assert healthy.pcs_telemetry()["p_w"] == pytest.approx(200e3, rel=0.01)
    assert abs(lagging.pcs_telemetry()["p_w"]) < 2e3       # still the old value
    lag_s = lagging.t_s - lagging.pcs_telemetry()["t_s"]
    assert 0.12 <= lag_s <= 0.12 + 1 / 60 + 0.011
    assert healthy.t_s - healthy.pcs_telemetry()["t_s"] <= 1 / 60
    lagging.advance(0.12)
    assert lagging.pcs_telemetry()["p_w"] == pytest.approx(200e3, rel=0.01)


def test_wave2_defects_are_marked_implemented():
    for name in ("limiter_limit_cycle", "dr_slow_response", "telemetry_timestamp_lag"):
        assert DEFECTS[name].implemented
        Plant(PlantConfig(ring_s=0.1, defects=(name,)))
