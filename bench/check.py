"""`bessbench check`: identify every instrument and the PCS, show calibration, change nothing.

The check only asks (*IDN?, Modbus reads); it never switches an output or writes to the PCS,
so it is safe to run against a live bench or an installed PCS before a campaign.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import BenchConfig, BenchFileError, load_bench
from calibration.policy import calibration_status
from calibration.records import RECORDS_DIR, CalibrationRecordError, load_records


@dataclass
class CheckLine:
    what: str
    identity: str
    status: str          # "ok" or a problem
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class CheckReport:
    bench: str
    lines: list[CheckLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.lines)

    def text(self) -> str:
        width = max((len(line.what) for line in self.lines), default=10)
        out = [f"bench: {self.bench}"]
        for line in self.lines:
            mark = "OK  " if line.ok else "FAIL"
            out.append(f"{mark} {line.what:<{width}}  {line.identity}  {line.detail or line.status}")
        out.append("all checks passed" if self.ok else "problems found: fix them before a qualification run")
        return "\n".join(out)


def _check_instruments(bench: BenchConfig, report: CheckReport, today: dt.date) -> None:
    from instruments.registry import open_instrument

    try:
        records = load_records(bench.calibration_dir or RECORDS_DIR)
    except CalibrationRecordError as exc:
        report.lines.append(CheckLine("calibration records", "", "unreadable", str(exc)))
        records = []
    for role, inst in bench.instruments.items():
        try:
            driver = open_instrument(role, inst.driver, inst.resource, expected_model=inst.expected_model,
                                     limits=bench.safety.as_driver_limits(), options=inst.options,
                                     timeout_s=inst.timeout_s)
        except Exception as exc:  # every problem is reported, the check goes on
            report.lines.append(CheckLine(role, inst.resource, "unreachable", str(exc)))
            continue
        try:
            ident = driver.identify()
        finally:
            driver.close()
        status = calibration_status(role, ident.model, ident.serial, records, today)
        report.lines.append(CheckLine(role, f"{ident.manufacturer} {ident.model} s/n {ident.serial}",
                                      "ok" if status.acceptable else status.state,
                                      f"calibration {status.state}: {status.detail}"))


def _check_pcs(bench: BenchConfig, report: CheckReport) -> None:
    from dut.pcs import PcsIdentity
    from dut.sunspec_pcs import connect_pcs

    expected = PcsIdentity(bench.pcs.identity.manufacturer, bench.pcs.identity.model,
                           bench.pcs.identity.serial)
    try:
        pcs = connect_pcs(bench.pcs.connection, expected_identity=expected, allow_control=False,
                          clock_now=lambda: 0.0)
    except Exception as exc:
        report.lines.append(CheckLine("pcs", str(bench.pcs.connection.get("host", bench.pcs.connection.get("port"))),
                                      "refused", str(exc)))
        return
    try:
        actual = pcs.identity()
        pcs.verify_identity(expected)
        report.lines.append(CheckLine("pcs", f"{actual.manufacturer} {actual.model} s/n {actual.serial}",
                                      "ok", "identity matches the bench file (read-only check)"))
    except Exception as exc:
        report.lines.append(CheckLine("pcs", "", "identity mismatch", str(exc)))
    finally:
        pcs.close()


def run_check(bench_path: str | Path | None, today: dt.date | None = None) -> CheckReport:
    from bench.virtual import VirtualBenchProcess, resolve_virtual

    bench = load_bench(bench_path)
    report = CheckReport(str(bench.path))
    sim = None
    try:
        if bench.is_virtual:
            sim = VirtualBenchProcess(bench.path, lockstep=True)
            bench = resolve_virtual(bench, sim.start())
        _check_instruments(bench, report, today or dt.date.today())
        _check_pcs(bench, report)
    finally:
        if sim is not None:
            sim.stop()
    return report


def main_check(bench_path: str | None) -> int:
    import sys

    try:
        report = run_check(bench_path)
    except BenchFileError as exc:
        print(f"bessbench: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.ok else 1


def main_scan(bench_path: str | None) -> int:
    """`bessbench scan`: list what the bench's PCS exposes (SunSpec models, vendor points); read-only."""
    import sys

    from bench.virtual import VirtualBenchProcess, resolve_virtual
    from dut.errors import DutError
    from dut.scan import format_scan, scan_device

    try:
        bench = load_bench(bench_path)
    except BenchFileError as exc:
        print(f"bessbench: {exc}", file=sys.stderr)
        return 2
    sim = None
    try:
        if bench.is_virtual:
            sim = VirtualBenchProcess(bench.path, lockstep=True)
            bench = resolve_virtual(bench, sim.start())
        report = scan_device(bench.pcs.connection)
    except DutError as exc:
        print(f"bessbench scan: {exc}", file=sys.stderr)
        return 1
    finally:
        if sim is not None:
            sim.stop()
    print(format_scan(report))
    return 0
