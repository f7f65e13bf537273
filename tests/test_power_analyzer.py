"""The power analyzer role: our VXI-11 server (ONC RPC over TCP) against a hand-written RPC
client and against pyvisa-py, the Yokogawa WT driver against the WT twin measuring a running
plant, and the bad inputs a real bench produces — a wrong model, replies that are not numbers,
the wrong count of values, over-range and no-data markers, a link to a closed port.
"""
from __future__ import annotations

import asyncio
import math
import socket
import struct
import threading

import numpy as np
import pytest
import pyvisa

import pandas as pd

from bench.clock import BenchClock
from bench.evidence import RunFolder
from bench.power_capture import (PowerReadings, analyzer_input_ratios, corrected_reading, input_channel,
                                 readings_frame)
from bench.sim.plant import Plant, PlantConfig
from bench.sim.scpi.yokogawa_wt import WtRatings, YokogawaWt as WtTwin
from bench.sim.vxi11_server import DEVICE_CORE_PROG, DEVICE_CORE_VERS, Vxi11Server
from calibration.records import ChannelCorrection
from instruments.errors import IdentityError, InstrumentError, LimitError
from instruments.power_analyzer import ElementReading, PowerReading
from instruments.registry import DRIVERS, open_instrument, validate_resource

P_SET_W, Q_SET_VAR = 200e3, 60e3
OPTIONS = dict(wiring="3P4W", update_interval_s=0.05, ct_ratio=100.0, voltage_range_v=600.0, current_range_a=5.0)


class ServedInThread:
    """One simulated instrument on our VXI-11 server, its asyncio loop in a thread."""

    def __init__(self, instrument) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(Vxi11Server(instrument).start(), self.loop).result(10)

    @property
    def resource(self) -> str:
        return self.server.resource

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def running_plant() -> Plant:
    """Grid and DC source on, the PCS exporting P_SET_W and Q_SET_VAR (current lagging)."""
    plant = Plant(PlantConfig(ring_s=3.0))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    plant.advance(0.3)
    plant.pcs_settings.p_ramp_w_per_s = 1e6
    plant.pcs_settings.p_set_w = P_SET_W
    plant.pcs_settings.q_set_var = Q_SET_VAR
    plant.pcs_command("start")
    plant.advance(1.0)
    assert plant.pcs_telemetry()["state"] == "RUNNING"
    return plant


@pytest.fixture(scope="module")
def plant():
    return running_plant()


@pytest.fixture(scope="module")
def twin(plant):
    served = ServedInThread(WtTwin(plant))
    yield served
    served.close()


@pytest.fixture(scope="module")
def rm():
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def open_wt(resource: str, rm, **options):
    return open_instrument("power_analyzer", "yokogawa_wt", resource, expected_model="WT5000*",
                           options={**OPTIONS, **options}, timeout_s=2.0, resource_manager=rm)


# ------------------------------------------------------------------ VXI-11 server, by hand

class RpcClient:
    """A minimal ONC RPC client over TCP, written here from RFC 5531 (independent of pyvisa-py)."""

    def __init__(self, resource: str) -> None:
        host, port = resource.split("::")[1].split(",")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.xid = 100

    def call(self, procedure: int, args: bytes = b"", *, program: int = DEVICE_CORE_PROG,
             version: int = DEVICE_CORE_VERS, rpc_version: int = 2, fragments: int = 1) -> bytes:
        self.xid += 1
        message = struct.pack(">6I", self.xid, 0, rpc_version, program, version, procedure)
        message += struct.pack(">4I", 0, 0, 0, 0) + args       # AUTH_NONE credentials and verifier
        cuts = np.linspace(0, len(message), fragments + 1).astype(int)
        for k in range(fragments):
            piece = message[cuts[k]:cuts[k + 1]]
            last = 0x8000_0000 if k == fragments - 1 else 0
            self.sock.sendall(struct.pack(">I", last | len(piece)) + piece)
        header = self._exactly(4)
        (word,) = struct.unpack(">I", header)
        assert word & 0x8000_0000, "the reply must be one final fragment"
        reply = self._exactly(word & 0x7FFF_FFFF)
        assert struct.unpack(">2I", reply[:8]) == (self.xid, 1)
        return reply[8:]

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    @staticmethod
    def opaque(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data + b"\0" * ((-len(data)) % 4)

    def close(self) -> None:
        self.sock.close()


def accepted(reply: bytes) -> tuple[int, bytes]:
    """(accept_stat, results) of an accepted reply (verifier AUTH_NONE, empty)."""
    reply_stat, flavor, length, accept_stat = struct.unpack(">4I", reply[:16])
    assert (reply_stat, flavor, length) == (0, 0, 0)
    return accept_stat, reply[16:]


def test_rpc_layer_refuses_what_it_does_not_serve(twin):
    client = RpcClient(twin.resource)
    try:
        assert accepted(client.call(0)) == (0, b"")                            # NULL procedure
        assert accepted(client.call(0, program=100000))[0] == 1                # PROG_UNAVAIL (no portmapper)
        status, body = accepted(client.call(0, version=3))
        assert status == 2 and struct.unpack(">2I", body) == (1, 1)            # PROG_MISMATCH 1..1
        assert accepted(client.call(99))[0] == 3                               # PROC_UNAVAIL
        assert accepted(client.call(10, b"\0\0"))[0] == 4                      # GARBAGE_ARGS
        denied = client.call(0, rpc_version=3)
        assert struct.unpack(">4I", denied) == (1, 0, 2, 2)                    # MSG_DENIED, RPC_MISMATCH 2..2
    finally:
        client.close()


def test_links_data_in_fragments_and_partial_reads(twin):
    client = RpcClient(twin.resource)
    try:
        status, body = accepted(client.call(10, struct.pack(">iiI", 7, 0, 1000) + client.opaque(b"inst9")))
        assert status == 0 and struct.unpack(">i", body[:4])[0] == 3          # device not accessible
        status, body = accepted(client.call(10, struct.pack(">iiI", 7, 0, 1000) + client.opaque(b"inst0"),
                                            fragments=3))
        error, lid, _abort_port, max_recv = struct.unpack(">iiII", body)
        assert (status, error) == (0, 0) and max_recv >= 1024
        # a program message in two device_writes: only the second carries END (flag 8)
        for piece, flags in ((b"*ID", 0), (b"N?\n", 8)):
            status, body = accepted(client.call(11, struct.pack(">iIIi", lid, 1000, 1000, flags) + client.opaque(piece)))
            assert struct.unpack(">iI", body) == (0, len(piece))
        received, reasons = b"", []
        while not reasons or not reasons[-1] & 4:                             # until END
            status, body = accepted(client.call(12, struct.pack(">iIIIii", lid, 7, 1000, 1000, 0, 0)))
            error, reason, length = struct.unpack(">iiI", body[:12])
            assert error == 0 and length <= 7
            received += body[12:12 + length]
            reasons.append(reason)
        assert received == b"YOKOGAWA,WT5000,91M500001,F1.01\n"
        assert set(reasons[:-1]) == {1} and reasons[-1] & 4                 # REQCNT …, then END
        bad_link = struct.pack(">iIIi", lid + 50, 1000, 1000, 8) + client.opaque(b"*RST\n")
        assert struct.unpack(">iI", accepted(client.call(11, bad_link))[1]) == (4, 0)   # invalid link
        assert struct.unpack(">i", accepted(client.call(23, struct.pack(">i", lid)))[1])[0] == 0
    finally:
        client.close()


def test_pyvisa_talks_to_our_server_through_the_resource_string(twin, rm):
    assert validate_resource("power_analyzer", twin.resource) == twin.resource
    session = rm.open_resource(twin.resource, read_termination="\n", write_termination="\n", timeout=500)
    try:
        assert session.query("*IDN?").startswith("YOKOGAWA,WT5000,")
        session.write(":COMMunicate:HEADer OFF")
        session.write("*IDN?")
        assert session.read_stb() & 0x10                                       # message available
        session.clear()                                                       # device clear drops it
        with pytest.raises(pyvisa.errors.VisaIOError) as timeout:
            session.read()
        assert timeout.value.error_code == pyvisa.constants.StatusCode.error_timeout
        assert session.query(":STATus:ERRor?") == '0,"No error"'
    finally:
        session.close()


# ------------------------------------------------------------------ the driver on the twin

def test_readings_agree_with_the_plant_telemetry(plant, twin, rm):
    wt = open_wt(twin.resource, rm)
    try:
        reading = wt.measure()
        telemetry = plant.pcs_telemetry()
        assert reading.wiring == "3P4W" and [e.name for e in reading.elements] == ["1", "2", "3"]
        assert reading.sigma.p_w == pytest.approx(telemetry["p_w"], rel=1e-3)
        assert reading.sigma.p_w == pytest.approx(P_SET_W, rel=5e-3)
        assert reading.sigma.q_var == pytest.approx(telemetry["q_var"], rel=2e-3)   # > 0: current lags
        assert reading.sigma.q_var == pytest.approx(Q_SET_VAR, rel=2e-2)
        assert reading.sigma.s_va == pytest.approx(math.hypot(P_SET_W, Q_SET_VAR), rel=5e-3)
        assert reading.sigma.lambda_pf == pytest.approx(reading.sigma.p_w / reading.sigma.s_va, rel=1e-4)
        assert reading.freq_hz == pytest.approx(60.0, abs=1e-3)
        for element, v_ln, i_a in zip(reading.elements, telemetry["v_ln_rms_v"], telemetry["i_rms_a"]):
            assert element.u_rms_v == pytest.approx(v_ln, rel=1e-3)
            assert element.i_rms_a == pytest.approx(i_a, rel=1e-3)             # CT scaling back to primary A
        assert reading.phase_voltages_ln_v().keys() == {"a", "b", "c"}
    finally:
        wt.close()


def test_two_wattmeter_wiring_gives_the_same_total_and_no_voltages_to_neutral(plant, twin, rm):
    four = open_wt(twin.resource, rm)
    reading_4w = four.measure()
    four.close()
    three = open_wt(twin.resource, rm, wiring="3P3W", voltage_range_v=1000.0)
    try:
        reading_3w = three.measure()
    finally:
        three.close()
    assert [e.name for e in reading_3w.elements] == ["1", "2"]
    assert reading_3w.sigma.p_w == pytest.approx(reading_4w.sigma.p_w, rel=1e-4)
    assert reading_3w.sigma.q_var == pytest.approx(reading_4w.sigma.q_var, rel=1e-3)
    assert reading_3w.elements[0].u_rms_v == pytest.approx(math.sqrt(3) * reading_4w.elements[0].u_rms_v, rel=2e-3)
    assert reading_3w.phase_voltages_ln_v() == {} and set(reading_3w.phase_currents_a()) == {"a", "b"}


def test_float_format_reads_the_same_numbers(twin, rm):
    ascii_wt = open_wt(twin.resource, rm)
    ascii_reading = ascii_wt.measure()
    ascii_wt.close()
    float_wt = open_wt(twin.resource, rm, numeric_format="float")
    try:
        float_reading = float_wt.measure()
    finally:
        float_wt.close()
    assert float_reading.sigma.p_w == pytest.approx(ascii_reading.sigma.p_w, rel=1e-5)
    assert float_reading.elements[2].i_rms_a == pytest.approx(ascii_reading.elements[2].i_rms_a, rel=1e-5)


def test_a_read_returns_the_latest_completed_update_interval(plant, twin, rm):
    wt = open_wt(twin.resource, rm)
    try:
        first, again = wt.measure(), wt.measure()
        # the same interval, the same numbers
        assert (again.elements, again.sigma) == (first.elements, first.sigma)
        plant.pcs_settings.p_set_w = P_SET_W / 2
        plant.advance(0.02)                                         # within the present 50 ms interval …
        if math.floor(plant.t_s / 0.05 + 1e-9) == math.floor((plant.t_s - 0.02) / 0.05 + 1e-9):
            assert wt.measure().sigma.p_w == first.sigma.p_w        # … nothing new completed yet
        plant.advance(1.0)
        assert wt.measure().sigma.p_w == pytest.approx(P_SET_W / 2, rel=1e-2)
    finally:
        plant.pcs_settings.p_set_w = P_SET_W
        plant.advance(1.0)
        wt.close()


def test_readings_over_a_window_on_a_clock(plant, twin, rm):
    wt = open_wt(twin.resource, rm)
    t0 = plant.t_s
    wt.use_clock(lambda: plant.t_s - t0)
    try:
        readings = wt.readings_over(plant.advance, 0.5)
    finally:
        wt.close()
    assert [r.t_s for r in readings] == pytest.approx([0.05 * k for k in range(1, 11)], abs=1e-9)
    frame = readings_frame(readings)
    assert len(frame) == 10 and frame.index.name == "t_s"
    assert frame.attrs["units"]["p_w"] == "W" and frame.attrs["units"]["i2_a"] == "A"
    assert frame["p_w"].to_numpy() == pytest.approx(P_SET_W, rel=5e-3)


class PlantClock(BenchClock):
    """The bench clock in lockstep with a plant driven from this test (as the control endpoint does)."""

    def __init__(self, plant: Plant) -> None:
        super().__init__()
        self.plant, self.t0_s = plant, plant.t_s

    def now_s(self) -> float:
        return self.plant.t_s - self.t0_s

    def _pass_time(self, until_s: float) -> None:
        if until_s > self.now_s():
            self.plant.advance(until_s - self.now_s())


def test_a_capture_polls_on_the_bench_clock_and_is_on_disk_before_it_returns(plant, twin, rm, tmp_path):
    wt = open_wt(twin.resource, rm)
    clock = PlantClock(plant)
    wt.use_clock(clock.now_s)
    readings = PowerReadings(wt, clock, RunFolder(tmp_path / "run"), identity={"manufacturer": "YOKOGAWA",
                             "model": "WT5000", "serial": "91M500001"},
                             corrections={input_channel(1, 2): ChannelCorrection(12, gain=1.001)})
    try:
        frame = readings.capture("test_capture", "steady", 0.3, metadata={"operating_point": "P+0.80"})
        with readings.logger(period_s=0.1) as logger:              # reading while something else waits
            clock.wait(0.35)
    finally:
        wt.close()
    assert readings.description == "power analyzer YOKOGAWA WT5000 s/n 91M500001"
    assert frame.index.to_numpy() == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    on_disk = pd.read_parquet(tmp_path / "run" / "captures" / "test_capture" / "steady.parquet")
    assert on_disk["p_w"].to_numpy() == pytest.approx(frame["p_w"].to_numpy())
    assert frame.attrs["operating_point"] == "P+0.80" and frame.attrs["units"]["q_var"] == "var"
    assert frame.attrs["calibration"]["12"]["gain"] == 1.001
    assert not (tmp_path / "run" / "captures" / "test_capture" / "steady.cfg").exists()   # numbers, not a waveform
    # the correction reached the readings: element 1's current 0.1 % above element 2's
    assert frame["i1_a"].to_numpy() == pytest.approx(1.001 * frame["i2_a"].to_numpy(), rel=2e-4)
    assert [r.t_s for r in logger.readings] == pytest.approx([0.4, 0.5, 0.6])


def test_an_input_over_its_range_is_an_error_naming_the_role(twin, rm):
    wt = open_wt(twin.resource, rm, current_range_a=1.0)   # 1.9 A at the CT secondary > 140 % of 1 A
    try:
        with pytest.raises(InstrumentError, match=r"power_analyzer at .*IRMS of element 1 is over range "
                                                  r"\(the WT marks it 'INF'\)") as error:
            wt.measure()
        assert error.value.role == "power_analyzer"
    finally:
        wt.close()


def test_setup_refused_before_anything_is_sent(twin, rm):
    with pytest.raises(LimitError, match=r"update_interval_s = 0.03 s is not an update interval of the WT"):
        open_wt(twin.resource, rm, update_interval_s=0.03)
    with pytest.raises(LimitError, match=r"current_range_a = 7 A is not a range of the WT"):
        open_wt(twin.resource, rm, current_range_a=7.0)
    with pytest.raises(InstrumentError, match=r"options.wiring = 'delta'; use one of 3P4W, 3P3W"):
        open_wt(twin.resource, rm, wiring="delta")
    with pytest.raises(InstrumentError, match=r"options.ct_ratio lists 2 ratios; the wiring has 3 elements"):
        open_wt(twin.resource, rm, ct_ratio=[100.0, 100.0])
    with pytest.raises(InstrumentError, match=r"unknown option\(s\) ct"):
        open_wt(twin.resource, rm, ct=100.0)
    # the instrument was left as it was: its error queue holds nothing from the refusals
    session = rm.open_resource(twin.resource, read_termination="\n", write_termination="\n", timeout=1000)
    try:
        assert session.query(":STATus:ERRor?").endswith('0,"No error"')
    finally:
        session.close()


def test_safe_state_sends_nothing_and_is_harmless(twin, rm):
    wt = open_wt(twin.resource, rm)
    wt.close()
    assert wt.safe_state() is True                       # even on a closed link: nothing to send


# ------------------------------------------------------------------ bad replies from an instrument

class CannedWt(WtTwin):
    """The WT twin with a fixed answer to :NUMeric:NORMal:VALue? (no plant behind it)."""

    def __init__(self, values_reply, **kwargs) -> None:
        super().__init__(None, **kwargs)
        self.values_reply = values_reply

    def _values(self, call):
        return self.values_reply


def _canned_values(numbers: list[str]) -> str:
    return ",".join(numbers)


GOOD_VALUES = ["2.77E+02", "1.5E+02", "4.1E+04", "4.2E+04", "1.0E+03", "0.98", "6.0E+01"] * 3 + \
              ["2.77E+02", "1.5E+02", "1.23E+05", "1.26E+05", "3.0E+03", "0.98"]


@pytest.mark.parametrize("values, complaint", [
    (GOOD_VALUES[:-1], r"':NUMeric:NORMal:VALue\?' answered 26 values, but 27 items are set"),
    (GOOD_VALUES[:2] + ["7.2VV"] + GOOD_VALUES[3:], r"P of element 1 answered '7.2VV', which is not a number"),
    (GOOD_VALUES[:23] + ["INF"] + GOOD_VALUES[24:], r"P of the Σ is over range \(the WT marks it 'INF'\)"),
    (["NAN"] + GOOD_VALUES[1:], r"URMS of element 1 has no data \(the WT marks it 'NAN'\)"),
])
def test_bad_numeric_replies_are_errors_naming_the_role(rm, values, complaint):
    served = ServedInThread(CannedWt(_canned_values(values)))
    try:
        wt = open_wt(served.resource, rm)
        with pytest.raises(InstrumentError, match=complaint) as error:
            wt.measure()
        assert str(error.value).startswith(f"power_analyzer at {served.resource}")
        wt.close()
    finally:
        served.close()


def test_undefined_lambda_and_frequency_are_none_not_errors(rm):
    values = list(GOOD_VALUES)
    values[5] = values[6] = "NAN"                          # element 1: no λ (no current), no f
    served = ServedInThread(CannedWt(_canned_values(values)))
    try:
        wt = open_wt(served.resource, rm)
        reading = wt.measure()
        wt.close()
    finally:
        served.close()
    assert reading.elements[0].lambda_pf is None and reading.elements[0].freq_hz is None
    assert reading.sigma.p_w == pytest.approx(1.23e5)


def test_float_markers_are_decoded(rm):
    from bench.sim.scpi.server import definite_length_block

    numbers = [float(v) for v in GOOD_VALUES]
    numbers[1] = 9.9e37                                     # over-range marker of the FLOat format
    served = ServedInThread(CannedWt(definite_length_block(struct.pack(">27f", *numbers))))
    try:
        wt = open_wt(served.resource, rm, numeric_format="float")
        with pytest.raises(InstrumentError, match=r"IRMS of element 1 is over range"):
            wt.measure()
        wt.close()
    finally:
        served.close()


def test_wrong_model_is_refused_naming_what_answered(rm):
    served = ServedInThread(CannedWt("", ratings=WtRatings(model="WT3000")))
    try:
        with pytest.raises(IdentityError, match=r"driver 'yokogawa_wt' speaks to models WT18\*, WT5000\*, but the "
                                                r"instrument answered 'YOKOGAWA,WT3000'"):
            open_instrument("power_analyzer", "yokogawa_wt", served.resource, options=OPTIONS, timeout_s=1.0,
                            resource_manager=rm)
    finally:
        served.close()


def test_a_vxi11_link_to_a_closed_port_does_not_answer(rm):
    with socket.socket() as probe:                          # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InstrumentError, match=r"power_analyzer at TCPIP::127.0.0.1,\d+::INSTR: does not answer"):
        open_instrument("power_analyzer", "yokogawa_wt", f"TCPIP::127.0.0.1,{port}::INSTR", options=OPTIONS,
                        timeout_s=1.0, resource_manager=rm)


def test_driver_is_registered_for_its_role():
    assert DRIVERS["yokogawa_wt"].ROLE == "power_analyzer"
    with pytest.raises(InstrumentError, match="drives a power_analyzer, not a oscilloscope"):
        open_instrument("oscilloscope", "yokogawa_wt", "TCPIP::127.0.0.1,1::INSTR")


# ------------------------------------------------------------------ calibration (pure)

def _element(name: str, u: float, i: float, p: float, q: float) -> ElementReading:
    s = u * i
    return ElementReading(name, u, i, p, s, q, p / s, 60.0)


def test_certificate_corrections_apply_per_input_and_the_sigma_follows():
    reading = PowerReading(1.0, 0.05, "3P4W", tuple(_element(str(k), 277.0, 100.0, 26e3, 8e3) for k in (1, 2, 3)),
                           _element("sigma", 277.0, 100.0, 78e3, 24e3))
    corrections = {input_channel(2, 1): ChannelCorrection(21, gain=1.01),
                   input_channel(2, 2): ChannelCorrection(22, gain=0.98, offset=0.5)}
    fixed = corrected_reading(reading, corrections)
    assert fixed.elements[0] == reading.elements[0]
    assert fixed.elements[1].u_rms_v == pytest.approx(277.0 * 1.01)
    assert fixed.elements[1].i_rms_a == pytest.approx(100.0 * 0.98 + 0.5)
    assert fixed.elements[1].p_w == pytest.approx(26e3 * 1.01 * 0.98)
    assert fixed.sigma.p_w == pytest.approx(2 * 26e3 + 26e3 * 1.01 * 0.98)
    assert fixed.sigma.freq_hz == 60.0
    assert corrected_reading(reading, {}) is reading


def test_the_bench_files_transformers_are_listed_for_the_certificate_check():
    ratios = analyzer_input_ratios("power_analyzer", {"wiring": "3P3W", "ct_ratio": [100.0, 200.0]})
    assert ratios == [(11, 1.0, "element 1 VT"), (21, 1.0, "element 2 VT"),
                      (12, 100.0, "element 1 CT"), (22, 200.0, "element 2 CT")]
    assert analyzer_input_ratios("oscilloscope", {"ct_ratio": 5.0}) == []
