"""dut's vendor points, event log, records and poller against the simulated PCS.

The simulated vendor block (bench/sim) and dut/pointmaps/vpcs250.toml were written from the
same manual page by different hands; these tests are where the two meet.
"""

from __future__ import annotations

import comtrade
import pytest

from bench.clock import BenchClock
from dut.errors import ModbusPointError
from dut.modbus_transport import ModbusTransport
from dut.scan import scan_device
from dut.sunspec_pcs import connect_pcs
from dut.telemetry import TelemetryPoller
from test_dut_on_virtual_pcs import VIRTUAL_PCS, VirtualPcsBench

NOMINAL_V_LN_V = 480.0 / 3**0.5
MISSING_BLOCK = ("the simulated PCS (bench/sim/modbus_pcs.py) does not serve the VPCS-250 vendor "
                 "block at 41000-41049 of docs/vendor_points_vpcs.md")


def vendor_block_answers(port: int) -> bool:
    transport = ModbusTransport.tcp("127.0.0.1", port, timeout_s=2.0, retries=0)
    transport.connect()
    try:
        transport.read_holding(41000, 1, point="vpcs250.map_version")
        return True
    except ModbusPointError:
        return False
    finally:
        transport.close()


@pytest.fixture(scope="module")
def bench():
    bench = VirtualPcsBench()
    if not vendor_block_answers(bench.server.port):
        bench.close()
        pytest.skip(MISSING_BLOCK)
    bench.call(lambda: (bench.plant.set_source(output_on=True), bench.plant.set_dc_source(output_on=True)))
    bench.advance(0.2)
    yield bench
    bench.close()


def connection(bench, **extra):
    return {"transport": "tcp", "host": "127.0.0.1", "port": bench.server.port, "device_id": 1,
            "timeout_s": 2.0, "retries": 1, "point_map": "vpcs250", **extra}


@pytest.fixture(scope="module")
def pcs(bench):
    pcs = connect_pcs(connection(bench), expected_identity=VIRTUAL_PCS, allow_control=True,
                      clock_now=bench.plant_time_s)
    yield pcs
    pcs.close()


def test_scan_finds_every_vendor_point(bench):
    report = scan_device(connection(bench))
    assert [point.name for point in report.vendor_points if point.error is not None] == []
    assert {model.model_id for model in report.models if model.available} >= {1, 701, 702, 704, 713, 715}


def test_vendor_telemetry_agrees_with_the_plant(bench, pcs):
    pcs.start()
    bench.advance(0.5)
    pcs.set_active_power_w(50e3)
    bench.advance(1.0)
    snapshot = pcs.telemetry()
    plant = bench.call(bench.plant.pcs_telemetry_image)       # what the registers serve
    assert snapshot.state == plant["state"] == "RUNNING"
    assert snapshot.current_limited is plant["current_limited"]
    assert snapshot.ride_through_active is plant["ride_through_active"]
    assert snapshot.trip_reason is None
    assert snapshot.vdc_v == pytest.approx(plant["vdc_v"], abs=0.2)
    assert snapshot.idc_a == pytest.approx(plant["idc_a"], abs=max(0.2, 0.02 * abs(plant["idc_a"])))
    assert snapshot.idc_a > 0  # exporting 50 kW discharges the battery
    assert snapshot.temperature_c == pytest.approx(plant["temperature_c"], abs=0.2)
    # the PCS's own clock is plant time on the virtual bench (ms resolution)
    assert snapshot.device_time_s == pytest.approx(plant["t_s"], abs=0.0011)


def test_vendor_settings_reach_the_plant(bench, pcs):
    pcs.set_k_factor(3.5)
    pcs.set_limit_priority("mixed")
    settings = bench.call(lambda: bench.plant.pcs_settings)
    assert settings.k_factor == pytest.approx(3.5)
    assert settings.limit_priority == "mixed"
    pcs.set_limit_priority("Q")
    pcs.set_k_factor(2.0)
    # the rest is verified by the read-back of every write
    pcs.set_droop(4.0, 3.0)
    pcs.set_smoothing(True, 0.1)
    pcs.set_smoothing(False)
    pcs.set_soc_band(15.0, 85.0)
    pcs.set_mission_priority("DEMAND_RESPONSE")
    pcs.set_mission_priority("RIDE_THROUGH_RESERVE")
    assert pcs.vendor.read(["droop_f", "droop_v", "soc_min", "soc_max"]) == {
        "droop_f": 4.0, "droop_v": 3.0, "soc_min": 15.0, "soc_max": 85.0}


def test_the_device_refuses_what_the_manual_forbids(pcs):
    # around the client's own checks, straight to the registers
    with pytest.raises(ModbusPointError) as caught:
        pcs.device.transport.write_registers(41003, [2000], point="vpcs250.k_factor")  # 20.00 > 10.00
    assert caught.value.exception_code == 3
    with pytest.raises(ModbusPointError) as caught:
        pcs.device.transport.write_registers(41038, [1], point="unlisted")
    assert caught.value.exception_code == 2


def test_dispatch_moves_the_power(bench, pcs):
    pcs.dispatch(80e3, 0.5)
    bench.advance(1.5)
    assert pcs.telemetry().p_w == pytest.approx(80e3, abs=5e3)


def test_event_log_and_disturbance_record_of_a_sag(bench, pcs):
    t0_s = bench.plant_time_s()
    sagged = [0.6 * NOMINAL_V_LN_V] * 3
    bench.call(lambda: bench.plant.set_source(v_ln_rms_v=sagged))
    bench.advance(0.3)
    bench.call(lambda: bench.plant.set_source(v_ln_rms_v=[NOMINAL_V_LN_V] * 3))
    bench.advance(1.0)
    events = pcs.events_since(t0_s)
    assert events and all(event.time_s >= t0_s for event in events)
    assert [event.time_s for event in events] == sorted(event.time_s for event in events)
    assert {"RT_ENTER", "RT_EXIT"} <= {event.code for event in events}

    records = [record for record in pcs.disturbance_records() if record.trigger_time_s >= t0_s]
    assert records, "the sag did not leave a disturbance record"
    assert records[0].trigger_time_s == pytest.approx(t0_s, abs=0.1)
    cfg_text, dat_bytes = pcs.fetch_record(records[0])
    record = comtrade.Comtrade()
    record.read(cfg_text, dat_bytes)
    assert record.total_samples > 0 and record.analog_count > 0


def test_poller_samples_at_plant_time(bench, pcs):
    class PlantClock(BenchClock):
        """The bench clock in lockstep with this plant."""

        def now_s(self) -> float:
            return bench.plant_time_s()

        def _pass_time(self, until_s: float) -> None:
            dt_s = until_s - self.now_s()
            if dt_s > 0:
                bench.advance(dt_s)

    clock = PlantClock()
    start_s = clock.now_s()
    with TelemetryPoller(pcs, clock, 0.1) as poller:
        clock.wait(1.0)
    frame = poller.frame()
    assert len(frame) == 10 and frame.attrs["missed_polls"] == 0
    assert list(frame.index - start_s) == pytest.approx([0.1 * k for k in range(1, 11)], abs=1e-6)
    # the PCS time stamps move with the plant, 100 ms per poll
    assert frame["device_time_s"].diff().dropna().tolist() == pytest.approx([0.1] * 9, abs=0.0011)
    assert (frame["state"] == "RUNNING").all()


def test_vendor_point_writes_pass_the_control_gate():
    """A plan writing a vendor point directly (C1) meets the same gate as the PCS's setters."""
    from dut.errors import ControlNotAllowed
    from dut.sunspec_pcs import _GatedVendorPoints

    calls = []

    class Points:
        def write(self, values, verify=True):
            calls.append(values)

        def read_one(self, name):
            return 1

    def refuse():
        raise ControlNotAllowed("read-only")

    gated = _GatedVendorPoints(Points(), refuse)
    assert gated.read_one("map_version") == 1
    with pytest.raises(ControlNotAllowed):
        gated.write({"k_factor": 3.0})
    assert calls == []
