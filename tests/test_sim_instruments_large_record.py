"""A 10 M-point, 16-bit record from the Tektronix twin, read intact over a plain socket.

The record (1 MSa/s × 10 s, resampled from the plant's 20 kSa/s ring) is checked byte for
byte against the codes computed independently from the captured plant samples; no timing
is asserted here (rates belong to `bessbench io-benchmark`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import numpy as np
import pytest

from bench.sim.launcher import start_bench

POINTS = 10_000_000
SAMPLE_RATE_HZ = 1e6


@pytest.fixture(scope="module")
def running():
    from bench.sim.plant import PlantConfig

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="virtual-bench", daemon=True)
    thread.start()
    bench = asyncio.run_coroutine_threadsafe(start_bench(PlantConfig(), lockstep=True), loop).result(120)
    yield bench
    asyncio.run_coroutine_threadsafe(bench.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


class Line:
    """A plain socket speaking `\\n`-terminated SCPI."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.socket = socket.create_connection(address, timeout=120)
        self.reader = self.socket.makefile("rb")

    def write(self, text: str) -> None:
        self.socket.sendall(text.encode() + b"\n")

    def query(self, text: str) -> str:
        self.write(text)
        return self.reader.readline().decode().strip()

    def read_block(self) -> bytes:
        assert self.reader.read(1) == b"#"
        digits = int(self.reader.read(1))
        length = int(self.reader.read(digits))
        payload = self.reader.read(length)
        assert len(payload) == length
        assert self.reader.read(1) == b"\n"
        return payload

    def close(self) -> None:
        self.reader.close()
        self.socket.close()


def _address(resource: str) -> tuple[str, int]:
    _, host, port, _ = resource.split("::")
    return host, int(port)


def test_ten_million_point_block_arrives_intact_over_a_raw_socket(running):
    endpoints = running.endpoints()
    control = Line(_address("TCPIP::" + endpoints["control"].replace(":", "::") + "::SOCKET"))
    grid = Line(_address(endpoints["instruments"]["grid_simulator"]))
    scope = Line(_address(endpoints["instruments"]["oscilloscope"]))
    try:
        grid.write("INST:COUP ALL;VOLT 277.1;FREQ 60;OUTP ON")
        scope.write("HEADer OFF;*CLS;CH1:SCAle 1.0;HORizontal:MODE MANual;"
                    f"HORizontal:MODE:SAMPLERate {SAMPLE_RATE_HZ:g};HORizontal:MODE:RECOrdlength {POINTS};"
                    "HORizontal:POSition 10;TRIGger:A:MODe AUTO;ACQuire:STOPAfter SEQuence;ACQuire:STATE ON")
        assert scope.query("*OPC?") == "1"
        # AUTO trigger: forced one record length after the 1 s pre-trigger fills; the record ends 9 s later
        control.write(json.dumps({"op": "advance", "dt_s": 21.0}))
        assert json.loads(control.reader.readline())["ok"]
        assert scope.query("ACQuire:STATE?") == "0"
        assert scope.query("SYST:ERR?") == '0,"No error"'

        scope.write(f"DATa:SOUrce CH1;DATa:ENCdg SRIbinary;WFMOutpre:BYT_Nr 2;DATa:STARt 1;DATa:STOP {POINTS}")
        assert int(scope.query("WFMOutpre:NR_Pt?")) == POINTS
        scope.write("CURVe?")
        first = scope.read_block()
        scope.write("CURVe?")  # the second read comes from the twin's cache: the same bytes
        assert scope.read_block() == first
        codes = np.frombuffer(first, dtype="<i2")
        assert codes.size == POINTS

        # the same record computed independently: plant samples → float64 interpolation → codes
        capture = running.oscilloscope.capture
        volts = capture.resample(1, 1, POINTS)
        expected = np.clip(np.round(volts / 1.0 * 6400), -32768, 32767)
        difference = np.abs(codes.astype(np.int64) - expected.astype(np.int64))
        assert difference.max() <= 1  # float32 encoding may round a half-code the other way
        assert np.count_nonzero(difference) < POINTS // 1000
        assert codes.max() > 3 * 6400  # a 3.9 V peak at the input: the record is not empty
    finally:
        for line in (scope, grid, control):
            line.close()


def test_a_record_longer_than_the_memory_is_refused_with_a_clear_error(running):
    scope = Line(_address(running.endpoints()["instruments"]["oscilloscope"]))
    try:
        scope.write("HEADer OFF;*CLS;HORizontal:MODE:RECOrdlength 70000000")  # above 62.5 M points
        assert scope.query("SYST:ERR?").startswith('-222,"Data out of range; record length')
        scope.write("HORizontal:MODE:SAMPLERate 2e6;HORizontal:MODE:RECOrdlength 60000000;ACQuire:STATE ON")
        assert scope.query("SYST:ERR?").startswith('-221,"Settings conflict; record of 30 s')
    finally:
        scope.close()
