"""How fast a large oscilloscope record comes through our driver path, against a plain socket.

``io_benchmark()`` starts the virtual bench (``python -m bench.sim --lockstep``) as a child
process, has its simulated Tektronix MSO acquire one long 16-bit record, and then, in the same
run and from the same acquisition, downloads it

(a) through the driver path a test plan uses: ``TektronixMso5.read_waveform`` (preamble,
    ``CURVe?`` block read by our SCPI layer, codes → volts and the time axis), and
(b) over a plain TCP socket: the same ``CURVe?`` query, the block header, then exactly the
    announced bytes with ``recv_into`` into one preallocated buffer — the fastest a Python
    client can take the bytes, doing nothing with them.

It returns a JSON-ready dict: ``driver_mb_s``, ``raw_socket_mb_s``, ``ratio`` (driver / raw, on
the whole query → last byte time, as the issue defines it), ``points``, ``bytes``, the same
figures for the stream only (first byte → last byte: the twin may need a while to prepare a
10 M-point record before its first byte — 0.15–0.5 s in early runs, a few ms later — the
same wait on both paths, so ``stream_ratio`` compares the block reception alone), ``ratio_if_instrument_answered_at_once`` (raw stream time
over the driver's own work: what the ratio would be against an instrument with no preparation
latency — the driver also builds float64 volts and a time axis, 160 MB of output for 10 M
points, which the raw read does not), plain pyvisa-py ``query_binary_values`` as the reference
the issue quotes, and ``driver_time_s``: where the driver path spends its time.

Nothing here asserts a speed: the numbers are printed by the CLI and judged by people.
MB here is 10^6 bytes.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: the plant ring holds 30 s; 1 MSa/s × 10 s is the issue's 10 M points well inside it
DEFAULT_SAMPLE_RATE_HZ = 1e6


class _VirtualBench:
    """The simulator as a child process, reached over its control endpoint (lockstep time)."""

    def __init__(self, workdir: Path, start_timeout_s: float = 120.0) -> None:
        endpoints_file = workdir / "endpoints.json"
        self.log_path = workdir / "launcher.log"
        self._log = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.sim", "--lockstep", "--endpoints-file", str(endpoints_file)],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + start_timeout_s
        while not (endpoints_file.exists() and endpoints_file.stat().st_size):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the virtual bench did not start:\n"
                                   + self.log_path.read_text(encoding="utf-8")[-2000:])
            time.sleep(0.05)   # waiting for a child process to listen, not plant time
        self.endpoints = json.loads(endpoints_file.read_text(encoding="utf-8"))
        host, port = self.endpoints["control"].rsplit(":", 1)
        self._control = socket.create_connection((host, int(port)), timeout=300.0)
        self._control_file = self._control.makefile("rw", encoding="utf-8")

    def resource(self, role: str) -> str:
        return self.endpoints["instruments"][role]

    def request(self, **message: Any) -> dict:
        self._control_file.write(json.dumps(message) + "\n")
        self._control_file.flush()
        reply = json.loads(self._control_file.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"virtual bench refused {message}: {reply}")
        return reply

    def advance(self, dt_s: float) -> None:
        self.request(op="advance", dt_s=dt_s)

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                try:
                    self.request(op="shutdown")
                except Exception:   # already gone or never connected: terminate below
                    pass
                try:
                    self.process.wait(10.0)
                except subprocess.TimeoutExpired:
                    self.process.terminate()
                    self.process.wait(10.0)
        finally:
            self._log.close()


def _acquire(bench: _VirtualBench, points: int, sample_rate_hz: float, timeout_s: float):
    """Energise the grid, have the scope capture ``points`` samples of phase A; return the scope.

    Falls back to smaller records (halving) if the twin refuses the requested length, and
    says so in the result.
    """
    from instruments.registry import open_instrument

    grid = open_instrument("grid_simulator", "ametek_mx", bench.resource("grid_simulator"),
                           options={"trigger_output": False})
    scope = open_instrument("oscilloscope", "tektronix_mso5", bench.resource("oscilloscope"),
                            timeout_s=timeout_s)
    grid.configure_nominal(277.1, 60.0)
    grid.output_on()
    scope.configure_channel(1, 1.0)          # 100:1 probe on the virtual bench: ±500 V on screen
    accepted = points
    refusals: list[str] = []
    while True:
        try:
            scope.configure_acquisition(sample_rate_hz, accepted, 0.1)
            break
        except Exception as exc:   # the twin's limit, reported back to the caller
            refusals.append(f"{accepted} points: {exc}")
            if accepted <= 1_000:
                raise
            accepted //= 2
    scope.trigger_edge(1, 0.0, "rise")
    bench.advance(0.2)                       # steady state, then a single-shot capture
    scope.arm_single()
    bench.advance(1.1 * accepted / sample_rate_hz + 0.1)
    for _ in range(100):
        if scope.is_acquisition_complete():
            break
        bench.advance(0.1)
    else:
        raise RuntimeError("the simulated scope did not complete its acquisition")
    return grid, scope, accepted, refusals


def _raw_socket_read(host: str, port: int, query: bytes, expected_bytes: int,
                     timeout_s: float, setup: bytes = b"") -> tuple[bytearray, float, float]:
    """Plain socket: setup writes, query, header, exactly the announced bytes (+ newline).

    Returns (data, seconds from the first byte sent to the last received, seconds to the first
    byte received).
    """
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        sock.sendall(setup + query)
        header = bytearray()
        while len(header) < 2:
            header += sock.recv(2 - len(header))
        first_byte = time.perf_counter()
        digits = int(header[1:2])
        while len(header) < 2 + digits:
            header += sock.recv(2 + digits - len(header))
        length = int(header[2:2 + digits])
        if length != expected_bytes:
            raise RuntimeError(f"raw socket: block of {length} bytes, expected {expected_bytes}")
        buffer = bytearray(length + 1)                # + the terminating newline
        view = memoryview(buffer)
        received = 0
        while received < length + 1:
            count = sock.recv_into(view[received:], length + 1 - received)
            if count == 0:
                raise RuntimeError("raw socket: connection closed inside the block")
            received += count
        finished = time.perf_counter()
        view.release()
    del buffer[length:]
    return buffer, finished - started, first_byte - started


def _pyvisa_query_binary_values(resource: str, n_points: int, timeout_s: float) -> float:
    """Seconds for plain pyvisa-py ``query_binary_values`` (the issue's reference figure)."""
    import pyvisa

    # (not manager.close(): pyvisa-py shares one library per process, and closing the
    # manager would close the driver sessions too)
    session = pyvisa.ResourceManager("@py").open_resource(
        resource, read_termination="\n", write_termination="\n", timeout=timeout_s * 1000.0)
    try:
        started = time.perf_counter()
        values = session.query_binary_values("CURVe?", datatype="h", is_big_endian=False,
                                             container=np.array)
        elapsed = time.perf_counter() - started
    finally:
        session.close()
    if len(values) != n_points:
        raise RuntimeError(f"query_binary_values returned {len(values)} points")
    return elapsed


def io_benchmark(points: int = 10_000_000, *, repeats: int = 3,
                 sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ, channel: int = 1,
                 include_pyvisa_reference: bool = True, timeout_s: float = 60.0) -> dict:
    """Download one ``points``-sample 16-bit record through the driver and a plain socket.

    Each path runs ``repeats`` times, alternating, after one warm-up read that also sets the
    scope's ``DATa`` range (so the plain socket's ``CURVe?`` returns the same record). Rates use
    the median time. Returns the JSON-ready dict described in the module docstring.
    """
    if points < 1_000:
        raise ValueError("points must be at least 1000")
    with tempfile.TemporaryDirectory(prefix="bessbench-io-") as workdir:
        bench = _VirtualBench(Path(workdir))
        grid = scope = None
        try:
            grid, scope, accepted, refusals = _acquire(bench, points, sample_rate_hz, timeout_s)
            warm = scope.read_waveform(channel)       # also sets DATa:SOUrce/STARt/STOP
            n_bytes = 2 * len(warm)
            host, port = scope.resource_name.split("::")[1:3]

            driver_s: list[float] = []
            raw_s: list[float] = []
            raw_first_byte_s: list[float] = []
            timings: list[dict[str, float]] = []
            same_bytes = True
            # The plain socket selects the record exactly as the driver does before CURVe?
            # (writes only, no preamble queries): the twin keeps the encoded record until a
            # DATa setting is written, so without them the socket would be served from a cache
            # the driver's own settings had just invalidated.
            setup = (f"DATa:SOUrce CH{channel}\nDATa:ENCdg SRIbinary\nWFMOutpre:BYT_Nr 2\n"
                     f"DATa:STARt 1\nDATa:STOP {len(warm)}\n").encode()
            axis_s: list[float] = []
            for _ in range(repeats):
                data, elapsed, first = _raw_socket_read(host, int(port), b"CURVe?\n", n_bytes,
                                                        timeout_s, setup)
                raw_s.append(elapsed)
                raw_first_byte_s.append(first)
                started = time.perf_counter()
                wave = scope.read_waveform(channel)
                driver_s.append(time.perf_counter() - started)
                timing = getattr(scope, "last_read_timing", None)
                if timing is not None:
                    timings.append(timing.as_dict())
                # the time axis is computed on first access, outside the driver path: say what it costs
                started = time.perf_counter()
                _ = wave.t_s
                axis_s.append(time.perf_counter() - started)
                # the plain socket read the very bytes the driver turned into volts
                same_bytes &= _same_record(scope, data, wave.volts)
                del data, wave

            qbv_s = None
            if include_pyvisa_reference:
                qbv_s = _pyvisa_query_binary_values(scope.resource_name, len(warm), timeout_s)
        finally:
            for driver in (scope, grid):
                if driver is not None:
                    driver.safe_state()
                    driver.close()
            bench.stop()

    driver_median_s = statistics.median(driver_s)
    raw_median_s = statistics.median(raw_s)
    first_byte_s = statistics.median(raw_first_byte_s)
    result: dict[str, Any] = {
        "points": len(warm),
        "points_requested": points,
        "bytes": n_bytes,
        "sample_rate_hz": sample_rate_hz,
        "repeats": repeats,
        "driver_mb_s": _mb_s(n_bytes, driver_median_s),
        "raw_socket_mb_s": _mb_s(n_bytes, raw_median_s),
        "ratio": round(raw_median_s / driver_median_s, 3),
        "driver_s": [round(s, 4) for s in driver_s],
        "raw_socket_s": [round(s, 4) for s in raw_s],
        # the twin prepares the record before the first byte; both paths wait for it
        "instrument_first_byte_s": round(first_byte_s, 4),
        "raw_socket_stream_mb_s": _mb_s(n_bytes, raw_median_s - first_byte_s),
        "same_bytes": bool(same_bytes),
        # RawWaveform.t_s is built on first access, not inside read_waveform
        "time_axis_on_first_access_s": round(statistics.median(axis_s), 4),
    }
    if timings:
        phases = {key: round(statistics.median(t[key] for t in timings), 4) for key in timings[0]}
        result["driver_time_s"] = phases
        stream_s = phases.get("receive_s")
        if stream_s:
            result["driver_stream_mb_s"] = _mb_s(n_bytes, stream_s)
            result["stream_ratio"] = round((raw_median_s - first_byte_s) / stream_s, 3)
        # the driver's own work, as if the instrument answered at once: settings and
        # preamble, time axis, receiving, conversion (the raw socket does only the receiving)
        own_s = sum(phases.get(k, 0.0) for k in ("setup_s", "time_axis_s", "receive_s", "convert_s"))
        result["driver_own_s"] = round(own_s, 4)
        result["ratio_if_instrument_answered_at_once"] = round((raw_median_s - first_byte_s) / own_s, 3)
    if qbv_s is not None:
        result["pyvisa_query_binary_values_mb_s"] = _mb_s(n_bytes, qbv_s)
        result["pyvisa_query_binary_values_ratio"] = round(raw_median_s / qbv_s, 3)
    if accepted != points:
        result["note"] = (f"the simulated scope refused {points} points; measured the largest it "
                          f"accepted ({accepted}). Refusals: " + " | ".join(refusals))
    return result


def _same_record(scope: Any, raw_block: bytearray, volts: np.ndarray) -> bool:
    """Decode the raw bytes with the scope's preamble and compare with the driver's volts."""
    codes = np.frombuffer(raw_block, dtype="<i2")
    if codes.shape != volts.shape:
        return False
    y_offset, y_mult, y_zero = scope.y_offset_codes, scope.y_multiplier_v, scope.y_zero_v
    step = max(1, codes.size // 100_000)      # a sparse check is enough and cheap
    expected = (codes[::step].astype(np.float64) - y_offset) * y_mult + y_zero
    # the driver's volts are float32: equal to within a thousandth of a code
    return bool(np.allclose(expected, volts[::step], rtol=1e-6, atol=abs(y_mult) * 1e-3))


def _mb_s(n_bytes: int, seconds: float) -> float:
    return round(n_bytes / seconds / 1e6, 1) if seconds > 0 else float("inf")


if __name__ == "__main__":   # the lead wires `bessbench io-benchmark`; this is for a quick look
    print(json.dumps(io_benchmark(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000), indent=2))
