"""A telemetry poller: PCS snapshots at a fixed rate, as a periodic task of the bench clock.

It is not a thread: the bench clock runs it at its due times (on hardware on the wall clock,
on the virtual bench in lockstep with the plant), so a run on the virtual bench yields the
same samples at the same plant times every time. Each sample is stamped with the bench clock
time the task ran at; the wall time of the read is kept as its latency, because that is what
tells whether the PCS link keeps up with the rate asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from .errors import DutError
from .pcs import Pcs, TelemetrySnapshot

# Column -> units of the frame (units live in attrs, as in the rest of bessbench).
COLUMN_UNITS: dict[str, str] = {
    "v_a_ln_v": "V", "v_b_ln_v": "V", "v_c_ln_v": "V", "v_ll_v": "V",
    "i_a_a": "A", "i_b_a": "A", "i_c_a": "A",
    "p_w": "W", "q_var": "var", "s_va": "VA", "pf": "1", "freq_hz": "Hz",
    "vdc_v": "V", "idc_a": "A", "soc_pct": "%", "temperature_c": "°C",
    "current_limited": "bool", "ride_through_active": "bool", "state": "", "trip_reason": "",
    "device_time_s": "s", "poll_latency_s": "s", "overran": "bool",
}


class _Cancellable(Protocol):
    def cancel(self) -> None: ...


class PeriodicClock(Protocol):
    """What the poller needs of the bench clock (bench/clock.py BenchClock has it); a
    protocol, because dut/ sits below bench/ and does not import it."""

    def every(self, period_s: float, action: Callable[[float], None], name: str = ...) -> _Cancellable: ...


@dataclass(frozen=True)
class MissedPoll:
    time_s: float  # bench clock at the poll
    reason: str  # "failed: ..." or "overran: ..."


class TelemetryPoller:
    """Polls `pcs.telemetry()` every `period_s` of bench time while the clock runs.

    A read that fails is a missed poll (no sample); a read that takes longer than the period
    (wall time) is a missed poll too, but its sample is kept, flagged `overran`. Any error
    other than a DutError is a bug and propagates.
    """

    def __init__(self, pcs: Pcs, clock: PeriodicClock, period_s: float, *, name: str = "telemetry poller") -> None:
        if period_s <= 0:
            raise ValueError(f"{name}: period_s must be > 0, got {period_s}")
        self.pcs = pcs
        self.clock = clock
        self.period_s = period_s
        self.name = name
        self.samples: list[tuple[float, TelemetrySnapshot, float]] = []  # (t_s, snapshot, latency_s)
        self.missed: list[MissedPoll] = []
        self.polls = 0
        self._task = clock.every(period_s, self._poll, name)

    def _poll(self, now_s: float) -> None:
        self.polls += 1
        started_s = time.perf_counter()
        try:
            snapshot = self.pcs.telemetry()
        except DutError as exc:
            self.missed.append(MissedPoll(now_s, f"failed: {exc}"))
            return
        latency_s = time.perf_counter() - started_s
        if latency_s > self.period_s:
            self.missed.append(MissedPoll(
                now_s, f"overran: the read took {latency_s * 1e3:.1f} ms, the period is {self.period_s * 1e3:g} ms"
            ))
        self.samples.append((now_s, snapshot, latency_s))

    def stop(self) -> None:
        self._task.cancel()

    def __enter__(self) -> "TelemetryPoller":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def latencies_s(self) -> list[float]:
        return [latency_s for _, _, latency_s in self.samples]

    def frame(self) -> pd.DataFrame:
        """The samples so far, indexed by bench time `t_s`; units in attrs["units"]."""
        rows = [_row(snapshot, latency_s, self.period_s) for _, snapshot, latency_s in self.samples]
        frame = pd.DataFrame(rows, columns=list(COLUMN_UNITS),
                             index=pd.Index([t_s for t_s, _, _ in self.samples], name="t_s", dtype=float))
        frame.attrs["units"] = dict(COLUMN_UNITS, t_s="s")
        frame.attrs["period_s"] = self.period_s
        frame.attrs["polls"] = self.polls
        frame.attrs["missed_polls"] = len(self.missed)
        frame.attrs["missed"] = [(miss.time_s, miss.reason) for miss in self.missed]
        frame.attrs["source"] = f"{self.name}: PCS telemetry, bench clock time stamps"
        return frame


def _row(snapshot: TelemetrySnapshot, latency_s: float, period_s: float) -> dict[str, Any]:
    v = snapshot.v_ln_rms_v or (None, None, None)
    i = snapshot.i_rms_a or (None, None, None)
    return {
        "v_a_ln_v": v[0], "v_b_ln_v": v[1], "v_c_ln_v": v[2], "v_ll_v": snapshot.v_ll_rms_v,
        "i_a_a": i[0], "i_b_a": i[1], "i_c_a": i[2],
        "p_w": snapshot.p_w, "q_var": snapshot.q_var, "s_va": snapshot.s_va, "pf": snapshot.pf,
        "freq_hz": snapshot.freq_hz, "vdc_v": snapshot.vdc_v, "idc_a": snapshot.idc_a,
        "soc_pct": snapshot.soc_pct, "temperature_c": snapshot.temperature_c,
        "current_limited": snapshot.current_limited, "ride_through_active": snapshot.ride_through_active,
        "state": snapshot.state, "trip_reason": snapshot.trip_reason,
        "device_time_s": snapshot.device_time_s, "poll_latency_s": latency_s,
        "overran": latency_s > period_s,
    }
