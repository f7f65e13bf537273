"""`bessbench` command line.

    bessbench qualify [--bench FILE] [--defect NAME ...] [--out DIR] [-k EXPR] [--allow-control]
    bessbench sim [--bench FILE] [--lockstep] [--defect NAME ...] [--list-defects]
    bessbench check [--bench FILE]
    bessbench scan [--bench FILE]
    bessbench {analysis,io,dut,sim}-benchmark

`qualify` runs the qualification plans (testplans/) through pytest with the bessbench plugin
and writes reports/<run-id>/report.html plus the evidence. Exit status: 0 every test passed,
1 a test failed (or the run was interrupted), 2 a usage or bench-file error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _qualify(args: argparse.Namespace) -> int:
    import pytest

    import testplans
    from bench.config import BenchFileError, load_bench
    from bench.evidence import new_run_id
    from bench.profiles import ProfileError, load_profile

    # Check the bench file and its profile before anything starts, so a typo costs nothing.
    try:
        bench = load_bench(args.bench)
        load_profile(bench.profile, relative_to=bench.path.parent)
    except (BenchFileError, ProfileError) as exc:
        print(f"bessbench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.defect and not bench.is_virtual:
        print(f"bessbench: --defect applies to the virtual bench only; {bench.path} describes a real bench",
              file=sys.stderr)
        return EXIT_USAGE
    if args.defect:
        from bench.sim.defects import DEFECTS

        unknown = [d for d in args.defect if d not in DEFECTS]
        if unknown:
            print(f"bessbench: unknown defect(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFECTS))}",
                  file=sys.stderr)
            return EXIT_USAGE

    out = Path(args.out) if args.out else Path("reports") / new_run_id()
    plans_dir = Path(testplans.__file__).parent
    pytest_args = [str(plans_dir), "-p", "bench.plugin", "--rootdir", str(plans_dir),
                   "-c", str(plans_dir / "pytest.ini"),
                   "--bench", str(bench.path), "--out", str(out),
                   f"--html={out / 'report.html'}", "--self-contained-html",
                   "-q", "--no-header", "-p", "no:cacheprovider", "--tb=short"]
    for defect in args.defect:
        pytest_args += ["--defect", defect]
    if args.k:
        pytest_args += ["-k", args.k]
    for test_id in args.id:
        pytest_args += ["--test-id", test_id]
    if args.allow_control:
        pytest_args.append("--allow-control")
    if args.allow_uncalibrated:
        pytest_args.append("--allow-uncalibrated")
    pytest_args += args.pytest_args
    code = pytest.main(pytest_args)
    print(f"report: {out / 'report.html'}")
    if code == pytest.ExitCode.OK:
        return EXIT_OK
    if code in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED):
        return EXIT_FAILED
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("bessbench: no test matched the selection" if args.k or args.id else "bessbench: no test collected",
              file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE if code == pytest.ExitCode.USAGE_ERROR else EXIT_FAILED


def _check(args: argparse.Namespace) -> int:
    from bench.check import main_check

    return main_check(args.bench)


def _scan(args: argparse.Namespace) -> int:
    from bench.check import main_scan

    return main_scan(args.bench)


# name -> (module, function): each benchmark returns a dict, printed as JSON
BENCHMARKS = {
    "analysis-benchmark": ("bench.analysis.benchmark", "analysis_benchmark"),
    "io-benchmark": ("bench.io_benchmark", "io_benchmark"),
    "dut-benchmark": ("bench.dut_benchmark", "dut_benchmark"),
    "sim-benchmark": ("bench.sim.benchmark", "sim_benchmark"),
}


def _benchmark(name: str) -> int:
    import importlib
    import json

    module_name, function_name = BENCHMARKS[name]
    result = getattr(importlib.import_module(module_name), function_name)()
    print(json.dumps(result, indent=2))
    return EXIT_OK


def _sim(args: argparse.Namespace, rest: list[str]) -> int:
    from bench.sim.launcher import main as sim_main

    return sim_main(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bessbench", description="BESS PCS qualification bench")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("qualify", help="run the qualification plans and write the report")
    q.add_argument("--bench", help="bench file (default: the shipped virtual bench)")
    q.add_argument("--defect", action="append", default=[], help="seeded PCS defect (virtual bench)")
    q.add_argument("--out", help="run folder (default: reports/<run-id>)")
    q.add_argument("-k", help="select tests by pytest keyword expression (e.g. lvrt, T7)")
    q.add_argument("--id", action="append", default=[],
                   help="run only this test id, exactly (repeatable): --id T1 does not run T10")
    q.add_argument("--allow-control", action="store_true",
                   help="allow commands to a real PCS (default: read-only outside the virtual bench)")
    q.add_argument("--allow-uncalibrated", action="store_true",
                   help="use instruments without valid calibration (report marked not valid for qualification)")
    q.add_argument("pytest_args", nargs="*", help="further pytest arguments (after --)")
    sub.add_parser("sim", help="run the virtual bench in the foreground (see `bessbench sim --help`)",
                   add_help=False)
    c = sub.add_parser("check", help="identify every instrument and the PCS, show calibration; changes nothing")
    c.add_argument("--bench", help="bench file (default: the shipped virtual bench)")
    sc = sub.add_parser("scan", help="list the SunSpec models and vendor points the PCS exposes; read-only")
    sc.add_argument("--bench", help="bench file (default: the shipped virtual bench)")
    for name in BENCHMARKS:
        sub.add_parser(name, help=f"measure and print JSON ({BENCHMARKS[name][0]})")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim":
        return _sim(argparse.Namespace(), argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command == "qualify":
        return _qualify(args)
    if args.command == "check":
        return _check(args)
    if args.command == "scan":
        return _scan(args)
    if args.command in BENCHMARKS:
        return _benchmark(args.command)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
