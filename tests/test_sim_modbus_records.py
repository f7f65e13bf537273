"""The simulated PCS's disturbance recorder, seen from the outside: the record list through
the vendor points, the COMTRADE files through FC20 (pymodbus's `read_file_record`), and the
files read back with the independent `comtrade` package and compared with the plant's own
scope ring sample by sample."""

from __future__ import annotations

import math
import socket
import struct
from pathlib import Path

import comtrade
import numpy as np
import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.pdu.file_message import FileRecord

from bench.sim.plant import Plant, PlantConfig
from bench.sim.recorder import recorder_for
from test_sim_modbus import exception_code, modbus_client, serving

ILLEGAL_ADDRESS, ILLEGAL_VALUE = 0x02, 0x03
NOMINAL_LN_V = 480.0 / math.sqrt(3.0)
SAMPLE_RATE_HZ = 1920.0
CHUNK_REGS = 120


def running_plant(defects: tuple[str, ...] = ()) -> Plant:
    plant = Plant(PlantConfig(defects=defects))
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    recorder_for(plant)                       # recording from power-up, as a PCS does
    plant.advance(0.5)
    plant.pcs_settings.p_set_w = 100e3
    plant.pcs_command("start")
    plant.advance(1.0)
    return plant


def sag(plant: Plant, depth_pu: float = 0.6, duration_s: float = 0.2, after_s: float = 1.0) -> float:
    t_sag_s = plant.t_s
    plant.set_source(v_ln_rms_v=[depth_pu * NOMINAL_LN_V] * 3)
    plant.advance(duration_s)
    plant.set_source(v_ln_rms_v=[NOMINAL_LN_V] * 3)
    plant.advance(after_s)
    return t_sag_s


def read_file(client: ModbusTcpClient, file_number: int, length_regs: int) -> bytes:
    """Chunks of at most 120 registers (pymodbus's FileRecord takes the length in bytes)."""
    data = b""
    for record in range(0, length_regs, CHUNK_REGS):
        count = min(CHUNK_REGS, length_regs - record)
        response = client.read_file_record(
            [FileRecord(file_number=file_number, record_number=record, record_length=2 * count)],
            device_id=1)
        assert not response.isError(), response
        data += response.records[0].record_data
    return data


def load(tmp_path: Path, cfg: bytes, dat: bytes) -> comtrade.Comtrade:
    (tmp_path / "r.cfg").write_bytes(cfg.rstrip(b"\x00"))
    (tmp_path / "r.dat").write_bytes(dat)
    return comtrade.load(str(tmp_path / "r.cfg"), str(tmp_path / "r.dat"))


def ring_at(plant: Plant, names: tuple[str, ...], times_s: np.ndarray) -> np.ndarray:
    """The plant's own samples at the record's sample times (independent interpolation)."""
    first = math.floor(times_s[0] / plant.dt_s)
    n = math.ceil(times_s[-1] / plant.dt_s) - first + 1
    raw = plant.read_ring(names, first * plant.dt_s, n)
    t_raw = (first + np.arange(n)) * plant.dt_s
    return np.array([np.interp(times_s, t_raw, row) for row in raw])


def test_sag_record_through_fc20_reads_back_with_comtrade(tmp_path):
    plant = running_plant()
    t_sag_s = sag(plant)
    [record] = recorder_for(plant).records
    assert record.cause == "FAULT"
    assert t_sag_s < record.trigger_time_s < t_sag_s + 1 / 60        # within a cycle of the sag

    with serving(plant) as server, modbus_client(server) as client:
        listing = client.read_holding_registers(41040, count=6, device_id=1).registers
        assert listing[0] == 1                                        # record_count
        assert not client.write_register(41041, 1, device_id=1).isError()
        listing = client.read_holding_registers(41040, count=6, device_id=1).registers
        trigger_ms = (listing[2] << 16) | listing[3]
        cfg_file, cause = listing[4], listing[5]
        assert trigger_ms == round(record.trigger_time_s * 1000)
        assert cause == 1                                             # FAULT (sag/swell)
        cfg_regs = (len(record.files.cfg) + 1) // 2
        cfg = read_file(client, cfg_file, cfg_regs)
        dat = read_file(client, cfg_file + 1, len(record.files.dat) // 2)
    assert cfg.rstrip(b"\x00") == record.files.cfg
    assert dat == record.files.dat

    rec = load(tmp_path, cfg, dat)
    assert rec.rev_year == "2013"
    assert rec.cfg.ft == "BINARY"
    assert rec.analog_channel_ids == ["VA", "VB", "VC", "IA", "IB", "IC", "P", "Q", "F"]
    assert rec.status_channel_ids == ["CURRENT_LIMITED", "RIDE_THROUGH_ACTIVE", "TRIPPED",
                                      "MOMENTARY_CESSATION"]
    assert [ch.uu for ch in rec.cfg.analog_channels] == ["V", "V", "V", "A", "A", "A", "W", "var", "Hz"]
    assert rec.cfg.sample_rates == [[SAMPLE_RATE_HZ, 1920]]           # 32 samples per cycle, 1.0 s
    assert rec.total_samples == 1920
    assert rec.frequency == 60.0
    assert rec.trigger_time == pytest.approx(0.1, abs=1 / SAMPLE_RATE_HZ)   # pre-trigger
    start_s = (rec.start_timestamp - rec.start_timestamp.replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)).total_seconds()
    assert rec.start_timestamp.date().isoformat() == "2026-01-01"
    assert start_s == pytest.approx(record.start_time_s, abs=1e-6)

    # every analog sample against the plant's scope ring, within half a quantisation step
    # (at the recorder's exact sample times: the .cfg time stamp is rounded to 1 us)
    times_s = record.start_time_s + np.arange(rec.total_samples) / SAMPLE_RATE_HZ
    expected = ring_at(plant, ("pcc_va_v", "pcc_vb_v", "pcc_vc_v", "pcs_ia_a", "pcs_ib_a", "pcs_ic_a"),
                       times_s)
    for i, channel in enumerate(rec.cfg.analog_channels[:6]):
        got = np.asarray(rec.analog[i])
        assert np.max(np.abs(got - expected[i])) <= channel.a * 0.5 + 1e-3, channel.name
    # the sag is in the voltage record, and the PCS said it rode through it
    va = np.asarray(rec.analog[0])
    pre = va[: int(0.09 * SAMPLE_RATE_HZ)]
    during = va[int(0.12 * SAMPLE_RATE_HZ): int(0.28 * SAMPLE_RATE_HZ)]
    assert np.max(np.abs(pre)) == pytest.approx(math.sqrt(2) * NOMINAL_LN_V, rel=0.03)
    # at the PCC the sag is shallower than at the source: the PCS injects reactive current
    assert 0.55 < np.max(np.abs(during)) / (math.sqrt(2) * NOMINAL_LN_V) < 0.85
    ride_through = np.asarray(rec.status[1])
    assert not ride_through[:150].any() and ride_through[250:400].all()
    # P before the sag and the frequency are what the PCS reports
    p_w, f_hz = np.asarray(rec.analog[6]), np.asarray(rec.analog[8])
    assert np.median(p_w[:150]) == pytest.approx(100e3, rel=0.01)
    assert np.nanmedian(f_hz) == pytest.approx(60.0, abs=0.05)


def test_fc20_refuses_what_the_manual_refuses():
    plant = running_plant()
    sag(plant)
    record = recorder_for(plant).records[-1]
    cfg_regs = (len(record.files.cfg) + 1) // 2
    with serving(plant) as server, modbus_client(server) as client:
        def code(file_number: int, record_number: int, count: int) -> int | None:
            return exception_code(client.read_file_record(
                [FileRecord(file_number=file_number, record_number=record_number, record_length=2 * count)],
                device_id=1))
        assert code(record.cfg_file_number, cfg_regs - 10, 10) is None   # the last registers
        assert code(record.cfg_file_number, cfg_regs - 10, 11) == ILLEGAL_ADDRESS   # past the end
        assert code(record.cfg_file_number, cfg_regs, 1) == ILLEGAL_ADDRESS
        assert code(record.dat_file_number + 1, 0, 10) == ILLEGAL_ADDRESS           # no such file
        assert code(record.cfg_file_number, 0, 121) == ILLEGAL_VALUE                # > 120 registers
        # the server is still there
        assert client.read_holding_registers(41040, count=1, device_id=1).registers == [1]


@pytest.mark.parametrize("defect", ["recorder_short_pretrigger", "recorder_missing_channels"])
def test_recorder_defects_change_the_record(defect, tmp_path):
    plant = running_plant(defects=(defect,))
    t_sag_s = sag(plant)
    [record] = recorder_for(plant).records
    rec = comtrade_of(record, tmp_path)
    if defect == "recorder_short_pretrigger":
        assert rec.trigger_time < 2 / 60                            # less than two cycles
        assert record.start_time_s - t_sag_s > -1 / 120             # < half a cycle before the sag
        assert "IA" in rec.analog_channel_ids
    else:
        assert rec.trigger_time == pytest.approx(0.1, abs=1 / SAMPLE_RATE_HZ)
        assert rec.analog_channel_ids == ["VA", "VB", "VC", "P", "Q", "F"]


def comtrade_of(record, tmp_path: Path) -> comtrade.Comtrade:
    return load(tmp_path, record.files.cfg, record.files.dat)


def test_trip_limit_entry_and_phase_jump_trigger_records(tmp_path):
    # a deep sag: a FAULT record, then the LV must-trip (2 s at 0.5 pu) makes a TRIP record
    plant = running_plant()
    plant.set_source(v_ln_rms_v=[0.3 * NOMINAL_LN_V] * 3)
    plant.advance(3.0)
    causes = [r.cause for r in recorder_for(plant).records]
    assert causes == ["FAULT", "TRIP"]
    trip_time = next(t for t, code, _ in plant.pcs_events if code == "TRIP")
    assert recorder_for(plant).records[1].trigger_time_s == pytest.approx(trip_time)
    tripped = np.asarray(comtrade_of(recorder_for(plant).records[1], tmp_path).status[2])
    assert not tripped[0] and tripped[-1]                             # TRIPPED rises in the record

    # more than the PCS can deliver: the current limiter engages
    plant = running_plant()
    plant.pcs_settings.p_set_w = 250e3
    plant.pcs_settings.q_set_var = 200e3
    plant.advance(3.0)
    records = recorder_for(plant).records
    assert [r.cause for r in records][:1] == ["LIMIT_ENTER"]

    # a 30 degree phase jump of the grid
    plant = running_plant()
    plant.set_source(phase_deg=[30.0, -90.0, 150.0])
    plant.advance(1.0)
    assert [r.cause for r in recorder_for(plant).records] == ["PHASE_JUMP"]
    assert [r.number for r in recorder_for(plant).records] == [1]


def test_steady_operation_and_frequency_offset_do_not_trigger():
    plant = running_plant()
    plant.set_source(freq_hz=60.5)
    plant.advance(1.0)
    plant.set_source(v_ln_rms_v=[0.95 * NOMINAL_LN_V] * 3)             # inside the 0.9-1.1 band
    plant.advance(1.0)
    assert recorder_for(plant).records == ()


def test_at_most_16_records_are_kept():
    plant = running_plant()
    for _ in range(18):
        sag(plant, depth_pu=0.8, duration_s=0.05, after_s=0.95)
    records = recorder_for(plant).records
    assert len(records) == 16
    assert [r.number for r in records] == list(range(3, 19))            # the oldest two dropped
    assert records[0].cfg_file_number == 5 and records[-1].dat_file_number == 36
    assert recorder_for(plant).file_bytes(1) is None


def test_malformed_file_requests_do_not_hurt_the_server():
    plant = running_plant()
    sag(plant)
    with serving(plant) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
            def exchange(pdu: bytes, transaction: int) -> bytes:
                sock.sendall(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, 1) + pdu)
                header = sock.recv(7)
                _, _, length, _ = struct.unpack(">HHHB", header)
                return sock.recv(length - 1)
            # byte count 8 (not whole 7-byte sub-requests): ILLEGAL_DATA_VALUE
            assert exchange(bytes([0x14, 8, 6, 0, 1, 0, 0, 0, 1, 0]), 1) == bytes([0x94, 0x03])
            # reference type 5: ILLEGAL_DATA_ADDRESS
            assert exchange(bytes([0x14, 7, 5, 0, 1, 0, 0, 0, 1]), 2) == bytes([0x94, 0x02])
            # two sub-requests of 120 registers do not fit one answer: ILLEGAL_DATA_VALUE
            two = bytes([6, 0, 1, 0, 0, 0, 120]) * 2
            assert exchange(bytes([0x14, 14]) + two, 3) == bytes([0x94, 0x03])
            # FC21 (write file record) is refused, not echoed
            assert exchange(bytes([0x15, 9, 6, 0, 1, 0, 0, 0, 1, 0x12, 0x34]), 4) == bytes([0x95, 0x01])
        with modbus_client(server) as client:
            assert client.read_holding_registers(41040, count=1, device_id=1).registers == [1]
