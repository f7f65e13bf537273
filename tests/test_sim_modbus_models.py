"""SunSpec models 703, 705, 709, 710, 711, 714 and 802 of the simulated PCS, from the outside
with pymodbus's client (exact registers and exception codes) and pysunspec2 (writes by an
independent SunSpec tool). Registers are scaled by the scale factors the device publishes;
the tests read those rather than assume them where the value is not a fixed choice."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from pymodbus.client import ModbusTcpClient
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from bench.sim.sunspec_extra_models import SettingsBridge
from test_sim_modbus import addr, exception_code, modbus_client, new_plant, serving

ILLEGAL_ADDRESS, ILLEGAL_VALUE = 0x02, 0x03
COMPLETED, FAILED = 1, 2


def read(client: ModbusTcpClient, address: int, count: int = 1) -> list[int]:
    response = client.read_holding_registers(address, count=count, device_id=1)
    assert not response.isError(), response
    return response.registers


def write(client: ModbusTcpClient, address: int, registers: list[int]) -> int | None:
    """Write registers; the exception code, or None when accepted."""
    return exception_code(client.write_registers(address, registers, device_id=1))


def u32(client: ModbusTcpClient, value: int) -> list[int]:
    return client.convert_to_registers(value, client.DATATYPE.UINT32)


def s16(value: int) -> int:
    return value & 0xFFFF


def adopt(client: ModbusTcpClient, server, model_id: int, request: str = "AdptCrvReq") -> int:
    assert write(client, addr(server, model_id, request), [1]) is None
    result = "AdptCtlRslt" if request == "AdptCtlReq" else "AdptCrvRslt"
    return read(client, addr(server, model_id, result))[0]


# ---------------------------------------------------------------------------------------
# 703 enter service
# ---------------------------------------------------------------------------------------

def test_enter_service_settings_are_written_at_once_and_checked(caplog):
    caplog.set_level(logging.INFO, logger="bench.sim.modbus_pcs")
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        assert read(client, addr(server, 703, "V_SF"), 2) == [s16(-2), s16(-3)]   # 0.01 %, 1 mHz
        v_hi = addr(server, 703, "ESVHi")
        # ESVHi, ESVLo (0.01 %), ESHzHi, ESHzLo (mHz), ESDlyTms (s): one request
        registers = [10600, 9000] + u32(client, 60_200) + u32(client, 59_300) + u32(client, 30)
        assert write(client, v_hi, registers) is None
        assert f"modbus write at {v_hi}: {registers}" in caplog.messages
        s = plant.pcs_settings
        assert (s.es_v_high_pu, s.es_v_low_pu) == (pytest.approx(1.06), pytest.approx(0.90))
        assert (s.es_f_high_hz, s.es_f_low_hz, s.es_delay_s) == (pytest.approx(60.2), pytest.approx(59.3), 30)
        assert read(client, v_hi, 8) == registers
        assert write(client, addr(server, 703, "ES"), [0]) is None
        assert s.es_enabled is False

        # a window turned inside out, a threshold on the wrong side of nominal, an unknown
        # enumeration value, a delay beyond an hour: refused, nothing changes
        assert write(client, addr(server, 703, "ESVLo"), [10700]) == ILLEGAL_VALUE
        assert write(client, addr(server, 703, "ESHzHi"), u32(client, 59_900)) == ILLEGAL_VALUE
        assert write(client, addr(server, 703, "ES"), [2]) == ILLEGAL_VALUE
        assert write(client, addr(server, 703, "ESDlyTms"), u32(client, 7200)) == ILLEGAL_VALUE
        assert s.es_v_low_pu == pytest.approx(0.90) and s.es_delay_s == 30
        # points this PCS does not model: not implemented, read-only
        assert read(client, addr(server, 703, "ESRndTms"), 6) == [0xFFFF] * 6
        assert write(client, addr(server, 703, "ESRmpTms"), u32(client, 10)) == ILLEGAL_ADDRESS
    plant.advance(0.01)          # the plant accepts what the device wrote


# ---------------------------------------------------------------------------------------
# 705 volt-var
# ---------------------------------------------------------------------------------------

def test_volt_var_curve_is_staged_then_adopted():
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        assert write(client, addr(server, 705, "Ena"), [1]) is None
        assert plant.pcs_settings.vv_enabled is True
        before = list(plant.pcs_settings.vv_points)
        # Pt[n].V in 0.01 %Vnom, Pt[n].Var in 0.01 % of VarMax (positive = injection)
        curve = [9300, s16(3000), 9900, 0, 10100, 0, 10700, s16(-3000)]
        assert write(client, addr(server, 705, "Crv[1].Pt[1].V"), curve) is None
        assert write(client, addr(server, 705, "Crv[1].RspTms"), u32(client, 1000)) is None   # 10 s
        assert plant.pcs_settings.vv_points == before                          # staged only
        assert read(client, addr(server, 705, "Crv[1].Pt[1].V"), 8) == curve   # reads show the edits
        assert adopt(client, server, 705) == COMPLETED
        assert plant.pcs_settings.vv_points == [pytest.approx(p) for p in
                                                [(0.93, 0.30), (0.99, 0.0), (1.01, 0.0), (1.07, -0.30)]]
        assert plant.pcs_settings.vv_olrt_s == pytest.approx(10.0)

        # voltages must rise and reactive power must not: FAILED, nothing changes
        assert write(client, addr(server, 705, "Crv[1].Pt[2].V"), [9000]) is None
        assert adopt(client, server, 705) == FAILED
        assert plant.pcs_settings.vv_points[1] == pytest.approx((0.99, 0.0))
        assert read(client, addr(server, 705, "Crv[1].Pt[2].V"))[0] == 9900    # the active curve again

        # q only as % of VarMax; at most NPt points; |Var| <= 100 %
        dept_ref = addr(server, 705, "Crv[1].DeptRef")
        assert write(client, dept_ref, [0]) == ILLEGAL_VALUE                    # W_MAX_PCT
        assert write(client, addr(server, 705, "Crv[1].ActPt"), [5]) == ILLEGAL_VALUE
        assert write(client, addr(server, 705, "Crv[1].Pt[1].Var"), [s16(-10100)]) == ILLEGAL_VALUE
        assert write(client, addr(server, 705, "Crv[1].VRef"), [10000]) == ILLEGAL_ADDRESS   # not modelled
    plant.advance(0.01)


# ---------------------------------------------------------------------------------------
# 709 / 710 frequency trips
# ---------------------------------------------------------------------------------------

def test_frequency_trip_curves_are_adopted_only_on_their_side_of_nominal():
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        def write_must_trip(model_id: int, points: list[tuple[int, int]]) -> None:
            registers = [len(points)]
            for hz_raw, tms_raw in points:                  # Hz in mHz, Tms in ms
                registers += u32(client, hz_raw) + u32(client, tms_raw)
            assert write(client, addr(server, model_id, "Crv[1].MustTrip.ActPt"), registers) is None

        write_must_trip(709, [(57_000, 160), (58_800, 299_000)])
        assert adopt(client, server, 709) == COMPLETED
        assert plant.pcs_settings.lf_must_trip == [pytest.approx((57.0, 0.16)), pytest.approx((58.8, 299.0))]
        write_must_trip(710, [(61_500, 10_000)])
        assert adopt(client, server, 710) == COMPLETED
        assert plant.pcs_settings.hf_must_trip == [pytest.approx((61.5, 10.0))]

        # an LF curve above nominal frequency is not an LF curve
        write_must_trip(709, [(60_500, 160)])
        assert adopt(client, server, 709) == FAILED
        assert plant.pcs_settings.lf_must_trip[0] == pytest.approx((57.0, 0.16))
        # protection stays on; may-trip and momentary cessation are not modelled (read-only)
        assert write(client, addr(server, 710, "Ena"), [0]) == ILLEGAL_VALUE
        assert write(client, addr(server, 710, "Crv[1].MayTrip.ActPt"), [1]) == ILLEGAL_ADDRESS
        assert write(client, addr(server, 709, "AdptCrvReq"), [2]) == ILLEGAL_VALUE     # one curve set
    plant.advance(0.01)


# ---------------------------------------------------------------------------------------
# 711 frequency droop
# ---------------------------------------------------------------------------------------

def test_frequency_droop_control_maps_to_one_deadband_and_one_droop():
    plant = new_plant()
    with serving(plant) as server, modbus_client(server) as client:
        assert write(client, addr(server, 711, "Ena"), [1]) is None
        assert plant.pcs_settings.fw_enabled is True
        db_of = addr(server, 711, "Ctl[1].DbOf")
        # DbOf, DbUf (mHz), KOf, KUf (0.001 pu/pu), RspTms (10 ms)
        control = u32(client, 50) + u32(client, 50) + [30, 30] + u32(client, 200)
        assert write(client, db_of, control) is None
        assert plant.pcs_settings.fw_deadband_hz == pytest.approx(0.036)          # staged
        assert adopt(client, server, 711, "AdptCtlReq") == COMPLETED
        s = plant.pcs_settings
        assert (s.fw_deadband_hz, s.fw_droop_pct, s.fw_olrt_s) == \
            (pytest.approx(0.05), pytest.approx(3.0), pytest.approx(2.0))
        assert read(client, db_of, 8) == control

        # the plant has one deadband for both directions: different ones cannot be adopted
        assert write(client, addr(server, 711, "Ctl[1].DbUf"), u32(client, 100)) is None
        assert adopt(client, server, 711, "AdptCtlReq") == FAILED
        assert s.fw_deadband_hz == pytest.approx(0.05)
        # droop beyond 10 %, deadband beyond 1 Hz, PMin (not modelled)
        assert write(client, addr(server, 711, "Ctl[1].KOf"), [150]) == ILLEGAL_VALUE
        assert write(client, db_of, u32(client, 1500)) == ILLEGAL_VALUE
        assert write(client, addr(server, 711, "Ctl[1].PMin"), [0]) == ILLEGAL_ADDRESS
        # the one control is always the active one: AdptCtlReq reads 1, "no active control" is refused
        assert read(client, addr(server, 711, "AdptCtlReq")) == [1]
        assert write(client, addr(server, 711, "AdptCtlReq"), [0]) == ILLEGAL_VALUE
    plant.advance(0.01)


# ---------------------------------------------------------------------------------------
# 714 DC measurement and 802 battery, live
# ---------------------------------------------------------------------------------------

def test_dc_measurement_and_battery_follow_the_plant():
    plant = new_plant()
    plant.advance(0.5)
    plant.pcs_settings.p_set_w = 100e3
    plant.pcs_command("start")
    plant.advance(1.5)
    with serving(plant) as server:
        device = SunSpecModbusClientDeviceTCP(ipaddr="127.0.0.1", ipport=server.port)
        try:
            device.scan()
            telemetry = plant.pcs_telemetry()
            dc = device.models[714][0]
            port = dc.Prt[0]
            assert port.PrtTyp.value == port.PrtTyp.pdef["symbols"][1]["value"]   # ESS
            assert port.DCV.cvalue == pytest.approx(telemetry["vdc_v"], abs=0.1)
            assert port.DCA.cvalue == pytest.approx(telemetry["idc_a"], abs=0.1)
            assert dc.DCA.cvalue == port.DCA.cvalue > 0                          # discharging
            assert dc.DCW.cvalue == pytest.approx(telemetry["vdc_v"] * telemetry["idc_a"], abs=10)
            assert port.DCSta.value == 1 and port.DCAlrm.value == 0              # ON, no alarm
            assert dc.DCWhInj.value is None                                      # not modelled

            battery = device.models[802][0]
            assert battery.V.cvalue == pytest.approx(telemetry["vdc_v"], abs=0.1)
            assert battery.A.cvalue == pytest.approx(telemetry["idc_a"], abs=0.1)
            assert battery.SoC.cvalue == pytest.approx(telemetry["soc_pct"], abs=0.1)
            assert battery.DoD.cvalue == pytest.approx(100 - telemetry["soc_pct"], abs=0.1)
            assert battery.SoH.cvalue == 100
            assert battery.ChaSt.value == 3                                      # DISCHARGING
            assert battery.State.value == 3                                      # CONNECTED
            assert battery.AHRtg.cvalue == pytest.approx(500e3 / 900.0, abs=0.01)
            assert (battery.AChaMax.cvalue, battery.ADisChaMax.cvalue) == (400.0, 400.0)
            assert battery.SetInvState.value == 3                                # INVERTER_STARTED

            # the SOC band through SunSpec's reserve points, with pysunspec2's own write
            battery.SoCRsvMin.cvalue = 15.0
            battery.SocRsvMax.cvalue = 90.0
            battery.write()
            assert (plant.pcs_settings.soc_min_pct, plant.pcs_settings.soc_max_pct) == (15.0, 90.0)
        finally:
            device.close()
        with modbus_client(server) as client:
            assert write(client, addr(server, 802, "SoCRsvMin"), [950]) == ILLEGAL_VALUE   # above max
            assert write(client, addr(server, 802, "SetOp"), [2]) == ILLEGAL_ADDRESS         # read-only here
            assert write(client, addr(server, 714, "Prt[1].DCV"), [1]) == ILLEGAL_ADDRESS
            assert write(client, addr(server, 802, "CtrlHb"), [7]) is None
            assert read(client, addr(server, 802, "CtrlHb")) == [7]
            assert write(client, addr(server, 802, "AlmRst"), [1]) is None
            assert read(client, addr(server, 802, "AlmRst")) == [0]
    assert [text for _, code, text in plant.pcs_events if code == "CMD"][-1] == "reset_alarms"


def test_pysunspec2_writes_a_volt_var_curve_and_adopts_it():
    plant = new_plant()
    with serving(plant) as server:
        device = SunSpecModbusClientDeviceTCP(ipaddr="127.0.0.1", ipport=server.port)
        try:
            device.scan()
            model = device.models[705][0]
            for point, (v_pct, q_pct) in zip(model.Crv[0].Pt, [(90, 40), (97, 0), (103, 0), (110, -40)]):
                point.V.cvalue = v_pct
                point.Var.cvalue = q_pct
            model.write()
            model.AdptCrvReq.value = 1
            model.write()
            model.read()
            assert model.AdptCrvRslt.value == COMPLETED
        finally:
            device.close()
    assert plant.pcs_settings.vv_points == [pytest.approx(p) for p in
                                            [(0.90, 0.40), (0.97, 0.0), (1.03, 0.0), (1.10, -0.40)]]


# ---------------------------------------------------------------------------------------
# a plant without the new settings still serves the models
# ---------------------------------------------------------------------------------------

def test_settings_bridge_keeps_values_the_plant_has_no_field_for():
    plant = SimpleNamespace(pcs_settings=SimpleNamespace(es_enabled=True))
    bridge = SettingsBridge(plant, {"es_enabled": False, "es_delay_s": 300.0})
    assert bridge.get("es_enabled") is True                  # the plant's field wins
    assert bridge.get("es_delay_s") == 300.0                  # kept in the server
    bridge.set("es_delay_s", 5.0)
    bridge.set("es_enabled", False)
    assert not hasattr(plant.pcs_settings, "es_delay_s")      # never added to the plant
    assert plant.pcs_settings.es_enabled is False and bridge.get("es_delay_s") == 5.0
