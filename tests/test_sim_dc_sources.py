"""The Keysight DC-source twins (N8900 autoranging, RP7900 output resistance) on the virtual bench.

Plain pyvisa against the twins first (the twins are written from the manuals, the drivers
separately), then the project's drivers end to end: the role's host-side battery emulation
on the RP7900 twin while the simulated PCS discharges the emulated battery.
"""

from __future__ import annotations

import re

import pytest
import pyvisa

from bench.sim import kernel_emt as k
from instruments.dc_source import BatteryEmulation
from instruments.registry import open_instrument
from sim_bench_helpers import BenchInThread, ControlClient

INSTRUMENTS = {"grid_simulator": "ametek_mx", "oscilloscope": "tektronix_mso5"}


def drain_errors(instrument) -> list[str]:
    errors = []
    while not re.match(r"^\+?0,", reply := instrument.query("SYST:ERR?")):
        errors.append(reply)
    return errors


@pytest.fixture(scope="module")
def resource_manager():
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def _bench(dc_driver: str):
    running = BenchInThread({**INSTRUMENTS, "dc_source": dc_driver})
    control = ControlClient(running.bench.endpoints()["control"])
    return running, control


@pytest.fixture(scope="module")
def n8900_bench():
    running, control = _bench("keysight_n8900")
    yield running.bench, control
    control.close()
    running.close()


@pytest.fixture(scope="module")
def rp7900_bench():
    running, control = _bench("keysight_rp7900")
    yield running.bench, control
    control.close()
    running.close()


def _open(resource_manager, bench):
    return resource_manager.open_resource(bench.endpoints()["instruments"]["dc_source"],
                                          read_termination="\n", write_termination="\n",
                                          timeout=20_000)


# -- N8900 -----------------------------------------------------------------------------------------

def test_n8900_twin_holds_the_voltage_as_a_one_quadrant_autoranging_source(n8900_bench, resource_manager):
    bench, control = n8900_bench
    dc = _open(resource_manager, bench)
    try:
        assert re.fullmatch(r"Keysight Technologies,N8957A,\w+,[\w.]+", dc.query("*IDN?"))
        dc.write("*RST;*CLS;VOLT 900;CURR 300;VOLT:PROT 980;OUTP ON")
        assert drain_errors(dc) == []
        control.advance(0.2)
        assert dc.query("OUTP?") == "1"
        assert float(dc.query("MEAS:VOLT?")) == pytest.approx(900.0, rel=0.01)
        params = bench.plant.params
        assert params[k.P_DC_ILIM_SRC] == pytest.approx(300.0)     # the setting, under 333 A
        assert params[k.P_DC_ILIM_SINK] == 0.0                     # one quadrant
        dc.write("VOLT 975;CURR 400")                              # 20 x 15 kW at 975 V: 307.7 A
        assert dc.query("*OPC?") == "1"                            # the writes were taken
        assert params[k.P_DC_ILIM_SRC] == pytest.approx(300e3 / 975.0)
        dc.write("VOLT 1600")                                      # above 102 % of 1500 V
        dc.write("CURR 700")                                       # above 102 % of 20 x 30 A
        errors = drain_errors(dc)
        assert len(errors) == 2 and all(e.startswith('-222,"Data out of range') for e in errors)
        dc.write("VOLT:PROT 950")                                  # below the output: latches off
        assert dc.query("OUTP?") == "0" and dc.query("STAT:QUES:COND?") == "1"
        dc.write("VOLT:PROT 1000;OUTP:PROT:CLE")
        assert dc.query("OUTP?") == "1"
        assert drain_errors(dc) == []
    finally:
        dc.write("OUTP OFF")
        dc.close()


# -- RP7900 output resistance -------------------------------------------------------------------------

def test_rp7900_twin_output_resistance_reaches_the_plant(rp7900_bench, resource_manager):
    bench, _ = rp7900_bench
    dc = _open(resource_manager, bench)
    r_source = bench.plant.config.dc_source.r_internal_ohm
    try:
        dc.write("*RST;*CLS")
        assert float(dc.query("VOLT:RES?")) == 0.0
        dc.write("VOLT:RES 0.1")
        assert float(dc.query("VOLT:RES?")) == pytest.approx(0.1)   # (the write was taken)
        assert bench.plant.params[k.P_DC_R] == pytest.approx(r_source + 0.1)
        dc.write("SOUR:VOLT:RESISTANCE MAX")                      # 950 V / 40 A / 10 units
        assert float(dc.query("VOLT:RES?")) == pytest.approx(2.375)
        dc.write("VOLT:RES 3")
        assert drain_errors(dc)[0].startswith('-222,"Data out of range')
        dc.write("*RST")
        assert dc.query("*OPC?") == "1"
        assert bench.plant.params[k.P_DC_R] == pytest.approx(r_source)
    finally:
        dc.close()


def test_host_battery_emulation_on_the_rp7900_twin_follows_the_discharge(rp7900_bench):
    bench, control = rp7900_bench
    plant = bench.plant
    battery = BatteryEmulation.build(((0.0, 800.0), (50.0, 900.0), (100.0, 960.0)),
                                     r_internal_ohm=0.1, capacity_ah=20.0, soc_pct=50.0)
    grid = open_instrument("grid_simulator", "ametek_mx", bench.endpoints()["instruments"]["grid_simulator"],
                           options={"voltage_range_v": 400.0})
    dc = open_instrument("dc_source", "keysight_rp7900", bench.endpoints()["instruments"]["dc_source"],
                         options={"battery_emulation": "host"})
    try:
        dc.set_current_limits_a(400.0, 400.0)
        host = dc.configure_battery_emulation(battery)
        dc.output_on()
        grid.configure_nominal(480.0 / 3 ** 0.5, 60.0)
        grid.output_on()
        t_s = control.advance(0.3)
        plant.pcs_command("start")
        t_s = control.advance(0.5)
        plant.pcs_settings.p_set_w = 150e3
        host.update(t_s)
        for _ in range(16):
            t_s = control.advance(0.25)
            host.update(t_s)
        current_a = dc.measure_current_a()
        assert current_a == pytest.approx(150e3 / 890.0, rel=0.05)
        # the bench's count: ~167 A for ~3.5 s out of 20 Ah is ~0.8 %
        assert 49.0 < host.soc_pct < 49.5
        # the instrument's output resistance gives the drop, the host the OCV at its count
        # (plus the bench's own source-to-PCS resistance, which a real bench has too)
        r_bench = plant.config.dc_source.r_internal_ohm
        expected_v = battery.ocv_v(host.soc_pct) - (0.1 + r_bench) * current_a
        assert dc.measure_voltage_v() == pytest.approx(expected_v, abs=1.0)
        dc.battery_emulation_off()
        assert float(dc.query("VOLT:RES?")) == 0.0
    finally:
        plant.pcs_settings.p_set_w = 0.0
        plant.pcs_command("stop")
        dc.safe_state()
        grid.safe_state()
        dc.close()
        grid.close()


# -- Chroma 62000P / 62000D -------------------------------------------------------------------------

def test_chroma_twin_sinks_only_as_a_62000d():
    from bench.sim.plant import Plant, PlantConfig
    from bench.sim.scpi.chroma_62000p import Chroma62000P, Chroma62000PRatings

    plant = Plant(PlantConfig())
    p_unit = Chroma62000P(plant)
    p_unit.execute("SOUR:CURR:LIM:LOW -100")                      # a P unit does not sink
    assert p_unit.execute("SYST:ERR?").decode().startswith('-222,"Data out of range')
    assert plant.params[k.P_DC_ILIM_SINK] == 0.0
    d_unit = Chroma62000P(plant, ratings=Chroma62000PRatings(model="62180D-1200", sink_current_a=10.0))
    d_unit.execute("SOUR:CURR:LIM:HIGH 250;SOUR:CURR:LIM:LOW -200;SOUR:CURR 250")
    assert d_unit.execute("SYST:ERR?").decode().startswith('0,"No error"')
    assert plant.params[k.P_DC_ILIM_SINK] == pytest.approx(200.0)
    assert plant.params[k.P_DC_ILIM_SRC] == pytest.approx(250.0)
    d_unit.execute("SOUR:CURR:LIM:LOW -400")                      # 30 units x 10 A at most
    assert d_unit.execute("SYST:ERR?").decode().startswith('-222')
