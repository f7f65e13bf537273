"""The bench clock: the only way plans let time pass.

On hardware it is the wall clock. On the virtual bench it drives the plant in lockstep
through the simulator's control endpoint: waiting 2 s asks the simulator to advance 2 s of
plant time. Background duties (a telemetry poller, a heartbeat) are periodic tasks of the
clock, run at their due time in both worlds, so a run on the virtual bench is reproducible
sample for sample.
"""
from __future__ import annotations

import heapq
import itertools
import json
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable


class ClockError(Exception):
    pass


@dataclass(order=True)
class _Task:
    due_s: float
    order: int
    period_s: float = field(compare=False)
    action: Callable[[float], None] = field(compare=False)
    name: str = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class BenchClock(ABC):
    """Time as the bench sees it, with periodic tasks run on schedule."""

    def __init__(self) -> None:
        self._tasks: list[_Task] = []
        self._order = itertools.count()

    @abstractmethod
    def now_s(self) -> float: ...

    @abstractmethod
    def _pass_time(self, until_s: float) -> None:
        """Let time run until `until_s` (no task is due before then)."""

    def every(self, period_s: float, action: Callable[[float], None], name: str = "task") -> _Task:
        """Run action(now_s) every period_s, first at now + period_s. Returns a cancellable handle."""
        if period_s <= 0:
            raise ValueError(f"periodic task {name!r}: period_s must be > 0, got {period_s}")
        task = _Task(self.now_s() + period_s, next(self._order), period_s, action, name)
        heapq.heappush(self._tasks, task)
        return task

    def wait(self, duration_s: float) -> float:
        """Let duration_s pass, running due periodic tasks on time. Returns the new time."""
        if duration_s < 0:
            raise ValueError(f"cannot wait a negative time ({duration_s} s)")
        end_s = self.now_s() + duration_s
        while True:
            while self._tasks and self._tasks[0].cancelled:
                heapq.heappop(self._tasks)
            if not self._tasks or self._tasks[0].due_s > end_s:
                break
            task = heapq.heappop(self._tasks)
            self._pass_time(task.due_s)
            task.action(self.now_s())
            task.due_s += task.period_s
            heapq.heappush(self._tasks, task)
        self._pass_time(end_s)
        return self.now_s()

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, poll_s: float,
                   what: str) -> float:
        """Poll condition every poll_s of bench time; raise ClockError naming `what` on timeout."""
        start_s = self.now_s()
        while not condition():
            if self.now_s() - start_s >= timeout_s:
                raise ClockError(f"timed out after {timeout_s:g} s waiting for {what}")
            self.wait(poll_s)
        return self.now_s() - start_s

    def set_fidelity(self, mode: str, dt_s: float | None = None) -> bool:
        """Ask for a simulation fidelity ("emt" for sub-cycle work, "phasor" for hours of SOC
        work). Only a simulated bench has one: real hardware answers False and runs as it is,
        so a plan can ask without knowing which bench it is on."""
        return False

    def close(self) -> None:
        self._tasks.clear()


class WallClock(BenchClock):
    """Real hardware: monotonic wall time."""

    def __init__(self) -> None:
        super().__init__()
        self._t0 = time.monotonic()

    def now_s(self) -> float:
        return time.monotonic() - self._t0

    def _pass_time(self, until_s: float) -> None:
        remaining = until_s - self.now_s()
        if remaining > 0:
            time.sleep(remaining)


class LockstepClock(BenchClock):
    """Virtual bench: plant time advances only when this clock asks the simulator to."""

    def __init__(self, control_address: str, timeout_s: float = 600.0) -> None:
        super().__init__()
        host, _, port = control_address.rpartition(":")
        self.address = control_address
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except OSError as exc:
            raise ClockError(f"virtual bench control endpoint {control_address} does not answer: {exc}") from None
        self._reader = self._sock.makefile("r", encoding="utf-8")
        self._t_s = self.request({"op": "time"})["t_s"]

    def request(self, message: dict) -> dict:
        try:
            self._sock.sendall((json.dumps(message) + "\n").encode())
            line = self._reader.readline()
        except OSError as exc:
            raise ClockError(f"virtual bench control endpoint {self.address}: {exc}") from None
        if not line:
            raise ClockError(f"virtual bench control endpoint {self.address} closed the connection "
                             f"(did the simulator stop?)")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ClockError(f"virtual bench refused {message.get('op')!r}: {reply.get('error')}")
        return reply

    def now_s(self) -> float:
        return self._t_s

    def set_fidelity(self, mode: str, dt_s: float | None = None) -> bool:
        request: dict = {"op": "fidelity", "fidelity": mode}
        if dt_s is not None:
            request["dt_s"] = dt_s
        self._t_s = self.request(request)["t_s"]
        return True

    def _pass_time(self, until_s: float) -> None:
        dt_s = until_s - self._t_s
        if dt_s > 0:
            self._t_s = self.request({"op": "advance", "dt_s": dt_s})["t_s"]

    def close(self) -> None:
        super().close()
        try:
            self._sock.close()
        except OSError:
            pass
