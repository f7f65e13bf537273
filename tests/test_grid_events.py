"""Grid events of the virtual bench's plant, against closed-form results: frequency ramps at
a programmed RoCoF, phase jumps, two-phase and phase-to-phase faults; bad input refused.
Also the physics of the T7 defects that ride on them (trip_on_rocof, legacy_frequency_trip,
pll_loses_lock_on_jump) against the healthy PCS.

Short plant windows; no timing assertions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis import frequency_hz, per_cycle_phasor, rocof_hz_per_s, sequence_components
from bench.sim import kernel_emt as k
from bench.sim.plant import MAX_SOURCE_ROCOF_HZ_PER_S, GridConfig, Plant, PlantConfig

V_LN_NOM_V = 480.0 / math.sqrt(3.0)
F_NOM_HZ = 60.0
W_NOM = 2.0 * math.pi * F_NOM_HZ
P_RATED_W = 250e3
PCC = ["pcc_va_v", "pcc_vb_v", "pcc_vc_v"]
GRID_I = ["grid_ia_a", "grid_ib_a", "grid_ic_a"]


def energised_plant(defects: tuple[str, ...] = ()) -> Plant:
    plant = Plant(PlantConfig(grid=GridConfig(scr=5.0), ring_s=4.0, defects=defects))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.5)                    # the energising transient of the PCC LC has died
    return plant


def running_plant(defects: tuple[str, ...] = ()) -> Plant:
    """The PCS at rated power, its ride-through settings as a 2800 profile writes them."""
    plant = energised_plant(defects)
    settings = plant.pcs_settings
    settings.hv_mom_cess_v_pu, settings.lv_mom_cess_v_pu = 1.25, 0.0
    settings.p_ramp_w_per_s, settings.p_set_w = P_RATED_W, P_RATED_W
    plant.pcs_command("start")
    plant.advance(1.6)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    return plant


def positive_sequence(plant: Plant, names: list[str], t0_s: float, t1_s: float,
                      step_fraction: float = 0.25):
    n = int(round((t1_s - t0_s) * plant.sample_rate_hz))
    x = plant.read_ring(names, t0_s, n)
    phasors = per_cycle_phasor(x, plant.sample_rate_hz, F_NOM_HZ, step_fraction=step_fraction, t0_s=t0_s)
    return phasors.t_s, sequence_components(*phasors.phasor)


# ------------------------------------------------------------------ frequency ramps
def test_frequency_ramp_follows_the_programmed_rocof_and_stays_phase_continuous():
    plant = energised_plant()
    t_start = plant.t_s
    plant.set_source(freq_hz=59.0, rocof_hz_per_s=2.0)      # 0.5 s down, then held
    plant.advance(0.9)
    n = int(round(1.0 * plant.sample_rate_hz))
    v = plant.read_ring(PCC, t_start - 0.1, n)
    f = frequency_hz(*v, plant.sample_rate_hz, F_NOM_HZ, step_fraction=0.25, t0_s=t_start - 0.1)
    rocof = rocof_hz_per_s(f.t_s, f.f_hz, window_s=0.1)
    ramp = (f.t_s > t_start + 0.1) & (f.t_s < t_start + 0.4)
    assert rocof.rocof_hz_per_s[ramp] == pytest.approx(-2.0, rel=0.01)
    assert f.f_hz[ramp] == pytest.approx(60.0 - 2.0 * (f.t_s[ramp] - t_start), abs=0.01)
    held = f.t_s > t_start + 0.6
    assert f.f_hz[held] == pytest.approx(59.0, abs=2e-3)
    assert plant.source_frequency_hz() == 59.0
    assert plant.source_measurements()["freq_hz"] == pytest.approx(59.0)
    # phase-continuous: no sample-to-sample step beyond what the steady sine has
    steady = plant.read_ring(PCC, t_start - 0.3, int(round(0.2 * plant.sample_rate_hz)))
    assert np.max(np.abs(np.diff(v, axis=1))) <= 1.001 * np.max(np.abs(np.diff(steady, axis=1)))


def test_ramp_angle_is_the_integral_of_the_frequency():
    """Over a ramp 60 -> 59 Hz at 2 Hz/s, then held, the source falls behind the nominal
    frame by 360 * (0.5 * 1 Hz * 0.5 s + 1 Hz * t_held) degrees (at the window's centre)."""
    plant = energised_plant()
    t_start = plant.t_s
    before_t, before = positive_sequence(plant, PCC, t_start - 0.1, t_start)
    plant.set_source(freq_hz=59.0, rocof_hz_per_s=2.0)
    plant.advance(1.0)
    after_t, after = positive_sequence(plant, PCC, t_start + 0.9, t_start + 1.0)
    measured = math.degrees(np.angle(after.positive[-1] / before.positive[-1]))
    assert before_t[-1] < t_start                          # at 60 Hz: no angle lost yet
    held_s = after_t[-1] - t_start - 0.5                   # 1 Hz low since the ramp ended
    expected = -360.0 * (0.25 + 1.0 * held_s)
    assert (measured - expected + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=0.2)


def _staircase_angle_error_deg(chunk_s: float) -> float:
    """A 5 Hz/s ramp 60 -> 59 Hz as the kernel runs it, and as a plant stepping the frequency
    at chunk boundaries (each tread at the ramp's value at the chunk's middle) would: the
    largest angle between the two PCC voltages during the ramp."""
    ramped, stepped = energised_plant(), energised_plant()
    t0 = ramped.t_s
    ramped.set_source(freq_hz=59.0, rocof_hz_per_s=5.0)
    ramped.advance(0.25)
    n_chunks = int(round(0.2 / chunk_s))
    for i in range(n_chunks):
        stepped.set_source(freq_hz=60.0 - 5.0 * (i + 0.5) * chunk_s)
        stepped.advance(chunk_s)
    stepped.set_source(freq_hz=59.0)
    stepped.advance(0.05)
    _, a = positive_sequence(ramped, PCC, t0, t0 + 0.25, step_fraction=0.05)
    _, b = positive_sequence(stepped, PCC, t0, t0 + 0.25, step_fraction=0.05)
    return float(np.max(np.abs(np.degrees(np.angle(b.positive / a.positive)))))


def test_a_chunk_staircase_would_wander_from_the_ramp_the_kernel_runs():
    """Why the ramp lives in the kernel (kernel_grid_events.py): stepping the frequency at
    the plant's 50 ms chunks leaves the source's angle a visible distance off the ramp's;
    1 ms chunks would be close, at a kernel call per 20 steps."""
    coarse = _staircase_angle_error_deg(0.05)
    fine = _staircase_angle_error_deg(0.001)
    assert coarse > 0.4                 # ~ 360 * rate * chunk^2 / 8 = 0.56 deg
    assert fine < 0.02
    assert coarse > 20 * fine


def test_frequency_step_without_rocof_and_a_ramp_from_a_given_start():
    plant = energised_plant()
    plant.set_source(freq_hz=61.0)
    plant.advance(0.001)
    assert plant.source_frequency_hz() == 61.0
    plant.set_source(freq_hz=60.0, rocof_hz_per_s=4.0, freq_start_hz=60.5)
    plant.advance(0.0)
    assert plant.source_frequency_hz() == 60.5           # stepped to the ramp's start ...
    plant.advance(0.0625)
    assert plant.source_frequency_hz() == pytest.approx(60.25, abs=1e-6)   # ... and ramping
    plant.advance(0.1)
    assert plant.source_frequency_hz() == 60.0


def test_phasor_mode_ramps_the_source_too():
    plant = running_plant()
    plant.set_fidelity("phasor", dt_s=5e-3)
    plant.set_source(freq_hz=59.5, rocof_hz_per_s=1.0)
    plant.advance(0.25)
    assert plant.source_frequency_hz() == pytest.approx(59.75, abs=1e-9)
    plant.advance(1.0)
    assert plant.source_frequency_hz() == 59.5
    assert plant.pcs_telemetry()["freq_hz"] == pytest.approx(59.5, abs=0.01)
    assert plant.pcs_telemetry()["state"] == "RUNNING"


# ------------------------------------------------------------------ phase jumps
def test_positive_sequence_jump_appears_with_its_size_at_its_time():
    plant = energised_plant()
    t_jump = round(plant.t_s + 0.1234, 4)
    plant.schedule(t_jump, lambda p: p.set_source(phase_deg=[20.0, -100.0, 140.0]))
    plant.advance(0.5)
    _, before = positive_sequence(plant, PCC, t_jump - 0.1, t_jump)
    _, after = positive_sequence(plant, PCC, t_jump + 0.2, t_jump + 0.3)
    jump = math.degrees(np.angle(after.positive[-1] / before.positive[-1]))   # nominal frame
    assert jump == pytest.approx(20.0, abs=0.05)
    assert abs(after.negative[-1]) < 1e-3 * abs(after.positive[-1])
    # the grid current's slope changes on the step the jump was scheduled for, not before
    step = int(round(t_jump / plant.dt_s))
    i = plant.read_ring(["grid_ia_a"], (step - 40) * plant.dt_s, 60)[0]
    second_diff = np.abs(np.diff(i, 2))
    assert np.argmax(second_diff) in (38, 39)


def test_single_phase_jump_gives_the_negative_sequence_of_its_geometry():
    """Phase A alone 60 deg ahead: V1 = (e^j60 + 2)/3, V2 = (e^j60 - 1)/3 of the source's,
    and the PCC divider (PCS off) is the same for both sequences."""
    plant = energised_plant()
    t0 = plant.t_s
    plant.set_source(phase_deg=[60.0, -120.0, 120.0])
    plant.advance(0.3)
    _, seq = positive_sequence(plant, PCC, t0 + 0.2, t0 + 0.3)
    a = complex(math.cos(math.radians(60)), math.sin(math.radians(60)))
    assert abs(seq.negative[-1]) / abs(seq.positive[-1]) == pytest.approx(abs(a - 1) / abs(a + 2), rel=2e-3)


# ------------------------------------------------------------------ faults
def _steady_rms(plant: Plant, names: list[str]) -> np.ndarray:
    n = int(round(0.05 * plant.sample_rate_hz))
    x = plant.read_ring(names, plant.t_s - 0.05, n)
    return np.sqrt(np.mean(x ** 2, axis=1))


def test_bolted_phase_to_phase_fault_current_is_line_voltage_over_twice_the_impedance():
    plant = energised_plant()
    plant.apply_fault("bc", r_ohm=0.0)
    plant.advance(0.3)                                    # DC offset decays (L/R ~ 19 ms)
    assert plant.state[k.S_NET_COUPLED] == 1.0
    imp = plant.impedance
    e_bc = math.sqrt(3.0) * V_LN_NOM_V
    expected_a = e_bc / (2.0 * abs(complex(imp.r_ohm, W_NOM * imp.l_h)))
    i_abc = _steady_rms(plant, GRID_I)
    assert i_abc[1] == pytest.approx(expected_a, rel=3e-3)
    assert i_abc[2] == pytest.approx(expected_a, rel=3e-3)
    assert i_abc[0] < 20.0                                # capacitor current only
    v = _steady_rms(plant, PCC)
    assert v[1] == pytest.approx(v[2], rel=1e-3)          # the faulted phases meet at -Va/2
    assert v[1] == pytest.approx(0.5 * v[0], rel=0.01)
    plant.clear_fault()
    plant.advance(0.3)
    assert plant.state[k.S_NET_COUPLED] == 0.0
    assert plant.pcs_telemetry()["v_ln_rms_v"] == pytest.approx([278.8] * 3, rel=5e-3)


def test_phase_to_phase_fault_through_a_resistance():
    """R_f between A and B: I = E_ab / (2 Z + R_f), the PCC capacitance aside (< 0.5 %)."""
    plant = energised_plant()
    r_f = 0.5
    plant.apply_fault("ab", r_ohm=r_f)
    plant.advance(0.3)
    imp = plant.impedance
    z = complex(imp.r_ohm, W_NOM * imp.l_h)
    expected_a = math.sqrt(3.0) * V_LN_NOM_V / abs(2 * z + r_f)
    i_abc = _steady_rms(plant, GRID_I)
    assert i_abc[0] == pytest.approx(expected_a, rel=0.01)
    assert i_abc[1] == pytest.approx(expected_a, rel=0.01)


def test_two_phase_to_ground_fault_shorts_each_faulted_phase_on_the_four_wire_bench():
    plant = energised_plant()
    plant.apply_fault("cag", r_ohm=0.0)
    plant.advance(0.3)
    imp = plant.impedance
    expected_a = V_LN_NOM_V / abs(complex(imp.r_ohm, W_NOM * imp.l_h))
    i_abc = _steady_rms(plant, GRID_I)
    assert i_abc[0] == pytest.approx(expected_a, rel=5e-3)
    assert i_abc[2] == pytest.approx(expected_a, rel=5e-3)
    assert i_abc[1] < 20.0


def test_pcs_rides_through_a_phase_to_phase_fault_behind_the_bench_impedance():
    plant = running_plant()
    plant.apply_fault("ab", r_ohm=0.3)
    plant.advance(0.2)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    plant.clear_fault()
    plant.advance(0.6)
    tel = plant.pcs_telemetry()
    assert tel["state"] == "RUNNING"
    assert tel["p_w"] == pytest.approx(P_RATED_W, rel=0.02)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, complaint", [
    ({"freq_hz": 59.0, "rocof_hz_per_s": 0.0}, "RoCoF must be > 0"),
    ({"freq_hz": 59.0, "rocof_hz_per_s": -2.0}, "RoCoF must be > 0"),
    ({"freq_hz": 59.0, "rocof_hz_per_s": 5 * MAX_SOURCE_ROCOF_HZ_PER_S}, "at most"),
    ({"freq_hz": 59.0, "rocof_hz_per_s": float("nan")}, "RoCoF"),
    ({"rocof_hz_per_s": 2.0}, "needs the target freq_hz"),
    ({"freq_hz": 1500.0, "rocof_hz_per_s": 2.0}, "1..1000 Hz"),
    ({"freq_hz": 0.5}, "1..1000 Hz"),
    ({"freq_hz": 59.0, "freq_start_hz": 60.0}, "give rocof_hz_per_s"),
    ({"freq_hz": 59.0, "rocof_hz_per_s": 1.0, "freq_start_hz": 2000.0}, "ramp start"),
    ({"phase_deg": [0.0, float("inf"), 120.0]}, "finite"),
])
def test_bad_grid_event_programming_is_refused_and_changes_nothing(kwargs, complaint):
    plant = energised_plant()
    before = plant.params.copy()
    with pytest.raises(ValueError, match=complaint):
        plant.set_source(**kwargs)
    assert np.array_equal(plant.params, before)
    assert plant.source_frequency_hz() == F_NOM_HZ


def test_unknown_fault_kinds_and_unbalanced_faults_in_phasor_mode_are_refused():
    plant = running_plant()
    for bad in ("ac", "abc", "AB", ""):
        with pytest.raises(ValueError, match="fault kind must be one of"):
            plant.apply_fault(bad)
    with pytest.raises(ValueError, match="fault resistance"):
        plant.apply_fault("ab", r_ohm=-1.0)
    plant.apply_fault("ab", r_ohm=1.0)
    with pytest.raises(ValueError, match="balanced"):
        plant.set_fidelity("phasor")
    plant.clear_fault()
    plant.set_fidelity("phasor")
    for kind in ("ab", "bcg"):
        with pytest.raises(ValueError, match="balanced"):
            plant.apply_fault(kind)


# ------------------------------------------------------------------ the T7 defects' physics
def test_healthy_pcs_rides_through_a_5_hz_per_s_ramp_and_trip_on_rocof_does_not():
    for defects, state in (((), "RUNNING"), (("trip_on_rocof",), "TRIPPED")):
        plant = running_plant(defects)
        plant.set_source(freq_hz=58.0, rocof_hz_per_s=5.0)
        plant.advance(1.0)
        tel = plant.pcs_telemetry()
        assert tel["state"] == state, defects
        if state == "RUNNING":
            assert tel["freq_hz"] == pytest.approx(58.0, abs=0.01)
            assert tel["p_w"] == pytest.approx(P_RATED_W, rel=0.02)
        else:
            assert tel["trip_reason"].startswith("RoCoF protection")


def test_trip_on_rocof_also_trips_on_the_slowest_category_ramp_but_not_on_its_own_start():
    plant = running_plant(("trip_on_rocof",))           # started: the start-up did not trip it
    plant.set_source(freq_hz=59.0, rocof_hz_per_s=0.5)
    plant.advance(1.5)
    assert plant.pcs_telemetry()["state"] == "TRIPPED"


def test_legacy_frequency_trip_trips_inside_the_ride_through_band():
    for defects, state in (((), "RUNNING"), (("legacy_frequency_trip",), "TRIPPED")):
        plant = running_plant(defects)
        plant.set_source(freq_hz=59.0, rocof_hz_per_s=2.0)
        plant.advance(1.5)
        assert plant.pcs_telemetry()["state"] == state, defects
    assert plant.pcs_telemetry()["trip_reason"].startswith("frequency protection")


def test_pll_losing_lock_on_a_phase_jump_ceases_current_for_a_second():
    for defects in ((), ("pll_loses_lock_on_jump",)):
        plant = running_plant(defects)
        t_jump = plant.t_s
        plant.set_source(phase_deg=[20.0, -100.0, 140.0])
        plant.advance(1.5)
        t, currents = positive_sequence(plant, ["pcs_ia_a", "pcs_ib_a", "pcs_ic_a"], t_jump, t_jump + 1.5)
        i_rated = P_RATED_W / (3 * V_LN_NOM_V)
        ceased_s = float(np.sum(np.abs(currents.positive) < 0.05 * i_rated) * (t[1] - t[0]))
        if defects:
            assert 0.9 < ceased_s < 1.2
            assert any(code == "PLL_LOCK" for _, code, _ in plant.pcs_events)
        else:
            assert ceased_s == 0.0
        assert plant.pcs_telemetry()["state"] == "RUNNING"
