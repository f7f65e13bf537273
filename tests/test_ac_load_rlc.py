"""Constant-impedance (RLC-bank) loads on the AC-load role: the Chroma 63800 driver's command
sequence and its refusal of the reactive parts the unit cannot draw (against a fake instrument),
and the 63800 twin's constant-resistance mode switching the plant's load bank (over a real
socket with plain pyvisa, never the project's driver: the two sides stay independent)."""
from __future__ import annotations

import math
import re

import pytest
import pyvisa

from instruments.ac_load import LoadCapabilityError
from sim_bench_helpers import BenchInThread, ControlClient
from test_instruments import fakes, rm  # noqa: F401 (fixtures)
from test_instruments_families import CHROMA_LOAD_IDN, _open

V_LN_NOM_V = 480.0 / math.sqrt(3.0)


# -- driver (fake instrument) -------------------------------------------------------------------

def test_driver_draws_the_resistive_part_in_constant_resistance_mode(fakes, rm):
    fake, load = _open(fakes, rm, "ac_load", "chroma_63800", {"*IDN?": CHROMA_LOAD_IDN})
    start = len(fake.settled())
    load.set_rlc_load(3000.0, 0.0, 0.0, v_ln_nominal_v=230.0)
    sent = fake.settled()[start:]
    resistance_ohm = 3.0 * 230.0 ** 2 / 3000.0           # 52.9 ohm per phase
    assert sent[:3] == ["MODE RES", f"RES {resistance_ohm:g}", "LOAD ON"]
    load.close()


def test_driver_opens_the_load_for_zero_and_takes_the_voltage_from_the_bench_file(fakes, rm):
    fake, load = _open(fakes, rm, "ac_load", "chroma_63800", {"*IDN?": CHROMA_LOAD_IDN},
                       options={"v_ln_nominal_v": 120.0})
    start = len(fake.settled())
    load.set_rlc_load(1440.0, 0.0, 0.0)
    load.set_rlc_load(0.0, 0.0, 0.0)
    sent = fake.settled()[start:]
    assert "RES 30" in sent and sent[-1] == "LOAD OFF"
    load.close()


def test_driver_refuses_reactive_parts_and_out_of_rating_power_before_sending(fakes, rm):
    fake, load = _open(fakes, rm, "ac_load", "chroma_63800", {"*IDN?": CHROMA_LOAD_IDN})
    start = len(fake.settled())
    with pytest.raises(LoadCapabilityError, match="inductive 500 var.*rectifier"):
        load.set_rlc_load(1000.0, 500.0, 0.0, v_ln_nominal_v=230.0)
    with pytest.raises(LoadCapabilityError, match="capacitive"):
        load.set_rlc_load(1000.0, 0.0, 200.0, v_ln_nominal_v=230.0)
    with pytest.raises(ValueError, match="p_w"):
        load.set_rlc_load(5000.0, 0.0, 0.0, v_ln_nominal_v=230.0)   # a 63803 takes 3.6 kW
    with pytest.raises(ValueError, match="nominal"):
        load.set_rlc_load(1000.0, 0.0, 0.0)                         # no voltage known
    assert [c for c in fake.settled()[start:] if not c.startswith("SYST:ERR")] == []
    load.close()


# -- twin (plain pyvisa over the virtual bench's socket) ----------------------------------------

@pytest.fixture(scope="module")
def bench():
    running = BenchInThread({"grid_simulator": "ametek_mx", "dc_source": "keysight_rp7900",
                             "oscilloscope": "tektronix_mso5", "ac_load": "chroma_63800"})
    yield running.bench
    running.close()


@pytest.fixture(scope="module")
def control(bench):
    client = ControlClient(bench.endpoints()["control"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def instruments(bench, control):
    manager = pyvisa.ResourceManager("@py")
    opened = {role: manager.open_resource(bench.endpoints()["instruments"][role], read_termination="\n",
                                          write_termination="\n", timeout=20_000)
              for role in ("grid_simulator", "ac_load")}
    opened["grid_simulator"].write(f"*RST;*CLS;VOLT {V_LN_NOM_V:.2f};FREQ 60;OUTP ON")
    control.advance(0.3)
    yield opened
    for instrument in opened.values():
        instrument.close()
    manager.close()


def _errors(instrument) -> list[str]:
    errors = []
    while not re.match(r"^\+?0,", reply := instrument.query("SYST:ERR?")):
        errors.append(reply)
    return errors


def test_twin_constant_resistance_switches_the_plant_load_bank(instruments, control):
    load = instruments["ac_load"]
    resistance_ohm = 3.0 * V_LN_NOM_V ** 2 / 100e3          # 100 kW at nominal voltage
    load.write(f"*RST;*CLS;MODE RES;RES {resistance_ohm:.6f};LOAD ON")
    control.advance(0.3)
    assert _errors(load) == []
    assert load.query("MODE?") == "RES"
    bank_w = control.request(op="loads")["load"]["p_w"]
    # constant impedance: the bank draws 100 kW scaled by (V / V_nom)^2 at the PCC it sees
    v_pu = float(load.query("MEAS:VOLT?")) / V_LN_NOM_V
    assert bank_w == pytest.approx(100e3 * v_pu ** 2, rel=0.02)
    assert float(load.query("MEAS:POW?")) == pytest.approx(bank_w, rel=0.01)
    assert float(load.query("MEAS:CURR?")) == pytest.approx(bank_w / (3 * v_pu * V_LN_NOM_V), rel=0.02)
    load.write("LOAD OFF")
    control.advance(0.2)
    assert abs(control.request(op="loads")["load"]["p_w"]) < 200.0


def test_twin_refuses_a_resistance_out_of_the_bank_range_and_the_rectifier_mode(instruments, control):
    load = instruments["ac_load"]
    load.write("*RST;*CLS;MODE RES;RES 0.01")              # below 1 ohm / 19 units in parallel
    assert _errors(load)[0].startswith("-222")
    load.write("MODE RLC;LOAD ON")                         # the rectifier emulation: not simulated
    assert _errors(load)[0].startswith("-221")
    assert load.query("LOAD?") == "0"


def test_twin_leaves_a_bank_it_did_not_switch_alone(instruments, control):
    """The plant's bank is shared with bench helpers: an AI-load setting does not reset it."""
    load = instruments["ac_load"]
    load.write("*RST;*CLS")
    assert control.request(op="load_bank", p_w=50e3)["ok"]
    load.write("MODE POW;POW 20000;LOAD ON")
    control.advance(0.3)
    readings = control.request(op="loads")["load"]
    assert readings["p_w"] - readings["ai_p_w"] == pytest.approx(50e3, rel=0.05)
    load.write("LOAD OFF")
    control.request(op="load_bank", p_w=0.0)
