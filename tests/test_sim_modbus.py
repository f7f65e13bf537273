"""The simulated PCS's Modbus face, checked from the outside with independent clients:
pysunspec2's own scanner (proves a third-party SunSpec tool understands the map) and
pymodbus's client (exact writes and exception codes).

The server runs in a background thread's event loop so the synchronous clients can talk to
it; the plant is only touched from the test thread while no request is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.pdu import ExceptionResponse
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from bench.sim.modbus_pcs import PcsServer, layout_summary, start_pcs_server
from bench.sim.plant import Plant, PlantConfig
from bench.sim.sunspec_models import build_model_layout

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, GATEWAY_NO_RESPONSE = 0x01, 0x02, 0x03, 0x0B


def new_plant() -> Plant:
    """The shipped virtual bench (250 kVA, 480 V) with grid simulator and battery emulator on."""
    plant = Plant(PlantConfig())
    plant.set_source(output_on=True)
    plant.set_dc_source(output_on=True)
    return plant


def commands_received(plant: Plant) -> list[str]:
    return [text for _, code, text in plant.pcs_events if code == "CMD"]


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def serving(plant) -> Iterator[PcsServer]:
    """The PCS server for `plant` on its own event loop thread, stopped on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="pcs-modbus", daemon=True)
    thread.start()
    try:
        server = asyncio.run_coroutine_threadsafe(start_pcs_server(plant), loop).result(10)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def modbus_client(server: PcsServer) -> Iterator[ModbusTcpClient]:
    client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=3, retries=0)
    assert client.connect()
    try:
        yield client
    finally:
        client.close()


def addr(server: PcsServer, model_id: int, path: str) -> int:
    return server.device.by_id[model_id].addr(path)


def int32_regs(client: ModbusTcpClient, value: int) -> list[int]:
    return client.convert_to_registers(value, client.DATATYPE.INT32)


def exception_code(response) -> int | None:
    return response.exception_code if isinstance(response, ExceptionResponse) else None


# ---------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------

def test_layout_comes_from_pysunspec2_definitions():
    lengths = {model_id: length for model_id, _, length in layout_summary()}
    # lengths including ID and L, as pysunspec2 1.3 defines the models
    # (703 = 19 and 802 = 64 as the instrument notes say; curve models with the counts chosen)
    assert lengths == {1: 68, 701: 155, 702: 52, 703: 19, 704: 67, 705: 33, 707: 49, 708: 49,
                       709: 61, 710: 61, 711: 24, 713: 9, 714: 45, 715: 9, 802: 64, 0xFFFF: 2}
    summary = layout_summary()
    # the map documented in bench/sim/modbus_pcs.py
    assert [address for _, address, _ in summary] == [40002, 40070, 40225, 40277, 40296, 40363,
                                                      40396, 40445, 40494, 40555, 40616, 40640,
                                                      40649, 40694, 40703, 40767]
    for (_, address, length), (_, next_address, _) in zip(summary, summary[1:]):
        assert next_address == address + length
    lv = build_model_layout(707, {"NCrvSet": 1, "NPt": 4})
    assert lv.point("Crv[1].MustTrip.Pt[1].V").offset_regs == 11
    assert lv.point("Crv[1].MomCess.Pt[4].Tms").size_regs == 2
    with pytest.raises(ValueError, match="NPt"):
        build_model_layout(707, {"NCrvSet": 1})


# ---------------------------------------------------------------------------------------
# an independent SunSpec tool scans the device
# ---------------------------------------------------------------------------------------

def test_pysunspec2_scan_reads_identity_ratings_curves_and_live_power():
    plant = new_plant()
    plant.advance(0.5)                                  # the PCS's PLL locks onto the grid
    with serving(plant) as server:
        device = SunSpecModbusClientDeviceTCP(ipaddr="127.0.0.1", ipport=server.port)
        try:
            device.scan()
            ids = [m for m in device.models if isinstance(m, int)]
            assert ids == [1, 701, 702, 703, 704, 705, 707, 708, 709, 710, 711, 713, 714, 715, 802]

            common = device.models[1][0]
            assert (common.Mn.value, common.Md.value, common.SN.value) == ("bessbench", "VPCS-250", "VPCS-0001")

            capacity = device.models[702][0]
            assert capacity.WMaxRtg.cvalue == pytest.approx(250e3)
            assert capacity.VAMaxRtg.cvalue == pytest.approx(250e3)
            assert capacity.AMaxRtg.cvalue == pytest.approx(330.0)
            assert capacity.VNomRtg.cvalue == pytest.approx(480.0)

            lv = device.models[707][0]
            must_trip = lv.Crv[0].MustTrip
            assert must_trip.ActPt.value == 2
            assert [(p.V.cvalue, p.Tms.cvalue) for p in must_trip.Pt[:2]] == \
                [pytest.approx((50.0, 2.0)), pytest.approx((88.0, 21.0))]
            assert device.models[708][0].Crv[0].MomCess.Pt[0].V.cvalue == pytest.approx(110.0)

            storage = device.models[713][0]
            assert storage.SoC.cvalue == pytest.approx(50.0, abs=0.1)
            assert storage.WHRtg.cvalue == pytest.approx(500e3)

            # the models added for issue 5, against the plant's settings and ratings
            settings = plant.pcs_settings
            enter = device.models[703][0]
            assert enter.ES.value == int(settings.es_enabled)
            assert enter.ESVLo.cvalue == pytest.approx(100 * settings.es_v_low_pu)
            assert enter.ESHzHi.cvalue == pytest.approx(settings.es_f_high_hz)
            volt_var = device.models[705][0].Crv[0]
            assert volt_var.ActPt.value == len(settings.vv_points)
            assert [(p.V.cvalue / 100, p.Var.cvalue / 100) for p in volt_var.Pt[:volt_var.ActPt.value]] == \
                [pytest.approx(point) for point in settings.vv_points]
            for model_id, curve in ((709, settings.lf_must_trip), (710, settings.hf_must_trip)):
                must_trip = device.models[model_id][0].Crv[0].MustTrip
                assert [(p.Hz.cvalue, p.Tms.cvalue) for p in must_trip.Pt[:must_trip.ActPt.value]] == \
                    [pytest.approx(point) for point in curve]
            droop = device.models[711][0]
            assert droop.Ena.value == int(settings.fw_enabled)
            assert droop.Ctl[0].DbOf.cvalue == pytest.approx(settings.fw_deadband_hz)
            assert droop.Ctl[0].KUf.cvalue == pytest.approx(settings.fw_droop_pct / 100)
            dc = device.models[714][0]
            assert dc.NPrt.value == 1 and dc.Prt[0].IDStr.value == "battery"
            assert dc.Prt[0].DCV.cvalue == pytest.approx(plant.pcs_telemetry()["vdc_v"], abs=0.1)
            battery = device.models[802][0]
            assert battery.WHRtg.cvalue == pytest.approx(500e3)
            assert battery.SoC.cvalue == pytest.approx(50.0, abs=0.1)
            assert (battery.SoCRsvMin.cvalue, battery.SocRsvMax.cvalue) == (20.0, 80.0)
            assert battery.VMin.cvalue == pytest.approx(750.0)

            measure = device.models[701][0]
            assert measure.InvSt.value == 0                 # OFF
            assert measure.W.cvalue == pytest.approx(0.0, abs=100.0)
            assert measure.LLV.cvalue == pytest.approx(480.0, rel=0.03)

            # dispatch through 704 and start through 715, with pysunspec2's own writes
            controls = device.models[704][0]
            controls.WSet.cvalue = 100e3
            controls.write()
            operation = device.models[715][0]
            operation.OpCtl.value = 1                       # START
            operation.write()
            plant.advance(1.5)                              # sync, then ramp at 250 kW/s

            measure.read()
            telemetry = plant.pcs_telemetry()
            assert measure.InvSt.value == 3                 # RUNNING
            assert measure.ConnSt.value == 1                # CONNECTED
            assert measure.W.cvalue == pytest.approx(100e3, rel=0.01)
            assert measure.W.cvalue == pytest.approx(telemetry["p_w"], abs=10.0)    # W_SF = 1
            assert measure.Hz.cvalue == pytest.approx(60.0, abs=0.01)
            assert measure.AL1.cvalue == pytest.approx(telemetry["i_rms_a"][0], abs=0.1)
            assert measure.A.cvalue == pytest.approx(sum(telemetry["i_rms_a"]), abs=0.1)
            assert measure.PF.cvalue == pytest.approx(1.0, abs=0.01)
            operation.read()
            assert operation.DERHb.value == int(plant.t_s)
        finally:
            device.close()
    assert commands_received(plant) == ["start"]
    assert plant.pcs_settings.p_set_w == pytest.approx(100e3)


def test_ride_through_and_trip_show_in_701():
    plant = new_plant()
    plant.advance(0.5)
    plant.pcs_settings.p_set_w = 50e3
    plant.pcs_command("start")
    plant.advance(1.0)
    with serving(plant) as server:
        device = SunSpecModbusClientDeviceTCP(ipaddr="127.0.0.1", ipport=server.port)
        try:
            device.scan()
            measure = device.models[701][0]
            throttle_bits = measure.ThrotSrc.pdef["symbols"]
            lvrt_bit = 1 << next(s["value"] for s in throttle_bits if s["name"] == "LVRT")
            under_volt_bit = 1 << next(s["value"] for s in measure.Alrm.pdef["symbols"]
                                       if s["name"] == "AC_UNDER_VOLT")
            assert measure.InvSt.value == 3

            nominal_ln_v = 480.0 / 3 ** 0.5
            plant.set_source(v_ln_rms_v=[0.3 * nominal_ln_v] * 3)   # below momentary cessation
            plant.advance(0.5)
            measure.read()
            assert plant.pcs_telemetry()["state"] == "MOMENTARY_CESSATION"
            assert measure.InvSt.value == 4                 # THROTTLED
            assert measure.ThrotSrc.value & lvrt_bit
            assert measure.ConnSt.value == 1

            plant.advance(2.0)                              # beyond the 0.50 pu / 2 s must-trip point
            measure.read()
            assert plant.pcs_telemetry()["state"] == "TRIPPED"
            assert measure.InvSt.value == 6                 # FAULT
            assert measure.Alrm.value & under_volt_bit
            assert "LV must-trip" in measure.MnAlrmInfo.value
        finally:
            device.close()


# ---------------------------------------------------------------------------------------
# writes through pymodbus
# ---------------------------------------------------------------------------------------

def test_power_controls_reach_plant_settings():
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        w_set = addr(server, 704, "WSet")
        assert not client.write_registers(w_set, int32_regs(client, -75_000), device_id=1).isError()
        assert plant.pcs_settings.p_set_w == pytest.approx(-75e3)            # charging
        read = client.read_holding_registers(w_set, count=2, device_id=1)
        assert client.convert_from_registers(read.registers, client.DATATYPE.INT32) == -75_000

        # percent mode: WSetMod = W_MAX_PCT, WSetPct in 0.01 % (WSetPct_SF = -2)
        assert not client.write_register(addr(server, 704, "WSetMod"), 0, device_id=1).isError()
        pct_regs = client.convert_to_registers(4000, client.DATATYPE.INT16)
        assert not client.write_registers(addr(server, 704, "WSetPct"), pct_regs, device_id=1).isError()
        assert plant.pcs_settings.p_set_w == pytest.approx(100e3)

        # disabling the setpoint parks it: the battery idles
        assert not client.write_register(addr(server, 704, "WSetEna"), 0, device_id=1).isError()
        assert plant.pcs_settings.p_set_w == 0.0

        assert not client.write_registers(addr(server, 704, "VarSet"), int32_regs(client, 30_000),
                                          device_id=1).isError()
        assert plant.pcs_settings.q_set_var == pytest.approx(30e3)
        assert not client.write_register(addr(server, 704, "VarSetPri"), 0, device_id=1).isError()
        assert plant.pcs_settings.limit_priority == "P"                       # ACTIVE
        assert not client.write_register(addr(server, 704, "WRmp"), 20, device_id=1).isError()
        assert plant.pcs_settings.p_ramp_w_per_s == pytest.approx(0.2 * 250e3)  # 20 %WMax/s

        # FC4 reads the same image as FC3
        fc3 = client.read_holding_registers(addr(server, 704, "ID"), count=67, device_id=1)
        fc4 = client.read_input_registers(addr(server, 704, "ID"), count=67, device_id=1)
        assert fc3.registers == fc4.registers
    plant.advance(0.01)          # the plant accepts the settings the device wrote


def test_illegal_requests_get_modbus_exceptions():
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        before = (plant.pcs_settings.p_set_w, plant.pcs_settings.limit_priority)
        assert before[0] == 0.0
        # read-only points: a measurement, a model ID, a point SunSpec marks RW that this PCS
        # does not implement (702 WMax)
        for model_id, path in ((701, "W"), (704, "ID"), (702, "WMax")):
            response = client.write_register(addr(server, model_id, path), 1, device_id=1)
            assert exception_code(response) == ILLEGAL_ADDRESS, path
        # a write spanning a writable and a read-only point is refused as a whole
        response = client.write_registers(addr(server, 704, "WSetRvrt") - 2, [0, 1, 0, 0], device_id=1)
        assert exception_code(response) == ILLEGAL_ADDRESS
        # half of an int32
        assert exception_code(client.write_register(addr(server, 704, "WSet"), 1, device_id=1)) == ILLEGAL_ADDRESS
        # enumeration value outside the definition
        assert exception_code(client.write_register(addr(server, 704, "VarSetPri"), 7, device_id=1)) == ILLEGAL_VALUE
        # defined but unsupported enumeration value (reactive power as % only)
        assert exception_code(client.write_register(addr(server, 704, "VarSetMod"), 1, device_id=1)) == ILLEGAL_VALUE
        # beyond the rating
        response = client.write_registers(addr(server, 704, "WSet"), int32_regs(client, 400_000), device_id=1)
        assert exception_code(response) == ILLEGAL_VALUE
        # an unknown OpCtl command
        assert exception_code(client.write_register(addr(server, 715, "OpCtl"), 9, device_id=1)) == ILLEGAL_VALUE
        # protection cannot be disabled
        assert exception_code(client.write_register(addr(server, 707, "Ena"), 0, device_id=1)) == ILLEGAL_VALUE
        # a request with one bad value changes nothing: WSetEna=DISABLED is fine, WSetMod=5 is not
        assert not client.write_registers(addr(server, 704, "WSet"), int32_regs(client, 10_000),
                                          device_id=1).isError()
        ena = addr(server, 704, "WSetEna")
        assert addr(server, 704, "WSetMod") == ena + 1
        assert exception_code(client.write_registers(ena, [0, 5], device_id=1)) == ILLEGAL_VALUE
        assert plant.pcs_settings.p_set_w == pytest.approx(10e3)
        assert client.read_holding_registers(ena, count=2, device_id=1).registers == [1, 1]
        assert plant.pcs_settings.limit_priority == before[1]

        # outside the map, other function codes, other unit ids
        assert exception_code(client.read_holding_registers(39990, count=2, device_id=1)) == ILLEGAL_ADDRESS
        end_marker = server.device.end_marker_addr
        assert exception_code(client.read_holding_registers(end_marker, count=4, device_id=1)) == ILLEGAL_ADDRESS
        response = client.mask_write_register(address=addr(server, 704, "WSetEna"), and_mask=0, or_mask=1,
                                              device_id=1)
        assert exception_code(response) == ILLEGAL_FUNCTION
        assert exception_code(client.read_holding_registers(40000, count=2, device_id=2)) == GATEWAY_NO_RESPONSE
        # the end marker is where pysunspec2 expects it
        assert client.read_holding_registers(end_marker, count=2, device_id=1).registers == [0xFFFF, 0]
    assert commands_received(plant) == []


def test_start_stop_standby_and_alarm_reset_through_715():
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        op_ctl = addr(server, 715, "OpCtl")
        for value in (1, 2, 3, 0):                    # START, ENTER_STANDBY, EXIT_STANDBY, STOP
            assert not client.write_register(op_ctl, value, device_id=1).isError()
            assert client.read_holding_registers(op_ctl, count=1, device_id=1).registers == [value]
        assert not client.write_register(addr(server, 715, "AlarmReset"), 1, device_id=1).isError()
        assert client.read_holding_registers(addr(server, 715, "AlarmReset"), count=1, device_id=1).registers == [0]
        heartbeat = client.convert_to_registers(42, client.DATATYPE.UINT32)
        assert not client.write_registers(addr(server, 715, "ControllerHb"), heartbeat, device_id=1).isError()
        assert client.read_holding_registers(addr(server, 715, "ControllerHb"), count=2,
                                             device_id=1).registers == heartbeat
    assert commands_received(plant) == ["start", "standby", "start", "stop", "reset_alarms"]


def test_trip_curves_are_adopted_only_when_consistent():
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        def write_curve(model_id: int, curve: str, points: list[tuple[int, int]]) -> None:
            regs = [len(points)]
            for v_raw, tms_raw in points:
                regs += [v_raw] + client.convert_to_registers(tms_raw, client.DATATYPE.UINT32)
            response = client.write_registers(addr(server, model_id, f"Crv[1].{curve}.ActPt"), regs, device_id=1)
            assert not response.isError()

        def adopt(model_id: int) -> int:
            assert not client.write_register(addr(server, model_id, "AdptCrvReq"), 1, device_id=1).isError()
            return client.read_holding_registers(addr(server, model_id, "AdptCrvRslt"), count=1,
                                                 device_id=1).registers[0]

        # LV must trip: 0.45 pu for 0.16 s, 0.70 pu for 10 s (V_SF -2, Tms_SF -3)
        write_curve(707, "MustTrip", [(4500, 160), (7000, 10_000)])
        assert plant.pcs_settings.lv_must_trip == [(0.50, 2.0), (0.88, 21.0)]   # staged only
        assert adopt(707) == 1                                                   # COMPLETED
        assert plant.pcs_settings.lv_must_trip == [pytest.approx((0.45, 0.16)), pytest.approx((0.70, 10.0))]

        write_curve(707, "MomCess", [(4000, 0)])
        assert adopt(707) == 1
        assert plant.pcs_settings.lv_mom_cess_v_pu == pytest.approx(0.40)

        # an LV curve above nominal voltage is not a low-voltage curve: FAILED, nothing changes
        write_curve(707, "MustTrip", [(12000, 160)])
        assert adopt(707) == 2                                                   # FAILED
        assert plant.pcs_settings.lv_must_trip[0] == pytest.approx((0.45, 0.16))

        # HV must trip
        write_curve(708, "MustTrip", [(11500, 1000)])
        assert adopt(708) == 1
        assert plant.pcs_settings.hv_must_trip == [pytest.approx((1.15, 1.0))]
        read = client.read_holding_registers(addr(server, 708, "Crv[1].MustTrip.ActPt"), count=4, device_id=1)
        assert read.registers[:2] == [1, 11500]
    plant.advance(0.01)          # the plant accepts what the device adopted (it validates settings)


def test_async_start_and_stop_in_one_event_loop():
    """The launcher's way: server and client in the same loop; stop() closes the socket."""
    from pymodbus.client import AsyncModbusTcpClient

    async def scenario() -> None:
        server = await start_pcs_server(new_plant(), device_id=3)
        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
        await client.connect()
        marker = await client.read_holding_registers(40000, count=4, device_id=3)
        assert marker.registers[:3] == [0x5375, 0x6E53, 1]            # "SunS", model 1 follows
        client.close()
        await server.stop()
        with pytest.raises(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.close()

    asyncio.run(scenario())
