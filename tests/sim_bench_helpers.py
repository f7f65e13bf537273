"""A lockstep virtual bench in a background thread, and a plain control-endpoint client.

Shared by the tests of the simulated instruments. They talk plain pyvisa and plain sockets,
never the project's drivers: the twins and the drivers are written independently so that one
cannot hide the other's mistakes.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading

from bench.sim.launcher import RunningBench, start_bench


class BenchInThread:
    """The virtual bench (lockstep) on its own asyncio loop; `instruments` = {role: driver}."""

    def __init__(self, instruments: dict[str, str] | None = None) -> None:
        from bench.sim.plant import PlantConfig

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="virtual-bench", daemon=True)
        self.thread.start()
        kwargs = {"instruments": instruments} if instruments else {}
        self.bench: RunningBench = self._run(start_bench(PlantConfig(), lockstep=True, **kwargs), 120.0)

    def _run(self, coroutine, timeout_s: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def close(self) -> None:
        self._run(self.bench.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10.0)
        self.loop.close()


class ControlClient:
    """JSON lines to the control endpoint."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.socket = socket.create_connection((host, int(port)), timeout=60.0)
        self.reader = self.socket.makefile("rb")

    def request(self, **request) -> dict:
        self.socket.sendall((json.dumps(request) + "\n").encode())
        return json.loads(self.reader.readline())

    def advance(self, dt_s: float) -> float:
        reply = self.request(op="advance", dt_s=dt_s)
        assert reply["ok"], reply
        return reply["t_s"]

    def close(self) -> None:
        self.reader.close()
        self.socket.close()
