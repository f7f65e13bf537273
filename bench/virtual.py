"""Start and stop the virtual bench as a child process, and point a bench file at it.

The simulator runs in its own process (`python -m bench.sim`), so that plans reach it only
through sockets, exactly as they reach real instruments, and so that a crashed or killed
simulator looks to the plans like a lost instrument, not like a Python exception.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.config import VIRTUAL_RESOURCE, BenchConfig


class VirtualBenchError(Exception):
    pass


class VirtualBenchProcess:
    def __init__(self, bench_path: Path, defects: tuple[str, ...] = (), *, lockstep: bool = True,
                 log_path: Path | None = None):
        self.bench_path = Path(bench_path)
        self.defects = tuple(defects)
        self.lockstep = lockstep
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.endpoints: dict | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="bessbench-sim-")

    def start(self, timeout_s: float = 180.0) -> dict:
        endpoints_file = Path(self._tmp.name) / "endpoints.json"
        cmd = [sys.executable, "-m", "bench.sim", "--bench", str(self.bench_path),
               "--endpoints-file", str(endpoints_file)]
        if self.lockstep:
            cmd.append("--lockstep")
        for defect in self.defects:
            cmd += ["--defect", defect]
        log = open(self.log_path, "w", encoding="utf-8") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=os.environ.copy(),
                                        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + timeout_s
        while not endpoints_file.exists():
            if self.process.poll() is not None:
                detail = self.log_path.read_text(encoding="utf-8")[-2000:] if self.log_path else ""
                raise VirtualBenchError(f"the virtual bench exited with status {self.process.returncode} "
                                        f"before it was ready:\n{detail}")
            if time.monotonic() > deadline:
                self.stop()
                raise VirtualBenchError(f"the virtual bench was not ready within {timeout_s:g} s")
            time.sleep(0.05)  # waiting for a child process, not plant time
        self.endpoints = json.loads(endpoints_file.read_text(encoding="utf-8"))
        return self.endpoints

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self._tmp.cleanup()


def _die_with_parent() -> None:
    """In the simulator child: end it when the run that started it dies (kill -9, a timeout),
    so no orphaned virtual bench keeps its ports and a core busy."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # no glibc: the orphan is ended by stop() or by hand
        pass


def resolve_virtual(bench: BenchConfig, endpoints: dict) -> BenchConfig:
    """The bench file with its 'virtual' resources replaced by the simulator's endpoints."""
    instruments = {}
    for role, inst in bench.instruments.items():
        if inst.resource == VIRTUAL_RESOURCE:
            if role not in endpoints["instruments"]:
                raise VirtualBenchError(f"the virtual bench has no simulated {role}")
            inst = dataclasses.replace(inst, resource=endpoints["instruments"][role])
        instruments[role] = inst
    connection = dict(bench.pcs.connection)
    if connection.get("host") == VIRTUAL_RESOURCE:
        connection.update(host=endpoints["pcs"]["host"], port=endpoints["pcs"]["port"],
                          device_id=endpoints["pcs"].get("device_id", 1))
    pcs = dataclasses.replace(bench.pcs, connection=connection)
    return dataclasses.replace(bench, instruments=instruments, pcs=pcs)
