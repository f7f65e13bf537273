"""dut/ against the simulated PCS Modbus server: the two sides were written independently.

The plant and its Modbus server live in one background event loop; the plant is only touched
from that loop's thread (run_coroutine_threadsafe), as the server's request hooks are.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from dut.errors import IdentityMismatch
from dut.pcs import PcsIdentity, RideThroughSettings
from dut.sunspec_pcs import connect_pcs

plant_module = pytest.importorskip("bench.sim.plant")
modbus_pcs_module = pytest.importorskip("bench.sim.modbus_pcs")

VIRTUAL_PCS = PcsIdentity("bessbench", "VPCS-250", "VPCS-0001")


class VirtualPcsBench:
    """A Plant and its Modbus PCS server running in a background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.plant = self.call(lambda: plant_module.Plant(plant_module.PlantConfig()))
        self.server = asyncio.run_coroutine_threadsafe(
            modbus_pcs_module.start_pcs_server(self.plant), self.loop
        ).result(timeout=30)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` in the loop thread (the plant's only thread) and return its result."""

        async def run() -> Any:
            return function()

        # generous: the first advance compiles the numba kernel
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=120)

    def advance(self, duration_s: float) -> None:
        self.call(lambda: self.plant.advance(duration_s))

    def plant_time_s(self) -> float:
        return self.call(lambda: self.plant.t_s)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def bench():
    bench = VirtualPcsBench()
    bench.call(lambda: (bench.plant.set_source(output_on=True), bench.plant.set_dc_source(output_on=True)))
    bench.advance(0.2)
    yield bench
    bench.close()


@pytest.fixture(scope="module")
def pcs(bench):
    pcs = connect_pcs(
        {"transport": "tcp", "host": "127.0.0.1", "port": bench.server.port, "device_id": 1,
         "timeout_s": 2.0, "retries": 1},
        expected_identity=VIRTUAL_PCS,
        allow_control=True,
        clock_now=bench.plant_time_s,
    )
    yield pcs
    pcs.close()


def test_discovers_the_contract_models(pcs):
    assert [model.model_id for model in pcs.device.models] == [1, 701, 702, 703, 704, 705, 707, 708, 709, 710,
                                                               711, 713, 714, 715, 802]
    assert pcs.device.base_address == 40000


def test_identity_and_ratings_match_the_virtual_bench(pcs):
    identity = pcs.identity()
    assert (identity.manufacturer, identity.model, identity.serial) == ("bessbench", "VPCS-250", "VPCS-0001")
    ratings = pcs.ratings()
    assert ratings.s_rated_va == pytest.approx(250e3)
    assert ratings.p_max_w == pytest.approx(250e3)
    assert ratings.i_max_a == pytest.approx(330.0, rel=0.01)
    assert ratings.v_nom_v == pytest.approx(480.0, rel=0.01)


def test_wrong_expected_serial_is_refused(bench):
    with pytest.raises(IdentityMismatch, match="serial"):
        connect_pcs({"transport": "tcp", "host": "127.0.0.1", "port": bench.server.port},
                    expected_identity=PcsIdentity("bessbench", "VPCS-250", "VPCS-9999"),
                    allow_control=True, clock_now=bench.plant_time_s)


def test_start_set_power_and_read_telemetry(bench, pcs):
    before = pcs.telemetry()
    assert before.state == "OFF"
    assert before.v_ll_rms_v == pytest.approx(480.0, rel=0.03)
    assert before.freq_hz == pytest.approx(60.0, abs=0.05)

    pcs.start()
    bench.advance(0.5)
    assert pcs.telemetry().state == "RUNNING"

    pcs.set_active_power_w(100e3)
    bench.advance(1.5)  # the default ramp is the rating per second
    snapshot = pcs.telemetry()
    plant = bench.call(bench.plant.pcs_telemetry)
    # stamped with the bench clock at the read; the values are cycle averages up to a cycle old
    assert snapshot.timestamp_s == pytest.approx(bench.plant_time_s())
    assert snapshot.timestamp_s - plant["t_s"] == pytest.approx(0.0, abs=1 / 60 + 0.005)
    assert snapshot.state == "RUNNING"
    # the PCS exports what was asked, and its telemetry agrees with the plant within 1 % of S
    assert snapshot.p_w == pytest.approx(100e3, abs=2.5e3)
    assert snapshot.p_w == pytest.approx(plant["p_w"], abs=2.5e3)
    assert snapshot.q_var == pytest.approx(plant["q_var"], abs=2.5e3)
    assert snapshot.i_rms_a[0] == pytest.approx(plant["i_rms_a"][0], rel=0.01)
    assert snapshot.soc_pct == pytest.approx(plant["soc_pct"], abs=1.0)

    pcs.set_reactive_power_var(20e3)
    bench.advance(0.5)
    assert pcs.telemetry().q_var == pytest.approx(20e3, abs=2.5e3)
    assert bench.call(lambda: bench.plant.pcs_settings.q_set_var) == pytest.approx(20e3)

    pcs.stop()
    bench.advance(0.3)
    assert pcs.telemetry().state == "OFF"


def test_ride_through_settings_reach_the_plant(bench, pcs):
    wanted = RideThroughSettings(
        lv_must_trip=((0.45, 0.16), (0.88, 21.0)),
        hv_must_trip=((1.10, 13.0), (1.20, 0.16)),
        lv_mom_cess_v_pu=0.45,
        hv_mom_cess_v_pu=1.15,
    )
    pcs.set_ride_through(wanted)
    read_back = pcs.ride_through()
    assert sorted(read_back.lv_must_trip) == sorted(wanted.lv_must_trip)
    assert sorted(read_back.hv_must_trip) == sorted(wanted.hv_must_trip)
    assert read_back.lv_mom_cess_v_pu == pytest.approx(0.45)
    assert read_back.hv_mom_cess_v_pu == pytest.approx(1.15)
    settings = bench.call(lambda: bench.plant.pcs_settings)
    for got, expected in zip(sorted(settings.lv_must_trip), sorted(wanted.lv_must_trip), strict=True):
        assert got == pytest.approx(expected)
    assert settings.lv_mom_cess_v_pu == pytest.approx(0.45)
    assert settings.hv_mom_cess_v_pu == pytest.approx(1.15)


def test_read_only_connection_to_the_virtual_pcs(bench):
    read_only = connect_pcs({"transport": "tcp", "host": "127.0.0.1", "port": bench.server.port},
                            expected_identity=VIRTUAL_PCS, allow_control=False,
                            clock_now=bench.plant_time_s)
    try:
        assert read_only.telemetry().freq_hz == pytest.approx(60.0, abs=0.05)
    finally:
        read_only.close()
