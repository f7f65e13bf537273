"""Programmable output impedance (weak-grid emulation): the drivers' command sequences against
fake instruments, limits refused before anything is sent, the AMETEK MX twin over plain pyvisa
driving the plant's source impedance, and the SCR arithmetic of bench/weak_grid.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import pyvisa

from bench.weak_grid import (SeriesImpedance, WeakerThanTarget, added_impedance_for_scr, impedance_for_scr,
                             pcc_voltage_figures, scr_of)
from instruments.errors import LimitError
from instruments.grid_simulator import NoProgrammableImpedance, OutputImpedance
from instruments.registry import open_instrument
from sim_bench_helpers import BenchInThread
from test_instruments import MX_IDN, fakes, rm  # noqa: F401 (fixtures)
from test_instruments_families import CHROMA_GRID_IDN

RATING = dict(v_ll_nom_v=480.0, s_rated_va=250e3, f_hz=60.0)


def _open(fakes, rm, driver, replies, **kwargs):
    fake = fakes(replies)
    instrument = open_instrument("grid_simulator", driver, fake.resource, resource_manager=rm, timeout_s=0.5, **kwargs)
    return fake, instrument, len(fake.settled())


# -- AMETEK MX driver -------------------------------------------------------------------------
def test_mx_programs_resistance_reactance_in_mh_then_turns_the_impedance_on(fakes, rm):
    fake, grid, start = _open(fakes, rm, "ametek_mx", {"*IDN?": MX_IDN})
    grid.set_output_impedance(0.04, 0.7e-3)
    assert fake.settled()[start:] == ["INST:COUP ALL", "OUTP:IMP:REAL 0.04", "OUTP:IMP:REAC 0.7", "OUTP:IMP ON",
                                      "SYST:ERR?"]


def test_mx_zero_turns_the_impedance_off(fakes, rm):
    fake, grid, start = _open(fakes, rm, "ametek_mx", {"*IDN?": MX_IDN})
    grid.set_output_impedance(0.0, 0.0)
    assert fake.settled()[start:] == ["OUTP:IMP OFF", "SYST:ERR?"]


def test_mx_reads_back_what_it_emulates(fakes, rm):
    fake, grid, _ = _open(fakes, rm, "ametek_mx", {"*IDN?": MX_IDN, "OUTP:IMP?": ["1", "0"],
                                                   "OUTP:IMP:REAL?": "4.0E-02", "OUTP:IMP:REAC?": "7.0E-01"})
    reported = grid.output_impedance()
    assert reported.r_ohm == pytest.approx(0.04) and reported.l_h == pytest.approx(0.7e-3)
    assert grid.output_impedance() == OutputImpedance(0.0, 0.0)


@pytest.mark.parametrize("r_ohm, l_h", [(1.5, 0.5e-3), (0.05, 2e-3), (-0.01, 0.5e-3), (0.05, float("nan"))])
def test_mx_refuses_an_impedance_outside_its_range_before_sending(fakes, rm, r_ohm, l_h):
    fake, grid, start = _open(fakes, rm, "ametek_mx", {"*IDN?": MX_IDN})
    with pytest.raises(LimitError, match="output_impedance"):
        grid.set_output_impedance(r_ohm, l_h)
    assert fake.settled()[start:] == []


def test_mx_range_and_reactive_unit_follow_the_bench_options(fakes, rm):
    fake, grid, start = _open(fakes, rm, "ametek_mx", {"*IDN?": MX_IDN, "FREQ?": "60"},
                              options={"output_impedance_l_max_h": 2e-3, "output_impedance_reactive_unit": "ohm"})
    grid.set_output_impedance(0.05, 1.5e-3)
    sent = fake.settled()[start:]
    reactance = next(line for line in sent if line.startswith("OUTP:IMP:REAC "))
    assert float(reactance.split()[1]) == pytest.approx(2 * math.pi * 60.0 * 1.5e-3)
    assert sent[-2:] == ["OUTP:IMP ON", "SYST:ERR?"]


def test_mx_reports_the_instruments_own_error(fakes, rm):
    fake, grid, _ = _open(fakes, rm, "ametek_mx", {"*IDN?": MX_IDN,
                                                   "SYST:ERR?": ['-221,"Settings conflict"', '0,"No error"']})
    with pytest.raises(Exception, match="Settings conflict"):
        grid.set_output_impedance(0.04, 0.7e-3)


# -- Chroma 61800 driver ----------------------------------------------------------------------
def test_chroma_has_no_programmable_impedance_and_sends_nothing(fakes, rm):
    fake, grid, start = _open(fakes, rm, "chroma_61800", {"*IDN?": CHROMA_GRID_IDN})
    with pytest.raises(NoProgrammableImpedance, match="no programmable output impedance"):
        grid.set_output_impedance(0.04, 0.7e-3)
    with pytest.raises(LimitError):
        grid.set_output_impedance(-1.0, 0.0)
    grid.set_output_impedance(0.0, 0.0)          # zero is what it always emulates
    assert grid.output_impedance() == OutputImpedance(0.0, 0.0)
    assert fake.settled()[start:] == []


# -- AMETEK MX twin over plain pyvisa ---------------------------------------------------------
@pytest.fixture(scope="module")
def bench():
    running = BenchInThread()
    yield running.bench
    running.close()


@pytest.fixture(scope="module")
def mx(bench):
    manager = pyvisa.ResourceManager("@py")
    instrument = manager.open_resource(bench.endpoints()["instruments"]["grid_simulator"])
    instrument.read_termination = instrument.write_termination = "\n"
    instrument.timeout = 10_000
    yield instrument
    instrument.close()
    manager.close()


def test_twin_impedance_reaches_the_plant_in_series_with_the_wiring(bench, mx):
    wiring = bench.plant.source_impedance()
    mx.write("*RST")
    mx.write("OUTP:IMP:REAL 0.05")
    mx.write("OUTP:IMP:REAC 0.7")
    assert mx.query("OUTP:IMP?").strip() == "0"
    assert bench.plant.source_impedance().l_h == pytest.approx(wiring.l_h)   # values alone change nothing
    mx.write("OUTP:IMP ON")
    assert mx.query("SYST:ERR?").startswith("0")
    total = bench.plant.source_impedance()
    assert total.r_ohm == pytest.approx(wiring.r_ohm + 0.05)
    assert total.l_h == pytest.approx(wiring.l_h + 0.7e-3)
    assert float(mx.query("OUTP:IMP:REAC?")) == pytest.approx(0.7)
    mx.write("OUTP:IMP OFF")
    mx.query("*OPC?")                          # writes are not acknowledged: wait until it is done
    assert bench.plant.source_impedance().l_h == pytest.approx(wiring.l_h)


def test_twin_refuses_out_of_range_and_per_phase_impedance(bench, mx):
    mx.write("*RST")
    mx.write("OUTP:IMP:REAC 5")
    assert mx.query("SYST:ERR?").startswith("-222")
    mx.write("INST:COUP NONE")
    mx.write("OUTP:IMP ON")
    assert mx.query("SYST:ERR?").startswith("-221")
    mx.write("INST:COUP ALL")
    mx.write("OUTP:IMP:REAC 500UH")
    assert float(mx.query("OUTP:IMP:REAC?")) == pytest.approx(0.5)
    mx.write("*RST")
    assert mx.query("OUTP:IMP?").strip() == "0"


# -- SCR arithmetic ---------------------------------------------------------------------------
def test_impedance_for_an_scr_gives_that_scr():
    z = impedance_for_scr(5.0, 7.0, **RATING)
    assert scr_of(z, **RATING) == pytest.approx(5.0)
    assert 2 * math.pi * 60.0 * z.l_h / z.r_ohm == pytest.approx(7.0)


@pytest.mark.parametrize("target", [2.0, 3.0, 4.99])
def test_added_impedance_brings_the_total_to_the_target_scr(target):
    wiring = impedance_for_scr(5.0, 3.0, **RATING)       # a different X/R than the added part
    added = added_impedance_for_scr(target, wiring, x_over_r=7.0, **RATING)
    assert scr_of(wiring + added, **RATING) == pytest.approx(target, rel=1e-9)
    assert added.r_ohm > 0 and 2 * math.pi * 60.0 * added.l_h / added.r_ohm == pytest.approx(7.0)


def test_a_bench_already_weaker_than_the_target_is_refused():
    with pytest.raises(WeakerThanTarget, match="weaker than the SCR 5"):
        added_impedance_for_scr(5.0, impedance_for_scr(3.0, 7.0, **RATING), x_over_r=7.0, **RATING)
    assert added_impedance_for_scr(3.0, impedance_for_scr(3.0, 7.0, **RATING), x_over_r=7.0, **RATING).l_h == \
        pytest.approx(0.0, abs=1e-12)


def test_pcc_voltage_figures_find_extremes_and_an_oscillation():
    fs, f, v_nom = 6000.0, 60.0, 277.0
    t = np.arange(int(10 * fs)) / fs
    envelope = 1.0 + 0.02 * np.sin(2 * np.pi * 3.0 * t)        # a sustained 3 Hz swing of ±0.02 pu
    phases = [np.sqrt(2) * v_nom * envelope * np.cos(2 * np.pi * f * t - k * 2 * np.pi / 3) for k in range(3)]
    phases[1] = phases[1] * np.where(t > 5.0, 0.9, 1.0)         # phase B sags to 0.9 pu at 5 s
    figures = pcc_voltage_figures(phases, sample_rate_hz=fs, f_nominal_hz=f, v_ln_nom_v=v_nom, band_hz=(1.0, 20.0))
    assert figures.min_pu == pytest.approx(0.9 * 0.98, abs=0.003) and figures.min_at_s > 5.0
    assert figures.max_pu == pytest.approx(1.02, abs=0.003)
    assert figures.oscillation_pu == pytest.approx(0.02, rel=0.15)
    steady = [np.sqrt(2) * v_nom * np.cos(2 * np.pi * f * t - k * 2 * np.pi / 3) for k in range(3)]
    assert pcc_voltage_figures(steady, sample_rate_hz=fs, f_nominal_hz=f, v_ln_nom_v=v_nom,
                               band_hz=(1.0, 20.0)).oscillation_pu < 1e-4


def test_series_impedance_adds_and_measures():
    z = SeriesImpedance(0.03, 1e-3) + SeriesImpedance(0.01, 0.5e-3)
    assert z == SeriesImpedance(pytest.approx(0.04), pytest.approx(1.5e-3))
    assert z.magnitude_ohm(60.0) == pytest.approx(math.hypot(0.04, 2 * math.pi * 60 * 1.5e-3))
