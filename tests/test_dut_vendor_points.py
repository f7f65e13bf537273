"""Vendor points over Modbus: reads, checked writes, and the PCS functions they carry.

The test device is laid out here by hand from docs/vendor_points_vpcs.md (register by
register, not with dut's map), so a transcription slip in dut/pointmaps/vpcs250.toml shows
up as a wrong value instead of being mirrored.
"""

from __future__ import annotations

import struct

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.file_message import FileRecord, ReadFileRecordRequest, ReadFileRecordResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from dut.errors import (
    ControlNotAllowed,
    DutError,
    IdentityMismatch,
    ModbusPointError,
    NotSupportedByPcs,
    SetpointOutOfRange,
)
from dut.pcs import PcsEvent
from dut.pointmap import load_point_map, parse_point_map
from dut.sunspec_pcs import SunSpecPcs, connect_pcs
from dut.vendor_points import VendorPoints
from test_dut import EXPECTED, ModbusTestServer, full_pcs_models, s16, s32, sunspec_image, transport_for, u32

VPCS250 = load_point_map("vpcs250")

# ---------------------------------------------------------------------------- the device image
SETTINGS = {  # register: raw value, from the manual's table
    41000: 1,      # map_version
    41001: 0,      # control_mode GRID_FOLLOWING
    41002: 1,      # limit_priority REACTIVE
    41003: 200,    # k_factor 2.00
    41004: 1,      # dvs_enable
    41005: 100,    # dvs_deadband 0.100 pu
    41006: 500,    # droop_f 5.00 %
    41007: 400,    # droop_v 4.00 %
    41008: 500,    # vsm_inertia_h 5.00 s
    41009: 1000,   # vsm_damping 100.0
    41010: 150,    # virtual_x 0.150
    41011: 0,      # smoothing_enable
    41012: 100,    # smoothing_ramp 10.0 %/s
    41013: 100,    # soc_min 10.0 %
    41014: 900,    # soc_max 90.0 %
    41015: 0,      # mission_priority
    41018: 100,    # dr_time 10.0 s
    41022: 2,      # state RUNNING
    41023: 1,      # current_limited YES
    41024: 0,      # ride_through_active NO
    41025: 0,      # trip_code none
    41028: 9001,   # vdc 900.1 V
    41029: s16(-1234)[0],  # idc -123.4 A (charging)
    41030: 415,    # temperature 41.5 °C
    41046: 50,     # var_ramp 5.0 %/s
}
EVENTS = [(1000, 1, 2), (2500, 3, 0), (4000, 2, 1)]  # (ms, code, value): STATE RUNNING, LIMIT_ENTER, TRIP LV
RECORDS = [(1500, 10, 3), (4000, 12, 2)]  # (trigger ms, cfg file number, cause)


def vendor_block() -> list[int]:
    """Registers 41000..41046 (41038/41039 are not part of the block)."""
    image = [0] * 47
    for register, raw in SETTINGS.items():
        image[register - 41000] = raw
    image[26:28] = u32(12_345_678)  # telemetry_time 12345.678 s
    image[31] = len(EVENTS)
    image[40] = len(RECORDS)
    return image


class VendorTestServer(ModbusTestServer):
    """The SunSpec test device plus the VPCS-250 vendor block, its event log, its record list
    and FC20 file records. Write-only commands read 0; `reject_writes` answers an exception."""

    def __init__(self, *, files: dict[int, bytes] | None = None, short_last_chunk: bool = False,
                 **kwargs) -> None:
        block = vendor_block()
        super().__init__({40000: sunspec_image(*full_pcs_models()), 41000: block[:38],
                          41040: block[40:]}, **kwargs)
        self.reject_writes: dict[int, ExcCodes] = {}
        self.read_overrides.update({41019: 0, 41020: 0})  # dr_execute, black_start read 0
        self.files = dict(files or {})
        self.short_last_chunk = short_last_chunk
        self.file_requests: list[tuple[int, int, int]] = []

    async def _start(self) -> None:
        simdata = [SimData(address, values=registers, datatype=DataType.REGISTERS)
                   for address, registers in self.blocks.items()]
        device = SimDevice(self.device_id, simdata=simdata, action=self._action)
        self._server = ModbusTcpServer(device, address=("127.0.0.1", 0),
                                       custom_pdu=[self._file_record_request_class()])
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]

    async def _action(self, function_code, start_address, address, count, registers, set_values):
        if set_values is not None and function_code in (6, 16):
            for register, code in self.reject_writes.items():
                if address <= register < address + count:
                    if not (function_code == 6 and set_values is None):
                        self.requests.append((function_code, address, count, list(set_values)))
                    return code
            self._select(registers, start_address, address, set_values)
        return await super()._action(function_code, start_address, address, count, registers, set_values)

    @staticmethod
    def _select(registers, start_address, address, values) -> None:
        """Event and record windows follow their select registers, as the manual says."""
        for offset, value in enumerate(values):
            register = address + offset
            if register == 41032 and 1 <= value <= len(EVENTS):
                time_ms, code, event_value = EVENTS[value - 1]
                at = 41033 - start_address
                registers[at : at + 4] = [*u32(time_ms), code, s16(event_value)[0]]
            if register == 41041 and 1 <= value <= len(RECORDS):
                trigger_ms, file_number, cause = RECORDS[value - 1]
                at = 41042 - start_address
                registers[at : at + 4] = [*u32(trigger_ms), file_number, cause]

    def _file_record_request_class(self):
        server = self

        class FileRecordRequest(ReadFileRecordRequest):
            def decode(self, data: bytes) -> None:
                # pymodbus 3.16 halves the record length when it decodes a request (FileRecord
                # takes bytes); the wire carries registers, so decode the sub-requests here.
                self.records = []
                for at in range(1, 1 + data[0], 7):
                    _, file_number, record_number, length = struct.unpack(">BHHH", data[at : at + 7])
                    record = FileRecord(file_number=file_number, record_number=record_number)
                    record.record_length = length
                    self.records.append(record)

            async def datastore_update(self, context, device_id):
                answers = []
                for record in self.records:
                    server.file_requests.append((record.file_number, record.record_number, record.record_length))
                    data = server.files.get(record.file_number)
                    start = 2 * record.record_number
                    end = start + 2 * record.record_length
                    if data is None or start >= len(data) or (end > len(data) and not server.short_last_chunk):
                        return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_ADDRESS)
                    answers.append(FileRecord(file_number=record.file_number,
                                              record_number=record.record_number,
                                              record_data=data[start:end]))
                return ReadFileRecordResponse(records=answers, dev_id=device_id,
                                              transaction_id=self.transaction_id)

        return FileRecordRequest


@pytest.fixture
def vendor_server():
    with VendorTestServer() as server:
        yield server


def make_vendor_pcs(server, *, allow_control=True, expected=EXPECTED, point_map=VPCS250) -> SunSpecPcs:
    return SunSpecPcs(transport_for(server), expected_identity=expected, allow_control=allow_control,
                      clock_now=lambda: 7.25, point_map=point_map)


def vendor_writes(server) -> list[tuple[int, list[int]]]:
    return [(address, values) for _, address, _, values in server.writes if address >= 41000]


# ---------------------------------------------------------------------------- reading
def test_adjacent_points_are_read_in_one_request(vendor_server):
    points = VendorPoints(transport_for(vendor_server), VPCS250)
    values = points.read(["state", "vdc", "idc", "temperature", "telemetry_time", "current_limited"])
    assert [(fc, address, count) for fc, address, count, _ in vendor_server.requests] == [(3, 41022, 9)]
    assert values == {"state": "RUNNING", "current_limited": "YES", "telemetry_time": 12345.678,
                      "vdc": 900.1, "idc": -123.4, "temperature": 41.5}


def test_points_across_a_gap_are_separate_requests(vendor_server):
    points = VendorPoints(transport_for(vendor_server), VPCS250)
    points.read(["event_reserved", "record_count"])  # 41037 | gap 41038-39 | 41040
    assert [address for _, address, _, _ in vendor_server.requests] == [41037, 41040]


def test_telemetry_takes_the_vendor_points(vendor_server):
    snapshot = make_vendor_pcs(vendor_server, allow_control=False).telemetry()
    assert snapshot.timestamp_s == 7.25  # the bench clock, not the PCS clock
    assert snapshot.device_time_s == pytest.approx(12345.678)
    assert snapshot.state == "RUNNING" and snapshot.current_limited is True
    assert snapshot.ride_through_active is False and snapshot.trip_reason is None
    assert (snapshot.vdc_v, snapshot.idc_a, snapshot.temperature_c) == (900.1, -123.4, 41.5)
    assert snapshot.p_w == pytest.approx(125000.0)  # SunSpec values are still there


def test_vendor_trip_code_and_state(vendor_server):
    vendor_server.read_overrides.update({41022: 4, 41025: 1})
    snapshot = make_vendor_pcs(vendor_server, allow_control=False).telemetry()
    assert (snapshot.state, snapshot.trip_reason) == ("TRIPPED", "LV_MUST_TRIP")


def test_without_a_map_telemetry_stays_sunspec_only(vendor_server):
    snapshot = make_vendor_pcs(vendor_server, allow_control=False, point_map=None).telemetry()
    assert snapshot.current_limited is None and snapshot.vdc_v is None and snapshot.device_time_s is None
    assert not any(address >= 41000 for _, address, _, _ in vendor_server.requests)


def test_read_each_reports_points_that_do_not_answer(vendor_server):
    vendor_server.refuse_reads.append((41030, 41031))
    values = VendorPoints(transport_for(vendor_server), VPCS250).read_each(["vdc", "idc", "temperature"])
    assert values["vdc"] == 900.1 and values["idc"] == -123.4
    assert isinstance(values["temperature"], ModbusPointError)
    assert values["temperature"].point == "vpcs250.temperature" and values["temperature"].exception_code == 2


def test_map_version_mismatch_stops_at_connection(vendor_server):
    vendor_server.read_overrides[41000] = 2
    with pytest.raises(DutError, match="describes version 1.*map_version = 2"):
        make_vendor_pcs(vendor_server)


def test_map_for_a_device_without_the_block_fails_clearly():
    with ModbusTestServer({40000: sunspec_image(*full_pcs_models())}) as server:
        with pytest.raises(DutError, match="map_version point does not answer.*illegal data address"):
            make_vendor_pcs(server)


def test_connect_pcs_takes_the_point_map_option(vendor_server):
    connection = {"transport": "tcp", "host": "127.0.0.1", "port": vendor_server.port,
                  "timeout_s": 0.5, "retries": 0, "point_map": "vpcs250"}
    pcs = connect_pcs(connection, expected_identity=EXPECTED, allow_control=False, clock_now=lambda: 0.0)
    try:
        assert pcs.vendor is not None and pcs.vendor.map.name == "vpcs250"
        assert pcs.telemetry().current_limited is True
    finally:
        pcs.close()
    with pytest.raises(DutError, match="no shipped point map named 'nope'"):
        connect_pcs({**connection, "point_map": "nope"}, expected_identity=EXPECTED,
                    allow_control=False, clock_now=lambda: 0.0)


# ---------------------------------------------------------------------------- writing
def test_vendor_setpoints_are_written_and_read_back(vendor_server):
    pcs = make_vendor_pcs(vendor_server)
    pcs.set_k_factor(2.5)
    pcs.set_droop(4.0, 3.5)
    pcs.set_control_mode("GFM_VSM")
    pcs.set_smoothing(True, 0.05)  # 5 %/s of rating
    pcs.set_mission_priority("SMOOTHING")
    pcs.set_limit_priority("mixed")
    pcs.island()
    pcs.reconnect()
    assert vendor_writes(vendor_server) == [
        (41003, [250]), (41006, [400, 350]), (41001, [2]), (41011, [1, 50]), (41015, [2]),
        (41002, [2]), (41021, [1]), (41021, [0]),
    ]
    # every write is followed by a read-back of the same registers
    requests = [(fc, address, count) for fc, address, count, _ in vendor_server.requests if address >= 41000]
    for index, (fc, address, count) in enumerate(requests):
        if fc == 16:
            assert requests[index + 1] == (3, address, count)


def test_dispatch_writes_target_and_time_then_executes(vendor_server):
    make_vendor_pcs(vendor_server).dispatch(-50e3, 30.0)
    assert vendor_writes(vendor_server) == [(41016, [*s32(-50000), 300]), (41019, [1])]


def test_black_start_is_a_command_not_read_back(vendor_server):
    make_vendor_pcs(vendor_server).black_start()
    assert vendor_writes(vendor_server) == [(41020, [1])]


def test_soc_band_moves_in_the_order_that_keeps_it_valid(vendor_server):
    pcs = make_vendor_pcs(vendor_server)
    pcs.set_soc_band(92.0, 98.0)  # above the current 10..90 band: the top moves first
    assert vendor_writes(vendor_server) == [(41014, [980]), (41013, [920])]
    vendor_server.requests.clear()
    pcs.set_soc_band(5.0, 50.0)
    assert vendor_writes(vendor_server) == [(41013, [50]), (41014, [500])]


@pytest.mark.parametrize("command, match", [
    (lambda pcs: pcs.set_k_factor(10.5), "k_factor = 10.5 pu/pu is outside 0..10"),
    (lambda pcs: pcs.set_droop(5.0, 0.2), "droop_v = 0.2 % is outside 0.5..10"),  # nothing of the pair sent
    (lambda pcs: pcs.set_smoothing(True, 2.0), "smoothing_ramp = 200 %/s is outside"),
    (lambda pcs: pcs.set_soc_band(80.0, 20.0), "minimum must be below the maximum"),
    (lambda pcs: pcs.set_soc_band(-1.0, 20.0), "soc_min = -1 % is outside"),
    (lambda pcs: pcs.set_control_mode("GFM"), "must be one of GFL, GFM_DROOP, GFM_VSM"),
    (lambda pcs: pcs.set_mission_priority("COFFEE"), "must be one of"),
    (lambda pcs: pcs.dispatch(300e3, 10.0), "demand-response target = 300000 W is outside"),
    (lambda pcs: pcs.dispatch(100e3, 700.0), "dr_time = 700 s is outside 0.1..600"),
    (lambda pcs: pcs.dispatch(float("nan"), 10.0), "demand-response target"),
])
def test_out_of_range_vendor_setpoints_are_refused_before_any_write(vendor_server, command, match):
    with pytest.raises(SetpointOutOfRange, match=match):
        command(make_vendor_pcs(vendor_server))
    assert vendor_server.writes == []


def test_write_rejected_by_the_device_names_the_point(vendor_server):
    vendor_server.reject_writes[41001] = ExcCodes.ILLEGAL_VALUE
    with pytest.raises(ModbusPointError) as caught:
        make_vendor_pcs(vendor_server).set_control_mode("GFM_DROOP")
    error = caught.value
    assert (error.point, error.register, error.exception_code) == ("vpcs250.control_mode", 41001, 3)
    assert "illegal data value" in str(error) and f":{vendor_server.port}" in str(error)


def test_value_the_device_changes_is_caught_by_the_read_back(vendor_server):
    def clamp_droop_v(address, values):  # the device silently keeps droop_v at 4 %
        if address <= 41007 < address + len(values):
            values[41007 - address] = 400

    vendor_server.write_filter = clamp_droop_v
    with pytest.raises(ModbusPointError, match=r"read back \[400\] after writing \[250\]") as caught:
        make_vendor_pcs(vendor_server).set_droop(5.0, 2.5)
    assert caught.value.point == "vpcs250.droop_v" and caught.value.register == 41007


def test_vendor_writes_obey_the_control_gate(vendor_server):
    read_only = make_vendor_pcs(vendor_server, allow_control=False)
    for command in (lambda: read_only.set_k_factor(1.0), read_only.black_start, read_only.island,
                    lambda: read_only.events_since(0.0), read_only.disturbance_records):
        with pytest.raises(ControlNotAllowed):
            command()
    wrong = make_vendor_pcs(vendor_server, expected=EXPECTED.__class__("bessbench", "VPCS-250", "VPCS-0002"))
    with pytest.raises(IdentityMismatch):
        wrong.set_control_mode("GFL")
    assert vendor_server.writes == []


def test_transport_of_a_read_only_connection_refuses_writes(vendor_server):
    pcs = connect_pcs({"transport": "tcp", "host": "127.0.0.1", "port": vendor_server.port,
                       "point_map": "vpcs250"},
                      expected_identity=EXPECTED, allow_control=False, clock_now=lambda: 0.0)
    try:
        with pytest.raises(ControlNotAllowed, match="read-only"):
            pcs.vendor.write({"k_factor": 1.0})  # even below the PCS layer's own gate
    finally:
        pcs.close()
    assert vendor_server.writes == []


def test_functions_missing_from_the_map_say_so(vendor_server):
    with pytest.raises(NotSupportedByPcs, match="no point map is configured"):
        make_vendor_pcs(vendor_server, point_map=None).set_control_mode("GFL")
    small = parse_point_map('[map]\nname = "small"\n[[point]]\nname = "k_factor"\naddress = 41003\n'
                            'type = "uint16"\nscale = 0.01\naccess = "RW"\n', "small.toml")
    pcs = make_vendor_pcs(vendor_server, point_map=small)
    with pytest.raises(NotSupportedByPcs, match=r"point map \(small\) has no droop points"):
        pcs.set_droop(5.0, 5.0)
    with pytest.raises(NotSupportedByPcs, match="no event log"):
        pcs.events_since(0.0)
    with pytest.raises(NotSupportedByPcs, match="disturbance record"):
        pcs.disturbance_records()
    assert vendor_server.writes == []


def test_direct_writes_check_access_and_enumerations(vendor_server):
    points = VendorPoints(transport_for(vendor_server), VPCS250)
    with pytest.raises(DutError, match="vpcs250.vdc is read-only"):
        points.write({"vdc": 800.0})
    with pytest.raises(SetpointOutOfRange, match="'FAST' is not one of 0 GRID_FOLLOWING"):
        points.write({"control_mode": "FAST"})
    with pytest.raises(DutError, match="write-only"):
        points.read(["dr_execute"])
    assert vendor_server.writes == []


# ---------------------------------------------------------------------------- event log
def test_events_since_walks_back_only_as_far_as_needed(vendor_server):
    events = make_vendor_pcs(vendor_server).events_since(2.0)
    assert events == [PcsEvent(2.5, "LIMIT_ENTER", 0), PcsEvent(4.0, "TRIP", 1)]
    # newest first; the walk stops at the first event older than asked
    assert [values for address, values in vendor_writes(vendor_server)] == [[3], [2], [1]]


def test_all_events(vendor_server):
    events = make_vendor_pcs(vendor_server).events_since(0.0)
    assert [event.code for event in events] == ["STATE", "LIMIT_ENTER", "TRIP"]
    assert events[0].value == 2  # new state RUNNING
