"""The Chroma 63800 AC-load twin over real sockets with plain pyvisa (never the project's
driver), the scope wiring the launcher takes from a bench file, and the two-wattmeter (Aron)
grid-side power the T4 plan relies on, checked against the plant's own grid power."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from bench.ai_buffering import two_wattmeter_power_w
from bench.sim.plant import Plant
from bench.sim.launcher import SCOPE_PROBE_POINTS, ScopeWiringError, scope_wiring_from_channels
from bench.sim.scpi.tektronix_mso import DEFAULT_WIRING, ProbeWiring
from sim_bench_helpers import BenchInThread, ControlClient

REPO_ROOT = Path(__file__).resolve().parents[1]
VIRTUAL_BENCH = REPO_ROOT / "bench" / "benches" / "virtual.toml"
V_LN_NOM_V = 480.0 / math.sqrt(3.0)
INSTRUMENTS = {"grid_simulator": "ametek_mx", "dc_source": "keysight_rp7900", "oscilloscope": "tektronix_mso5",
               "ac_load": "chroma_63800"}


@pytest.fixture(scope="module")
def bench():
    running = BenchInThread(INSTRUMENTS)
    yield running.bench
    running.close()


@pytest.fixture(scope="module")
def control(bench):
    client = ControlClient(bench.endpoints()["control"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def resources(bench):
    manager = pyvisa.ResourceManager("@py")
    opened = {role: manager.open_resource(bench.endpoints()["instruments"][role], read_termination="\n",
                                          write_termination="\n", timeout=20_000)
              for role in ("grid_simulator", "ac_load")}
    yield opened
    for instrument in opened.values():
        instrument.close()
    manager.close()


@pytest.fixture(scope="module")
def load(resources):
    return resources["ac_load"]


@pytest.fixture(scope="module")
def energised(resources, control):
    """The grid simulator at nominal voltage: the load has something to draw from."""
    grid = resources["grid_simulator"]
    grid.write(f"*RST;*CLS;VOLT {V_LN_NOM_V:.2f};FREQ 60;OUTP ON")
    control.advance(0.3)
    return grid


def drain_errors(instrument) -> list[str]:
    errors = []
    while not re.match(r"^\+?0,", reply := instrument.query("SYST:ERR?")):
        errors.append(reply)
    return errors


# --- identity, error queue, ranges --------------------------------------------------------


def test_identity_is_a_63804(load):
    assert load.query("*IDN?") == "Chroma ATE,63804,638040000001,1.00"


def test_error_queue_reports_each_refusal_in_order(load):
    load.write("*RST;*CLS")
    load.write("LOAD:BOGUS 1")
    load.write("POW 300000")            # beyond the stretched 250 kW rating
    load.write("MODE SIDEWAYS")
    load.write("LIST:STAT ON")          # nothing programmed
    errors = drain_errors(load)
    assert [int(e.split(",")[0]) for e in errors] == [-113, -222, -224, -221]
    assert "Data out of range" in errors[1]
    assert load.query("SYST:ERR?").startswith("0,")


def test_ranges_are_the_stretched_bank_ratings(load):
    load.write("*RST;*CLS;POW 250000;CURR 361")
    assert drain_errors(load) == []
    assert float(load.query("POW?")) == pytest.approx(250e3)
    assert float(load.query("LOAD:CURR?")) == pytest.approx(361.0)
    load.write("CURR 362")
    assert drain_errors(load)[0].startswith("-222")
    load.write("MODE 1")                 # the manual's numeric form of POW
    assert load.query("MODE?") == "POW"
    load.write("MODE RLC;LOAD ON")       # a mode the virtual bench does not simulate
    assert drain_errors(load)[0].startswith("-221")
    assert load.query("LOAD?") == "0"
    load.write("*RST")


# --- the plant sees what the load is told -----------------------------------------------------


def test_power_step_reaches_the_plant_and_the_meter(bench, load, energised, control):
    load.write("*RST;*CLS;MODE POW;POW 50000;LOAD ON")
    assert drain_errors(load) == []
    control.advance(0.2)
    assert bench.plant.load_measurements()["ai_p_w"] == pytest.approx(50e3, rel=0.02)
    load.write("POW 150000")            # the step
    control.advance(0.2)
    assert bench.plant.load_measurements()["ai_p_w"] == pytest.approx(150e3, rel=0.02)
    assert float(load.query("MEAS:POW?")) == pytest.approx(150e3, rel=0.02)
    v_ln = float(load.query("MEAS:VOLT?"))
    assert v_ln == pytest.approx(V_LN_NOM_V, rel=0.05)
    assert float(load.query("MEAS:CURR?")) == pytest.approx(150e3 / (3 * v_ln), rel=0.02)
    assert float(load.query("MEAS:FREQ?")) == pytest.approx(60.0, abs=0.05)
    load.write("LOAD OFF")
    control.advance(0.1)
    assert abs(bench.plant.load_measurements()["ai_p_w"]) < 1e3
    assert drain_errors(load) == []


def test_constant_current_draws_its_power_at_the_terminal_voltage(bench, load, energised, control):
    load.write("*RST;*CLS;MODE CURR;CURR 100;LOAD ON")
    control.advance(0.2)
    expected_w = 3 * 100.0 * float(load.query("MEAS:VOLT?"))
    assert bench.plant.load_measurements()["ai_p_w"] == pytest.approx(expected_w, rel=0.03)
    load.write("LOAD OFF")


def test_list_plays_from_the_start_command_then_returns_to_the_static_level(bench, load, energised, control):
    # the driver's default list words (the assumption twin and driver share)
    load.write("*RST;*CLS;MODE POW;POW 20000;LOAD ON")
    load.write("LIST:DWEL 0.3,0.2;LIST:POW 100000,60000;LIST:COUN 2")
    control.advance(0.5)                # the list does not play before LIST:STAT ON
    assert bench.plant.load_measurements()["ai_p_w"] == pytest.approx(20e3, rel=0.03)
    load.write("LIST:STAT ON")
    assert drain_errors(load) == []
    seen_kw = []
    for _ in range(6):                  # 0.15, 0.4, 0.65, 0.9, 1.15, 1.4 s after the start
        control.advance(0.15 if not seen_kw else 0.25)
        seen_kw.append(bench.plant.load_measurements()["ai_p_w"] / 1e3)
    assert seen_kw == pytest.approx([100, 60, 100, 60, 20, 20], abs=3)
    assert load.query("LIST:STAT?") == "1"
    load.write("LIST:DWEL 1,1")         # a running list cannot be edited
    assert drain_errors(load)[0].startswith("-221")
    load.write("LOAD OFF")
    assert load.query("LIST:STAT?") == "0"


def test_simulation_profile_plays_a_parameterised_generator(bench, load, energised, control):
    load.write("*RST;*CLS;MODE POW;LOAD ON")
    load.write("SIM:PROF '{\"kind\": \"training\", \"rating_w\": 200000, \"period_s\": 2.0, "
               "\"swing_fraction\": 0.5, \"high_fraction\": 0.9}'")
    assert drain_errors(load) == []
    control.advance(0.5)                # compute phase: 0.9 x 200 kW
    assert bench.plant.load_measurements()["ai_p_w"] == pytest.approx(180e3, rel=0.03)
    control.advance(1.2)                # 1.7 s: communication phase, 0.4 x 200 kW
    assert bench.plant.load_measurements()["ai_p_w"] == pytest.approx(80e3, rel=0.05)
    load.write("SIM:PROF '{\"kind\": \"nonsense\"}'")
    assert drain_errors(load)[0].startswith("-224")
    load.write("LOAD OFF")


# --- the two-wattmeter method against the plant's own grid power ---------------------------


def test_two_wattmeter_grid_power_matches_the_plant(bench, load, energised, control):
    """Grid-side P from ig_a, ig_b and the line-to-line voltages equals what the plant
    integrates from all three phases: the bench is three-wire, nothing returns through a
    neutral, so the third current is redundant."""
    load.write("*RST;*CLS;MODE POW;POW 120000;LOAD ON")
    control.advance(0.3)
    plant = bench.plant
    n = int(round(10 / 60 / plant.dt_s))       # ten cycles
    v = plant.read_ring(["pcc_va_v", "pcc_vb_v", "pcc_vc_v"], plant.t_s - (n - 1) * plant.dt_s, n)
    ig = plant.read_ring(["grid_ia_a", "grid_ib_a", "grid_ic_a"], plant.t_s - (n - 1) * plant.dt_s, n)
    assert np.max(np.abs(ig.sum(axis=0))) < 1e-6 * np.max(np.abs(ig))   # no zero sequence
    power = two_wattmeter_power_w(v[0], v[1], v[2], ig[0], ig[1], sample_rate_hz=plant.sample_rate_hz,
                                  f_nominal_hz=60.0)
    assert np.mean(power.p_w) == pytest.approx(plant.pcc_grid_measurements()["p_w"], rel=0.005)
    three_wattmeter_w = np.mean(v[0] * ig[0] + v[1] * ig[1] + v[2] * ig[2])
    assert np.mean(power.p_w) == pytest.approx(three_wattmeter_w, rel=1e-6)
    load.write("LOAD OFF")


# --- scope wiring from the bench file ----------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    name: str
    channel: int
    ratio: float


def test_scope_probes_sit_where_the_channel_names_say():
    wiring = scope_wiring_from_channels([Channel("v_a", 1, 100.0), Channel("ig_b", 8, 200.0),
                                         Channel("il_c", 3, 50.0), Channel("vdc", 4, 1000.0)])
    assert wiring == {1: ProbeWiring("pcc_va_v", 100.0), 8: ProbeWiring("grid_ib_a", 200.0),
                      3: ProbeWiring("load_ic_a", 50.0), 4: ProbeWiring("vdc_v", 1000.0)}
    # the convention reproduces the default wiring of the 8-channel scope
    default_names = {"pcc_va_v": "v_a", "pcc_vb_v": "v_b", "pcc_vc_v": "v_c", "pcs_ia_a": "i_a",
                     "pcs_ib_a": "i_b", "pcs_ic_a": "i_c", "vdc_v": "vdc", "grid_ia_a": "ig_a"}
    channels = [Channel(default_names[w.signal], n, w.attenuation) for n, w in DEFAULT_WIRING.items()]
    assert scope_wiring_from_channels(channels) == DEFAULT_WIRING
    assert set(SCOPE_PROBE_POINTS.values()) <= set(Plant.ring_signals)


def test_unknown_channel_names_are_refused_naming_them():
    with pytest.raises(ScopeWiringError, match=r"CH5 'i_neutral'.*v_a"):
        scope_wiring_from_channels([Channel("v_a", 1, 100.0), Channel("i_neutral", 5, 100.0)])


def test_launcher_refuses_a_bench_file_with_an_unknown_probe_name(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text(VIRTUAL_BENCH.read_text().replace('name = "ig_b"', 'name = "i_mystery"'))
    result = subprocess.run([sys.executable, "-m", "bench.sim", "--bench", str(path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "CH8 'i_mystery'" in result.stderr
