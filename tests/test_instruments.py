"""Instrument drivers against small fake instruments living in this file.

Each fake is a loopback TCP server answering fixed replies and recording every line it
received, so a test can assert what was (or was not) sent. They exercise the failure paths a
real bench produces: wrong address, silent instrument, wrong model, errors left in the
queue, garbage replies, truncated or oversized binary blocks, impossible preambles, and
setpoints that must be refused before they reach the hardware.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Union

import numpy as np
import pytest
import pyvisa

from instruments.errors import IdentityError, InstrumentError, LimitError
from instruments.grid_simulator import GridSegment
from instruments.registry import DRIVERS, model_matches, open_instrument, validate_resource
from instruments.scpi import ScpiInstrument

Reply = Union[str, bytes, list, Callable[[str], Union[str, bytes, None]], None]

MX_IDN = "AMETEK Programmable Power,MX45-3Pi,MX0001,4.12"
RP_IDN = "Keysight Technologies,RP7953A,MY0001,A.01.02"
TEK_IDN = "TEKTRONIX,MSO58,C000001,CF:91.1CT FV:1.40"


class FakeInstrument:
    """A SCPI-over-socket instrument with canned answers.

    ``replies`` maps an upper-cased command (``"MEAS:VOLT?"``) to: a string (sent with a
    newline), bytes (sent as is), a list (successive answers, the last one repeats), a
    callable(command) → str | bytes | None, or None (stay silent). Queries without an entry
    get no answer; ``SYST:ERR?`` answers "no error" unless given. ``received`` lists every
    line in arrival order.
    """

    def __init__(self, replies: dict[str, Reply] | None = None, *, accept_only: bool = False):
        self.replies: dict[str, Reply] = {"SYST:ERR?": '0,"No error"', "*OPC?": "1",
                                          "*ESR?": "0"}
        self.replies.update({k.upper(): v for k, v in (replies or {}).items()})
        self.accept_only = accept_only
        self.received: list[str] = []
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        self.port = self._server.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._stopping = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._connections.append(conn)
            if not self.accept_only:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                command = line.decode().strip()
                self.received.append(command)
                answer = self._answer(command)
                if answer:
                    try:
                        conn.sendall(answer)
                    except OSError:
                        return

    def _answer(self, command: str) -> bytes | None:
        if ";" in command and command.upper() not in self.replies:
            return self._answer_concatenated(command)
        reply = self.replies.get(command.upper())
        if isinstance(reply, list):
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if callable(reply):
            reply = reply(command)
        if reply is None:
            return None
        return reply if isinstance(reply, bytes) else (reply + "\n").encode()

    def _answer_concatenated(self, message: str) -> bytes | None:
        """``A?;:B?``: each unit (leading colon dropped) answered, the answers joined by ``;``,
        as a SCPI instrument answers concatenated queries; silent if one of them is."""
        answers = []
        for unit in message.split(";"):
            if unit.strip().endswith("?"):
                answer = self._answer(unit.strip().lstrip(":"))
                if answer is None:
                    return None
                answers.append(answer.rstrip(b"\n"))
        return b";".join(answers) + b"\n" if answers else None

    def settled(self, quiet_s: float = 0.05) -> list[str]:
        """The received lines once nothing new has arrived for ``quiet_s`` (writes are async)."""
        count = -1
        while count != len(self.received):
            count = len(self.received)
            time.sleep(quiet_s)
        return list(self.received)

    def stop(self) -> None:
        self._stopping = True
        self._server.close()
        for conn in self._connections:
            try:
                conn.close()
            except OSError:
                pass


@pytest.fixture(scope="module")
def rm():
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


@pytest.fixture
def fakes():
    started: list[FakeInstrument] = []

    def make(replies=None, **kwargs) -> FakeInstrument:
        fake = FakeInstrument(replies, **kwargs)
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


def tek_replies(**overrides: Reply) -> dict[str, Reply]:
    replies: dict[str, Reply] = {
        "*IDN?": TEK_IDN, "HORIZONTAL:MODE:RECORDLENGTH?": "6",
        "WFMOUTPRE:XINCR?": "1.0E-6", "WFMOUTPRE:XZERO?": "-2.0E-6", "WFMOUTPRE:PT_OFF?": "0",
        "WFMOUTPRE:YMULT?": "1.0E-3", "WFMOUTPRE:YOFF?": "10", "WFMOUTPRE:YZERO?": "0.5",
        "WFMOUTPRE:NR_PT?": "6",
    }
    replies.update({k.upper(): v for k, v in overrides.items()})
    return replies


def block(payload: bytes, announced: int | None = None, terminator: bytes = b"\n") -> bytes:
    length = str(len(payload) if announced is None else announced)
    return f"#{len(length)}{length}".encode() + payload + terminator


KNOWN_CODES = np.array([-32768, -1, 0, 1, 2570, 32767], dtype="<i2")   # 2570 = 0x0A0A: newlines


# -- resource strings, drivers, connection ----------------------------------------------

@pytest.mark.parametrize("resource", [
    "TCPIP::127.0.0.1::5025", "TCPIP::127.0.0.1::SOCKET", "127.0.0.1:5025",
    "TCPIP::127.0.0.1::port::SOCKET", "", "GPIB0::INSTR", "USB::0x1::INSTR",
])
def test_malformed_resource_string_is_refused_before_any_io(resource, rm):
    with pytest.raises(InstrumentError) as info:
        open_instrument("dc_source", "keysight_rp7900", resource, resource_manager=rm)
    assert "malformed VISA resource string" in str(info.value)
    assert "dc_source" in str(info.value)


@pytest.mark.parametrize("resource", [
    "TCPIP::192.168.0.10::5025::SOCKET", "TCPIP0::bench-scope.lab::5025::SOCKET",
    "TCPIP::192.168.0.10::INSTR", "TCPIP::192.168.0.10::hislip0::INSTR",
    "ASRL/dev/ttyUSB0::INSTR", "ASRL3::INSTR", "USB0::0x2A8D::0x1602::MY123::INSTR",
    "GPIB0::5::INSTR", "GPIB1::5::96::INSTR",
])
def test_well_formed_resource_strings_pass(resource):
    assert validate_resource("grid_simulator", resource) == resource


def test_socket_resource_without_suffix_gets_a_hint():
    with pytest.raises(InstrumentError, match="::SOCKET suffix"):
        validate_resource("oscilloscope", "TCPIP::10.0.0.2::4000")


def test_unknown_driver_lists_known_ones(rm):
    with pytest.raises(InstrumentError) as info:
        open_instrument("grid_simulator", "acme_gridsim", "TCPIP::127.0.0.1::5025::SOCKET",
                        resource_manager=rm)
    message = str(info.value)
    assert "unknown driver 'acme_gridsim'" in message
    for name in DRIVERS:
        assert name in message


def test_driver_for_another_role_is_refused(rm):
    with pytest.raises(InstrumentError, match="drives a dc_source, not a oscilloscope"):
        open_instrument("oscilloscope", "keysight_rp7900", "TCPIP::127.0.0.1::5025::SOCKET",
                        resource_manager=rm)


def test_closed_port_does_not_answer(rm):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                         # nobody listens there now
    resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
    with pytest.raises(InstrumentError) as info:
        open_instrument("dc_source", "keysight_rp7900", resource, timeout_s=1.0, resource_manager=rm)
    assert "does not answer" in str(info.value)
    assert info.value.role == "dc_source" and info.value.resource == resource


def test_instrument_that_accepts_but_never_replies_times_out_naming_role_and_resource(fakes, rm):
    fake = fakes(accept_only=True)
    with pytest.raises(InstrumentError) as info:
        open_instrument("oscilloscope", "tektronix_mso5", fake.resource, timeout_s=0.3,
                        resource_manager=rm)
    message = str(info.value)
    assert "oscilloscope" in message and fake.resource in message
    # the bench file's timeout is the one the session used (no wall-clock check: shared machines)
    assert "*IDN?" in message and "within 0.3 s (timeout" in message


def test_late_reply_is_not_read_as_the_next_answer(fakes, rm):
    def slow_voltage(_command: str) -> str:
        time.sleep(0.6)
        return "111.0"

    fake = fakes({"*IDN?": RP_IDN, "MEAS:VOLT?": slow_voltage, "MEAS:CURR?": "2.5"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, timeout_s=0.3,
                         resource_manager=rm)
    with pytest.raises(InstrumentError, match="MEAS:VOLT"):
        dc.measure_voltage_v()
    time.sleep(0.5)                       # the late "111.0" arrives now …
    dc.clear()                            # (a later clear, as any next error would do)
    assert dc.measure_current_a() == 2.5  # … and is not taken for the current
    dc.close()


def test_wrong_model_names_role_expected_and_answered(fakes, rm):
    fake = fakes({"*IDN?": "TEKTRONIX,MSO44,C1,FV:1"})
    with pytest.raises(IdentityError) as info:
        open_instrument("oscilloscope", "tektronix_mso5", fake.resource, expected_model="MSO58",
                        resource_manager=rm)
    message = str(info.value)
    assert "oscilloscope" in message and "MSO58" in message and "MSO44" in message
    assert info.value.expected == "MSO58" and info.value.answered == "MSO44"


def test_instrument_of_another_family_is_refused_without_expected_model(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN})       # a DC source at the scope's address
    with pytest.raises(IdentityError, match="RP7953A"):
        open_instrument("oscilloscope", "tektronix_mso5", fake.resource, resource_manager=rm)


@pytest.mark.parametrize("pattern, model, expected", [
    ("MSO5", "MSO58", True), ("mso58", "MSO58", True), ("MSO5*", "MSO58B", True),
    ("MX*-3Pi", "MX45-3Pi", True), ("MX45", "MX30-3Pi", False), ("RP79?3A", "RP7953A", True),
])
def test_model_match_is_prefix_or_glob(pattern, model, expected):
    assert model_matches(pattern, model) is expected


def test_open_identifies_and_initialises(fakes, rm):
    fake = fakes(tek_replies())
    scope = open_instrument("oscilloscope", "tektronix_mso5", fake.resource,
                            expected_model="MSO5*", resource_manager=rm)
    assert scope.identity.manufacturer == "TEKTRONIX" and scope.identity.model == "MSO58"
    assert scope.identity.firmware == "CF:91.1CT FV:1.40"
    assert scope.channel_count == 8
    assert fake.settled()[:3] == ["*IDN?", "*CLS", "HEADer OFF"]
    scope.close()
    scope.close()                         # idempotent


# -- errors and replies -------------------------------------------------------------------

def test_scpi_error_left_after_configuration_carries_the_instruments_text(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN,
                  "SYST:ERR?": ['-222,"Data out of range"',
                                '-221,"Settings conflict"', '0,"No error"']})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    with pytest.raises(InstrumentError) as info:
        dc.set_voltage_v(900.0)
    message = str(info.value)
    assert '-222,"Data out of range"' in message and '-221,"Settings conflict"' in message
    assert "setting the voltage" in message
    assert "VOLT 900" in fake.received
    dc.close()


def test_tek_errors_come_from_esr_and_the_event_queue(fakes, rm):
    fake = fakes(tek_replies(**{"*ESR?": ["32", "0"],
                                "ALLEV?": '113,"Undefined header; Command not found",'
                                          '402,"Operation complete"'}))
    scope = open_instrument("oscilloscope", "tektronix_mso5", fake.resource, resource_manager=rm)
    with pytest.raises(InstrumentError, match='113,"Undefined header; Command not found"'):
        scope.configure_channel(1, 100.0)
    scope.close()


def test_non_numeric_reply_is_quoted(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN, "MEAS:VOLT?": "OVERLOAD"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    with pytest.raises(InstrumentError) as info:
        dc.measure_voltage_v()
    assert "'OVERLOAD'" in str(info.value) and "not a number" in str(info.value)
    assert "MEAS:VOLT?" in str(info.value)
    dc.close()


def test_grid_measurement_reads_each_phase(fakes, rm):
    selected = {"phase": 1}

    def select(command: str) -> None:
        selected["phase"] = int(command.split()[-1])

    fake = fakes({"*IDN?": MX_IDN, "INST:NSEL 1": select, "INST:NSEL 2": select,
                  "INST:NSEL 3": select,
                  "MEAS:VOLT:AC?": lambda _: f"{276 + selected['phase']:.1f}",
                  "MEAS:CURR:AC?": lambda _: f"{100 * selected['phase']:.1f}",
                  "MEAS:POW:AC?": lambda _: "1000.0", "MEAS:FREQ?": "60.01"})
    grid = open_instrument("grid_simulator", "ametek_mx", fake.resource, resource_manager=rm)
    reading = grid.measure()
    assert reading.v_ln_rms_v == (277.0, 278.0, 279.0)
    assert reading.i_rms_a == (100.0, 200.0, 300.0)
    assert reading.p_total_w == 3000.0 and reading.freq_hz == 60.01
    grid.close()


# -- binary blocks ------------------------------------------------------------------------

def _open_scope(fakes, rm, timeout_s: float = 0.5, **overrides: Reply):
    fake = fakes(tek_replies(**overrides))
    scope = open_instrument("oscilloscope", "tektronix_mso5", fake.resource,
                            timeout_s=timeout_s, resource_manager=rm)
    return fake, scope


def test_known_int16_block_decodes_to_exact_volts_and_times(fakes, rm):
    fake, scope = _open_scope(fakes, rm, **{"CURVE?": block(KNOWN_CODES.tobytes())})
    wave = scope.read_waveform(3)
    expected_volts = (KNOWN_CODES.astype(float) - 10) * 1e-3 + 0.5
    expected_t = -2e-6 + np.arange(6) * 1e-6
    assert wave.volts.dtype == np.float32   # 16-bit codes fit float32's 24-bit mantissa
    np.testing.assert_allclose(wave.volts, expected_volts, rtol=1e-6)
    np.testing.assert_array_equal(wave.t_s, expected_t)
    assert wave.volts[0] == (-32768 - 10) * 1e-3 + 0.5
    assert wave.sample_rate_hz == pytest.approx(1e6)
    assert wave.trigger_index == 2 and wave.t_s[wave.trigger_index] == 0.0
    sent = fake.settled()
    for command in ("DATa:SOUrce CH3", "DATa:ENCdg SRIbinary", "WFMOutpre:BYT_Nr 2",
                    "DATa:STARt 1", "DATa:STOP 6", "CURVe?"):
        assert command in sent
    scope.close()


def test_truncated_block_is_an_error(fakes, rm):
    truncated = b"#212" + KNOWN_CODES.tobytes()[:7]        # announces 12, sends 7, then silence
    _, scope = _open_scope(fakes, rm, timeout_s=0.3, **{"CURVE?": truncated})
    with pytest.raises(InstrumentError) as info:
        scope.read_waveform(1)
    message = str(info.value)
    assert "truncated" in message and "announced 12 bytes" in message
    scope.close()


def test_block_longer_than_announced_is_an_error(fakes, rm):
    payload = KNOWN_CODES.tobytes()
    too_long = b"#212" + payload + b"\x01\x02\n"             # 14 bytes behind a 12-byte header
    _, scope = _open_scope(fakes, rm, **{"CURVE?": too_long})
    with pytest.raises(InstrumentError, match="longer than announced"):
        scope.read_waveform(1)
    scope.close()


def test_block_bigger_than_the_preamble_says_is_refused_before_reading(fakes, rm):
    big = block(np.zeros(600, dtype="<i2").tobytes())
    _, scope = _open_scope(fakes, rm, **{"CURVE?": big})
    with pytest.raises(InstrumentError, match="announces 1200 bytes but 12 were expected"):
        scope.read_waveform(1)
    scope.close()


def test_short_indefinite_block_never_returns_the_previous_records_tail(fakes, rm):
    # the driver reuses its output arrays: a #0 block shorter than the record must be an
    # error, not a record whose missing part is still the previous download
    replies = iter([block(KNOWN_CODES.tobytes()), b"#0" + KNOWN_CODES[:2].tobytes() + b"\n"])
    _, scope = _open_scope(fakes, rm, **{"CURVE?": lambda _: next(replies)})
    first = scope.read_waveform(1)
    assert len(first.volts) == len(KNOWN_CODES)
    del first
    with pytest.raises(InstrumentError, match=r"indefinite-length \(#0\) block has 4 bytes but 12"):
        scope.read_waveform(1)
    scope.close()


def test_oversized_block_header_is_refused(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN, "FETC:ARR?": b"#9999999999" + b"\x00" * 16})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    with pytest.raises(InstrumentError, match="oversized"):
        dc.query_block("FETC:ARR?", max_bytes=1 << 20)
    dc.close()


def test_reply_that_is_not_a_block_is_quoted(fakes, rm):
    _, scope = _open_scope(fakes, rm, **{"CURVE?": "ERROR: no waveform"})
    with pytest.raises(InstrumentError, match="not an IEEE 488.2 binary block"):
        scope.read_waveform(1)
    scope.close()


def test_indefinite_length_block(fakes, rm):
    payload = b"\x00\x0a\x01\x0a\xff"                      # contains newlines
    fake = fakes({"*IDN?": RP_IDN, "DATA?": b"#0" + payload + b"\n"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    assert dc.query_block("DATA?") == payload
    assert dc.query_float("*OPC?") == 1.0                  # the session is in step afterwards
    dc.close()


def test_large_block_reads_exactly(fakes, rm):
    codes = (np.arange(2_000_000) % 65536 - 32768).astype("<i2")   # 4 MB, every code incl. 0x0A
    fake = fakes({"*IDN?": RP_IDN, "DATA?": block(codes.tobytes())})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    data = dc.query_block("DATA?")
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<i2"), codes)
    dc.close()


@pytest.mark.parametrize("field, value, complaint", [
    ("WFMOUTPRE:XINCR?", "0.0", "XINcr"),
    ("WFMOUTPRE:XINCR?", "-1.0E-6", "XINcr"),
    ("WFMOUTPRE:YMULT?", "0.0", "YMUlt"),
    ("WFMOUTPRE:NR_PT?", "0", "NR_Pt"),
    ("WFMOUTPRE:NR_PT?", "7", "NR_Pt = 7"),                 # block holds 6 points
    ("WFMOUTPRE:YOFF?", "nan", "not a finite number"),
])
def test_impossible_preamble_is_an_error(fakes, rm, field, value, complaint):
    _, scope = _open_scope(fakes, rm, **{field: value, "CURVE?": block(KNOWN_CODES.tobytes())})
    with pytest.raises(InstrumentError, match=complaint.replace("(", r"\(")):
        scope.read_waveform(1)
    scope.close()


# -- limits are refused before anything is sent ---------------------------------------------

def test_dc_limits_refused_before_anything_is_sent(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm,
                         limits={"max_dc_voltage_v": 1000, "max_current_a": 400},
                         options={"rated_voltage_v": 1500, "rated_current_a": 500,
                                  "overvoltage_protection_v": 980})
    assert "VOLT:PROT 980" in fake.received                # hardware backstop under the limit
    before = fake.settled()
    with pytest.raises(LimitError, match="max_dc_voltage_v"):
        dc.set_voltage_v(1200.0)
    with pytest.raises(LimitError, match="max_current_a"):
        dc.set_current_limits_a(100.0, 450.0)
    with pytest.raises(LimitError, match="instrument range"):
        dc.set_voltage_v(-5.0)
    with pytest.raises(LimitError):
        dc.set_voltage_v(float("nan"))
    assert fake.settled() == before
    dc.set_current_limits_a(300.0, 250.0)
    assert fake.settled()[len(before):len(before) + 2] == ["CURR:LIM 300", "CURR:LIM:NEG -250"]
    dc.close()


def test_grid_transient_checked_entirely_before_the_first_command(fakes, rm):
    fake = fakes({"*IDN?": MX_IDN})
    grid = open_instrument("grid_simulator", "ametek_mx", fake.resource, resource_manager=rm,
                           limits={"max_voltage_ln_v": 280, "max_current_a": 400})
    before = fake.settled()
    good = GridSegment(0.5, (277.0, 277.0, 277.0), 60.0)
    bad = GridSegment(0.2, (277.0, 290.0, 277.0), 60.0)     # a swell beyond the safety limit
    with pytest.raises(LimitError) as info:
        grid.program_transient([good, good, bad])
    assert "segment 3 phase B" in str(info.value) and "max_voltage_ln_v" in str(info.value)
    with pytest.raises(LimitError, match="freq_hz"):
        grid.program_transient([GridSegment(0.1, (277.0,) * 3, 5.0)])
    with pytest.raises(LimitError, match="duration_s"):
        grid.program_transient([GridSegment(0.0, (277.0,) * 3, 60.0)])
    with pytest.raises(LimitError, match="at least one segment"):
        grid.program_transient([])
    with pytest.raises(LimitError, match="max_voltage_ln_v"):
        grid.set_voltage_ln_v(285.0)
    with pytest.raises(LimitError, match="instrument range"):
        grid.program_transient([GridSegment(0.1, (277.0, 277.0, 320.0), 60.0)])
    assert fake.settled() == before
    grid.close()


def test_scope_argument_checks_send_nothing(fakes, rm):
    fake, scope = _open_scope(fakes, rm)
    before = fake.settled()
    with pytest.raises(LimitError, match="channel 9"):
        scope.configure_channel(9, 1.0)
    with pytest.raises(LimitError, match="pretrigger_fraction"):
        scope.configure_acquisition(1e6, 10_000, 1.5)
    with pytest.raises(LimitError, match="slope"):
        scope.trigger_external(1.0, "sideways")
    assert fake.settled() == before
    scope.close()


# -- command sequences ----------------------------------------------------------------------

def test_unbalanced_transient_programs_one_voltage_list_per_phase(fakes, rm):
    fake = fakes({"*IDN?": MX_IDN})
    grid = open_instrument("grid_simulator", "ametek_mx", fake.resource, resource_manager=rm)
    start = len(fake.settled())
    grid.program_transient([GridSegment(0.5, (277.0, 277.0, 277.0), 60.0),
                            GridSegment(0.2, (138.5, 277.0, 277.0), 60.0),
                            GridSegment(1.0, (277.0, 277.0, 277.0), 60.0)])
    grid.start_transient()
    sent = fake.settled()[start:]
    assert sent[:4] == ["ABORT", "INST:COUP ALL", "LIST:DWEL 0.5,0.2,1", "LIST:FREQ 60,60,60"]
    assert sent[4:11] == ["INST:COUP NONE", "INST:NSEL 1", "LIST:VOLT 277,138.5,277",
                          "INST:NSEL 2", "LIST:VOLT 277,277,277",
                          "INST:NSEL 3", "LIST:VOLT 277,277,277"]
    for command in ("LIST:COUN 1", "VOLT:MODE LIST", "FREQ:MODE LIST", "TRIG:TRAN:SOUR IMMediate",
                    "OUTP:TTLT:SOUR BOT", "OUTP:TTLT ON", "INIT"):
        assert command in sent
    assert sent.index("SYST:ERR?") > sent.index("FREQ:MODE LIST")   # errors checked after
    grid.close()


def test_scope_single_shot_sequence(fakes, rm):
    fake, scope = _open_scope(fakes, rm, **{"ACQUIRE:STATE?": ["1", "0"]})
    start = len(fake.settled())
    scope.configure_channel(2, 200.0, offset_v=0.0)
    scope.configure_acquisition(1e6, 100_000, 0.25)
    scope.trigger_external(level_v=1.5, slope="rise")
    scope.arm_single()
    assert scope.is_acquisition_complete() is False
    assert scope.is_acquisition_complete() is True
    sent = fake.settled()[start:]
    for command in ("CH2:SCAle 200", "CH2:OFFSet 0", "CH2:POSition 0", "HORizontal:MODE MANual",
                    "HORizontal:MODE:SAMPLERate 1000000", "HORizontal:MODE:RECOrdlength 100000",
                    "HORizontal:POSition 25", "TRIGger:A:TYPe EDGE",
                    "TRIGger:A:EDGE:SOUrce AUXiliary", "TRIGger:A:EDGE:SLOpe RISe",
                    "TRIGger:AUXLevel 1.5", "ACQuire:STOPAfter SEQuence", "ACQuire:STATE ON"):
        assert command in sent
    scope.close()


# -- safe state -------------------------------------------------------------------------------

@pytest.mark.parametrize("driver, role, idn, command", [
    ("ametek_mx", "grid_simulator", MX_IDN, "OUTP OFF"),
    ("keysight_rp7900", "dc_source", RP_IDN, "OUTP OFF"),
    ("tektronix_mso5", "oscilloscope", TEK_IDN, "ACQuire:STATE OFF"),
])
def test_safe_state_is_idempotent_and_survives_a_dead_link(fakes, rm, driver, role, idn, command):
    fake = fakes({"*IDN?": idn})
    instrument = open_instrument(role, driver, fake.resource, resource_manager=rm, timeout_s=0.5)
    assert instrument.safe_state() is True
    assert instrument.safe_state() is True
    assert fake.settled().count(command) == 2
    fake.stop()                                            # the instrument dies
    time.sleep(0.05)
    instrument.safe_state()                                # logs, does not raise
    instrument.close()
    assert instrument.safe_state() is False                # after close: says nothing went out
    instrument.close()


def test_base_class_alone_speaks_scpi(fakes, rm):
    fake = fakes({"*IDN?": "ACME,Box,1,2", "VAL?": "+1.250E+00"})
    session = rm.open_resource(fake.resource)
    instrument = ScpiInstrument(session, "aux", fake.resource)
    assert instrument.identify().model == "Box"
    assert instrument.query_float("VAL?") == 1.25
    instrument.opc()
    instrument.check_errors()
    instrument.close()
    with pytest.raises(InstrumentError, match="closed"):
        instrument.query("VAL?")


def test_dialect_options_for_benches_whose_instruments_differ(fakes, rm):
    fake = fakes({"*IDN?": MX_IDN})
    grid = open_instrument("grid_simulator", "ametek_mx", fake.resource, resource_manager=rm,
                           options={"trigger_output": False})
    grid.program_transient([GridSegment(0.1, (277.0,) * 3, 60.0)])
    assert not any(line.startswith("OUTP:TTLT") for line in fake.settled())
    grid.close()
    fake, scope = _open_scope(fakes, rm)
    scope.options["aux_trigger_level_header"] = "TRIGger:A:LEVel:AUXin"
    scope.trigger_external(level_v=2.0)
    assert "TRIGger:A:LEVel:AUXin 2" in fake.settled()
    scope.close()


def test_overvoltage_protection_above_the_safety_limit_is_refused_at_open(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN})
    with pytest.raises(LimitError, match="max_dc_voltage_v"):
        open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm,
                        limits={"max_dc_voltage_v": 1000}, options={"overvoltage_protection_v": 1100})
    assert not any(line.startswith("VOLT:PROT") for line in fake.settled())
