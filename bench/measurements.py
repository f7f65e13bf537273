"""Judged numbers: every value a plan judges is recorded with its limits and source.

A measurement carries its name, value, units, limits, the profile clause the limits come
from, and its outcome; the run keeps them all (CSV and report). A plan records, then calls
`verdict()` once, which fails the test with a message listing what failed and why.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from bench.profiles import Clause

PASS, FAIL = "PASS", "FAIL"


@dataclass
class Measurement:
    test_id: str
    name: str
    value: float | None
    units: str
    low: float | None
    high: float | None
    clause: str
    profile: str
    outcome: str
    message: str

    def row(self) -> dict:
        return asdict(self)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


@dataclass
class MeasurementRecorder:
    """Collects the measurements of one test."""

    test_id: str
    measurements: list[Measurement] = field(default_factory=list)
    plots: list = field(default_factory=list)   # paths of PNGs to show with the result

    def record(self, name: str, value: float | None, units: str, *,
               clause: Clause | None = None, low: float | None = None, high: float | None = None,
               fail_message: str | None = None) -> Measurement:
        """Judge value against [low, high]. A value of None (not measurable) fails when limited."""
        limited = low is not None or high is not None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            ok = not limited
            value = None
        else:
            ok = (low is None or value >= low) and (high is None or value <= high)
        outcome = PASS if ok else FAIL
        if ok:
            message = ""
        elif fail_message:
            message = fail_message
        else:
            bounds = " and ".join(b for b in (f"≥ {_fmt(low)}" if low is not None else "",
                                              f"≤ {_fmt(high)}" if high is not None else "") if b)
            message = f"{name} = {_fmt(value)} {units}; required {bounds} {units}"
        if message and clause is not None:
            message += f" ({clause.cite()})"
        m = Measurement(self.test_id, name, value, units, low, high,
                        clause.cite() if clause else "", clause.profile_id if clause else "",
                        outcome, message)
        self.measurements.append(m)
        return m

    @property
    def failures(self) -> list[Measurement]:
        return [m for m in self.measurements if m.outcome == FAIL]

    def verdict(self) -> None:
        """Fail the test (AssertionError) when any measurement failed."""
        if not self.measurements:
            raise AssertionError(f"{self.test_id}: no measurement was judged — a test without a verdict proves nothing")
        failed = self.failures
        if failed:
            raise AssertionError("; ".join(m.message for m in failed))
