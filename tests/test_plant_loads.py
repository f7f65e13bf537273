"""Loads on the PCC bus: RLC bank, AI-load emulator and its profiles, load smoothing.
Closed-form checks on short windows; no timing assertions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.sim import kernel_emt as k
from bench.sim.ai_load import (CheckpointDips, ConstantLoad, JobEnvelope, MeasuredProfile,
                               Oscillation, ProfileError, StepChanges, TrainingIterations)
from bench.sim.plant import Plant, PlantConfig

P_RATED_W = 250e3
W_NOM = 2.0 * math.pi * 60.0


def grid_plant(defects: tuple[str, ...] = ()) -> Plant:
    plant = Plant(PlantConfig(ring_s=2.0, defects=defects))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.2)
    return plant


def test_load_bank_draws_its_impedance_power_at_the_measured_voltage():
    plant = grid_plant()
    plant.set_load_bank(p_w=100e3, q_inductive_var=60e3, q_capacitive_var=20e3)
    plant.advance(0.3)
    v_ln = np.mean(plant.pcs_telemetry()["v_ln_rms_v"])
    v_nom = 480.0 / math.sqrt(3.0)
    scale = (v_ln / v_nom) ** 2                    # constant impedance: P, Q ~ V^2
    load = plant.load_measurements()
    assert load["p_w"] == pytest.approx(100e3 * scale, rel=5e-3)
    assert load["q_var"] == pytest.approx((60e3 - 20e3) * scale, rel=1e-2)
    # power balance: the grid simulator delivers load + bench-impedance losses
    i_g = np.array(plant.source_measurements()["i_rms_a"])
    losses_w = plant.impedance.r_ohm * np.sum(i_g ** 2)
    assert plant.source_measurements()["p_w"] == pytest.approx(load["p_w"] + losses_w, rel=5e-3)


def test_load_bank_switches_at_the_next_step():
    plant = grid_plant()
    plant.set_load_bank(p_w=200e3)
    t0 = plant.t_s
    plant.advance(0.01)
    n = int(0.005 * plant.sample_rate_hz)
    i = plant.read_ring(["load_ia_a"], t0, n)[0]
    assert abs(i[1]) > 0.0 and np.max(np.abs(i)) > 100.0   # i[0] is the pre-step sample
    plant.set_load_bank()
    plant.advance(0.05)
    assert plant.load_measurements()["p_w"] == pytest.approx(0.0, abs=1.0)


def test_ai_load_draws_constant_power_with_first_order_response():
    plant = grid_plant()
    plant.set_ai_load(ConstantLoad(150e3))
    tau_s = plant.config.ai_load.power_tau_s
    plant.advance(tau_s)
    assert plant.state[k.S_AI_P] == pytest.approx(150e3 * (1 - math.exp(-1.0)), rel=0.01)
    plant.advance(0.2)
    load = plant.load_measurements()
    assert load["p_w"] == pytest.approx(150e3, rel=5e-3)
    assert load["ai_p_w"] == pytest.approx(150e3, rel=5e-3)
    assert abs(load["q_var"]) < 0.01 * 150e3                 # unity power factor
    # constant power: a 10 % lower voltage draws the same power with more current
    i_before = np.mean(load["i_rms_a"])
    plant.set_source(v_ln_rms_v=[0.9 * 480 / math.sqrt(3)] * 3)
    plant.advance(0.2)
    load = plant.load_measurements()
    assert load["p_w"] == pytest.approx(150e3, rel=5e-3)
    assert np.mean(load["i_rms_a"]) == pytest.approx(i_before / 0.9, rel=0.02)


def test_ai_load_current_limit_and_regeneration():
    plant = grid_plant()
    plant.set_ai_load(ConstantLoad(400e3))               # beyond the 361 A rating
    plant.advance(0.2)
    load = plant.load_measurements()
    assert np.mean(load["i_rms_a"]) == pytest.approx(plant.config.ai_load.i_max_a, rel=0.01)
    plant.set_ai_load(ConstantLoad(-100e3))              # regenerative
    plant.advance(0.2)
    assert plant.load_measurements()["p_w"] == pytest.approx(-100e3, rel=5e-3)
    plant.set_ai_load(None)
    plant.advance(0.1)
    assert abs(plant.load_measurements()["p_w"]) < 100.0


def _grid_ramp_per_1s_average(defects: tuple[str, ...]) -> tuple[float, float, Plant]:
    """AI load steps 50 -> 200 kW with smoothing on; returns (max ramp of the 1-s average
    of the grid power in W/s, final grid power, plant)."""
    plant = grid_plant(defects)
    plant.pcs_command("start")
    plant.set_ai_load(ConstantLoad(50e3))
    plant.advance(0.5)
    plant.pcs_settings.smoothing_enabled = True
    plant.pcs_settings.smoothing_ramp_pu_per_s = 0.2
    plant.advance(0.2)
    plant.set_ai_load(StepChanges([1.0], [200e3], initial_w=50e3))   # 1 s of history first
    cycles = 60 * 5
    grid_w = np.empty(cycles)
    for i in range(cycles):
        plant.advance(1 / 60)
        grid_w[i] = plant.pcc_grid_measurements()["p_w"]
    avg_1s = np.convolve(grid_w, np.ones(60) / 60, mode="valid")
    ramp = np.max(np.abs(avg_1s[60:] - avg_1s[:-60]))      # change of 1-s averages 1 s apart
    return ramp, grid_w[-1], plant


def test_smoothing_bounds_the_grid_ramp_and_ramp_buffer_slow_does_not():
    limit_w_per_s = 0.2 * P_RATED_W
    ramp, final_w, plant = _grid_ramp_per_1s_average(())
    assert ramp <= limit_w_per_s
    assert ramp >= 0.8 * limit_w_per_s                      # it does ramp, not freeze
    tel = plant.pcs_telemetry()
    # energy balance at the bus: grid + PCS = load (+ small PCC losses)
    load_w = plant.load_measurements()["p_w"]
    assert final_w + tel["p_w"] == pytest.approx(load_w, rel=0.01)
    slow_ramp, _, _ = _grid_ramp_per_1s_average(("ramp_buffer_slow",))
    assert slow_ramp > 1.5 * limit_w_per_s


# ------------------------------------------------------------------ profiles
def test_training_iterations_profile_shape():
    prof = TrainingIterations(rating_w=200e3, period_s=2.0, compute_fraction_of_period=0.75,
                              high_fraction=0.9, swing_fraction=0.5, edge_s=0.0)
    t = np.arange(0.0, 8.0, 0.001)
    p = prof.power_w(t)
    assert p.max() == pytest.approx(180e3) and p.min() == pytest.approx(80e3)
    assert np.mean(p > 130e3) == pytest.approx(0.75, abs=0.01)
    spectrum = np.abs(np.fft.rfft(p - p.mean()))
    assert np.fft.rfftfreq(t.size, 0.001)[np.argmax(spectrum)] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ProfileError):
        TrainingIterations(rating_w=1.0, period_s=0.5)


def test_checkpoint_job_envelope_and_oscillation_profiles():
    base = ConstantLoad(100e3)
    dips = CheckpointDips(base, interval_s=10.0, dip_duration_s=2.0, dip_level_w=20e3, edge_s=0.0)
    assert dips.power_w(np.array([5.0, 11.0, 13.0]))[[0, 1, 2]] == pytest.approx([100e3, 20e3, 100e3])
    job = JobEnvelope(base, idle_w=10e3, start_s=1.0, cap_ramp_s=4.0, end_s=10.0, end_ramp_s=2.0)
    assert job.power_w(np.array([0.5, 3.0, 6.0, 11.0, 13.0])) == pytest.approx(
        [10e3, 55e3, 100e3, 55e3, 10e3])
    osc = Oscillation(mean_w=100e3, amplitude_w=20e3, freq_hz=5.0)
    assert osc.power_w(np.array([0.05])) == pytest.approx([120e3])
    for bad_hz in (0.05, 25.0):
        with pytest.raises(ProfileError):
            Oscillation(mean_w=0.0, amplitude_w=1.0, freq_hz=bad_hz)


def test_csv_profile_replays_and_rejects_bad_files(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("time_s,power_w\n10.0,1000\n10.5,2000\n11.0,1000\n")
    prof = MeasuredProfile.from_csv(good)
    assert prof.power_w(np.array([0.0, 0.25, 1.0, 5.0])) == pytest.approx([1000, 1500, 1000, 1000])
    cases = {"gap.csv": ("time_s,power_w\n0,1\n0.5,2\n2.0,3\n", r"gap.csv:4: gap of 1\.5 s"),
             "text.csv": ("time_s,power_w\n0,1\n0.5,lots\n", r"text.csv:3: power_w 'lots'"),
             "back.csv": ("0,1\n0.5,2\n0.4,3\n", r"back.csv:3: time 0\.4 s does not increase"),
             "nan.csv": ("0,1\n0.5,nan\n", r"nan.csv:2: power_w 'nan'")}
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ProfileError, match=message):
            MeasuredProfile.from_csv(path)


def test_profile_drives_the_plant_and_bad_values_are_refused():
    plant = grid_plant()
    plant.set_ai_load(StepChanges([0.08], [120e3], initial_w=30e3))
    plant.advance(0.07)
    assert plant.load_measurements()["p_w"] == pytest.approx(30e3, rel=0.01)
    plant.advance(0.1)
    assert plant.load_measurements()["p_w"] == pytest.approx(120e3, rel=0.01)
    with pytest.raises(ValueError):
        plant.set_ai_load("not a profile")      # type: ignore[arg-type]
    with pytest.raises(ValueError):
        plant.set_load_bank(p_w=-1.0)


def test_control_endpoint_load_ops(tmp_path):
    import asyncio
    import json

    from bench.sim.control import ControlHooks, ControlServer

    async def no_kill() -> None:
        return None

    plant = grid_plant()
    server = ControlServer(ControlHooks(plant=plant, lockstep=True, endpoints=dict,
                                        kill_pcs=no_kill, request_shutdown=lambda: None))

    def call(request: dict) -> dict:
        return asyncio.run(server.handle_line(json.dumps(request).encode()))

    assert call({"op": "load_bank", "p_w": 50e3})["ok"]
    assert call({"op": "ai_load", "profile": {"kind": "constant", "level_w": 80e3}})["ok"]
    assert call({"op": "advance", "dt_s": 0.3})["ok"]
    reply = call({"op": "loads"})
    assert reply["load"]["ai_p_w"] == pytest.approx(80e3, rel=0.01)
    assert reply["load"]["p_w"] == pytest.approx(130e3, rel=0.03)
    bad = call({"op": "ai_load", "profile": {"kind": "oscillation", "mean_w": 0,
                                             "amplitude_w": 1, "freq_hz": 50}})
    assert not bad["ok"] and "50" in bad["error"]
    missing = tmp_path / "missing.csv"
    bad = call({"op": "ai_load", "profile": {"kind": "csv", "path": str(missing)}})
    assert not bad["ok"]
    bad = call({"op": "ai_load", "profile": {"kind": "sawtooth"}})
    assert not bad["ok"] and "unknown profile kind" in bad["error"]
    assert call({"op": "ai_load", "profile": None})["ok"]
