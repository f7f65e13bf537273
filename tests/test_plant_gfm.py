"""Grid-forming physics of the simulated PCS against closed-form results: P-f droop
sharing, the PCC voltage regulator's second-order load-step response, black start,
island / reconnect and the grid-loss transfer (healthy and seeded defects)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis.step_response import damping_ratio_and_frequency
from bench.sim import plant as plant_module
from bench.sim.plant import Plant, PlantConfig

V_LN_NOM_V = 480.0 / math.sqrt(3.0)
P_RATED_W = 250e3


def v_magnitude_pu(plant: Plant, t_start_s: float, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Instantaneous space-vector |v| of the PCC voltage, pu of nominal peak."""
    n = int(round(duration_s * plant.sample_rate_hz))
    v = plant.read_ring(["pcc_va_v", "pcc_vb_v", "pcc_vc_v"], t_start_s, n)
    alpha = (2 * v[0] - v[1] - v[2]) / 3.0
    beta = (v[1] - v[2]) / math.sqrt(3.0)
    return t_start_s + np.arange(n) * plant.dt_s, np.hypot(alpha, beta) / (math.sqrt(2) * V_LN_NOM_V)


def black_started(defects: tuple[str, ...] = (), load_w: float = 25e3) -> tuple[Plant, float]:
    plant = Plant(PlantConfig(ring_s=4.0, defects=defects))
    plant.set_dc_source(output_on=True)
    plant.pcs_settings.control_mode = "GFM_DROOP"
    plant.set_load_bank(p_w=load_w)
    plant.pcs_command("island")
    plant.advance(0.1)
    t0 = plant.t_s
    plant.pcs_command("black_start")
    plant.advance(2.0)
    return plant, t0


def grid_connected_gfm(droop_f_pct: float = 5.0) -> Plant:
    plant = Plant(PlantConfig(ring_s=3.0))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.2)
    s = plant.pcs_settings
    s.p_ramp_w_per_s = 4 * P_RATED_W
    s.p_set_w = 100e3
    s.control_mode = "GFM_DROOP"
    s.droop_f_pct = droop_f_pct
    plant.pcs_command("start")
    plant.advance(1.0)
    assert plant.pcs_telemetry()["grid_forming"]
    return plant


@pytest.mark.parametrize("droop_f_pct", [2.0, 5.0])
def test_droop_shares_power_in_proportion_to_frequency_deviation(droop_f_pct):
    plant = grid_connected_gfm(droop_f_pct)
    p0 = plant.pcs_telemetry()["p_w"]
    assert p0 == pytest.approx(100e3, rel=0.01)
    plant.set_source(freq_hz=59.9)
    plant.advance(1.5)
    dp_expected = (0.1 / 60.0) / (droop_f_pct / 100.0) * P_RATED_W
    assert plant.pcs_telemetry()["p_w"] - p0 == pytest.approx(dp_expected, rel=0.05)


def test_island_load_step_is_the_regulators_second_order_response():
    plant, _ = black_started(load_w=25e3)
    t1 = plant.t_s
    plant.set_load_bank(p_w=125e3)
    plant.advance(1.0)
    t, v = v_magnitude_pu(plant, t1, 1.0)
    # fitted from 20 ms on: the first milliseconds are the virtual impedance's own electrical
    # transient (its transient resistance damps the bus's LC ring), not the regulator's
    fit = damping_ratio_and_frequency(t[400::20] - t1, v[400::20])
    # closed loop of an integral regulator (ki) on a first-order measurement (tau), plant
    # gain ~1: tau s^2 + s + ki = 0
    ki, tau = plant_module.VREG_KI_PER_S, plant_module.VREG_TAU_S
    wn = math.sqrt(ki / tau)
    zeta = 1.0 / (2.0 * math.sqrt(ki * tau))
    assert fit.damping_ratio == pytest.approx(zeta, abs=0.08)
    assert fit.natural_frequency_hz == pytest.approx(wn / (2 * math.pi), rel=0.1)
    assert v[-2000:].mean() == pytest.approx(1.0, abs=0.01)       # restored to nominal


def test_black_start_ramps_softly_and_the_defect_overshoots():
    plant, t0 = black_started()
    t, v = v_magnitude_pu(plant, t0, 2.0)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "RUNNING" and tel["grid_forming"] and not tel["pcc_breaker_closed"]
    half = v[int(0.5 * plant.sample_rate_hz)]
    assert half == pytest.approx(0.5, abs=0.05)                      # ~1 s linear ramp
    assert v.max() < 1.05
    assert v[-1000:].mean() == pytest.approx(1.0, abs=0.01)
    faulty, t0 = black_started(("blackstart_overshoot",))
    _, v_bad = v_magnitude_pu(faulty, t0, 1.0)
    assert v_bad.max() >= 1.15


def test_black_start_refused_on_a_live_bus():
    plant = grid_connected_gfm()
    plant.pcs_command("stop")
    plant.advance(0.1)
    plant.pcs_command("black_start")
    plant.advance(0.05)
    assert plant.pcs_telemetry()["state"] == "OFF"
    assert any("black start refused" in a for a in plant.pcs_telemetry()["alarms"])


def _grid_loss(defects: tuple[str, ...]) -> tuple[Plant, np.ndarray]:
    plant = Plant(PlantConfig(ring_s=6.0, defects=defects))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.set_load_bank(p_w=150e3, q_inductive_var=30e3)
    plant.advance(0.2)
    plant.pcs_settings.p_ramp_w_per_s = 4 * P_RATED_W
    plant.pcs_settings.p_set_w = 100e3
    plant.pcs_command("start")
    plant.advance(0.6)
    t0 = plant.t_s
    plant.set_source(output_on=False)                  # the grid is lost
    plant.advance(0.5)
    n_cycle = int(round(plant.sample_rate_hz / 60.0))
    va = plant.read_ring(["pcc_va_v"], t0, 25 * n_cycle)[0]
    cycle_rms_pu = np.sqrt(np.mean(va.reshape(25, n_cycle) ** 2, axis=1)) / V_LN_NOM_V
    return plant, cycle_rms_pu


def test_grid_loss_transfers_seamlessly_then_reconnects_synchronised():
    plant, rms = _grid_loss(())
    tel = plant.pcs_telemetry()
    assert tel["grid_forming"] and not tel["pcc_breaker_closed"] and tel["state"] == "RUNNING"
    assert rms.min() > 0.8                               # the load never lost its voltage
    assert tel["p_w"] == pytest.approx(plant.load_measurements()["p_w"], rel=0.03)
    plant.set_source(output_on=True)
    plant.pcs_command("reconnect")
    plant.advance(4.0)
    tel = plant.pcs_telemetry()
    assert tel["pcc_breaker_closed"] and not tel["grid_forming"]    # back to grid following
    closes = [text for _, code, text in plant.pcs_events if code == "BREAKER" and "closed" in text]
    angle_deg = float(closes[0].split("angle ")[1].split(" deg")[0])
    assert abs(angle_deg) < 3.0
    assert np.mean(tel["v_ln_rms_v"]) / V_LN_NOM_V > 0.95


def test_island_transfer_gap_defect_collapses_the_load_voltage():
    _, rms = _grid_loss(("island_transfer_gap",))
    assert (rms < 0.2).sum() >= 5                        # several cycles without voltage


def _island_load_step(defects: tuple[str, ...], control_mode: str = "GFM_DROOP",
                      **settings) -> tuple[Plant, float, float]:
    """Black start on 25 kW, then a 100 kW load step; returns (plant, t_black_start,
    t_step)."""
    plant = Plant(PlantConfig(ring_s=6.0, defects=defects))
    plant.set_dc_source(output_on=True)
    plant.pcs_settings.control_mode = control_mode
    for name, value in settings.items():
        setattr(plant.pcs_settings, name, value)
    plant.set_load_bank(p_w=25e3)
    plant.pcs_command("island")
    plant.advance(0.1)
    t0 = plant.t_s
    plant.pcs_command("black_start")
    plant.advance(3.0)
    t1 = plant.t_s
    plant.set_load_bank(p_w=125e3)
    return plant, t0, t1


def test_gfm_underdamped_rings_at_a_few_hz_and_black_start_still_works():
    plant, t0, t1 = _island_load_step(("gfm_underdamped",))
    _, v_start = v_magnitude_pu(plant, t0, 3.0)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "RUNNING" and tel["grid_forming"] and not tel["trip_reason"]
    assert v_start.max() < 1.15                         # not the blackstart_overshoot defect
    assert v_start[-1000:].mean() == pytest.approx(1.0, abs=0.01)
    plant.advance(3.0)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    t, v = v_magnitude_pu(plant, t1, 3.0)
    fit = damping_ratio_and_frequency(t[100::20] - t1, v[100::20])
    ki, tau = plant_module.UNDERDAMPED_VREG_KI_PER_S, plant_module.UNDERDAMPED_VREG_TAU_S
    wn_hz = math.sqrt(ki / tau) / (2 * math.pi)
    zeta = 1.0 / (2.0 * math.sqrt(ki * tau))
    assert fit.damping_ratio < 0.1
    assert fit.damping_ratio == pytest.approx(zeta, abs=0.03)
    assert 2.0 < fit.natural_frequency_hz < 5.0
    assert fit.natural_frequency_hz == pytest.approx(wn_hz, rel=0.1)


@pytest.mark.parametrize("inertia_h_s, droop_f_pct, damping_pu",
                         [(2.0, 5.0, 20.0), (6.0, 5.0, 20.0), (2.0, 4.0, 60.0)])
def test_vsm_frequency_follows_the_swing_equation(inertia_h_s, droop_f_pct, damping_pu):
    """2H dw/dt = P_set - P - (w - w0) / m - D (w - w_grid) (pu): the droop setting m is the
    VSM's governor, its damping D acts on the slip against the grid frequency (the PLL).
    Islanded the PLL tracks the bus the PCS forms, so after a load step dP the frequency
    falls first-order with time constant 2H m to -m dP, whatever D."""
    plant, _, t1 = _island_load_step((), "GFM_VSM", vsm_inertia_h_s=inertia_h_s,
                                     vsm_damping_pu=damping_pu, droop_f_pct=droop_f_pct)
    f0 = plant.pcs_telemetry()["freq_hz"]
    samples: list[tuple[float, float]] = []
    for i in range(1, 121):
        plant.schedule(t1 + i * 0.025,
                       lambda p: samples.append((p.t_s - t1, p.pcs_telemetry()["freq_hz"])))
    plant.advance(3.05)
    dp_pu = 100e3 / P_RATED_W
    m_pu = droop_f_pct / 100.0
    df_final_hz = -dp_pu * m_pu * 60.0
    f_end = samples[-1][1]
    assert f_end - f0 == pytest.approx(df_final_hz, rel=0.05)
    tau_s = 2.0 * inertia_h_s * m_pu
    t63 = next(t for t, f in samples if (f - f0) <= 0.632 * df_final_hz)
    # + the telemetry's one-cycle window and 30 ms filter (~30 ms)
    assert t63 == pytest.approx(tau_s + 0.03, abs=0.05 + 0.1 * tau_s)
