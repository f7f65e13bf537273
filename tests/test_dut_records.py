"""Disturbance records: list through vendor points, files through FC20, parsed by `comtrade`."""

from __future__ import annotations

import struct

import comtrade
import pytest

from dut.errors import DutError, ModbusPointError
from dut.pcs import RecordInfo
from dut.records import ModbusFileRecordSource, RecordSource
from dut.vendor_points import VendorPoints
from test_dut import EXPECTED, transport_for
from test_dut_vendor_points import VPCS250, VendorTestServer, make_vendor_pcs

SAMPLES = 300  # 300 samples × 8 bytes: a .dat of 1200 registers, ten full FC20 chunks


def comtrade_pair(samples: int = SAMPLES) -> tuple[str, bytes]:
    """A small IEEE C37.111-2013 BINARY record: one voltage, one current channel, 20 kHz."""
    cfg = "\r\n".join([
        "VPCS-0001,bessbench VPCS-250,2013",
        "2,2A,0D",
        "1,pcc_va_v,A,,V,0.1,0,0,-32767,32767,1,1,P",
        "2,pcs_ia_a,A,,A,0.01,0,0,-32767,32767,1,1,P",
        "60",
        "1",
        f"20000,{samples}",
        "01/01/2026,00:00:01.500000",
        "01/01/2026,00:00:01.500000",
        "BINARY",
        "1",
        "+0h00,+0h00",
        "0,0",
    ]) + "\r\n"
    dat = b"".join(
        struct.pack("<IIhh", n + 1, 50 * n, (n * 37) % 3000 - 1500, -(n * 11) % 2000)
        for n in range(samples)
    )
    return cfg, dat


def as_file(cfg_text: str) -> bytes:
    data = cfg_text.encode("ascii")
    return data + b"\x00" * (len(data) % 2)  # padded to a whole register, as the manual says


@pytest.fixture
def record_server():
    cfg, dat = comtrade_pair()
    with VendorTestServer(files={10: as_file(cfg), 11: dat, 12: as_file(cfg), 13: dat}) as server:
        server.cfg, server.dat = cfg, dat
        yield server


def test_record_list_from_vendor_points(record_server):
    records = make_vendor_pcs(record_server).disturbance_records()
    assert records == [
        RecordInfo(index=1, trigger_time_s=1.5, cause="LIMIT_ENTER", file_number=10),
        RecordInfo(index=2, trigger_time_s=4.0, cause="TRIP", file_number=12),
    ]


def test_record_files_come_back_exactly_and_parse_as_comtrade(record_server):
    pcs = make_vendor_pcs(record_server)
    cfg_text, dat_bytes = pcs.fetch_record(pcs.disturbance_records()[1])
    assert cfg_text == record_server.cfg and dat_bytes == record_server.dat
    record = comtrade.Comtrade()
    record.read(cfg_text, dat_bytes)
    assert record.analog_channel_ids == ["pcc_va_v", "pcs_ia_a"]
    assert record.total_samples == SAMPLES
    assert record.analog[0][3] == pytest.approx(0.1 * ((3 * 37) % 3000 - 1500))
    # every sub-request asks for at most 120 registers, from record 0 upwards
    dat_requests = [(number, length) for file, number, length in record_server.file_requests if file == 13]
    assert all(length <= 120 for _, length in dat_requests)
    assert dat_requests[0][0] == 0


@pytest.mark.parametrize("samples", [SAMPLES, 301, 7])
@pytest.mark.parametrize("short_last_chunk", [False, True])
def test_file_end_found_whether_the_device_shortens_or_refuses_the_last_chunk(samples, short_last_chunk):
    cfg, dat = comtrade_pair(samples)
    with VendorTestServer(files={10: as_file(cfg), 11: dat}, short_last_chunk=short_last_chunk) as server:
        source = ModbusFileRecordSource(transport_for(server), VendorPoints(transport_for(server), VPCS250))
        cfg_text, dat_bytes = source.fetch(RecordInfo(index=1, trigger_time_s=1.5, cause="FAULT", file_number=10))
    assert cfg_text == cfg and dat_bytes == dat


def test_fetching_a_missing_file_is_a_clear_error(record_server):
    source = ModbusFileRecordSource(transport_for(record_server), VendorPoints(transport_for(record_server), VPCS250))
    with pytest.raises(DutError, match="file 40 .* is empty or absent"):
        source.fetch(RecordInfo(index=9, trigger_time_s=None, cause=None, file_number=40))


def test_a_device_without_fc20_answers_illegal_function(record_server):
    class NoFiles:  # a transport whose device refuses FC20 altogether
        device = "test device"

        def read_file_record(self, file_number, record_number, count, *, point="?"):
            raise ModbusPointError(point, record_number, self.device, "Modbus exception 0x01", exception_code=1)

    source = ModbusFileRecordSource(NoFiles(), VendorPoints(transport_for(record_server), VPCS250))
    with pytest.raises(ModbusPointError, match="record 1 .cfg"):
        source.fetch(RecordInfo(index=1, trigger_time_s=None, cause=None, file_number=10))


def test_another_record_source_plugs_into_the_seam(record_server):
    class FolderSource:  # e.g. records a PCS publishes over SFTP, mirrored to a folder
        def list_records(self):
            return [RecordInfo(index=1, trigger_time_s=3.0, cause="TRIP", location="sftp://pcs/rec1")]

        def fetch(self, record):
            return "cfg", b"dat"

    assert isinstance(FolderSource(), RecordSource)
    from dut.sunspec_pcs import SunSpecPcs

    pcs = SunSpecPcs(transport_for(record_server), expected_identity=EXPECTED, allow_control=False,
                     clock_now=lambda: 0.0, record_source=FolderSource())
    (info,) = pcs.disturbance_records()  # no register write needed, so no control needed
    assert pcs.fetch_record(info) == ("cfg", b"dat")
    assert record_server.writes == []
