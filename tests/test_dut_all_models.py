"""Every SunSpec model of the simulated PCS through the project's own client (dut/sunspec.py):
discovery, a read of each model decoded against the plant, and writes with read-back in 703,
705 and 711 that reach the plant's settings. The client and the server were written apart;
this is where their readings of the JSON definitions meet.

The plant lives in the server's event loop thread and is only touched there (bench.call), as
in test_dut_on_virtual_pcs.py. Between a model read and the plant look-up nothing advances
the plant, so live values agree to the register resolution.
"""

from __future__ import annotations

import pytest

from dut.modbus_transport import ModbusTransport
from dut.pcs import PcsIdentity
from dut.sunspec import SunSpecDevice
from dut.sunspec_pcs import connect_pcs

pytest.importorskip("bench.sim.modbus_pcs")
from test_dut_on_virtual_pcs import VirtualPcsBench  # noqa: E402 - needs the simulator

ALL_MODELS = [1, 701, 702, 703, 704, 705, 707, 708, 709, 710, 711, 713, 714, 715, 802]
P_SET_W = 60e3


@pytest.fixture(scope="module")
def bench():
    bench = VirtualPcsBench()
    bench.call(lambda: (bench.plant.set_source(output_on=True), bench.plant.set_dc_source(output_on=True)))
    bench.advance(0.3)
    bench.call(lambda: setattr(bench.plant.pcs_settings, "p_set_w", P_SET_W))
    bench.call(lambda: bench.plant.pcs_command("start"))
    bench.advance(1.5)                          # synchronise, enter service, ramp to P_SET_W
    yield bench
    bench.close()


@pytest.fixture(scope="module")
def device(bench):
    transport = ModbusTransport.tcp("127.0.0.1", bench.server.port, timeout_s=2.0, retries=1)
    transport.connect()
    device = SunSpecDevice(transport)
    device.discover()
    yield device
    transport.close()


def plant_state(bench) -> tuple[dict, object]:
    """(telemetry, settings) of the plant, read in its own thread."""
    return bench.call(lambda: (bench.plant.pcs_telemetry(), bench.plant.pcs_settings))


def curve(model, prefix: str, x_name: str, x_per_unit: float = 1.0) -> list[tuple[float, float]]:
    """The active points of a curve as (x, y) pairs, x divided by `x_per_unit`."""
    y_name = "Var" if x_name == "V" and "MustTrip" not in prefix else "Tms"
    count = int(model.value(f"{prefix}.ActPt"))
    return [(model.value(f"{prefix}.Pt[{i}].{x_name}") / x_per_unit, model.value(f"{prefix}.Pt[{i}].{y_name}"))
            for i in range(1, count + 1)]


def test_discovers_every_model_and_reads_each_whole(device):
    assert device.base_address == 40000
    assert [model.model_id for model in device.models] == ALL_MODELS
    for model in device.models:
        values = model.read()
        assert model.layout is not None and model.layout.complete, model
        assert values["ID"] == model.model_id


def test_identity_ratings_and_measurements(bench, device):
    common, measure, capacity, storage, dc, operation, battery = (
        device.model(n) for n in (1, 701, 702, 713, 714, 715, 802))
    for model in (common, measure, capacity, storage, dc, operation, battery):
        model.read()
    telemetry, settings = plant_state(bench)
    plant_time_s = bench.plant_time_s()

    assert (common.value("Mn"), common.value("Md"), common.value("SN")) == ("bessbench", "VPCS-250", "VPCS-0001")
    assert capacity.value("WMaxRtg") == pytest.approx(250e3)
    assert capacity.value("VNomRtg") == pytest.approx(480.0)

    assert measure.symbol("InvSt") == "RUNNING"
    assert measure.value("W") == pytest.approx(telemetry["p_w"], abs=10.0)
    assert measure.value("W") == pytest.approx(P_SET_W, rel=0.02)
    assert measure.value("Hz") == pytest.approx(telemetry["freq_hz"], abs=0.001)
    assert measure.value("LLV") == pytest.approx(telemetry["v_ll_rms_v"], abs=0.1)

    assert storage.value("SoC") == pytest.approx(telemetry["soc_pct"], abs=0.1)
    assert storage.value("WHRtg") == pytest.approx(500e3)

    # DC side: one battery port; positive current = discharging (the PCS exports)
    assert dc.value("NPrt") == 1 and dc.symbol("Prt[1].PrtTyp") == "ESS"
    assert dc.value("Prt[1].DCV") == pytest.approx(telemetry["vdc_v"], abs=0.1)
    assert dc.value("DCA") == pytest.approx(telemetry["idc_a"], abs=0.1)
    assert dc.value("DCA") > 0
    assert dc.value("Prt[1].DCW") == pytest.approx(telemetry["vdc_v"] * telemetry["idc_a"], abs=10.0)
    assert dc.symbol("Prt[1].DCSta") == "ON"

    assert operation.symbol("LocRemCtl") == "REMOTE"     # OpCtl: the last Modbus command, none yet
    assert operation.value("DERHb") == int(plant_time_s)

    assert battery.value("SoC") == pytest.approx(telemetry["soc_pct"], abs=0.1)
    assert battery.value("SoH") == 100
    assert battery.value("V") == pytest.approx(telemetry["vdc_v"], abs=0.1)
    assert battery.value("A") == pytest.approx(telemetry["idc_a"], abs=0.1)
    assert battery.value("W") == pytest.approx(telemetry["vdc_v"] * telemetry["idc_a"], abs=10.0)
    assert battery.symbol("ChaSt") == "DISCHARGING"
    assert battery.symbol("State") == "CONNECTED"
    assert battery.value("WHRtg") == pytest.approx(500e3)
    assert (battery.value("SoCRsvMin"), battery.value("SocRsvMax")) == (settings.soc_min_pct, settings.soc_max_pct)
    assert (battery.value("VMin"), battery.value("VMax")) == (750.0, 1000.0)
    assert battery.value("CellVMax") is None                      # not modelled


def test_settings_models_show_the_plant_settings(bench, device):
    models = {n: device.model(n) for n in (703, 704, 705, 707, 708, 709, 710, 711)}
    for model in models.values():
        model.read()
    _, s = plant_state(bench)

    enter = models[703]
    assert enter.symbol("ES") == ("ENABLED" if s.es_enabled else "DISABLED")
    assert (enter.value("ESVLo"), enter.value("ESVHi")) == \
        (pytest.approx(100 * s.es_v_low_pu), pytest.approx(100 * s.es_v_high_pu))
    assert (enter.value("ESHzLo"), enter.value("ESHzHi")) == \
        (pytest.approx(s.es_f_low_hz), pytest.approx(s.es_f_high_hz))
    assert enter.value("ESRndTms") is None                        # not modelled

    controls = models[704]
    assert controls.value("WSet") == pytest.approx(P_SET_W)
    assert controls.symbol("VarSetPri") == {"P": "ACTIVE", "Q": "REACTIVE", "mixed": "VENDOR"}[s.limit_priority]

    volt_var = models[705]
    assert volt_var.symbol("Crv[1].DeptRef") == "VAR_MAX_PCT"
    assert curve(volt_var, "Crv[1]", "V", 100.0) == [pytest.approx((v, 100 * q)) for v, q in s.vv_points]
    assert volt_var.value("Crv[1].RspTms") == pytest.approx(s.vv_olrt_s)

    for model_id, points in ((707, s.lv_must_trip), (708, s.hv_must_trip)):
        assert curve(models[model_id], "Crv[1].MustTrip", "V", 100.0) == [pytest.approx(p) for p in points]
    for model_id, points in ((709, s.lf_must_trip), (710, s.hf_must_trip)):
        assert curve(models[model_id], "Crv[1].MustTrip", "Hz") == [pytest.approx(p) for p in points]
        assert models[model_id].value("Crv[1].MayTrip.ActPt") == 0

    droop = models[711]
    assert droop.symbol("Ena") == ("ENABLED" if s.fw_enabled else "DISABLED")
    assert droop.value("Ctl[1].DbOf") == droop.value("Ctl[1].DbUf") == pytest.approx(s.fw_deadband_hz)
    assert droop.value("Ctl[1].KOf") == droop.value("Ctl[1].KUf") == pytest.approx(s.fw_droop_pct / 100)
    assert droop.value("Ctl[1].RspTms") == pytest.approx(s.fw_olrt_s)


def adopt(model, request: str, result: str) -> str | None:
    # as dut.sunspec_pcs does: the request reads back 0 once handled, so no verify
    model.write({request: 1}, verify=False)
    model.read()
    return model.symbol(result)


def test_writes_in_703_705_711_reach_the_plant(bench, device):
    enter = device.model(703)
    enter.write({"ESVHi": 105.5, "ESHzLo": 59.3, "ESDlyTms": 2})     # verified by read-back
    _, s = plant_state(bench)
    assert (s.es_v_high_pu, s.es_f_low_hz, s.es_delay_s) == (pytest.approx(1.055), pytest.approx(59.3), 2)

    volt_var = device.model(705)
    wanted = [(93.0, 40.0), (99.0, 0.0), (101.0, 0.0), (107.0, -40.0)]     # %Vnom, %VarMax
    values: dict[str, object] = {"Crv[1].ActPt": len(wanted)}
    for i, (v_pct, q_pct) in enumerate(wanted, start=1):
        values[f"Crv[1].Pt[{i}].V"] = v_pct
        values[f"Crv[1].Pt[{i}].Var"] = q_pct
    volt_var.write(values)
    assert adopt(volt_var, "AdptCrvReq", "AdptCrvRslt") == "COMPLETED"
    volt_var.write({"Ena": "ENABLED"})
    _, s = plant_state(bench)
    assert s.vv_points == [pytest.approx((v / 100, q / 100)) for v, q in wanted]
    assert s.vv_enabled is True

    droop = device.model(711)
    droop.write({"Ctl[1].KOf": 0.04, "Ctl[1].KUf": 0.04, "Ctl[1].RspTms": 3.0})
    assert adopt(droop, "AdptCtlReq", "AdptCtlRslt") == "COMPLETED"
    droop.write({"Ena": "ENABLED"})
    _, s = plant_state(bench)
    assert (s.fw_droop_pct, s.fw_olrt_s, s.fw_enabled) == (pytest.approx(4.0), pytest.approx(3.0), True)

    bench.advance(0.05)                      # the plant takes the new settings and runs on
    assert bench.call(lambda: bench.plant.pcs_telemetry()["state"]) == "RUNNING"


def test_pcs_interface_takes_dc_telemetry_from_714(bench):
    pcs = connect_pcs({"transport": "tcp", "host": "127.0.0.1", "port": bench.server.port},
                      expected_identity=PcsIdentity("bessbench", "VPCS-250", "VPCS-0001"),
                      allow_control=False, clock_now=bench.plant_time_s)
    try:
        snapshot = pcs.telemetry()
        telemetry, _ = plant_state(bench)
        assert snapshot.vdc_v == pytest.approx(telemetry["vdc_v"], abs=0.1)
        assert snapshot.idc_a == pytest.approx(telemetry["idc_a"], abs=0.1)
    finally:
        pcs.close()
