"""Grid-following outer-loop functions of the simulated PCS against closed form:
frequency-watt droop, volt-var, enter service and the frequency trip curves."""

from __future__ import annotations

import math

import pytest

from bench.sim.plant import GridConfig, Plant, PlantConfig

V_LN_NOM_V = 480.0 / math.sqrt(3.0)
P_RATED_W = 250e3
F_NOM_HZ = 60.0


def energised(scr: float = 5.0) -> Plant:
    plant = Plant(PlantConfig(grid=GridConfig(scr=scr), ring_s=1.0))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.3)
    return plant


def started(p_set_w: float, **settings) -> Plant:
    plant = energised()
    s = plant.pcs_settings
    s.p_ramp_w_per_s = 4 * P_RATED_W
    s.p_set_w = p_set_w
    for name, value in settings.items():
        setattr(s, name, value)
    plant.pcs_command("start")
    plant.advance(0.8)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    return plant


@pytest.mark.parametrize("f_hz", [60.5, 59.7, 60.02])
def test_frequency_watt_droop_outside_the_deadband(f_hz):
    db_hz, droop_pct = 0.036, 5.0
    plant = started(100e3, fw_enabled=True, fw_deadband_hz=db_hz, fw_droop_pct=droop_pct,
                    fw_olrt_s=0.3)
    plant.set_source(freq_hz=f_hz)
    plant.advance(1.5)
    df = f_hz - F_NOM_HZ
    excess = math.copysign(max(abs(df) - db_hz, 0.0), df)
    expected_w = 100e3 - excess / (droop_pct / 100.0 * F_NOM_HZ) * P_RATED_W
    assert plant.pcs_telemetry()["p_w"] == pytest.approx(expected_w, abs=0.005 * P_RATED_W)


def test_frequency_watt_open_loop_response_reaches_90_percent_at_olrt():
    plant = started(100e3, fw_enabled=True, fw_olrt_s=1.0)
    plant.set_source(freq_hz=60.336)                       # 0.3 Hz beyond the deadband
    final_w = 100e3 - 0.3 / (0.05 * F_NOM_HZ) * P_RATED_W
    plant.advance(1.0)
    change = (100e3 - plant.pcs_telemetry()["p_w"]) / (100e3 - final_w)
    assert change == pytest.approx(0.9, abs=0.04)


def test_frequency_watt_disabled_ignores_frequency():
    plant = started(100e3)
    plant.set_source(freq_hz=60.5)
    plant.advance(1.0)
    assert plant.pcs_telemetry()["p_w"] == pytest.approx(100e3, rel=0.005)


@pytest.mark.parametrize("v_pu, q_pu", [(0.95, 0.22), (1.00, 0.0), (1.05, -0.22)])
def test_volt_var_follows_the_curve(v_pu, q_pu):
    # stiff grid so that the PCS's own Q barely moves the PCC voltage; the curve is read
    # at the measured PCC voltage, which is what the PCS regulates on
    plant = Plant(PlantConfig(grid=GridConfig(scr=50.0), ring_s=1.0))
    plant.set_source(output_on=True, v_ln_rms_v=v_pu * V_LN_NOM_V)
    plant.set_dc_source(output_on=True)
    s = plant.pcs_settings
    s.es_v_low_pu, s.es_v_high_pu = 0.9, 1.1
    plant.advance(0.3)
    s.vv_enabled, s.vv_olrt_s = True, 0.2
    plant.pcs_command("start")
    plant.advance(1.5)
    tel = plant.pcs_telemetry()
    v_meas_pu = sum(tel["v_ln_rms_v"]) / 3 / V_LN_NOM_V
    # default curve: 0.92/+0.44 .. 0.98/0 .. 1.02/0 .. 1.08/-0.44 (pu of rated S)
    if v_meas_pu < 0.98:
        expected = 0.44 * (0.98 - v_meas_pu) / 0.06
    elif v_meas_pu > 1.02:
        expected = -0.44 * (v_meas_pu - 1.02) / 0.06
    else:
        expected = 0.0
    assert tel["q_var"] / P_RATED_W == pytest.approx(expected, abs=0.01)
    assert expected == pytest.approx(q_pu, abs=0.05)     # the PCS's Q moves V a little


def test_enter_service_waits_for_the_window_then_for_the_delay():
    plant = energised()
    s = plant.pcs_settings
    s.es_delay_s = 1.0
    plant.set_source(freq_hz=60.3)                         # above es_f_high_hz 60.1
    plant.advance(0.5)
    plant.pcs_command("start")
    plant.advance(2.0)
    assert plant.pcs_telemetry()["state"] == "OFF"
    assert any(code == "ENTER_SERVICE" for _, code, _ in plant.pcs_events)
    t_back = plant.t_s
    plant.set_source(freq_hz=60.0)
    plant.advance(0.8)
    assert plant.pcs_telemetry()["state"] == "OFF"          # delay not yet over
    plant.advance(0.6)
    assert plant.pcs_telemetry()["state"] in ("STARTING", "RUNNING")
    closed = [t for t, code, text in plant.pcs_events if code == "STATE" and text == "STARTING"]
    assert closed[-1] - t_back == pytest.approx(1.0, abs=0.1)   # + the frequency filter


def test_enter_service_disabled_starts_at_once():
    plant = energised()
    s = plant.pcs_settings
    s.es_enabled, s.es_delay_s = False, 300.0
    plant.set_source(freq_hz=60.3)
    plant.advance(0.2)
    plant.pcs_command("start")
    plant.advance(0.3)
    assert plant.pcs_telemetry()["state"] == "RUNNING"


def test_frequency_must_trip_points_are_independent_timers():
    plant = started(50e3, hf_must_trip=[(62.0, 0.16), (61.2, 1.0)],
                    lf_must_trip=[(56.5, 0.16), (58.5, 1.0)])
    plant.set_source(freq_hz=61.5)                          # only the 61.2 Hz / 1 s point
    t0 = plant.t_s
    plant.advance(0.9)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    plant.advance(0.3)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "TRIPPED"
    assert tel["trip_reason"] == "HF must-trip 61.20 Hz / 1.00 s"
    t_trip = next(t for t, code, _ in plant.pcs_events if code == "TRIP")
    assert t_trip - t0 == pytest.approx(1.0, abs=0.06)


def test_low_frequency_fast_trip():
    plant = started(50e3)
    plant.set_source(freq_hz=56.0)
    t0 = plant.t_s
    plant.advance(0.5)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "TRIPPED"
    assert tel["trip_reason"] == "LF must-trip 56.50 Hz / 0.16 s"
    t_trip = next(t for t, code, _ in plant.pcs_events if code == "TRIP")
    assert 0.16 < t_trip - t0 < 0.26


@pytest.mark.parametrize("name, value", [
    ("fw_droop_pct", 0.0), ("fw_deadband_hz", -0.1), ("vv_points", [(1.0, 0.0)]),
    ("vv_points", [(1.0, 0.0), (0.9, 0.2)]), ("es_v_low_pu", 1.2), ("es_delay_s", -1.0),
    ("lf_must_trip", [(58.5, -1.0)])])
def test_bad_outer_loop_settings_are_refused(name, value):
    plant = energised()
    setattr(plant.pcs_settings, name, value)
    with pytest.raises(ValueError, match=name.split("_")[0]):
        plant.advance(0.01)
