"""The grid-forming PCS holds an island with a leading load: 0.25 pu of capacitance on a light
(0.10 pu) resistive base. The bus capacitance resonates with the PCS's inductance at
f = f_nom / sqrt(x_L (b_pcc + b_load)) (359 Hz here); only the PCS's control damps it (its
transient virtual resistance, bench/sim/plant.py GFM_RT_PU). Checked against closed-form
figures: the ring decays to nothing and the bus settles where the Q-V droop puts it,
V = 1 + m_q b V^2, with the PCS absorbing the capacitors' b V^2. Without the transient
resistance the same bus rings up at the LC resonance until the PCS trips (so these checks
can fail)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.sim import plant as plant_module
from bench.sim.plant import Plant, PlantConfig

S_RATED_VA = 250e3
V_LN_NOM_V = 480.0 / math.sqrt(3.0)
BASE_LOAD_PU = 0.10          # resistive, as T2's base load
CAPACITIVE_PU = 0.25         # T2's capacitive step
WINDOW_S = 0.005             # ripple windows: short against the regulator's ~7 Hz response


def bus_magnitude_pu(plant: Plant, t_start_s: float, duration_s: float) -> np.ndarray:
    """Space-vector |v| of the PCC voltage, pu of nominal peak: constant for a balanced
    fundamental, so any ring on the bus shows in it."""
    n = int(round(duration_s * plant.sample_rate_hz))
    v = plant.read_ring(["pcc_va_v", "pcc_vb_v", "pcc_vc_v"], t_start_s, n)
    alpha = (2 * v[0] - v[1] - v[2]) / 3.0
    beta = (v[1] - v[2]) / math.sqrt(3.0)
    return np.hypot(alpha, beta) / (math.sqrt(2.0) * V_LN_NOM_V)


def ripple_pu(plant: Plant, v_pu: np.ndarray) -> np.ndarray:
    """Peak-to-peak of |v| in consecutive WINDOW_S windows: the oscillation envelope."""
    n = int(round(WINDOW_S * plant.sample_rate_hz))
    return np.ptp(v_pu[: v_pu.size // n * n].reshape(-1, n), axis=1)


def window(t_s: float) -> int:
    return int(t_s / WINDOW_S)


def bus_susceptance_pu(plant: Plant) -> float:
    return plant.config.grid.pcc_c_pu + CAPACITIVE_PU


def lc_resonance_hz(plant: Plant) -> float:
    """Converter inductance against the bus capacitance (PCC's own plus the load's)."""
    return plant.config.pcs.f_nom_hz / math.sqrt(plant.config.pcs.l_filter_pu * bus_susceptance_pu(plant))


def droop_equilibrium_pu(plant: Plant) -> float:
    """|V| where the Q-V droop settles when the PCS absorbs the capacitors' b V^2:
    V = 1 + m_q b V^2, its root near 1."""
    mb = plant.pcs_settings.droop_v_pct / 100.0 * bus_susceptance_pu(plant)
    return (1.0 - math.sqrt(1.0 - 4.0 * mb)) / (2.0 * mb)


def islanded_on_base_load(control_mode: str) -> Plant:
    plant = Plant(PlantConfig(ring_s=4.0))
    plant.set_dc_source(output_on=True)
    plant.pcs_settings.control_mode = control_mode
    plant.set_load_bank(p_w=BASE_LOAD_PU * S_RATED_VA)
    plant.pcs_command("island")
    plant.advance(0.1)
    plant.pcs_command("black_start")
    plant.advance(2.5)
    assert plant.pcs_telemetry()["grid_forming"] and plant.pcs_telemetry()["state"] == "RUNNING"
    return plant


def switch_in_capacitors(plant: Plant) -> float:
    t_step = plant.t_s
    plant.set_load_bank(p_w=BASE_LOAD_PU * S_RATED_VA, q_capacitive_var=CAPACITIVE_PU * S_RATED_VA)
    plant.advance(1.0)
    return t_step


@pytest.mark.parametrize("control_mode", ["GFM_DROOP", "GFM_VSM"])
def test_capacitive_step_rings_down_to_the_droop_equilibrium(control_mode):
    plant = islanded_on_base_load(control_mode)
    t_step = switch_in_capacitors(plant)
    ripple = ripple_pu(plant, bus_magnitude_pu(plant, t_step, 1.0))
    assert ripple[0] > 0.02, "the step excites the LC resonance"
    # the envelope decays: a fifth of the first window's after 10 ms, nothing after 100 ms
    assert ripple[window(0.010)] < 0.2 * ripple[0], \
        f"ring {ripple[window(0.010)]:.4f} pu p-p 10 ms after the step, limit 0.2 x {ripple[0]:.4f} pu"
    late = ripple[window(0.100):].max()
    assert late < 1e-3, f"ring {late:.4f} pu p-p from 100 ms after the step on, limit 0.001 pu"
    tel = plant.pcs_telemetry()
    assert tel["state"] == "RUNNING" and not tel["current_limited"]
    v_rms_pu = float(np.mean(tel["v_ln_rms_v"])) / V_LN_NOM_V
    assert v_rms_pu == pytest.approx(droop_equilibrium_pu(plant), abs=0.005)
    # the PCS absorbs what the capacitors (bank and PCC) generate at that voltage
    q_capacitors_var = bus_susceptance_pu(plant) * v_rms_pu ** 2 * S_RATED_VA
    assert tel["q_var"] == pytest.approx(-q_capacitors_var, rel=0.03)


def test_black_start_onto_a_capacitive_bus_settles_without_overshoot():
    plant = Plant(PlantConfig(ring_s=4.0))
    plant.set_dc_source(output_on=True)
    plant.pcs_settings.control_mode = "GFM_DROOP"
    plant.set_load_bank(p_w=BASE_LOAD_PU * S_RATED_VA, q_capacitive_var=CAPACITIVE_PU * S_RATED_VA)
    plant.pcs_command("island")
    plant.advance(0.1)
    t0 = plant.t_s
    plant.pcs_command("black_start")
    plant.advance(3.0)
    v_pu = bus_magnitude_pu(plant, t0, 3.0)
    assert v_pu.max() < 1.1, f"|v| peaked at {v_pu.max():.3f} pu energising, limit 1.1 pu"
    late = ripple_pu(plant, v_pu)[window(2.5):].max()
    assert late < 1e-3, f"ring {late:.4f} pu p-p 2.5 s after the black start, limit 0.001 pu"
    assert v_pu[-2000:].mean() == pytest.approx(droop_equilibrium_pu(plant), abs=0.005)


def test_without_the_transient_resistance_the_ring_grows_at_the_lc_resonance_to_a_trip(monkeypatch):
    """Undamped, the ring grows until the PCS's instantaneous overvoltage protection trips it
    (within a few cycles of the step; the virtual impedance runs unlimited, so its current
    limit does not cap the ring into a steady one)."""
    monkeypatch.setattr(plant_module, "GFM_RT_PU", 0.0)
    plant = islanded_on_base_load("GFM_DROOP")
    t_step = switch_in_capacitors(plant)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "TRIPPED" and "overvoltage" in tel["trip_reason"], tel["trip_reason"]
    t_trip = next(t for t, code, _ in plant.pcs_events if code == "TRIP" and t >= t_step)
    ripple = ripple_pu(plant, bus_magnitude_pu(plant, t_step, t_trip - t_step))
    assert ripple.size >= 3 and np.all(np.diff(ripple) > 0), f"the ring grows: {ripple} pu p-p"
    # its frequency: phase A less a fitted fundamental, from the step to the trip, by its
    # zero crossings (a growing ring: too few cycles for a spectrum)
    fs = plant.sample_rate_hz
    va = plant.read_ring(["pcc_va_v"], t_step, int(round((t_trip - t_step) * fs)))[0]
    t = np.arange(va.size) / fs
    fundamental = np.column_stack([np.cos(2 * np.pi * 60.0 * t), np.sin(2 * np.pi * 60.0 * t), np.ones_like(t)])
    residual = va - fundamental @ np.linalg.lstsq(fundamental, va, rcond=None)[0]
    crossings = np.flatnonzero(np.signbit(residual[1:]) != np.signbit(residual[:-1]))
    ring_hz = (crossings.size - 1) / 2.0 / ((crossings[-1] - crossings[0]) / fs)
    # the current loop's lag lowers it from the bare LC figure (359 Hz): ~320 Hz
    assert ring_hz == pytest.approx(lc_resonance_hz(plant), rel=0.25)
