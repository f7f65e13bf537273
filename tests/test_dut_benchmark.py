"""`dut_benchmark()` runs against the virtual PCS and returns the keys the CLI publishes."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("bench.sim.modbus_pcs")

from bench.dut_benchmark import dut_benchmark  # noqa: E402


def test_benchmark_returns_the_published_keys():
    results = dut_benchmark()
    json.dumps(results)  # the CLI prints it as JSON
    for key in ("scan_ms", "snapshot_latency_ms", "snapshots_per_s"):
        assert isinstance(results[key], float) and results[key] > 0, key
    # a full snapshot: 701 in two requests (155 registers), 713, and the vendor telemetry
    # 701 takes two requests; then 713, and the vendor block or, without a map, 714
    assert results["requests_per_snapshot"] == 4
    assert isinstance(results["targets_met"], bool)
