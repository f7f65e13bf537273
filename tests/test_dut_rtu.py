"""The RTU transport over a pseudo-terminal pair, against the simulated PCS's RTU face.

pyserial opens the pty's slave path exactly as it opens /dev/ttyUSB0 on a real bench, so the
RTU framing, CRC and inter-frame timing of dut's transport are exercised end to end.
"""

from __future__ import annotations

import asyncio

import comtrade
import pytest

from dut.errors import DutError, ModbusPointError, SunSpecError
from dut.modbus_transport import ModbusTransport
from dut.sunspec import SunSpecDevice
from dut.sunspec_pcs import connect_pcs
from test_dut_on_virtual_pcs import VIRTUAL_PCS, VirtualPcsBench, modbus_pcs_module

if not hasattr(modbus_pcs_module, "start_pcs_rtu_server"):
    pytest.skip("bench/sim/modbus_pcs.py has no start_pcs_rtu_server (the simulated PCS's RTU face)",
                allow_module_level=True)

BAUDRATE = 115200
PARITY = "N"  # a pseudo-terminal refuses parity E/O settings (termios EINVAL)


@pytest.fixture(scope="module")
def rtu_bench():
    bench = VirtualPcsBench()
    server = asyncio.run_coroutine_threadsafe(
        modbus_pcs_module.start_pcs_rtu_server(bench.plant, baudrate=BAUDRATE, parity=PARITY), bench.loop
    ).result(timeout=30)
    bench.call(lambda: (bench.plant.set_source(output_on=True), bench.plant.set_dc_source(output_on=True)))
    bench.advance(0.5)   # the DC link charged and the telemetry image (0.1 s refresh) caught up
    bench.rtu = server
    yield bench
    asyncio.run_coroutine_threadsafe(server.stop(), bench.loop).result(timeout=10)
    bench.close()


def rtu_connection(bench, **extra):
    return {"transport": "rtu", "port": bench.rtu.port_path, "baudrate": BAUDRATE, "parity": PARITY,
            "stopbits": 1, "device_id": 1, "timeout_s": 1.0, "retries": 1, "point_map": "vpcs250", **extra}


def test_pcs_over_rtu(rtu_bench):
    pcs = connect_pcs(rtu_connection(rtu_bench), expected_identity=VIRTUAL_PCS, allow_control=True,
                      clock_now=rtu_bench.plant_time_s)
    try:
        assert [model.model_id for model in pcs.device.models][:2] == [1, 701]
        snapshot = pcs.telemetry()
        assert snapshot.freq_hz == pytest.approx(60.0, abs=0.05)
        assert snapshot.vdc_v == pytest.approx(900.0, rel=0.02)
        pcs.set_k_factor(2.5)  # FC16 over RTU, read back
        assert rtu_bench.call(lambda: rtu_bench.plant.pcs_settings.k_factor) == pytest.approx(2.5)
        pcs.set_k_factor(2.0)
    finally:
        pcs.close()


def test_disturbance_record_over_rtu(rtu_bench):
    """FC20 responses of 240 data bytes in RTU frames (the longest frames the PCS sends)."""
    pcs = connect_pcs(rtu_connection(rtu_bench), expected_identity=VIRTUAL_PCS, allow_control=True,
                      clock_now=rtu_bench.plant_time_s)
    try:
        pcs.start()
        rtu_bench.advance(0.5)
        nominal_v = 480.0 / 3**0.5
        rtu_bench.call(lambda: rtu_bench.plant.set_source(v_ln_rms_v=[0.6 * nominal_v] * 3))
        rtu_bench.advance(0.2)
        rtu_bench.call(lambda: rtu_bench.plant.set_source(v_ln_rms_v=[nominal_v] * 3))
        rtu_bench.advance(1.0)
        records = pcs.disturbance_records()
        assert records
        cfg_text, dat_bytes = pcs.fetch_record(records[-1])
        record = comtrade.Comtrade()
        record.read(cfg_text, dat_bytes)
        assert record.total_samples > 0
    finally:
        pcs.close()


def test_device_answering_for_another_id_over_rtu(rtu_bench):
    transport = ModbusTransport.rtu(rtu_bench.rtu.port_path, baudrate=BAUDRATE, parity=PARITY,
                                    device_id=7, timeout_s=0.3, retries=0)
    transport.connect()
    try:
        with pytest.raises(SunSpecError, match="device id 7") as caught:
            SunSpecDevice(transport).discover()
        # silence (timeout) or a gateway-style exception 0x0B: either way the id is suspected
        assert "wrong device id" in str(caught.value)
        with pytest.raises(ModbusPointError, match="wrong device id"):
            transport.read_holding(41000, 1, point="vpcs250.map_version")
    finally:
        transport.close()


def test_serial_settings_the_port_refuses_are_explained():
    import os

    master_fd, slave_fd = os.openpty()
    try:
        transport = ModbusTransport.rtu(os.ttyname(slave_fd), baudrate=19200, parity="E", timeout_s=0.3)
        try:
            transport.connect()
        except DutError as exc:  # this kernel's ptys refuse parity: the reason is named
            assert "19200 Bd 8E1" in str(exc) and "Invalid argument" in str(exc)
        else:  # a pty that takes parity: then the port simply opens
            transport.close()
    finally:
        os.close(master_fd)
        os.close(slave_fd)
