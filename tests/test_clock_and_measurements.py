"""Bench clock scheduling and measurement judging, without any bench."""
import pytest

from bench.clock import BenchClock, ClockError
from bench.measurements import MeasurementRecorder
from bench.profiles import Clause


class ManualClock(BenchClock):
    """A clock whose time passes instantly: tests the scheduling logic only."""

    def __init__(self):
        super().__init__()
        self.t_s = 0.0
        self.passes = []

    def now_s(self):
        return self.t_s

    def _pass_time(self, until_s):
        self.passes.append(until_s)
        self.t_s = max(self.t_s, until_s)


def test_periodic_tasks_run_at_their_due_time():
    clock = ManualClock()
    seen = []
    clock.every(0.1, lambda t: seen.append(("poll", round(t, 6))), "poller")
    clock.every(0.25, lambda t: seen.append(("beat", round(t, 6))), "heartbeat")
    clock.wait(0.5)
    assert [t for name, t in seen if name == "poll"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert [t for name, t in seen if name == "beat"] == [0.25, 0.5]
    times = [t for _, t in seen]
    assert times == sorted(times)
    assert clock.now_s() == pytest.approx(0.5)


def test_cancelled_task_stops():
    clock = ManualClock()
    seen = []
    task = clock.every(0.1, seen.append)
    clock.wait(0.25)
    task.cancel()
    clock.wait(1.0)
    assert len(seen) == 2


def test_wait_until_times_out_with_what_it_waited_for():
    clock = ManualClock()
    with pytest.raises(ClockError, match="the PCS to reach RUNNING"):
        clock.wait_until(lambda: False, timeout_s=1.0, poll_s=0.1, what="the PCS to reach RUNNING")


def test_negative_wait_refused():
    with pytest.raises(ValueError):
        ManualClock().wait(-1)


CLAUSE = Clause("lvrt.power_recovery.within", 1.0, "s", "IEEE 2800-2022 recovery", "recall", "ieee2800_2022")


def test_measurement_outcomes_and_verdict_message():
    rec = MeasurementRecorder("T7")
    ok = rec.record("recovery", 0.4, "s", clause=CLAUSE, high=1.0)
    bad = rec.record("recovery", 1.4, "s", clause=CLAUSE, high=1.0)
    none = rec.record("response", None, "s", clause=CLAUSE, high=1.0, fail_message="no response seen")
    info = rec.record("residual", 0.5, "pu")
    assert (ok.outcome, bad.outcome, none.outcome, info.outcome) == ("PASS", "FAIL", "FAIL", "PASS")
    assert "≤ 1 s" in bad.message and "IEEE 2800-2022 recovery" in bad.message
    with pytest.raises(AssertionError) as err:
        rec.verdict()
    assert "recovery = 1.4 s" in str(err.value) and "no response seen" in str(err.value)


def test_verdict_without_measurements_fails():
    with pytest.raises(AssertionError, match="no measurement"):
        MeasurementRecorder("T7").verdict()
