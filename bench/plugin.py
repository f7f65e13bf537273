"""The pytest plugin: hands plans a ready bench and keeps the evidence of the run.

Loaded with `-p bench.plugin` (the `bessbench qualify` command does this). Options:
`--bench FILE` (default: the virtual bench), `--defect NAME` (virtual bench only, repeatable),
`--out DIR` (run folder), `--allow-control` (command a real PCS; the virtual one always is).
Teardown puts the bench in its safe state after success, failure, exception or Ctrl-C.
"""
from __future__ import annotations

import base64
import html
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.capture import WaveformCapture
from bench.config import BenchConfig, BenchFileError, load_bench
from bench.evidence import RunFolder, new_run_id, software_version
from bench.measurements import MeasurementRecorder
from bench.power_capture import PowerReadings
from bench.profiles import Profile, ProfileError, load_profile

log = logging.getLogger("bessbench")

BENCH_KEY = pytest.StashKey[BenchConfig]()
PROFILE_KEY = pytest.StashKey[Profile]()
RUN_KEY = pytest.StashKey[RunFolder]()
SESSION_KEY = pytest.StashKey[object]()
RECORDER_KEY = pytest.StashKey[MeasurementRecorder]()
RESULTS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bessbench")
    group.addoption("--bench", default=None, help="bench file (TOML); default: the virtual bench")
    group.addoption("--defect", action="append", default=[],
                    help="seeded PCS defect on the virtual bench (repeatable)")
    group.addoption("--out", default=None, help="run folder (default reports/<run-id>)")
    group.addoption("--allow-control", action="store_true", default=False,
                    help="allow commands to a real PCS (the virtual PCS is always controllable)")
    group.addoption("--test-id", action="append", default=[],
                    help="run only the plans with this test id (repeatable): exact, so T1 is not T10")
    group.addoption("--allow-uncalibrated", action="store_true", default=False,
                    help="use instruments without a valid calibration record; the run is then "
                         "marked not valid for qualification")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "test_id(id): the qualification test id (T1…T12, DR, C1, C2)")
    config.addinivalue_line("markers", "profile_sections(*keys): the profile sections the plan reads; "
                                       "a profile without one of them skips the plan with that reason")
    try:
        bench = load_bench(config.getoption("--bench"))
        profile = load_profile(bench.profile, relative_to=bench.path.parent)
    except (BenchFileError, ProfileError) as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("--defect") and not bench.is_virtual:
        raise pytest.UsageError("--defect applies to the virtual bench only; "
                                f"{bench.path} describes a real bench")
    out = config.getoption("--out")
    run = RunFolder(Path(out) if out else Path("reports") / new_run_id())
    run.write_text("bench.toml", bench.raw_text)
    run.write_json("software.json", software_version())
    run.write_json("run.json", {"bench_file": str(bench.path), "profile": profile.id,
                                "profile_file": str(profile.path), "defects": config.getoption("--defect"),
                                "virtual": bench.is_virtual})
    shutil.copy(profile.path, run.root / "profile.toml")
    _describe_run_in_report(config, bench, profile, run)
    config.stash[BENCH_KEY] = bench
    config.stash[PROFILE_KEY] = profile
    config.stash[RUN_KEY] = run
    config.stash[RESULTS_KEY] = []


def _describe_run_in_report(config: pytest.Config, bench: BenchConfig, profile: Profile, run: RunFolder) -> None:
    """The report's Environment table says what was tested, against what, with which software."""
    try:
        from pytest_metadata.plugin import metadata_key
    except ImportError:  # pytest-html absent: nothing to describe
        return
    metadata = config.stash.get(metadata_key, None)
    if metadata is None:
        return
    software = software_version()
    metadata.update({
        "Bench": f"{bench.name} ({bench.path})",
        "PCS": f"{bench.pcs.identity.manufacturer} {bench.pcs.identity.model} s/n {bench.pcs.identity.serial}",
        "Profile": f"{profile.title} ({profile.id})",
        "Run folder": str(run.root),
        "bessbench": f"{software.get('bessbench')} (git {software.get('git_revision')})",
    })


def _not_in_profile_reason(profile: Profile, key: str) -> str:
    return (f"profile {profile.id!r} ({profile.path}) has no '{key}': that requirement set does not "
            f"state this test, so it is not judged against it")


def profile_procedure(metafunc: pytest.Metafunc, argname: str, key: str) -> Any | None:
    """``profile.setting(key)`` for a plan's ``pytest_generate_tests``; if the profile lacks the
    key (an IEEE 1547 profile states no islanded-regulation test), ``argname`` gets one
    placeholder marked skip with that reason, and None is returned: the plan shows in the run
    as skipped, never vanishes, never errors at collection."""
    profile = metafunc.config.stash[PROFILE_KEY]
    if profile.has(key):
        value = profile.setting(key)
        if isinstance(value, list) and not value:
            # pytest would skip an empty parameter set with a generic reason: say what is wrong
            raise ProfileError(str(profile.path), [f"key '{key}' is an empty list: the plan needs "
                                                   "at least one entry"])
        return value
    metafunc.parametrize(argname, [pytest.param(None, id="not-in-profile", marks=pytest.mark.skip(
        reason=_not_in_profile_reason(profile, key)))])
    return None


def _skip_items_the_profile_does_not_state(config: pytest.Config, items: list[pytest.Item]) -> None:
    profile = config.stash[PROFILE_KEY]
    for item in items:
        for marker in item.iter_markers("profile_sections"):
            missing = [key for key in marker.args if not profile.has(key)]
            if missing:
                item.add_marker(pytest.mark.skip(reason=_not_in_profile_reason(profile, missing[0])))
                break


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _skip_items_the_profile_does_not_state(config, items)
    wanted = {test_id.upper() for test_id in config.getoption("--test-id")}
    if not wanted:
        return
    selected, deselected = [], []
    for item in items:
        marker = item.get_closest_marker("test_id")
        (selected if marker is not None and str(marker.args[0]).upper() in wanted else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


# ------------------------------------------------------------------ the bench

class _BenchResources:
    """The virtual bench process (if any) and the opened session, torn down together."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.sim = None
        self.session = None
        self.closed = False

    def open(self):
        from bench.session import BenchSession
        from bench.virtual import VirtualBenchProcess, resolve_virtual

        bench = self.config.stash[BENCH_KEY]
        run = self.config.stash[RUN_KEY]
        control = None
        allow_control = self.config.getoption("--allow-control")
        if bench.is_virtual:
            self.sim = VirtualBenchProcess(bench.path, tuple(self.config.getoption("--defect")),
                                           lockstep=True, log_path=run.root / "virtual_bench.log")
            endpoints = self.sim.start()
            run.write_json("virtual_bench.json", endpoints)
            bench = resolve_virtual(bench, endpoints)
            control = endpoints["control"]
            allow_control = True
        self.session = BenchSession(bench, run, allow_control=allow_control, control_address=control,
                                    allow_uncalibrated=self.config.getoption("--allow-uncalibrated"))
        self.session.open()
        if not self.session.valid_for_qualification:
            run.write_json("run.json", {**json.loads((run.root / "run.json").read_text()),
                                        "valid_for_qualification": False})
        return self.session

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.session is not None:
                report = self.session.close()
                if not report.ok:
                    log.error("safe state incomplete: %s", report.steps)
        finally:
            if self.sim is not None:
                self.sim.stop()


@pytest.fixture(scope="session")
def bench_session(pytestconfig: pytest.Config):
    resources = _BenchResources(pytestconfig)
    pytestconfig.stash[SESSION_KEY] = resources
    try:
        yield resources.open()
    finally:
        resources.close()


@pytest.fixture(scope="session")
def bench_config(pytestconfig: pytest.Config) -> BenchConfig:
    return pytestconfig.stash[BENCH_KEY]


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    return pytestconfig.stash[PROFILE_KEY]


@pytest.fixture(scope="session")
def run_folder(pytestconfig: pytest.Config) -> RunFolder:
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture(scope="session")
def clock(bench_session):
    return bench_session.clock


@pytest.fixture(scope="session")
def pcs(bench_session):
    return bench_session.pcs


@pytest.fixture(scope="session")
def grid_simulator(bench_session):
    return bench_session.instrument("grid_simulator")


@pytest.fixture(scope="session")
def dc_source(bench_session):
    return bench_session.instrument("dc_source")


@pytest.fixture(scope="session")
def ac_load(bench_session):
    """The AC load (AI-load emulator); plans that need one are skipped on a bench without it."""
    if "ac_load" not in bench_session.instruments:
        pytest.skip(f"this bench has no ac_load (roles: {', '.join(bench_session.instruments)})")
    return bench_session.instrument("ac_load")


@pytest.fixture(scope="session")
def genset(bench_session):
    """The genset controller (docs/modbus_instruments.md); plans that need a genset are skipped
    on a bench without one."""
    if "genset" not in bench_session.instruments:
        pytest.skip(f"this bench has no genset (roles: {', '.join(bench_session.instruments)})")
    return bench_session.instrument("genset")


@pytest.fixture(scope="session")
def load_bank(bench_session):
    """The RLC load bank (docs/modbus_instruments.md); plans that need one are skipped on a
    bench without it."""
    if "load_bank" not in bench_session.instruments:
        pytest.skip(f"this bench has no load_bank (roles: {', '.join(bench_session.instruments)})")
    return bench_session.instrument("load_bank")


@pytest.fixture(scope="session")
def power_analyzer(bench_session):
    """The power analyzer, its readings stamped with the bench clock; plans that need one are
    skipped on a bench without it."""
    if "power_analyzer" not in bench_session.instruments:
        pytest.skip(f"this bench has no power_analyzer (roles: {', '.join(bench_session.instruments)})")
    analyzer = bench_session.instrument("power_analyzer")
    analyzer.use_clock(bench_session.clock.now_s)
    return analyzer


@pytest.fixture(scope="session")
def power_readings(bench_session, run_folder) -> PowerReadings | None:
    """Calibrated power-analyzer readings on the bench clock (log while something else runs, or
    capture a window; evidence written first), or None on a bench without a power analyzer:
    plans that use it as their reference where there is one take this fixture."""
    if "power_analyzer" not in bench_session.instruments:
        return None
    analyzer = bench_session.instrument("power_analyzer")
    analyzer.use_clock(bench_session.clock.now_s)
    return PowerReadings(analyzer, bench_session.clock, run_folder,
                         identity=bench_session.identities.get("power_analyzer"),
                         corrections=bench_session.channel_corrections("power_analyzer"),
                         valid_for_qualification=bench_session.valid_for_qualification)


@pytest.fixture(scope="session")
def capture(bench_session, run_folder) -> WaveformCapture:
    scope_config = bench_session.config.instruments["oscilloscope"]
    return WaveformCapture(bench_session.instrument("oscilloscope"), scope_config.channels,
                           run_folder, bench_session.clock, bench_session.identities.get("oscilloscope"),
                           corrections=bench_session.channel_corrections("oscilloscope"),
                           valid_for_qualification=bench_session.valid_for_qualification,
                           line_frequency_hz=bench_session.config.pcs.f_nom_hz)


@pytest.fixture
def measurements(request: pytest.FixtureRequest, run_folder: RunFolder) -> MeasurementRecorder:
    marker = request.node.get_closest_marker("test_id")
    test_id = marker.args[0] if marker else request.node.name
    recorder = MeasurementRecorder(test_id)
    request.node.stash[RECORDER_KEY] = recorder
    yield recorder
    run_folder.add_measurements(recorder.measurements)


# ------------------------------------------------------------------ safety on interruption

def pytest_keyboard_interrupt(excinfo) -> None:
    # Ctrl-C: pytest may skip fixture teardown; the bench must still end safe.
    _close_bench_from_anywhere()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _close_bench_from_anywhere(session.config)


_CONFIGS: list[pytest.Config] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIGS.append(session.config)


def _close_bench_from_anywhere(config: pytest.Config | None = None) -> None:
    for cfg in ([config] if config else list(_CONFIGS)):
        resources = cfg.stash.get(SESSION_KEY, None)
        if resources is not None:
            resources.close()


# ------------------------------------------------------------------ reporting

def _measurements_html(recorder: MeasurementRecorder) -> str:
    rows = []
    for m in recorder.measurements:
        color = "#2e7d32" if m.outcome == "PASS" else "#c62828"
        value = "—" if m.value is None else f"{m.value:.4g}"
        low = "" if m.low is None else f"{m.low:.4g}"
        high = "" if m.high is None else f"{m.high:.4g}"
        rows.append(f"<tr><td>{html.escape(m.name)}</td><td>{value}</td><td>{html.escape(m.units)}</td>"
                    f"<td>{low}</td><td>{high}</td><td style='color:{color};font-weight:bold'>{m.outcome}</td>"
                    f"<td>{html.escape(m.clause)}</td></tr>")
    return ("<table border='1' cellpadding='3' style='border-collapse:collapse;margin:6px 0'>"
            "<tr><th>measurement</th><th>value</th><th>units</th><th>low</th><th>high</th>"
            "<th>outcome</th><th>profile clause</th></tr>" + "".join(rows) + "</table>")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        if report.when == "setup" and (report.failed or report.skipped):
            # a plan skipped before it ran (bench lacks an instrument, profile lacks the test)
            # is listed with its reason, like one that skipped while running
            verdict = "ERROR" if report.failed else "SKIP"
            item.config.stash[RESULTS_KEY].append((item, verdict, _first_line(report)))
        return
    recorder = item.stash.get(RECORDER_KEY, None)
    verdict = "PASS" if report.passed else ("SKIP" if report.skipped else "FAIL")
    item.config.stash[RESULTS_KEY].append((item, verdict, "" if report.passed else _first_line(report)))
    if recorder is None:
        return
    try:
        from pytest_html import extras
    except ImportError:
        return
    report_extras = getattr(report, "extras", [])
    if not _run_valid(item.config):
        report_extras.append(extras.html(_NOT_VALID_BANNER))
    report_extras.append(extras.html(_measurements_html(recorder)))
    for path in recorder.plots:
        report_extras.append(extras.png(base64.b64encode(Path(path).read_bytes()).decode()))
    report.extras = report_extras


def _first_line(report) -> str:
    if report.longrepr is None:
        return ""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    if isinstance(report.longrepr, tuple):  # skip: (file, line, reason)
        text = report.longrepr[2]
    return text.replace("AssertionError: ", "").splitlines()[0] if text else ""


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, [])
    run = config.stash.get(RUN_KEY, None)
    if not results:
        return
    terminalreporter.section("bessbench verdicts")
    for item, verdict, message in results:
        marker = item.get_closest_marker("test_id")
        test_id = marker.args[0] if marker else ""
        line = f"{verdict:5} {test_id:4} {item.name}"
        if message:
            line += f" — {message}"
        terminalreporter.write_line(line, red=verdict in ("FAIL", "ERROR"), green=verdict == "PASS")
    if not _run_valid(config):
        terminalreporter.write_line("NOT VALID FOR QUALIFICATION: uncalibrated instruments were allowed",
                                    red=True, bold=True)
    if run is not None:
        terminalreporter.write_line(f"evidence: {run.root}")


_NOT_VALID_BANNER = ("<div style='background:#c62828;color:white;font-weight:bold;padding:6px'>"
                     "NOT VALID FOR QUALIFICATION — uncalibrated instruments were allowed in this run</div>")


def _run_valid(config: pytest.Config) -> bool:
    resources = config.stash.get(SESSION_KEY, None)
    session = getattr(resources, "session", None)
    return session is None or session.valid_for_qualification


def _defect_catalogue_html(session: pytest.Session) -> str:
    """Which seeded PCS defects each plan of this run is proven to catch, and which are seeded now."""
    from bench.sim.defects import DEFECTS

    run_ids = sorted({m.args[0] for item in session.items
                      for m in [item.get_closest_marker("test_id")] if m is not None})
    seeded = session.config.getoption("--defect") or []
    bench = session.config.stash[BENCH_KEY]
    if bench.virtual is not None:
        seeded = list(dict.fromkeys([*bench.virtual.defects, *seeded]))
    rows = "".join(
        f"<tr><td>{html.escape(test_id)}</td><td>"
        + ", ".join(html.escape(d.name) + ("" if d.implemented else " (not yet modelled)")
                    for d in DEFECTS.values() if d.caught_by == test_id)
        + "</td></tr>" for test_id in run_ids)
    seeded_text = ", ".join(html.escape(name) for name in seeded) or "none (healthy PCS)"
    return ("<h3>Plans and the seeded defects they are proven to catch</h3>"
            f"<p>Defects seeded in this run: <b>{seeded_text}</b></p>"
            "<table border='1' cellpadding='3' style='border-collapse:collapse'>"
            f"<tr><th>plan</th><th>defects</th></tr>{rows}</table>")


def pytest_html_report_title(report) -> None:
    report.title = "bessbench qualification report"


def pytest_html_results_summary(prefix, summary, postfix, session) -> None:
    resources = session.config.stash.get(SESSION_KEY, None)
    bench_session = getattr(resources, "session", None)
    if bench_session is None:
        return
    if not bench_session.valid_for_qualification:
        prefix.append(_NOT_VALID_BANNER)
    rows = "".join(
        f"<tr><td>{html.escape(s.role)}</td><td>{html.escape(s.model)}</td><td>{html.escape(s.serial)}</td>"
        f"<td>{html.escape(s.state)}</td><td>{html.escape(s.detail)}</td>"
        f"<td>{html.escape(s.record.certificate if s.record else '')}</td></tr>"
        for s in bench_session.calibration)
    prefix.append(_defect_catalogue_html(session))
    prefix.append("<h3>Instrument calibration</h3><table border='1' cellpadding='3' "
                  "style='border-collapse:collapse'><tr><th>role</th><th>model</th><th>serial</th>"
                  f"<th>status</th><th>detail</th><th>certificate</th></tr>{rows}</table>")
