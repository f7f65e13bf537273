"""Frequency ramps and phase jumps in grid-simulator transients: the role's segment checks,
both drivers' command sequences (against in-test fake instruments), the twins' behaviour
(their SCPI executed in-process on a plant), and the drivers against the twins on a bench
in a background thread (plant time moves only when the test advances it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis import per_cycle_phasor, sequence_components
from bench.sim.plant import Plant, PlantConfig
from bench.sim.scpi.ametek_asterion import AmetekAsterion as AsterionTwin
from bench.sim.scpi.ametek_mx import AmetekMx as MxTwin
from bench.sim.scpi.chroma_61800 import Chroma61800 as ChromaTwin
from instruments.errors import LimitError
from instruments.grid_simulator import DEFAULT_MAX_ROCOF_HZ_PER_S, GridSegment, NoProgrammableImpedance
from instruments.registry import open_instrument
from sim_bench_helpers import BenchInThread, ControlClient
from test_instruments import MX_IDN, fakes, rm  # noqa: F401 (fixtures)

CHROMA_GRID_IDN = "Chroma ATE,61845,618450001,1.00,1.01,1.02"
V = 277.0
NOMINAL = (V, V, V)
PCC = ["pcc_va_v", "pcc_vb_v", "pcc_vc_v"]


def rocof_transient(f_nom=60.0, f_low=58.0, rocof=5.0, hold_s=0.5) -> list[GridSegment]:
    """Down at rocof, held, back up at rocof, then nominal: what the T7 RoCoF point programs."""
    ramp_s = (f_nom - f_low) / rocof
    return [GridSegment(ramp_s, NOMINAL, f_low, freq_start_hz=f_nom),
            GridSegment(hold_s, NOMINAL, f_low),
            GridSegment(ramp_s, NOMINAL, f_nom, freq_start_hz=f_low),
            GridSegment(0.1, NOMINAL, f_nom)]


def jump_transient(shift=(20.0, 20.0, 20.0), hold_s=0.3) -> list[GridSegment]:
    return [GridSegment(hold_s, NOMINAL, 60.0, phase_shift_deg=shift), GridSegment(0.1, NOMINAL, 60.0)]


# ------------------------------------------------------------------ the role's segments
def test_segment_ramp_and_jump_properties_keep_the_existing_fields_meaning():
    plain = GridSegment(0.1, (277.0, 138.5, 277.0), 60.0)
    assert not plain.balanced and not plain.ramps and not plain.shifts_phase
    assert plain.rocof_hz_per_s == 0.0 and plain.start_freq_hz == 60.0
    ramp = GridSegment(0.4, NOMINAL, 58.0, freq_start_hz=60.0)
    assert ramp.ramps and ramp.balanced and ramp.rocof_hz_per_s == pytest.approx(-5.0)
    assert GridSegment(0.4, NOMINAL, 60.0, freq_start_hz=60.0).ramps is False
    jump = GridSegment(0.2, NOMINAL, 60.0, phase_shift_deg=(60.0, 0.0, 0.0))
    assert jump.shifts_phase and jump.balanced


# ------------------------------------------------------------------ AMETEK MX driver
def _mx(fakes, rm, replies=None, **kwargs):  # noqa: F811
    fake = fakes({"*IDN?": MX_IDN, "FREQ?": "60", **(replies or {})})
    return fake, open_instrument("grid_simulator", "ametek_mx", fake.resource, resource_manager=rm, **kwargs)


def test_mx_ramp_programs_a_frequency_slew_list(fakes, rm):  # noqa: F811
    fake, grid = _mx(fakes, rm)
    start = len(fake.settled())
    grid.program_transient(rocof_transient())
    sent = fake.settled()[start:]
    assert "LIST:DWEL 0.4,0.5,0.4,0.1" in sent
    assert "LIST:FREQ 58,58,60,60" in sent
    assert "LIST:FREQ:SLEW 5,MAX,5,MAX" in sent
    assert sent.index("FREQ:SLEW:MODE LIST") > sent.index("LIST:FREQ:SLEW 5,MAX,5,MAX")
    assert "PHAS:MODE FIXed" in sent and not any(c.startswith("LIST:PHAS") for c in sent)
    grid.close()


def test_mx_phase_jump_programs_a_phase_list_per_phase(fakes, rm):  # noqa: F811
    fake, grid = _mx(fakes, rm)
    start = len(fake.settled())
    grid.program_transient(jump_transient(shift=(60.0, 0.0, 0.0)) + jump_transient(shift=(-20.0,) * 3))
    sent = fake.settled()[start:]
    i = sent.index("LIST:PHAS 60,0,340,0")
    assert sent[i - 2:i + 5] == ["INST:COUP NONE", "INST:NSEL 1", "LIST:PHAS 60,0,340,0",
                                 "INST:NSEL 2", "LIST:PHAS 240,240,220,240",
                                 "INST:NSEL 3", "LIST:PHAS 120,120,100,120"]
    assert "PHAS:MODE LIST" in sent and "FREQ:SLEW:MODE FIXed" in sent
    assert not any(c.startswith("LIST:FREQ:SLEW") for c in sent)
    # the next plain list puts the modes back; a plain list after that sends neither
    start = len(fake.settled())
    grid.program_transient([GridSegment(0.1, NOMINAL, 60.0)])
    again = fake.settled()[start:]
    assert "PHAS:MODE FIXed" in again and "FREQ:SLEW:MODE FIXed" in again
    start = len(fake.settled())
    grid.program_transient([GridSegment(0.1, NOMINAL, 60.0)])
    assert not any("SLEW" in c or c.startswith("PHAS") for c in fake.settled()[start:])
    grid.close()


def test_mx_ramp_must_start_where_the_output_is(fakes, rm):  # noqa: F811
    fake, grid = _mx(fakes, rm, {"FREQ?": "59.5"})
    before = [c for c in fake.settled() if not c.endswith("?")]
    with pytest.raises(LimitError, match="segment 1 ramps from 60 Hz but the output is at 59.5 Hz"):
        grid.program_transient(rocof_transient())
    with pytest.raises(LimitError, match="segment 2 ramps from 59 Hz but the output is at 58 Hz"):
        grid.program_transient([GridSegment(0.1, NOMINAL, 58.0),
                                GridSegment(0.5, NOMINAL, 60.0, freq_start_hz=59.0)])
    assert [c for c in fake.settled() if not c.endswith("?")] == before     # only queries went out
    grid.close()


def test_mx_refuses_steep_ramps_and_bad_shifts_before_anything_is_sent(fakes, rm):  # noqa: F811
    fake, grid = _mx(fakes, rm, limits={"max_voltage_ln_v": 330.0})
    before = fake.settled()
    steep = DEFAULT_MAX_ROCOF_HZ_PER_S * 1.5
    with pytest.raises(LimitError, match=r"segment 1 ramps 60 -> 58 Hz.*max_rocof_hz_per_s = 10 Hz/s"):
        grid.program_transient([GridSegment(2.0 / steep, NOMINAL, 58.0, freq_start_hz=60.0)])
    with pytest.raises(LimitError, match="segment 2 freq_start_hz"):
        grid.program_transient([GridSegment(0.1, NOMINAL, 60.0),
                                GridSegment(1.0, NOMINAL, 60.0, freq_start_hz=5.0)])
    with pytest.raises(LimitError, match="segment 1 phase B phase_shift_deg"):
        grid.program_transient(jump_transient(shift=(0.0, 190.0, 0.0)))
    with pytest.raises(LimitError, match="not a finite number"):
        grid.program_transient(jump_transient(shift=(0.0, 0.0, float("nan"))))
    with pytest.raises(LimitError, match="three angles"):
        grid.program_transient([GridSegment(0.1, NOMINAL, 60.0, phase_shift_deg=(10.0, 10.0))])
    assert fake.settled() == before
    grid.close()


def test_the_bench_sets_the_steepest_ramp_by_option_or_safety_limit(fakes, rm):  # noqa: F811
    fake, grid = _mx(fakes, rm, options={"max_rocof_hz_per_s": 20.0})
    grid.program_transient(rocof_transient(rocof=15.0))
    assert "LIST:FREQ:SLEW 15,MAX,15,MAX" in fake.settled()
    grid.close()
    fake, grid = _mx(fakes, rm, options={"max_rocof_hz_per_s": 20.0}, limits={"max_rocof_hz_per_s": 4.0})
    with pytest.raises(LimitError, match="max_rocof_hz_per_s = 4 Hz/s"):
        grid.program_transient(rocof_transient(rocof=5.0))
    grid.close()


# ------------------------------------------------------------------ Chroma 61800 driver
def _chroma(fakes, rm, **kwargs):  # noqa: F811
    fake = fakes({"*IDN?": CHROMA_GRID_IDN})
    return fake, open_instrument("grid_simulator", "chroma_61800", fake.resource, resource_manager=rm, **kwargs)


def test_chroma_ramp_is_a_start_and_end_frequency_per_sequence(fakes, rm):  # noqa: F811
    fake, grid = _chroma(fakes, rm)
    start = len(fake.settled())
    grid.program_transient(rocof_transient(rocof=2.0))
    sent = fake.settled()[start:]
    assert "LIST:DWEL 1000,500,1000,100" in sent
    assert "LIST:FREQ:STAR 60,58,58,60" in sent and "LIST:FREQ:END 58,58,60,60" in sent
    assert not any(c.startswith("LIST:DEGR") for c in sent)
    grid.close()


def test_chroma_phase_jump_writes_each_phase_angle_list_and_clears_it_after(fakes, rm):  # noqa: F811
    fake, grid = _chroma(fakes, rm, options={"list_phase_command": "LIST:PHAS"})
    start = len(fake.settled())
    grid.program_transient(jump_transient(shift=(-20.0, -20.0, -20.0)))
    sent = fake.settled()[start:]
    i = sent.index("LIST:PHAS 340,0")
    assert sent[i - 2:i + 5] == ["INST:COUP NONE", "INST:NSEL 1", "LIST:PHAS 340,0",
                                 "INST:NSEL 2", "LIST:PHAS 340,0", "INST:NSEL 3", "LIST:PHAS 340,0"]
    assert sent.index("OUTP:MODE LIST") > i
    start = len(fake.settled())
    grid.program_transient([GridSegment(0.1, NOMINAL, 60.0), GridSegment(0.1, NOMINAL, 60.0)])
    assert "LIST:PHAS 0,0" in fake.settled()[start:]
    grid.close()


def test_chroma_refuses_a_ramp_steeper_than_the_bench_allows(fakes, rm):  # noqa: F811
    fake, grid = _chroma(fakes, rm)
    before = fake.settled()
    with pytest.raises(LimitError, match="RoCoF of 40 Hz/s"):
        grid.program_transient([GridSegment(0.05, NOMINAL, 58.0, freq_start_hz=60.0)])
    with pytest.raises(LimitError, match="instrument range"):                # 61800: 30..100 Hz
        grid.program_transient([GridSegment(5.0, NOMINAL, 60.0, freq_start_hz=25.0)])
    assert fake.settled() == before
    grid.close()


# ------------------------------------------------------------------ the twins
def _positive_angle_deg(plant: Plant, t0_s: float, t1_s: float) -> float:
    n = int(round((t1_s - t0_s) * plant.sample_rate_hz))
    x = plant.read_ring(PCC, t0_s, n)
    ph = per_cycle_phasor(x, plant.sample_rate_hz, 60.0, t0_s=t0_s)
    return math.degrees(float(np.angle(sequence_components(*ph.phasor).positive[-1])))


def _energised(twin_class):
    plant = Plant(PlantConfig(ring_s=4.0))
    twin = twin_class(plant)
    return plant, twin


@pytest.mark.parametrize("twin_class", [MxTwin, AsterionTwin], ids=["mx", "asterion"])
def test_california_instruments_twins_slew_the_plant_source_and_jump_its_phases_at_the_points(twin_class):
    plant, twin = _energised(twin_class)
    assert twin.execute(f"INST:COUP ALL;VOLT {V};FREQ 60;OUTP ON") is None
    plant.advance(0.3)
    twin.execute("LIST:DWEL 0.4,0.3;LIST:FREQ 58,60;LIST:FREQ:SLEW 5,MAX;"
                 "VOLT:MODE FIX;FREQ:MODE LIST;FREQ:SLEW:MODE LIST;TRIG:TRAN:SOUR IMM;INIT")
    assert twin.execute("SYST:ERR?") == b'0,"No error"\n'
    plant.advance(0.2)
    assert plant.source_frequency_hz() == pytest.approx(59.0, abs=1e-6)    # halfway down at 5 Hz/s
    plant.advance(0.2)
    assert plant.source_frequency_hz() == 58.0
    plant.advance(0.01)
    assert plant.source_frequency_hz() == 60.0                             # MAX slew: a step
    plant.advance(0.3)
    # a phase list at nominal frequency: all three phases 20 deg ahead from the second point
    twin.execute("LIST:DWEL 0.2,0.3;INST:COUP NONE;INST:NSEL 1;LIST:PHAS 0,20;INST:NSEL 2;LIST:PHAS 240,260;"
                 "INST:NSEL 3;LIST:PHAS 120,140;INST:COUP ALL;"
                 "FREQ:MODE FIX;FREQ:SLEW:MODE FIX;PHAS:MODE LIST;INIT")
    assert twin.execute("SYST:ERR?") == b'0,"No error"\n'
    t0 = plant.t_s
    plant.advance(0.5)
    jump = _positive_angle_deg(plant, t0 + 0.4, t0 + 0.5) - _positive_angle_deg(plant, t0 + 0.1, t0 + 0.2)
    assert (jump + 180) % 360 - 180 == pytest.approx(20.0, abs=0.05)
    assert twin.execute("LIST:FREQ:SLEW 0") is None
    assert twin.execute("SYST:ERR?").startswith(b"-222")


def test_the_asterion_twin_differs_from_the_mx_twin_where_its_ratings_do():
    plant = Plant(PlantConfig(ring_s=1.0))
    mx, asterion = MxTwin(plant), AsterionTwin(plant)
    assert asterion.execute("*IDN?").startswith(b"AMETEK Programmable Power,AST")
    for command, mx_error, asterion_error in (
            ("LIST:DWEL 0.0005", b"0,", b"-222"),                     # the Asterion's shortest dwell: 1 ms
            ("LIST:DWEL " + ",".join(["0.01"] * 50), b"-222", b"0,"),   # the MX lists 32 points
            ("OUTP:IMP:REAL 0.05", b"0,", b"-113")):                    # no output impedance known
        mx.execute(command)
        asterion.execute(command)
        assert mx.execute("SYST:ERR?").startswith(mx_error), command
        assert asterion.execute("SYST:ERR?").startswith(asterion_error), command


def test_chroma_twin_ramps_from_start_to_end_and_applies_each_phase_degree():
    plant, twin = _energised(ChromaTwin)
    twin.execute(f"INST:PHAS THREE;INST:COUP ALL;SOUR:VOLT:LEV:IMM:AMPL:AC {V};SOUR:FREQ 60;"
                 "OUTP:RELAY ON;OUTP:STATE ON")
    plant.advance(0.3)
    twin.execute("TRIG OFF;OUTP:MODE FIXED;LIST:COUNT 1;LIST:BASE TIME;LIST:DWEL 1000,200;LIST:SHAPE A,A;"
                 "LIST:FREQ:STAR 60,60;LIST:FREQ:END 59,60;"
                 f"LIST:VOLT:AC:STAR {V},{V};LIST:VOLT:AC:END {V},{V};"
                 "INST:COUP NONE;INST:NSEL 1;LIST:DEGR 0,60;INST:NSEL 2;LIST:DEGR 0,0;INST:NSEL 3;LIST:DEGR 0,0;"
                 "INST:COUP ALL;OUTP:MODE LIST;TRIG ON")
    assert twin.execute("SYST:ERR?").startswith(b"0,")
    t0 = plant.t_s
    plant.advance(0.5)
    assert plant.source_frequency_hz() == pytest.approx(59.5, abs=1e-6)    # 1 Hz over the 1 s dwell
    plant.advance(0.7)
    n = int(round(0.1 * plant.sample_rate_hz))
    x = plant.read_ring(PCC, t0 + 1.1, n)
    seq = sequence_components(*per_cycle_phasor(x, plant.sample_rate_hz, 60.0).phasor)
    a = complex(math.cos(math.radians(60)), math.sin(math.radians(60)))
    # phase 1 alone 60 deg ahead in the second sequence: its negative sequence shows it
    assert abs(seq.negative[-1]) / abs(seq.positive[-1]) == pytest.approx(abs(a - 1) / abs(a + 2), rel=0.01)
    assert twin.execute("TRIG?") == b"OFF\n"


# ------------------------------------------------------------------ drivers against the twins
@pytest.fixture(scope="module", params=["ametek_mx", "chroma_61800", "ametek_asterion"])
def bench_with(request):
    running = BenchInThread({"grid_simulator": request.param, "dc_source": "keysight_rp7900",
                             "oscilloscope": "tektronix_mso5"})
    control = ControlClient(running.bench.endpoints()["control"])
    yield request.param, running.bench, control
    control.close()
    running.close()


def test_drivers_program_ramps_and_jumps_the_twins_carry_out(bench_with, rm):  # noqa: F811
    driver, bench, control = bench_with
    grid = open_instrument("grid_simulator", driver, bench.endpoints()["instruments"]["grid_simulator"],
                           resource_manager=rm, limits={"max_voltage_ln_v": 330.0})
    grid.configure_nominal(V, 60.0)
    grid.output_on()
    control.advance(0.3)
    grid.program_transient(rocof_transient(f_low=59.0, rocof=2.0, hold_s=0.3)
                           + jump_transient(shift=(25.0,) * 3, hold_s=0.2))
    grid.start_transient()
    plant = bench.plant
    t0 = plant.t_s
    control.advance(0.25)
    assert plant.source_frequency_hz() == pytest.approx(59.5, abs=0.01)
    control.advance(0.5)
    assert plant.source_frequency_hz() == pytest.approx(59.0, abs=1e-6)
    control.advance(0.6)                        # back up, then 0.1 s nominal, then the jump
    assert plant.source_frequency_hz() == pytest.approx(60.0, abs=1e-6)
    t_jump = t0 + 0.5 + 0.3 + 0.5 + 0.1
    control.advance(t_jump + 0.2 - plant.t_s)
    before = _positive_angle_deg(plant, t_jump - 0.1, t_jump)
    after = _positive_angle_deg(plant, t_jump + 0.1, t_jump + 0.2)
    assert (after - before + 180) % 360 - 180 == pytest.approx(25.0, abs=0.2)
    assert grid.query("SYST:ERR?").startswith(("0", "+0"))
    grid.abort_transient()
    grid.close()


def test_drivers_measure_their_twins_and_emulate_an_impedance_only_where_the_family_can(bench_with, rm):  # noqa: F811
    driver, bench, control = bench_with
    grid = open_instrument("grid_simulator", driver, bench.endpoints()["instruments"]["grid_simulator"],
                           resource_manager=rm, limits={"max_voltage_ln_v": 330.0})
    try:
        grid.configure_nominal(V, 60.0)
        grid.output_on()
        control.advance(0.3)
        reading = grid.measure()
        assert reading.v_ln_rms_v == pytest.approx(NOMINAL, rel=0.01)
        assert reading.freq_hz == pytest.approx(60.0, abs=0.01)
        plant = bench.plant
        wiring = plant.source_impedance()
        if driver == "ametek_mx":
            grid.set_output_impedance(0.05, 200e-6)
            assert grid.output_impedance().l_h == pytest.approx(200e-6)
            assert plant.source_impedance().l_h == pytest.approx(wiring.l_h + 200e-6)
            grid.set_output_impedance(0.0, 0.0)
        else:
            with pytest.raises(NoProgrammableImpedance):
                grid.set_output_impedance(0.05, 200e-6)
            assert grid.output_impedance().is_zero
        assert plant.source_impedance() == wiring
        assert grid.query("SYST:ERR?").startswith(("0", "+0"))
    finally:
        assert grid.safe_state() is True
        grid.close()
