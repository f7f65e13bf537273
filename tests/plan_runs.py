"""Running `bessbench qualify` from the framework's tests and reading what a run left behind."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def qualify(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """`bessbench qualify ARGS` in a child process (each run starts its own virtual bench)."""
    return subprocess.run([sys.executable, "-m", "bench.cli", "qualify", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


def measurement_rows(out: Path) -> list[dict]:
    with open(Path(out) / "measurements.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def failed_measurements(out: Path) -> set[str]:
    return {r["name"] for r in measurement_rows(out) if r["outcome"] == "FAIL"}
