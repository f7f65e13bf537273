"""Tests of dut/ against a small pymodbus server laid out here, register by register.

The server image is built in this file (not with dut's layout code) so that a layout mistake
in dut/ shows up as a wrong value instead of being mirrored by the test.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from dut.errors import (
    ControlNotAllowed,
    DutError,
    IdentityMismatch,
    ModbusPointError,
    SetpointOutOfRange,
    SunSpecError,
)
from dut.modbus_transport import ModbusTransport, rtu_inter_frame_delay_s
from dut.pcs import PcsIdentity, RideThroughSettings
from dut.sunspec import SunSpecDevice, build_layout, decode_raw, model_definition, model_json_directory
from dut.sunspec_pcs import SunSpecPcs, connect_pcs

WRITE_FUNCTION_CODES = {6, 16}
EXPECTED = PcsIdentity("bessbench", "VPCS-250", "VPCS-0001", "1.0")


# ---------------------------------------------------------------------------- register helpers
def u16(value: int) -> list[int]:
    return [value & 0xFFFF]


def s16(value: int) -> list[int]:
    return [value & 0xFFFF]


def u32(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def s32(value: int) -> list[int]:
    return u32(value & 0xFFFF_FFFF)


def text(value: str, registers: int) -> list[int]:
    data = value.encode().ljust(2 * registers, b"\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * registers, 2)]


def top_level_offsets(model_id: int) -> dict[str, int]:
    """Offsets of a model's top-level points: a plain running sum over the JSON sizes."""
    definition = json.loads((model_json_directory() / f"model_{model_id}.json").read_text())
    offsets, offset = {}, 0
    for point in definition["group"]["points"]:
        offsets[point["name"]] = offset
        offset += point["size"]
    return offsets


def flat_model(model_id: int, length: int, values: dict[str, list[int]]) -> list[int]:
    """A model image of ID, L and `length` registers, unset registers 0xFFFF (not implemented)."""
    image = [model_id, length] + [0xFFFF] * length
    offsets = top_level_offsets(model_id)
    for name, registers in values.items():
        start = offsets[name]
        image[start : start + len(registers)] = registers
    return image


def common_model(serial: str = "VPCS-0001") -> list[int]:
    return flat_model(1, 66, {
        "Mn": text("bessbench", 16), "Md": text("VPCS-250", 16), "Opt": text("", 8),
        "Vr": text("1.0", 8), "SN": text(serial, 16), "DA": u16(1), "Pad": u16(0),
    })


def measurement_model() -> list[int]:
    return flat_model(701, 153, {
        "ACType": u16(2), "St": u16(1), "InvSt": u16(3), "ConnSt": u16(1), "Alrm": u32(0),
        "DERMode": u32(1), "W": s16(12500), "VA": s16(12600), "Var": s16(-1500), "PF": s16(-992),
        "A": s16(9021), "LLV": u16(4801), "LNV": u16(2772), "Hz": u32(60001),
        "TmpAmb": s16(250), "TmpCab": s16(-32768), "TmpSnk": s16(415), "TmpSw": s16(-32768),
        "TmpTrns": s16(-32768), "TmpOt": s16(-32768),
        "AL1": s16(3007), "AL2": s16(3008), "AL3": s16(3006),
        "VL1": u16(2771), "VL2": u16(0xFFFF), "VL3": u16(2773),
        "ThrotSrc": u32(0), "MnAlrmInfo": text("", 32),
        "A_SF": s16(-1), "V_SF": s16(-1), "Hz_SF": s16(-3), "W_SF": s16(1), "PF_SF": s16(-3),
        "VA_SF": s16(1), "Var_SF": s16(1), "TotWh_SF": s16(0), "TotVarh_SF": s16(0), "Tmp_SF": s16(-1),
    })


def capacity_model() -> list[int]:
    return flat_model(702, 50, {
        "WMaxRtg": u16(25000), "VAMaxRtg": u16(25000), "VarMaxInjRtg": u16(25000),
        "VarMaxAbsRtg": u16(25000), "WChaRteMaxRtg": u16(25000), "WDisChaRteMaxRtg": u16(25000),
        "VNomRtg": u16(4800), "VMaxRtg": u16(5280), "VMinRtg": u16(4224), "AMaxRtg": u16(3300),
        "AbnOpCatRtg": u16(2), "WMax": u16(25000),
        "W_SF": s16(1), "PF_SF": s16(-3), "VA_SF": s16(1), "Var_SF": s16(1), "V_SF": s16(-1),
        "A_SF": s16(-1), "S_SF": s16(0),
    })


def controls_model() -> list[int]:
    return flat_model(704, 65, {
        "WSetEna": u16(0), "WSetMod": u16(1), "WSet": s32(0), "VarSetEna": u16(0),
        "VarSetMod": u16(4), "VarSetPri": u16(1), "VarSet": s32(0), "WRmp": u16(100),
        "WRmpRef": u16(1), "WSet_SF": s16(0), "VarSet_SF": s16(0), "PF_SF": s16(-3),
        "WMaxLimPct_SF": s16(0), "WSetPct_SF": s16(0), "VarSetPct_SF": s16(0),
    })


def storage_model(soc_raw: int = 655) -> list[int]:
    return flat_model(713, 7, {"SoC": u16(soc_raw), "SoH": u16(1000), "Pct_SF": s16(-1), "WH_SF": s16(0)})


def control_model() -> list[int]:
    return flat_model(715, 7, {
        "LocRemCtl": u16(0), "DERHb": u32(0), "ControllerHb": u32(0), "AlarmReset": u16(0), "OpCtl": u16(0),
    })


# Model 707/708 laid out by hand: 9 header registers, then NCrvSet curves of
# ReadOnly + 3 sub-curves (ActPt + NPt × (V, Tms[2])).
TRIP_POINTS = 4
TRIP_CURVES = 2
SUB_CURVE_REGISTERS = 1 + 3 * TRIP_POINTS
CURVE_REGISTERS = 1 + 3 * SUB_CURVE_REGISTERS
TRIP_LENGTH = 7 + TRIP_CURVES * CURVE_REGISTERS


def trip_curve_offset(curve: int, sub_curve: int) -> int:
    """Offset of ActPt of sub-curve (0 MustTrip, 1 MayTrip, 2 MomCess) of curve (1-based)."""
    return 9 + (curve - 1) * CURVE_REGISTERS + 1 + sub_curve * SUB_CURVE_REGISTERS


def trip_model(model_id: int, curve_counts: int = TRIP_CURVES, length: int = TRIP_LENGTH) -> list[int]:
    image = [model_id, length, 1, 0, 1, TRIP_POINTS, curve_counts, 0xFFFF & -2, 0xFFFF & -2]
    image += [0] * (length + 2 - len(image))
    if curve_counts == TRIP_CURVES:
        image[9] = 1  # curve 1 (the active one) read-only
        image[9 + CURVE_REGISTERS] = 0  # curve 2 writable
        # active LV curve: must trip (50 %, 2 s), (88 %, 21 s); momentary cessation 50 %
        must = trip_curve_offset(1, 0)
        image[must : must + 7] = [2, 5000, *u32(200), 8800, *u32(2100)]
        cess = trip_curve_offset(1, 2)
        image[cess : cess + 4] = [1, 5000, *u32(0)]
    return image


def sunspec_image(*models: list[int]) -> list[int]:
    registers = [0x5375, 0x6E53]
    for model in models:
        registers += model
    return registers + [0xFFFF, 0]


def full_pcs_models(serial: str = "VPCS-0001") -> list[list[int]]:
    return [common_model(serial), measurement_model(), capacity_model(), controls_model(),
            trip_model(707), trip_model(708), storage_model(), control_model()]


# ---------------------------------------------------------------------------- the server
class ModbusTestServer:
    """A pymodbus TCP server on 127.0.0.1 in its own thread and event loop.

    It records every request, can refuse reads over given register ranges with a Modbus
    exception, can stall on a register (timeout), clamps writes when asked, and implements
    the SunSpec adopt-curve request of models 707/708.
    """

    def __init__(self, blocks: dict[int, list[int]], *, device_id: int = 1) -> None:
        self.blocks = blocks
        self.device_id = device_id
        self.requests: list[tuple[int, int, int, list[int] | None]] = []
        self.refuse_reads: list[tuple[int, int]] = []  # [start, end) ranges
        self.stall_reads_at: set[int] = set()
        self.write_filter = None  # callable(address, values) mutating values in place
        self.read_overrides: dict[int, int] = {}  # register -> value served from now on
        self.adopt_models: dict[int, int] = {}  # address of AdptCrvReq -> address of model ID
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: ModbusTcpServer | None = None

    def __enter__(self) -> "ModbusTestServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        simdata = [
            SimData(address, values=registers, datatype=DataType.REGISTERS)
            for address, registers in self.blocks.items()
        ]
        device = SimDevice(self.device_id, simdata=simdata, action=self._action)
        self._server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]

    async def _action(self, function_code, start_address, address, count, registers, set_values):
        if function_code == 6 and set_values is None:
            return None  # pymodbus calls FC6 actions twice; the second call carries no values
        self.requests.append((function_code, address, count, list(set_values) if set_values else None))
        if set_values is None:
            for register, value in self.read_overrides.items():
                if 0 <= register - start_address < len(registers):
                    registers[register - start_address] = value
            if any(address < end and start < address + count for start, end in self.refuse_reads):
                return ExcCodes.ILLEGAL_ADDRESS
            if address in self.stall_reads_at:
                await asyncio.sleep(1.0)
            return None
        if self.write_filter is not None:
            self.write_filter(address, set_values)
        if address in self.adopt_models and count == 1:
            self._adopt(registers, start_address, self.adopt_models[address], set_values[0])
        return None

    @staticmethod
    def _adopt(registers, start_address, model_address, curve) -> None:
        base = model_address - start_address
        source = base + 9 + (curve - 1) * CURVE_REGISTERS + 1
        target = base + 9 + 1
        registers[target : target + CURVE_REGISTERS - 1] = registers[source : source + CURVE_REGISTERS - 1]
        registers[base + 4] = 1  # AdptCrvRslt = COMPLETED

    @property
    def writes(self) -> list[tuple[int, int, int, list[int] | None]]:
        return [request for request in self.requests if request[0] in WRITE_FUNCTION_CODES]


def transport_for(server: ModbusTestServer, **options) -> ModbusTransport:
    options.setdefault("timeout_s", 0.5)
    options.setdefault("retries", 0)
    return ModbusTransport.tcp("127.0.0.1", server.port, **options)


def model_address(base: int, models: list[list[int]], model_id: int) -> int:
    address = base + 2
    for model in models:
        if model[0] == model_id:
            return address
        address += len(model)
    raise KeyError(model_id)


@pytest.fixture
def pcs_server():
    models = full_pcs_models()
    with ModbusTestServer({40000: sunspec_image(*models)}) as server:
        for model_id in (707, 708):
            at = model_address(40000, models, model_id)
            server.adopt_models[at + 3] = at
        server.models = models
        yield server


def make_pcs(server, *, allow_control=True, expected=EXPECTED) -> SunSpecPcs:
    return SunSpecPcs(transport_for(server), expected_identity=expected,
                      allow_control=allow_control, clock_now=lambda: 12.5)


# ---------------------------------------------------------------------------- layout and codecs
def test_layouts_have_the_reference_lengths():
    # instruments.md: lengths including ID and L
    for model_id, total in ((1, 68), (701, 155), (702, 52), (704, 67), (713, 9), (715, 9)):
        layout = build_layout(model_id, model_definition(model_id), total - 2)
        end = max(point.offset + point.size for point in layout.points.values())
        assert layout.complete and end == total, model_id
    assert build_layout(701, model_definition(701), 153).points["W"].offset == 10


@pytest.mark.parametrize("point_type, registers", [
    ("int16", [0x8000]), ("sunssf", [0x8000]), ("uint16", [0xFFFF]), ("enum16", [0xFFFF]),
    ("uint32", [0xFFFF, 0xFFFF]), ("int32", [0x8000, 0x0000]), ("float32", [0x7FC0, 0x0000]),
    ("acc32", [0, 0]), ("bitfield32", [0xFFFF, 0xFFFF]), ("string", [0, 0, 0]),
])
def test_not_implemented_values_decode_to_none(point_type, registers):
    assert decode_raw(point_type, registers) is None


def test_decoding_of_implemented_values():
    assert decode_raw("int16", [0xFFFE]) == -2
    assert decode_raw("int32", s32(-250000)) == -250000
    assert decode_raw("uint32", u32(60001)) == 60001
    assert decode_raw("float32", [0x4048, 0xF5C3]) == pytest.approx(3.14, abs=1e-6)
    assert decode_raw("string", text("VPCS", 4)) == "VPCS"


# ---------------------------------------------------------------------------- discovery
@pytest.mark.parametrize("base", [40000, 0, 50000])
def test_discovery_at_each_base(base):
    models = [common_model(), storage_model()]
    with ModbusTestServer({base: sunspec_image(*models)}) as server:
        device = SunSpecDevice(transport_for(server))
        found = device.discover()
    assert device.base_address == base
    assert [(m.model_id, m.address, m.length) for m in found] == [
        (1, base + 2, 66), (713, base + 70, 7)
    ]


def test_no_sunspec_marker_is_a_clear_error():
    with ModbusTestServer({40000: [0x1234, 0x5678, 0, 0]}) as server:
        with pytest.raises(SunSpecError, match="no SunSpec marker") as caught:
            SunSpecDevice(transport_for(server)).discover()
    message = str(caught.value)
    assert "40000: 0x12345678" in message and "0:" in message and "50000:" in message


def test_model_length_running_past_the_address_space_is_a_clear_error():
    with ModbusTestServer({50000: [0x5375, 0x6E53, 1, 20000, 0, 0]}) as server:
        with pytest.raises(SunSpecError, match="past 65535"):
            SunSpecDevice(transport_for(server)).discover()


def test_chain_without_end_marker_is_a_clear_error():
    image = [0x5375, 0x6E53] + storage_model()  # no 0xFFFF after the last model
    with ModbusTestServer({40000: image}) as server:
        with pytest.raises(SunSpecError, match="broken at register 40011 after model 713"):
            SunSpecDevice(transport_for(server)).discover()


def test_impossible_repeating_group_count_is_a_clear_error():
    bad = trip_model(707)
    bad[6] = 50  # NCrvSet = 50 curves cannot fit in L
    with ModbusTestServer({40000: sunspec_image(common_model(), bad)}) as server:
        device = SunSpecDevice(transport_for(server))
        device.discover()
        with pytest.raises(SunSpecError, match=r"Crv.*NCrvSet=50.*impossible count"):
            device.model(707).read()
        assert device.model(1).read()["SN"] == "VPCS-0001"  # the rest still reads


def test_long_models_are_read_in_chunks_of_at_most_125_registers():
    with ModbusTestServer({40000: sunspec_image(measurement_model())}) as server:
        device = SunSpecDevice(transport_for(server))
        device.discover()
        server.requests.clear()
        device.model(701).read()
        assert [count for _, _, count, _ in server.requests] == [125, 30]


# ---------------------------------------------------------------------------- values
def test_scale_factors_and_not_implemented_values(pcs_server):
    snapshot = make_pcs(pcs_server, allow_control=False).telemetry()
    assert snapshot.timestamp_s == 12.5
    assert snapshot.p_w == pytest.approx(125000.0)
    assert snapshot.q_var == pytest.approx(-15000.0)
    assert snapshot.s_va == pytest.approx(126000.0)
    assert snapshot.pf == pytest.approx(-0.992)
    assert snapshot.freq_hz == pytest.approx(60.001)
    assert snapshot.v_ll_rms_v == pytest.approx(480.1)
    assert snapshot.v_ln_rms_v == (pytest.approx(277.1), None, pytest.approx(277.3))
    assert snapshot.i_rms_a == (pytest.approx(300.7), pytest.approx(300.8), pytest.approx(300.6))
    assert snapshot.temperature_c == pytest.approx(41.5)  # heat sink; cabinet etc. not implemented
    assert snapshot.soc_pct == pytest.approx(65.5)
    assert snapshot.state == "RUNNING" and snapshot.alarms == ()
    assert snapshot.ride_through_active is False
    assert snapshot.vdc_v is None and snapshot.current_limited is None


def test_identity_and_ratings(pcs_server):
    pcs = make_pcs(pcs_server, allow_control=False)
    assert pcs.identity() == PcsIdentity("bessbench", "VPCS-250", "VPCS-0001", "1.0")
    ratings = pcs.ratings()
    assert ratings.s_rated_va == 250000.0 and ratings.p_max_w == 250000.0
    assert ratings.i_max_a == pytest.approx(330.0) and ratings.v_nom_v == pytest.approx(480.0)
    assert ratings.abnormal_operation_category == "CAT_3"
    assert ratings.p_range_w == (-250000.0, 250000.0)


@pytest.mark.parametrize("inv_state, throttle, alarm, state, reason", [
    (4, 1 << 7, 0, "MOMENTARY_CESSATION", None),
    (6, 0, 1 << 11, "TRIPPED", "AC_UNDER_VOLT"),
    (6, 0, 1 << 7, "FAULT", None),
    (7, 0, 0, "STANDBY", None),
    (0, 0, 0, "OFF", None),
])
def test_state_mapping(pcs_server, inv_state, throttle, alarm, state, reason):
    at = model_address(40000, pcs_server.models, 701)
    offsets = top_level_offsets(701)
    for name, words in (("InvSt", [inv_state]), ("ThrotSrc", u32(throttle)), ("Alrm", u32(alarm))):
        for i, word in enumerate(words):
            pcs_server.read_overrides[at + offsets[name] + i] = word
    snapshot = make_pcs(pcs_server, allow_control=False).telemetry()
    assert (snapshot.state, snapshot.trip_reason) == (state, reason)


# ---------------------------------------------------------------------------- Modbus errors
def test_modbus_exception_names_point_register_and_device():
    with ModbusTestServer({40000: sunspec_image(common_model())}) as server:
        transport = transport_for(server)
        with pytest.raises(ModbusPointError) as caught:
            transport.read_holding(45000, 2, point="701.W")
    error = caught.value
    assert error.point == "701.W" and error.register == 45000 and error.exception_code == 2
    assert "701.W" in str(error) and "45000" in str(error) and f":{server.port}" in str(error)
    assert "illegal data address" in str(error)


def test_timeout_names_point_and_register():
    with ModbusTestServer({40000: sunspec_image(common_model())}) as server:
        server.stall_reads_at.add(40004)
        transport = transport_for(server, timeout_s=0.2)
        with pytest.raises(ModbusPointError, match="no response") as caught:
            transport.read_holding(40004, 16, point="1.Mn")
    assert caught.value.point == "1.Mn" and caught.value.register == 40004


def test_model_answering_with_exceptions_leaves_the_device_usable(pcs_server):
    at = model_address(40000, pcs_server.models, 713)
    pcs = make_pcs(pcs_server, allow_control=False)
    pcs_server.refuse_reads.append((at, at + 9))  # after discovery: the body is refused
    with pytest.raises(ModbusPointError) as caught:
        pcs.device.model(713).read()
    assert caught.value.register == at and "713.ID" in str(caught.value)
    assert not pcs.device.model(713).available
    snapshot = pcs.telemetry()  # telemetry goes on without the state of charge
    assert snapshot.soc_pct is None and snapshot.p_w == pytest.approx(125000.0)
    with pytest.raises(DutError, match="unavailable"):
        pcs.device.model(713).read()


def test_wrong_device_id_is_a_clear_error(pcs_server):
    transport = ModbusTransport.tcp("127.0.0.1", pcs_server.port, device_id=7, timeout_s=0.5, retries=0)
    with pytest.raises(SunSpecError, match="device id 7"):
        SunSpecDevice(transport).discover()


def test_rtu_inter_frame_delay_is_three_and_a_half_characters():
    assert rtu_inter_frame_delay_s(19200, 11) == pytest.approx(3.5 * 11 / 19200)
    assert rtu_inter_frame_delay_s(115200, 11) == pytest.approx(1.75e-3)
    transport = ModbusTransport.rtu("/dev/ttyBESSBENCH-NONE", baudrate=9600, parity="N", stopbits=2)
    assert transport.inter_frame_delay_s == pytest.approx(3.5 * 11 / 9600)


def test_serial_port_that_does_not_exist_is_named():
    with pytest.raises(DutError, match=r"serial port '/dev/ttyBESSBENCH-NONE' does not exist"):
        connect_pcs({"transport": "rtu", "port": "/dev/ttyBESSBENCH-NONE", "baudrate": 19200,
                     "parity": "E", "stopbits": 1, "device_id": 3},
                    expected_identity=EXPECTED, allow_control=False, clock_now=lambda: 0.0)


def test_connection_table_with_unknown_keys_is_refused():
    with pytest.raises(DutError, match="unknown keys.*baud"):
        connect_pcs({"transport": "tcp", "host": "127.0.0.1", "baud": 9600},
                    expected_identity=None, allow_control=False, clock_now=lambda: 0.0)


# ---------------------------------------------------------------------------- control safety
def test_identity_mismatch_refuses_control_and_sends_no_write():
    models = full_pcs_models(serial="VPCS-0002")
    with ModbusTestServer({40000: sunspec_image(*models)}) as server:
        pcs = make_pcs(server)
        with pytest.raises(IdentityMismatch, match="serial: expected 'VPCS-0001'.*'VPCS-0002'") as caught:
            pcs.set_active_power_w(10e3)
        assert caught.value.differing_fields == ("serial",)
        with pytest.raises(IdentityMismatch):
            pcs.start()
        with pytest.raises(IdentityMismatch):
            connect_pcs({"transport": "tcp", "host": "127.0.0.1", "port": server.port},
                        expected_identity=EXPECTED, allow_control=True, clock_now=lambda: 0.0)
        assert server.writes == []


def test_read_only_connection_refuses_every_write(pcs_server):
    pcs = make_pcs(pcs_server, allow_control=False)
    for command in (pcs.start, pcs.stop, pcs.standby, lambda: pcs.set_active_power_w(1e3),
                    lambda: pcs.set_reactive_power_var(1e3), pcs.reset_alarms,
                    lambda: pcs.set_ride_through(RideThroughSettings(lv_mom_cess_v_pu=0.5))):
        with pytest.raises(ControlNotAllowed):
            command()
    assert pcs_server.writes == []


def test_control_without_expected_identity_is_refused(pcs_server):
    with pytest.raises(ControlNotAllowed, match="no expected PCS identity"):
        make_pcs(pcs_server, expected=None).start()
    assert pcs_server.writes == []


def test_out_of_range_setpoints_are_refused_before_any_write(pcs_server):
    pcs = make_pcs(pcs_server)
    with pytest.raises(SetpointOutOfRange, match="active power"):
        pcs.set_active_power_w(300e3)
    with pytest.raises(SetpointOutOfRange, match="reactive power"):
        pcs.set_reactive_power_var(-260e3)
    with pytest.raises(SetpointOutOfRange):
        pcs.set_active_power_ramp_w_per_s(100.0)  # below 1 %/s of WMax: not representable
    with pytest.raises(SetpointOutOfRange, match="NPt=4"):
        pcs.set_ride_through(RideThroughSettings(lv_must_trip=tuple((0.1 * k, 1.0) for k in range(1, 6))))
    assert pcs_server.writes == []


# ---------------------------------------------------------------------------- writes
def test_active_power_setpoint_is_one_write_and_read_back(pcs_server):
    pcs = make_pcs(pcs_server)
    pcs.set_active_power_w(-100e3)
    wset_ena = model_address(40000, pcs_server.models, 704) + top_level_offsets(704)["WSetEna"]
    # WSetEna = ENABLED, WSetMod = WATTS, WSet = -100000 W (WSet_SF 0) in one FC16 request
    assert pcs_server.writes == [(16, wset_ena, 4, [1, 1, *s32(-100000)])]
    assert pcs.device.model(704).read()["WSet"] == pytest.approx(-100000.0)
    pcs_server.requests.clear()
    pcs.set_active_power_w(20e3)  # already enabled: only the setpoint is written
    assert pcs_server.writes == [(16, wset_ena + 2, 2, s32(20000))]


def test_start_stop_standby_write_opctl(pcs_server):
    pcs = make_pcs(pcs_server)
    op_ctl = model_address(40000, pcs_server.models, 715) + top_level_offsets(715)["OpCtl"]
    pcs.start()
    pcs.standby()
    pcs.stop()
    assert [(address, values) for _, address, _, values in pcs_server.writes] == [
        (op_ctl, [1]), (op_ctl, [2]), (op_ctl, [0])
    ]


def test_fc6_option_for_single_registers(pcs_server):
    pcs = SunSpecPcs(transport_for(pcs_server, fc6_for_single_register=True), expected_identity=EXPECTED,
                     allow_control=True, clock_now=lambda: 0.0)
    pcs.start()
    assert [request[0] for request in pcs_server.writes] == [6]


def test_read_back_mismatch_names_the_point(pcs_server):
    wset = model_address(40000, pcs_server.models, 704) + top_level_offsets(704)["WSet"]

    def clamp_power(address, values):  # the device silently limits WSet to 50 kW
        offset = wset - address
        if 0 <= offset < len(values) - 1:
            values[offset : offset + 2] = s32(50000)

    pcs_server.write_filter = clamp_power
    with pytest.raises(ModbusPointError, match="read back") as caught:
        make_pcs(pcs_server).set_active_power_w(100e3)
    assert caught.value.point == "704.WSet" and caught.value.register == wset


def test_ramp_and_reactive_power(pcs_server):
    pcs = make_pcs(pcs_server)
    pcs.set_active_power_ramp_w_per_s(50e3)  # 20 %/s of 250 kW
    pcs.set_reactive_power_var(25e3)
    values = pcs.device.model(704).read()
    assert values["WRmp"] == 20 and values["VarSet"] == pytest.approx(25000.0)
    assert pcs.device.model(704).symbol("VarSetEna") == "ENABLED"


def test_ride_through_curves_written_adopted_and_read_back(pcs_server):
    pcs = make_pcs(pcs_server)
    assert pcs.ride_through().lv_must_trip == ((0.5, 2.0), (0.88, 21.0))
    assert pcs.ride_through().lv_mom_cess_v_pu == pytest.approx(0.5)
    wanted = RideThroughSettings(
        lv_must_trip=((0.45, 0.16), (0.70, 10.0), (0.88, 21.0)),
        hv_must_trip=((1.10, 13.0), (1.20, 0.16)),
        lv_mom_cess_v_pu=0.45,
        hv_mom_cess_v_pu=1.15,
    )
    pcs.set_ride_through(wanted)
    assert pcs.ride_through() == wanted
