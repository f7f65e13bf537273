"""Volt-var (SunSpec 705) and frequency droop (711) through the PCS interface, against the
simulated PCS: written, adopted, read back, and seen in the plant's settings.

The plant lives in the server's event loop thread and is only touched there (bench.call), as
in test_dut_all_models.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from dut.errors import ControlNotAllowed, SetpointOutOfRange
from dut.pcs import FrequencyDroopSettings, VoltVarSettings
from dut.sunspec_pcs import connect_pcs

pytest.importorskip("bench.sim.modbus_pcs")
from test_dut_on_virtual_pcs import VIRTUAL_PCS, VirtualPcsBench  # noqa: E402 - needs the simulator

P_SET_W = 60e3
CURVE = ((0.93, 0.40), (0.99, 0.0), (1.01, 0.0), (1.07, -0.40))


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


def open_pcs(bench, allow_control: bool):
    return connect_pcs({"transport": "tcp", "host": "127.0.0.1", "port": bench.server.port,
                        "timeout_s": 2.0, "retries": 1},
                       expected_identity=VIRTUAL_PCS, allow_control=allow_control,
                       clock_now=bench.plant_time_s)


@pytest.fixture(scope="module")
def pcs(bench):
    pcs = open_pcs(bench, allow_control=True)
    yield pcs
    pcs.close()


def plant_settings(bench) -> dict:
    """The plant's volt-var and frequency-droop settings, copied in its own thread."""
    names = ("vv_points", "vv_enabled", "vv_olrt_s", "fw_deadband_hz", "fw_droop_pct", "fw_enabled", "fw_olrt_s")
    return bench.call(lambda: {name: getattr(bench.plant.pcs_settings, name) for name in names})


@pytest.fixture
def writes(pcs, monkeypatch):
    """Every register write the PCS interface sends, recorded on its way out."""
    sent: list[tuple[int, list[int], str]] = []
    transport = pcs.device.transport
    original = transport.write_registers

    def record(address, values, *, point="?"):
        sent.append((address, list(values), point))
        return original(address, values, point=point)

    monkeypatch.setattr(transport, "write_registers", record)
    return sent


def test_volt_var_written_adopted_and_read_back(bench, pcs, writes):
    pcs.set_volt_var(VoltVarSettings(enabled=True, points=CURVE))
    assert writes                                   # it did go through the wire

    read = pcs.volt_var()
    assert read.enabled is True
    assert read.points == tuple(pytest.approx(p) for p in CURVE)
    s = plant_settings(bench)
    assert s["vv_enabled"] is True
    assert s["vv_points"] == [pytest.approx(p) for p in CURVE]

    # a different curve, disabled: the points change and the function switches off
    flatter = ((0.90, 0.25), (0.98, 0.0), (1.02, 0.0), (1.10, -0.25))
    pcs.set_volt_var(VoltVarSettings(enabled=False, points=flatter))
    assert pcs.volt_var() == VoltVarSettings(False, tuple(pytest.approx(p) for p in flatter))
    s = plant_settings(bench)
    assert (s["vv_enabled"], s["vv_points"]) == (False, [pytest.approx(p) for p in flatter])

    bench.advance(0.05)                             # the plant runs on with the new settings
    assert bench.call(lambda: bench.plant.pcs_telemetry()["state"]) == "RUNNING"


def test_frequency_droop_written_adopted_and_read_back(bench, pcs, writes):
    wanted = FrequencyDroopSettings(enabled=True, deadband_hz=0.05, droop_pct=4.0, response_time_s=3.0)
    pcs.set_frequency_droop(wanted)
    assert writes

    read = pcs.frequency_droop()
    assert read.enabled is True
    assert (read.deadband_hz, read.droop_pct, read.response_time_s) == \
        (pytest.approx(0.05), pytest.approx(4.0), pytest.approx(3.0))
    s = plant_settings(bench)
    assert (s["fw_enabled"], s["fw_deadband_hz"], s["fw_droop_pct"], s["fw_olrt_s"]) == \
        (True, pytest.approx(0.05), pytest.approx(4.0), pytest.approx(3.0))

    # without a response time the PCS keeps its own; disabled switches the droop off
    pcs.set_frequency_droop(FrequencyDroopSettings(enabled=False, deadband_hz=0.036, droop_pct=5.0))
    read = pcs.frequency_droop()
    assert (read.enabled, read.deadband_hz, read.droop_pct, read.response_time_s) == \
        (False, pytest.approx(0.036), pytest.approx(5.0), pytest.approx(3.0))
    s = plant_settings(bench)
    assert (s["fw_enabled"], s["fw_deadband_hz"], s["fw_droop_pct"]) == \
        (False, pytest.approx(0.036), pytest.approx(5.0))

    pcs.set_frequency_droop(FrequencyDroopSettings(enabled=True, deadband_hz=0.036, droop_pct=5.0))
    assert plant_settings(bench)["fw_enabled"] is True


@pytest.mark.parametrize("settings", [
    VoltVarSettings(True, ((0.93, 1.5), (0.99, 0.0), (1.01, 0.0), (1.07, -0.4))),   # beyond the rating
    VoltVarSettings(True, ((0.93, -0.4), (0.99, 0.0), (1.01, 0.0), (1.07, 0.4))),   # Q rising with V
    VoltVarSettings(True, ((0.93, 0.4), (0.99, 0.0), (1.01, 0.0), (1.70, -0.4))),   # voltage off scale
    VoltVarSettings(True, ((0.9, 0.4), (0.95, 0.2), (0.99, 0.0), (1.01, 0.0), (1.1, -0.4))),  # > NPt
    VoltVarSettings(False, ((1.0, 0.0),)),                                           # one point
], ids=["q-beyond-rating", "q-rising", "v-off-scale", "too-many-points", "one-point"])
def test_out_of_range_volt_var_is_refused_with_nothing_written(bench, pcs, writes, settings):
    before_plant, before_pcs = plant_settings(bench), pcs.volt_var()
    with pytest.raises(SetpointOutOfRange):
        pcs.set_volt_var(settings)
    assert writes == []
    assert plant_settings(bench) == before_plant
    assert pcs.volt_var() == before_pcs


@pytest.mark.parametrize("change", [
    {"droop_pct": 0.0}, {"droop_pct": 150.0}, {"deadband_hz": -0.01}, {"deadband_hz": 2.0},
    {"response_time_s": 0.0},
], ids=["droop-zero", "droop-huge", "deadband-negative", "deadband-huge", "instant-response"])
def test_out_of_range_frequency_droop_is_refused_with_nothing_written(bench, pcs, writes, change):
    before_plant, before_pcs = plant_settings(bench), pcs.frequency_droop()
    settings = dataclasses.replace(FrequencyDroopSettings(True, 0.036, 5.0, 2.0), **change)
    with pytest.raises(SetpointOutOfRange):
        pcs.set_frequency_droop(settings)
    assert writes == []
    assert plant_settings(bench) == before_plant
    assert pcs.frequency_droop() == before_pcs


def test_read_only_connection_reads_but_refuses_writes(bench, pcs):
    before = plant_settings(bench)
    read_only = open_pcs(bench, allow_control=False)
    try:
        assert read_only.volt_var() == pcs.volt_var()
        assert read_only.frequency_droop() == pcs.frequency_droop()
        with pytest.raises(ControlNotAllowed):
            read_only.set_volt_var(VoltVarSettings(True, CURVE))
        with pytest.raises(ControlNotAllowed):
            read_only.set_frequency_droop(FrequencyDroopSettings(True, 0.05, 4.0))
    finally:
        read_only.close()
    assert plant_settings(bench) == before
