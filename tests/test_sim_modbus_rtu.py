"""The simulated PCS on Modbus RTU over a pseudo-terminal pair, read with pymodbus's serial
client through pyserial, as a USB-RS485 adapter would be used."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator

import pytest
from pymodbus.client import ModbusSerialClient
from pymodbus.pdu.file_message import FileRecord

from bench.sim.modbus_pcs import PcsRtuServer, start_pcs_rtu_server
from test_sim_modbus import exception_code, new_plant

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals")

ILLEGAL_ADDRESS = 0x02


@contextlib.contextmanager
def serving_rtu(plant, **kwargs) -> Iterator[PcsRtuServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="pcs-rtu", daemon=True)
    thread.start()
    try:
        server = asyncio.run_coroutine_threadsafe(start_pcs_rtu_server(plant, **kwargs), loop).result(10)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def rtu_client(server: PcsRtuServer) -> Iterator[ModbusSerialClient]:
    client = ModbusSerialClient(port=server.port_path, baudrate=server.baudrate, parity=server.parity,
                                bytesize=8, stopbits=1, timeout=2, retries=0)
    assert client.connect()
    try:
        yield client
    finally:
        client.close()


def test_model_1_and_vendor_points_over_rtu():
    plant = new_plant()
    plant.advance(0.2)
    # Parity N: the Linux 6.18 pty driver answers tcsetattr with PARENB set with EINVAL, so
    # pyserial cannot open a pty slave with parity E or O (a pty has no parity bits anyway).
    with serving_rtu(plant, device_id=7, parity="N") as server, rtu_client(server) as client:
        assert server.port_path.startswith("/dev/")
        marker = client.read_holding_registers(40000, count=2, device_id=7)
        assert marker.registers == [0x5375, 0x6E53]                     # "SunS"
        common = client.read_holding_registers(40002, count=68, device_id=7).registers
        assert common[:2] == [1, 66]
        text = b"".join(r.to_bytes(2, "big") for r in common[2:])
        assert text[:16].rstrip(b"\x00") == b"bessbench"                # Mn
        assert text[32:48].rstrip(b"\x00") == b"VPCS-250"               # Md
        # the vendor block and a write, on the same device as over TCP
        assert client.read_holding_registers(41000, count=1, device_id=7).registers == [1]
        assert not client.write_register(41003, 150, device_id=7).isError()
        assert plant.pcs_settings.k_factor == pytest.approx(1.5)
        # a bad request gets an exception, and the port keeps answering
        assert exception_code(client.read_holding_registers(41038, count=1, device_id=7)) == ILLEGAL_ADDRESS
        assert exception_code(client.read_file_record(
            [FileRecord(file_number=1, record_number=0, record_length=2)], device_id=7)) == ILLEGAL_ADDRESS
        assert client.read_holding_registers(40000, count=1, device_id=7).registers == [0x5375]
