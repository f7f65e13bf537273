"""The Modbus bench roles (genset controller, RLC load bank): resource strings, step
quantisation, bench-file validation, and the point-map driven drivers against the virtual
bench's VGC-1 and VLB-315 twins (written separately from docs/modbus_instruments.md).

The virtual bench runs as a subprocess (`python -m bench.sim --lockstep` on the packaged bench
file); the drivers reach it only through Modbus TCP, and plant time moves only when this test
asks the control endpoint (which also gives the plant's own view for cross-checks).
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from bench.config import BenchFileError, load_bench, virtual_plant_config
from calibration.policy import calibration_status
from instruments.ac_load import LoadCapabilityError
from instruments.errors import IdentityError, InstrumentError, LimitError
from instruments.load_bank import nearest_combination
from instruments.modbus_device import modbus_connection
from instruments.registry import open_instrument
from test_instruments_on_virtual_bench import VirtualBench

REPO = Path(__file__).resolve().parents[1]
VIRTUAL_TOML = REPO / "bench" / "benches" / "virtual.toml"
GENSET_OPTIONS = {"point_map": "vgc1", "allow_control": True, "s_rated_va": 500e3, "iso_class": "G2"}
BANK_OPTIONS = {"point_map": "vlb315", "allow_control": True, "v_ll_rated_v": 480.0,
                "resistive_steps_w": [5e3, 10e3, 20e3, 40e3, 80e3, 160e3],
                "inductive_steps_var": [5e3, 10e3, 20e3, 40e3, 80e3],
                "capacitive_steps_var": [5e3, 10e3, 20e3, 40e3, 80e3]}
V_LN_NOM_V = 480.0 / math.sqrt(3.0)


# ------------------------------------------------------------------ pure parts
def test_modbus_resources_are_parsed_and_bad_ones_named():
    assert modbus_connection("genset", "modbus-tcp://10.0.0.5:1502?device_id=7") == {
        "transport": "tcp", "host": "10.0.0.5", "port": 1502, "device_id": 7, "timeout_s": 1.0, "retries": 2}
    assert modbus_connection("genset", "modbus-tcp://10.0.0.5")["port"] == 502
    rtu = modbus_connection("load_bank", "modbus-rtu:///dev/ttyUSB1?baudrate=9600&parity=E&device_id=3")
    assert rtu == {"transport": "rtu", "port": "/dev/ttyUSB1", "device_id": 3, "timeout_s": 1.0, "retries": 2,
                   "baudrate": 9600, "parity": "E"}
    for bad, why in (("TCPIP::10.0.0.5::502::SOCKET", "scheme"), ("modbus-tcp://10.0.0.5?unit=3", "unknown setting"),
                     ("modbus-tcp://10.0.0.5?device_id=300", "outside 0..247"),
                     ("modbus-rtu://dev/ttyUSB0", "three slashes")):
        with pytest.raises(InstrumentError, match=why) as refused:
            modbus_connection("genset", bad)
        assert refused.value.role == "genset" and bad in str(refused.value)


def test_steps_are_quantised_to_the_nearest_combination():
    binary = [5e3, 10e3, 20e3, 40e3, 80e3, 160e3]
    assert nearest_combination(225e3, binary) == (0b101101, 225e3)       # 160 + 40 + 20 + 5
    assert nearest_combination(62.5e3, binary) == (0b1100, 60e3)           # a tie takes the smaller load
    assert nearest_combination(63e3, binary) == (0b1101, 65e3)
    assert nearest_combination(0.0, binary) == (0, 0.0)
    # a bank of equal steps: the nearest count of them
    assert nearest_combination(240e3, [100e3, 100e3, 100e3]) == (0b011, 200e3)
    assert nearest_combination(10e3, []) == (0, 0.0)


def _bench_with(tmp_path: Path, replace_from: str, replacement: str) -> Path:
    text = VIRTUAL_TOML.read_text()
    assert replace_from in text
    path = tmp_path / "bench.toml"
    path.write_text(text.replace(replace_from, replacement))
    return path


def test_bench_file_errors_name_the_key(tmp_path):
    path = _bench_with(tmp_path, 's_rated_va = 500e3\niso_class = "G2"\n', 'iso_class = "G4"\nrpm = 1800\n')
    with pytest.raises(BenchFileError) as refused:
        load_bench(path)
    text = str(refused.value)
    assert "instruments.genset.options.s_rated_va" in text and "rated apparent power" in text
    assert "instruments.genset.options.iso_class" in text and "G1, G2, G3" in text
    assert "instruments.genset.options.rpm" in text and "unknown option" in text
    path = _bench_with(tmp_path, 'point_map = "vlb315"', 'point_map = "no_such_bank"')
    with pytest.raises(BenchFileError, match=r"instruments.load_bank.options.point_map.*no shipped point map "
                                             r"named 'no_such_bank' \(shipped: vlb315\)"):
        load_bench(path)
    path = _bench_with(tmp_path, "inductive_steps_var = [5e3", "inductive_steps_var = [-5e3")
    with pytest.raises(BenchFileError, match="instruments.load_bank.options.inductive_steps_var.*positive sizes"):
        load_bench(path)


def test_a_map_without_a_point_the_driver_needs_is_refused(tmp_path):
    shipped = REPO / "instruments" / "genset" / "pointmaps" / "vgc1.toml"
    text = shipped.read_text().replace('name = "breaker_command"', 'name = "breaker_cmd"')
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "my_controller.toml").write_text(text)
    path = _bench_with(tmp_path, 'point_map = "vgc1"', 'point_map = "maps/my_controller.toml"')
    with pytest.raises(BenchFileError, match=r"instruments.genset.options.point_map.*no point 'breaker_command'"):
        load_bench(path)


def test_the_virtual_plant_gets_the_genset_the_bench_file_describes(tmp_path):
    plant = virtual_plant_config(load_bench(VIRTUAL_TOML))
    assert plant.genset is not None
    assert (plant.genset.iso_class, plant.genset.s_rated_va, plant.genset.v_ll_nom_v) == ("G2", 500e3, 480.0)
    without = _bench_with(tmp_path, "[instruments.genset]", "[instruments.not_a_genset]")
    with pytest.raises(BenchFileError):          # an unknown role is an error, not a silent bench
        load_bench(without)


def test_check_lists_the_genset_and_the_load_bank():
    result = subprocess.run([sys.executable, "-m", "bench.cli", "check"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"OK   genset +bessbench VGC-1 s/n VGC-0001 +calibration not_required", result.stdout)
    assert re.search(r"OK   load_bank +bessbench VLB-315 s/n VLB-0001 +calibration not_required", result.stdout)


def test_genset_and_load_bank_need_no_calibration_record():
    status = calibration_status("genset", "VGC-1", "VGC-0001", [], today=None)
    assert status.acceptable and status.state == "not_required" and "evidence, not judged" in status.detail
    assert calibration_status("oscilloscope", "MSO58", "X", [], today=None).state == "no_record"


# ------------------------------------------------------------------ drivers against the twins
@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("modbus_bench")
    shutil.copy(VIRTUAL_TOML, tmp / "bench.toml")
    virtual = VirtualBench(tmp, tmp / "bench.toml")
    yield virtual
    virtual.stop()


@pytest.fixture
def genset(bench):
    driver = open_instrument("genset", "modbus_genset", bench.resource("genset"), expected_model="VGC-1",
                             options=GENSET_OPTIONS, timeout_s=2.0)
    yield driver
    driver.safe_state()
    bench.advance(0.1)
    driver.close()


@pytest.fixture
def load_bank(bench):
    driver = open_instrument("load_bank", "modbus_load_bank", bench.resource("load_bank"), expected_model="VLB-315",
                             options=BANK_OPTIONS, timeout_s=2.0)
    yield driver
    driver.safe_state()
    driver.close()


def test_identities_and_a_wrong_model_refused(bench, genset, load_bank):
    assert bench.resource("genset").startswith("modbus-tcp://127.0.0.1:")
    assert (genset.identity.manufacturer, genset.identity.model, genset.identity.serial) == \
        ("bessbench", "VGC-1", "VGC-0001")
    assert (load_bank.identity.model, load_bank.identity.serial) == ("VLB-315", "VLB-0001")
    with pytest.raises(IdentityError, match="expected model 'GC-500'"):
        open_instrument("genset", "modbus_genset", bench.resource("genset"), expected_model="GC-500",
                        options=GENSET_OPTIONS)
    with pytest.raises(InstrumentError, match="reports rated_apparent_power = 500000 VA, the bench file says "
                                              r"instruments.genset.options.s_rated_va = 800000 VA"):
        open_instrument("genset", "modbus_genset", bench.resource("genset"),
                        options={**GENSET_OPTIONS, "s_rated_va": 800e3})


def test_a_map_for_another_product_is_refused_even_without_expected_model(bench, tmp_path):
    # a wrong address or a map for another controller must fail at open, before any write:
    # the device's identity points are compared with the map header
    text = (REPO / "instruments" / "genset" / "pointmaps" / "vgc1.toml").read_text()
    other = tmp_path / "other_controller.toml"
    other.write_text(text.replace('model = "VGC-1"', 'model = "GC-9000"', 1))
    with pytest.raises(InstrumentError, match="is for model 'GC-9000', but the device at this address "
                                              "reports 'VGC-1'"):
        open_instrument("genset", "modbus_genset", bench.resource("genset"),
                        options={**GENSET_OPTIONS, "point_map": str(other)})


def test_genset_starts_closes_carries_the_load_and_stops(bench, genset, load_bank):
    with pytest.raises(InstrumentError, match="engine reports STOPPED.*nothing was sent"):
        genset.close_breaker()
    genset.start_engine()
    bench.advance(1.0)
    assert genset.read().engine_state == "STARTING"
    bench.advance(2.5)
    reading = genset.read()
    assert reading.running and not reading.breaker_closed
    assert reading.v_ln_rms_v == pytest.approx((V_LN_NOM_V,) * 3, rel=0.01)   # open-circuit voltage
    assert reading.freq_hz == pytest.approx(60.0, abs=0.01)
    genset.close_breaker()
    setting = load_bank.set_load(100e3, 20e3)
    assert (setting.p_w, setting.q_inductive_var) == (100e3, 20e3)
    bench.advance(3.0)
    reading, plant = genset.read(), bench.request(op="genset")["genset"]
    assert reading.breaker_closed and reading.running and reading.alarms == ()
    assert reading.p_w == pytest.approx(plant["p_w"], rel=0.01, abs=200.0)
    assert reading.freq_hz == pytest.approx(plant["freq_hz"], abs=0.02)
    # the bank's own meter: constant impedances, power with the square of the bus voltage
    bank = load_bank.read()
    v_ratio2 = (sum(bank.v_ln_rms_v) / 3 / V_LN_NOM_V) ** 2
    assert bank.setting == setting
    assert bank.p_w == pytest.approx(100e3 * v_ratio2, rel=0.01)
    assert bank.q_var == pytest.approx(20e3 * v_ratio2 * 60.0 / bank.freq_hz, rel=0.02)
    assert reading.p_w == pytest.approx(bank.p_w, rel=0.02)    # the genset carries the bank alone
    genset.stop_engine()
    bench.advance(0.2)
    reading = genset.read()
    assert reading.engine_state == "STOPPED" and not reading.breaker_closed and reading.freq_hz == 0.0


def test_load_bank_refuses_before_sending(bench, load_bank):
    with pytest.raises(LimitError, match="inductive load 200000 var is beyond the bank's inductive rating "
                                         "155000 var.*nothing was sent"):
        load_bank.set_load(10e3, 200e3)
    with pytest.raises(LimitError, match="must be a number >= 0"):
        load_bank.set_load(-5e3)
    assert load_bank.read().setting.all_off
    no_capacitors = open_instrument("load_bank", "modbus_load_bank", bench.resource("load_bank"),
                                    options={**BANK_OPTIONS, "capacitive_steps_var": []})
    try:
        with pytest.raises(LoadCapabilityError, match="no capacitive steps"):
            no_capacitors.set_load(0.0, 0.0, 10e3)
    finally:
        no_capacitors.close()


def test_control_is_refused_unless_the_bench_file_allows_it(bench):
    read_only = open_instrument("genset", "modbus_genset", bench.resource("genset"),
                                options={**GENSET_OPTIONS, "allow_control": False})
    try:
        with pytest.raises(InstrumentError, match=r"engine start refused: the bench file does not allow control "
                                                  r"of this genset \(instruments.genset.options.allow_control"):
            read_only.start_engine()
        assert read_only.safe_state() is True          # nothing to undo: never commanded
        bench.advance(3.5)
        assert read_only.read().engine_state == "STOPPED"
    finally:
        read_only.close()


def test_the_twins_answer_like_the_manual(bench):
    host, port = bench.resource("load_bank").split("//")[1].split("?")[0].split(":")
    client = ModbusTcpClient(host, port=int(port), timeout=2.0)
    assert client.connect()
    try:
        assert client.write_register(100, 64, device_id=1).exception_code == 0x03   # no step 6
        assert client.read_holding_registers(50, count=1, device_id=1).exception_code == 0x02
        assert client.write_register(110, 1, device_id=1).exception_code == 0x02    # a meter reading
        assert client.read_holding_registers(0, count=1, device_id=5).exception_code == 0x0B
    finally:
        client.close()
    host, port = bench.resource("genset").split("//")[1].split("?")[0].split(":")
    client = ModbusTcpClient(host, port=int(port), timeout=2.0)
    assert client.connect()
    try:
        assert client.write_register(201, 1, device_id=1).exception_code == 0x04    # close while stopped
        assert client.write_register(200, 7, device_id=1).exception_code == 0x03
        assert client.read_holding_registers(200, count=2, device_id=1).registers == [0, 0]
    finally:
        client.close()
