"""Ctrl-C in the middle of a qualification run: the bench still ends in its safe state."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(condition, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # polling a child process's files, not plant time
    return False


def test_ctrl_c_mid_run_ends_safe(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "bench.cli", "qualify", "-k", "lvrt", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Interrupt once the first capture is on disk: the PCS is running, sags are under way.
        started = _wait_for(lambda: process.poll() is not None or any((out / "captures").rglob("*.parquet")),
                            300)
        assert started and process.poll() is None, \
            "the run ended or stalled before its first capture:\n" + (process.communicate(timeout=60)[0] or "")[-3000:]
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stdout[-3000:]
    steps = json.loads((out / "safe_state.json").read_text())[-1]
    assert [s["role"] for s in steps] == ["pcs", "ac_load", "load_bank", "genset", "grid_simulator", "dc_source", "power_analyzer"]
    assert all(s["outcome"] == "done" for s in steps), steps
    assert (out / "virtual_bench.log").read_text().rstrip().endswith("virtual bench stopped")
