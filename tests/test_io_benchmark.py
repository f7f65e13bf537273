"""The large-record download path that `bessbench io-benchmark` measures, piece by piece.

Block reads handed out in pieces (both read paths, and the failures), the concatenated
preamble query, the recycled record buffers (never reused while anything still refers to
them), the twin's header-lookup cache and sliced sending, and the benchmark itself on a small
record. No timing is asserted: rates are the benchmark's to report and people's to judge.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import numpy as np
import pytest

from bench.sim.scpi.server import STREAM_SLICE_BYTES, CommandTable, send_response
from instruments.errors import InstrumentError
from instruments.oscilloscope import codes_to_volts
from instruments.oscilloscope.record_buffers import RecordBuffers
from instruments.registry import open_instrument
from test_instruments import (  # noqa: F401 (fixtures)
    KNOWN_CODES, RP_IDN, block, fakes, rm, tek_replies)


def _collect(dc, command: str, chunk_bytes: int, **kwargs):
    pieces: list[tuple[int, bytes]] = []
    dc.write(command)
    length = dc.read_block_chunks(command, lambda offset, data: pieces.append((offset, bytes(data))),
                                  chunk_bytes=chunk_bytes, **kwargs)
    return length, pieces


# -- blocks in pieces -------------------------------------------------------------------------

@pytest.mark.parametrize("socket_reads, path", [(True, "socket"), (False, "visa")])
def test_block_pieces_are_consecutive_exact_and_of_the_asked_size(fakes, rm, socket_reads, path):
    codes = (np.arange(700_001) % 65536 - 32768).astype("<i2")     # every code, 0x0A included
    fake = fakes({"*IDN?": RP_IDN, "DATA?": block(codes.tobytes())})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm,
                         options={"socket_block_reads": socket_reads})
    length, pieces = _collect(dc, "DATA?", 1 << 16, expected_bytes=codes.nbytes)
    assert length == codes.nbytes
    assert [offset for offset, _ in pieces] == list(range(0, codes.nbytes, 1 << 16))
    assert all(len(data) == 1 << 16 for _, data in pieces[:-1])
    assert b"".join(data for _, data in pieces) == codes.tobytes()
    assert dc.last_block_transfer.path == path and dc.last_block_transfer.n_bytes == codes.nbytes
    assert dc.query_float("*OPC?") == 1.0                       # in step afterwards
    dc.close()


def test_indefinite_block_is_handed_out_in_pieces_too(fakes, rm):
    payload = b"\x00\x0a\x01\x0a\xff"
    fake = fakes({"*IDN?": RP_IDN, "DATA?": b"#0" + payload + b"\n"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    length, pieces = _collect(dc, "DATA?", 2)
    assert length == 5 and pieces == [(0, b"\x00\x0a"), (2, b"\x01\x0a"), (4, b"\xff")]
    dc.close()


def test_truncated_block_in_pieces_says_how_much_arrived(fakes, rm):
    data = bytes(range(256)) * 40                                  # 10 240 bytes
    fake = fakes({"*IDN?": RP_IDN, "DATA?": b"#520000" + data})    # announces 20 000, then silence
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm,
                         timeout_s=0.3)
    pieces: list[tuple[int, bytes]] = []
    dc.write("DATA?")
    with pytest.raises(InstrumentError, match="announced 20000 bytes; the instrument went silent "
                                              "after 10240 of them"):
        dc.read_block_chunks("DATA?", lambda o, d: pieces.append((o, bytes(d))), chunk_bytes=4096)
    assert [offset for offset, _ in pieces] == [0, 4096]           # only complete pieces
    assert b"".join(d for _, d in pieces) == data[:8192]
    dc.close()


def test_block_longer_than_announced_is_refused_before_its_last_piece(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN, "DATA?": b"#210" + bytes(10) + b"\x01\x02\n"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    pieces: list[int] = []
    dc.write("DATA?")
    with pytest.raises(InstrumentError, match="longer than announced"):
        dc.read_block_chunks("DATA?", lambda o, d: pieces.append(o), chunk_bytes=4)
    assert pieces == [0, 4]                                        # bytes 8–9 never handed out
    dc.close()


def test_block_of_another_length_than_expected_is_refused_before_reading(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN, "DATA?": block(bytes(100))})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    dc.write("DATA?")
    with pytest.raises(InstrumentError, match="announces 100 bytes but 60 were expected"):
        dc.read_block_chunks("DATA?", lambda o, d: None, chunk_bytes=16, expected_bytes=60)
    with pytest.raises(ValueError, match="chunk_bytes"):
        dc.read_block_chunks("DATA?", lambda o, d: None, chunk_bytes=0)
    dc.close()


# -- one round trip for several numbers -------------------------------------------------------

def test_several_queries_go_out_as_one_concatenated_message(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN, "MEAS:VOLT?": "12.5", "MEAS:CURR?": "-3E-1"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    assert dc.query_floats(["MEAS:VOLT?", "MEAS:CURR?"]) == [12.5, -0.3]
    assert "MEAS:VOLT?;:MEAS:CURR?" in fake.received               # absolute headers after ';'
    dc.close()


@pytest.mark.parametrize("volt, complaint", [
    ("OVER", "'MEAS:VOLT\\?' answered 'OVER', which is not a number"),
    ("nan", "'MEAS:VOLT\\?' answered 'nan', which is not a finite number"),
])
def test_a_wrong_value_in_a_concatenated_reply_names_its_query(fakes, rm, volt, complaint):
    fake = fakes({"*IDN?": RP_IDN, "MEAS:VOLT?": volt, "MEAS:CURR?": "1"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    with pytest.raises(InstrumentError, match=complaint):
        dc.query_floats(["MEAS:CURR?", "MEAS:VOLT?"])
    dc.close()


def test_a_concatenated_reply_with_too_few_values_is_an_error(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN, "MEAS:VOLT?;:MEAS:CURR?": "12.5"})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)
    with pytest.raises(InstrumentError, match="1 value\\(s\\) for 2 queries"):
        dc.query_floats(["MEAS:VOLT?", "MEAS:CURR?"])
    dc.close()


PREAMBLE = ("HORizontal:MODE:RECOrdlength?;:WFMOutpre:XINcr?;:WFMOutpre:XZEro?;:WFMOutpre:PT_Off?;"
            ":WFMOutpre:YMUlt?;:WFMOutpre:YOFf?;:WFMOutpre:YZEro?;:WFMOutpre:NR_Pt?")


def test_tektronix_selects_and_reads_its_preamble_in_one_round_trip_after_the_first(fakes, rm):
    fake = fakes(tek_replies(**{"CURVE?": block(KNOWN_CODES.tobytes())}))
    scope = open_instrument("oscilloscope", "tektronix_mso5", fake.resource, resource_manager=rm)
    scope.read_waveform(1)
    first = fake.settled()
    scope.read_waveform(2)
    second = fake.settled()[len(first):]
    queries = [line for line in second if "?" in line]
    assert queries == [PREAMBLE, "CURVe?"]                        # the record length known
    assert "DATa:STOP 6" in second and "DATa:SOUrce CH2" in second
    assert [line for line in first if "?" in line][-3:] == ["HORizontal:MODE:RECOrdlength?", PREAMBLE,
                                                            "CURVe?"]
    scope.close()


def test_tektronix_selects_a_changed_record_length_before_reading(fakes, rm):
    longer = np.arange(-4, 4, dtype="<i2")
    lengths = ["6", "6", "8", "8"]                                 # read 1: ask, check; read 2: check, check
    fake = fakes(tek_replies(**{
        "HORIZONTAL:MODE:RECORDLENGTH?": lengths,
        "WFMOUTPRE:NR_PT?": ["6", "8", "8"],
        "CURVE?": [block(KNOWN_CODES.tobytes()), block(longer.tobytes())]}))
    scope = open_instrument("oscilloscope", "tektronix_mso5", fake.resource, resource_manager=rm)
    assert len(scope.read_waveform(1)) == 6
    before = len(fake.settled())
    wave = scope.read_waveform(1)
    np.testing.assert_allclose(wave.volts, (longer - 10.0) * 1e-3 + 0.5, rtol=1e-6)
    sent = fake.settled()[before:]
    assert sent.index("DATa:STOP 6") < sent.index("DATa:STOP 8") < sent.index("CURVe?")
    scope.close()


# -- recycled record buffers ------------------------------------------------------------------

def test_a_record_buffer_is_reused_only_once_nothing_refers_to_it():
    buffers = RecordBuffers(keep=2)
    first = buffers.take(1000, np.float32)
    first_id = id(first)
    second = buffers.take(1000, np.float32)
    assert second is not first                                     # `first` is still held
    del second
    assert id(buffers.take(1000, np.float32)) != first_id          # still held: the other one
    for holder in (lambda a: a[::3], memoryview, weakref.ref, lambda a: a.reshape(10, 100)):
        held = holder(first)
        del first
        gc.collect()
        assert all(id(buffers.take(1000, np.float32)) != first_id for _ in range(3)), holder
        first = held.obj if isinstance(held, memoryview) else (held() if isinstance(held, weakref.ref)
                                                                else held.base)
        del held
        assert id(first) == first_id
    del first
    assert id(buffers.take(1000, np.float32)) == first_id          # released: handed out again


def test_record_buffers_of_another_size_or_type_are_new_and_keep_zero_keeps_none():
    buffers = RecordBuffers(keep=2)
    a_id = id(buffers.take(100, np.float32))
    assert id(buffers.take(100, np.float64)) != a_id and len(buffers) == 2
    assert buffers.take(101, np.float32).shape == (101,) and len(buffers) == 2
    buffers.clear()
    assert len(buffers) == 0
    none_kept = RecordBuffers(keep=0)
    none_kept.take(100, np.float32)
    assert len(none_kept) == 0


def test_a_held_waveform_is_never_overwritten_by_the_next_read(fakes, rm):
    later = np.array([5, 6, 7, 8, 9, 10], dtype="<i2")
    fake = fakes(tek_replies(**{"CURVE?": [block(KNOWN_CODES.tobytes()), block(later.tobytes())]}))
    scope = open_instrument("oscilloscope", "tektronix_mso5", fake.resource, resource_manager=rm)
    first = scope.read_waveform(1)
    kept = first.volts.copy()
    second = scope.read_waveform(1)
    assert not np.shares_memory(first.volts, second.volts)
    np.testing.assert_array_equal(first.volts, kept)
    np.testing.assert_allclose(second.volts, (later - 10.0) * 1e-3 + 0.5, rtol=1e-6)
    second_id = id(second.volts)                                   # (the pool keeps it alive)
    del second
    third = scope.read_waveform(1)                                 # `second` let go: its array again
    assert id(third.volts) == second_id
    np.testing.assert_allclose(third.volts, (later - 10.0) * 1e-3 + 0.5, rtol=1e-6)
    np.testing.assert_array_equal(first.volts, kept)
    scope.close()


@pytest.mark.parametrize("keep", [-1, 1.5, "2", True])
def test_a_wrong_record_buffers_option_is_refused_by_name(fakes, rm, keep):
    fake = fakes(tek_replies())
    with pytest.raises(InstrumentError, match="option record_buffers"):
        open_instrument("oscilloscope", "tektronix_mso5", fake.resource, resource_manager=rm,
                        options={"record_buffers": keep})


def test_codes_to_volts_skips_only_what_changes_nothing():
    codes = np.array([-32768, -1, 0, 1, 32767], dtype="<i2")
    for offset, scale, zero in ((0.0, 1e-3, 0.0), (10.0, -2e-3, 0.5), (0.5, 3e-4, -1.0)):
        volts = codes_to_volts(codes, offset, scale, zero, out=np.empty(5, np.float32))
        expected = ((codes.astype(np.float32) - np.float32(offset)) * np.float32(scale)
                    + np.float32(zero))
        np.testing.assert_array_equal(volts, expected)


# -- the twin ---------------------------------------------------------------------------------

def test_twin_header_lookups_are_remembered_without_sharing_their_results():
    table = CommandTable()
    table.add("CH<x>:SCAle", set=lambda c: None, query=lambda c: "1")
    table.add("[SOURce:]VOLTage[:LEVel]", set=lambda c: None)
    for _ in range(2):                                             # second time from the cache
        command, suffixes, path = table.lookup(["ch2", "sca"], True)
        assert suffixes == {"x": 2} and path == ["CH2", "SCALE"]
        suffixes["x"] = 99
        path.append("changed")
        assert table.lookup(["CH3", "SCALE"], True)[1] == {"x": 3}
        assert table.lookup(["VOLT"], False)[2] == ["VOLTAGE"] == table._search(["VOLT"], False)[2]
        assert table.lookup(["VOLT"], True) is None                # no query form
    table.add("VOLTage:QUERy", query=lambda c: "0")                # a new command: nothing stale
    assert table.lookup(["VOLT", "QUER"], True) is not None


class _Writer:
    """Just enough of an asyncio StreamWriter to see what a response is cut into."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.drains = 0

    def write(self, data) -> None:
        self.pieces.append(bytes(data))

    async def drain(self) -> None:
        self.drains += 1


def test_twin_sends_a_large_block_in_slices_and_small_answers_whole():
    block_bytes = bytes(range(256)) * (STREAM_SLICE_BYTES // 256 * 2 + 3)
    writer = _Writer()
    asyncio.run(send_response(writer, [b"#9", block_bytes, b"\n"]))
    assert b"".join(writer.pieces) == b"#9" + block_bytes + b"\n"
    assert [len(p) for p in writer.pieces[1:-1]] == [STREAM_SLICE_BYTES, STREAM_SLICE_BYTES, 768]
    assert writer.drains >= 3
    small = _Writer()
    asyncio.run(send_response(small, [b"1.0;2.0\n"]))
    assert small.pieces == [b"1.0;2.0\n"]


# -- the benchmark itself ---------------------------------------------------------------------

def test_io_benchmark_reports_both_paths_on_the_same_bytes():
    from bench.io_benchmark import io_benchmark

    result = io_benchmark(200_000, repeats=3, include_pyvisa_reference=False)
    assert result["points"] == 200_000 and result["bytes"] == 400_000
    assert result["same_bytes"] is True
    for key in ("driver_mb_s", "raw_socket_mb_s", "ratio", "driver_new_output_mb_s"):
        assert result[key] > 0, key
    assert len(result["driver_s"]) == len(result["raw_socket_s"]) == 3
    assert result["ratio_per_run"]["min"] <= result["ratio_per_run"]["median"] <= result["ratio_per_run"]["max"]
    assert set(result["driver_time_s"]) == {"setup_s", "first_byte_wait_s", "receive_s", "convert_s",
                                            "total_s"}
    assert "fresh memory" in result["finding"]


def test_a_failing_piece_consumer_leaves_the_session_in_step(fakes, rm):
    fake = fakes({"*IDN?": RP_IDN, "DATA?": block(bytes(range(200)) * 50)})
    dc = open_instrument("dc_source", "keysight_rp7900", fake.resource, resource_manager=rm)

    def refuse(offset: int, data: memoryview) -> None:
        raise ValueError("consumer failed")

    dc.write("DATA?")
    with pytest.raises(ValueError, match="consumer failed"):
        dc.read_block_chunks("DATA?", refuse, chunk_bytes=1000)
    assert dc.query_float("*OPC?") == 1.0                        # not the rest of the block
    dc.close()
