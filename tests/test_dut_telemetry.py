"""The telemetry poller: bench-clock time stamps, latency, missed polls, the frame."""

from __future__ import annotations

import itertools

import pytest

import dut.telemetry as telemetry_module
from bench.clock import BenchClock
from dut.errors import DutError, ModbusPointError
from dut.pcs import TelemetrySnapshot
from dut.telemetry import TelemetryPoller


class StepClock(BenchClock):
    """Bench time that passes instantly (a manual clock): only the scheduling is real."""

    def __init__(self) -> None:
        super().__init__()
        self.t_s = 0.0

    def now_s(self) -> float:
        return self.t_s

    def _pass_time(self, until_s: float) -> None:
        self.t_s = max(self.t_s, until_s)


def snapshot(t_s: float, p_w: float) -> TelemetrySnapshot:
    return TelemetrySnapshot(
        timestamp_s=t_s, state="RUNNING", v_ln_rms_v=(277.1, 277.0, None), v_ll_rms_v=480.0,
        i_rms_a=(100.0, 101.0, 102.0), p_w=p_w, q_var=0.0, s_va=p_w, pf=1.0, freq_hz=60.0,
        vdc_v=900.0, idc_a=50.0, soc_pct=55.0, temperature_c=40.0, current_limited=False,
        ride_through_active=False, trip_reason=None, device_time_s=t_s + 0.001,
    )


class ScriptedPcs:
    """telemetry() answers from the clock, failing on the polls listed in `fail_on`."""

    def __init__(self, clock: BenchClock, fail_on: set[int] = frozenset()) -> None:
        self.clock = clock
        self.fail_on = fail_on
        self.calls = 0

    def telemetry(self) -> TelemetrySnapshot:
        self.calls += 1
        if self.calls in self.fail_on:
            raise ModbusPointError("701.ID..W", 40070, "test PCS", "no response within 1 s")
        return snapshot(self.clock.now_s(), 1000.0 * self.calls)


@pytest.fixture
def fake_wall_time(monkeypatch):
    """perf_counter advancing 2 ms per call, so latencies are known without sleeping."""
    ticks = itertools.count()
    monkeypatch.setattr(telemetry_module.time, "perf_counter", lambda: 0.002 * next(ticks))


def test_samples_are_stamped_with_the_bench_clock(fake_wall_time):
    clock = StepClock()
    poller = TelemetryPoller(ScriptedPcs(clock), clock, 0.1)
    clock.wait(1.0)
    frame = poller.frame()
    assert list(frame.index) == pytest.approx([0.1 * k for k in range(1, 11)])
    assert frame.index.name == "t_s"
    assert list(frame["p_w"]) == [1000.0 * k for k in range(1, 11)]
    assert frame["v_c_ln_v"].isna().all() and frame["v_a_ln_v"].iloc[0] == 277.1
    assert frame.attrs["units"]["p_w"] == "W" and frame.attrs["units"]["t_s"] == "s"
    assert frame["poll_latency_s"].tolist() == pytest.approx([0.002] * 10)
    assert frame.attrs["missed_polls"] == 0 and frame.attrs["polls"] == 10


def test_failed_reads_are_missed_polls_and_the_poller_goes_on(fake_wall_time):
    clock = StepClock()
    poller = TelemetryPoller(ScriptedPcs(clock, fail_on={3, 4}), clock, 0.1)
    clock.wait(0.6)
    assert len(poller.samples) == 4 and poller.polls == 6
    assert [round(miss.time_s, 6) for miss in poller.missed] == [0.3, 0.4]
    assert "failed:" in poller.missed[0].reason and "701.ID..W" in poller.missed[0].reason
    assert poller.frame().attrs["missed_polls"] == 2


def test_a_read_longer_than_the_period_is_an_overrun(fake_wall_time):
    clock = StepClock()
    poller = TelemetryPoller(ScriptedPcs(clock), clock, 0.001)  # 1 ms period, reads take 2 ms
    clock.wait(0.003)
    frame = poller.frame()
    assert len(frame) == 3 and frame["overran"].all()
    assert len(poller.missed) == 3 and poller.missed[0].reason.startswith("overran: the read took 2.0 ms")


def test_stop_cancels_the_task(fake_wall_time):
    clock = StepClock()
    with TelemetryPoller(ScriptedPcs(clock), clock, 0.1) as poller:
        clock.wait(0.25)
    clock.wait(1.0)
    assert len(poller.samples) == 2


def test_bugs_are_not_swallowed():
    class Broken:
        def telemetry(self):
            raise ZeroDivisionError("a bug")

    clock = StepClock()
    TelemetryPoller(Broken(), clock, 0.1)
    with pytest.raises(ZeroDivisionError):
        clock.wait(0.1)


def test_empty_frame_and_bad_period():
    clock = StepClock()
    assert TelemetryPoller(ScriptedPcs(clock), clock, 0.5).frame().empty
    with pytest.raises(ValueError, match="period_s"):
        TelemetryPoller(ScriptedPcs(clock), clock, 0.0)
    assert issubclass(ModbusPointError, DutError)
