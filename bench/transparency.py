"""Control transparency (T12): the vendor's submission package and its declared responses.

A submission package is a folder with a `manifest.toml` that lists what the vendor hands over
with a PCS: the EMT model files, the control parameter list (name, value, units), the declared
EMT time step, dq impedance data per operating point, and declared step responses (a CSV
trace per response, with the stimulus that produced it). This module reads a package, says
what is missing from it, and compares a measured response with the declared one.

Everything here is pure (files in, numbers out): no bench, no thresholds. The plan judges
the figures against the profile.
"""
from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.analysis import follows_reference
from bench.errors import ProblemsError

MANIFEST_NAME = "manifest.toml"
TESTPLANS_DIR = Path(__file__).resolve().parent.parent / "testplans"

# The stimuli the bench can replay, and the fields each needs from the manifest.
STIMULUS_FIELDS = {
    "active_power_step": ("initial_p_pu", "final_p_pu", "ramp_pu_per_s"),
    "reactive_power_step": ("initial_p_pu", "initial_q_pu", "final_q_pu"),
    "balanced_sag": ("initial_p_pu", "sag_v_pu", "sag_duration_s"),
}
QUANTITIES = ("p_pu", "q_pu", "iq_pu")
# A dq impedance file: frequency and the four complex entries of the 2x2 dq impedance matrix.
DQ_IMPEDANCE_COLUMNS = ("f_hz", "zdd_re_ohm", "zdd_im_ohm", "zdq_re_ohm", "zdq_im_ohm",
                        "zqd_re_ohm", "zqd_im_ohm", "zqq_re_ohm", "zqq_im_ohm")
DECLARED_TRACE_COLUMNS = ("t_s", "value_pu")


class SubmissionError(ProblemsError):
    """The manifest cannot be read as a submission package at all (not: something is missing)."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"submission package {source}", problems)


# ------------------------------------------------------------------ the package

@dataclass(frozen=True)
class DeclaredParameter:
    name: str
    value: float | str | None
    units: str | None
    description: str = ""


@dataclass(frozen=True)
class DqOperatingPoint:
    label: str
    p_pu: float
    q_pu: float
    v_pu: float
    file: str


@dataclass(frozen=True)
class DeclaredResponse:
    """A response the vendor declares, with the stimulus that produces it on a bench.

    Time zero of the trace is the stimulus instant (the setpoint command, the start of the
    sag). ``settings`` are PCS settings the response holds for (e.g. k_factor).
    """

    name: str
    stimulus: str
    quantity: str
    file: str
    description: str
    initial_p_pu: float
    initial_q_pu: float = 0.0
    final_p_pu: float | None = None
    final_q_pu: float | None = None
    ramp_pu_per_s: float | None = None
    sag_v_pu: float | None = None
    sag_duration_s: float | None = None
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SubmissionPackage:
    root: Path
    vendor: str
    model: str
    emt_time_step_s: float | None
    files: tuple[str, ...]                 # every file the manifest lists, relative to root
    parameters: tuple[DeclaredParameter, ...]
    dq_points: tuple[DqOperatingPoint, ...]
    responses: tuple[DeclaredResponse, ...]

    def path(self, relative: str) -> Path:
        return self.root / relative


def resolve_package_dir(path: str | Path) -> Path:
    """A profile names the package relative to testplans/ (where shipped packages live)."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else TESTPLANS_DIR / candidate


def load_submission(package_dir: str | Path) -> SubmissionPackage:
    """Read a package's manifest. Raises SubmissionError only when the manifest itself is
    unreadable or malformed; missing files and parameters are for `package_findings`."""
    root = Path(package_dir)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise SubmissionError(str(root), [f"no {MANIFEST_NAME} in the package folder"])
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SubmissionError(str(manifest), [f"is not valid TOML: {exc}"]) from None
    problems: list[str] = []
    package = data.get("package", {})
    emt = data.get("emt_model", {})
    step = emt.get("time_step_s")
    if step is not None and not isinstance(step, (int, float)):
        problems.append(f"emt_model.time_step_s: {step!r} is not a number")
        step = None

    listed = [entry.get("path") for entry in data.get("files", [])]
    if any(not isinstance(p, str) or not p for p in listed):
        problems.append("every [[files]] entry needs a 'path'")

    parameters = []
    for index, entry in enumerate(data.get("parameters", [])):
        if "name" not in entry:
            problems.append(f"parameters[{index}]: no 'name'")
            continue
        parameters.append(DeclaredParameter(str(entry["name"]), entry.get("value"), entry.get("units"),
                                            str(entry.get("description", ""))))

    dq_points = []
    for index, entry in enumerate(data.get("dq_impedance", [])):
        missing = [k for k in ("label", "p_pu", "q_pu", "v_pu", "file") if k not in entry]
        if missing:
            problems.append(f"dq_impedance[{index}]: missing {', '.join(missing)}")
            continue
        dq_points.append(DqOperatingPoint(str(entry["label"]), float(entry["p_pu"]), float(entry["q_pu"]),
                                          float(entry["v_pu"]), str(entry["file"])))

    responses = []
    for index, entry in enumerate(data.get("responses", [])):
        where = f"responses[{index}] ({entry.get('name', '?')})"
        missing = [k for k in ("name", "stimulus", "quantity", "file") if k not in entry]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        if entry["stimulus"] not in STIMULUS_FIELDS:
            problems.append(f"{where}: stimulus {entry['stimulus']!r} is not one of {', '.join(STIMULUS_FIELDS)}")
            continue
        if entry["quantity"] not in QUANTITIES:
            problems.append(f"{where}: quantity {entry['quantity']!r} is not one of {', '.join(QUANTITIES)}")
            continue
        absent = [k for k in STIMULUS_FIELDS[entry["stimulus"]] if k not in entry]
        if absent:
            problems.append(f"{where}: a {entry['stimulus']} needs {', '.join(absent)}")
            continue
        # the initial reactive power is optional for every stimulus (0 when not declared)
        numbers = [*STIMULUS_FIELDS[entry["stimulus"]], *(["initial_q_pu"] if "initial_q_pu" in entry else [])]
        responses.append(DeclaredResponse(
            name=str(entry["name"]), stimulus=entry["stimulus"], quantity=entry["quantity"],
            file=str(entry["file"]), description=str(entry.get("description", "")),
            settings=dict(entry.get("settings", {})), **{k: float(entry[k]) for k in dict.fromkeys(numbers)}))
    names = [r.name for r in responses]
    if len(set(names)) != len(names):
        problems.append("response names must be unique")
    if problems:
        raise SubmissionError(str(manifest), problems)
    return SubmissionPackage(root, str(package.get("vendor", "")), str(package.get("model", "")),
                             None if step is None else float(step),
                             tuple(dict.fromkeys(p for p in listed if p)), tuple(parameters),
                             tuple(dq_points), tuple(responses))


# ------------------------------------------------------------------ what is missing

def referenced_files(package: SubmissionPackage) -> list[str]:
    """Every file the manifest names: its table of contents plus the data files it points to."""
    named = [*package.files, *(p.file for p in package.dq_points), *(r.file for r in package.responses)]
    return list(dict.fromkeys(named))


def missing_files(package: SubmissionPackage) -> list[str]:
    return [name for name in referenced_files(package) if not package.path(name).is_file()]


def parameter_gaps(package: SubmissionPackage, required: list[str]) -> dict[str, str]:
    """Required parameter name → why it does not count as declared (absent, no value, no units)."""
    declared = {p.name: p for p in package.parameters}
    gaps = {}
    for name in required:
        parameter = declared.get(name)
        if parameter is None:
            gaps[name] = "not in the parameter list"
        elif parameter.value is None or (isinstance(parameter.value, str) and not parameter.value.strip()):
            gaps[name] = "listed without a value"
        elif not parameter.units:
            gaps[name] = "listed without units"
    return gaps


def read_csv_columns(path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV with a header row (lines starting with # are comments).
    ValueError naming the file and the problem."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.lstrip().startswith("#")))
    if not rows:
        raise ValueError(f"{path.name}: no data rows")
    absent = [c for c in columns if c not in rows[0]]
    if absent:
        raise ValueError(f"{path.name}: missing column(s) {', '.join(absent)}")
    try:
        out = {c: np.array([float(r[c]) for r in rows]) for c in columns}
    except (TypeError, ValueError):
        raise ValueError(f"{path.name}: a value is not a number") from None
    if not all(np.all(np.isfinite(v)) for v in out.values()):
        raise ValueError(f"{path.name}: a value is not finite")
    return out


def dq_point_problems(package: SubmissionPackage) -> dict[str, str]:
    """Operating point label → why its dq impedance data cannot be used ('' when usable)."""
    problems = {}
    for point in package.dq_points:
        path = package.path(point.file)
        if not path.is_file():
            problems[point.label] = f"{point.file} is missing"
            continue
        try:
            data = read_csv_columns(path, DQ_IMPEDANCE_COLUMNS)
        except ValueError as exc:
            problems[point.label] = str(exc)
            continue
        f_hz = data["f_hz"]
        if f_hz.size < 2 or np.any(np.diff(f_hz) <= 0) or f_hz[0] <= 0:
            problems[point.label] = f"{point.file}: frequencies must be positive and increasing (2 or more)"
        else:
            problems[point.label] = ""
    return problems


def distinct_operating_points(points: list[DqOperatingPoint]) -> int:
    """Operating points that differ in P, Q or V: two files at the same point count once."""
    return len({(round(p.p_pu, 3), round(p.q_pu, 3), round(p.v_pu, 3)) for p in points})


# ------------------------------------------------------------------ declared vs measured

@dataclass(frozen=True)
class DeclaredTrace:
    t_s: np.ndarray        # from the stimulus instant
    value_pu: np.ndarray

    @property
    def window_s(self) -> tuple[float, float]:
        return float(self.t_s[0]), float(self.t_s[-1])


def read_declared_trace(path: Path) -> DeclaredTrace:
    data = read_csv_columns(path, DECLARED_TRACE_COLUMNS)
    t_s = data["t_s"]
    if t_s.size < 3 or np.any(np.diff(t_s) <= 0):
        raise ValueError(f"{path.name}: t_s must increase over 3 or more rows")
    return DeclaredTrace(t_s, data["value_pu"])


@dataclass(frozen=True)
class ResponseComparison:
    """Measured minus declared, evaluated at the declared trace's time points."""

    rms_error_pu: float
    max_error_pu: float             # largest |measured - declared|
    worst_t_s: float                # where the two diverge most (s from the stimulus)
    worst_declared_pu: float
    worst_measured_pu: float
    first_beyond_band_s: float | None   # first time |error| exceeds the band (None: never)
    t_s: np.ndarray
    declared_pu: np.ndarray
    measured_pu: np.ndarray


def compare_with_declared(measured_t_s: np.ndarray, measured_pu: np.ndarray, declared: DeclaredTrace,
                          band_pu: float) -> ResponseComparison:
    """RMS and maximum error of a measured trace against the declared one over the declared
    window, and where they diverge. Both traces share time zero (the stimulus instant); the
    measured trace, the denser of the two, is interpolated at the declared time points.
    ``band_pu``: the half-width of the tolerance band (for the first time outside it)."""
    t = np.asarray(measured_t_s, dtype=np.float64)
    y = np.asarray(measured_pu, dtype=np.float64)
    start_s, end_s = declared.window_s
    if t.size < 2 or t[0] > start_s or t[-1] < end_s:
        raise ValueError(f"the measured trace ({t[0] if t.size else float('nan'):.3f}…"
                         f"{t[-1] if t.size else float('nan'):.3f} s) does not cover the declared window "
                         f"{start_s:.3f}…{end_s:.3f} s")
    measured_at = np.interp(declared.t_s, t, y)
    error = measured_at - declared.value_pu
    band = follows_reference(declared.t_s, measured_at, declared.value_pu, tolerance_abs=band_pu)
    k = int(np.argmax(np.abs(error)))
    return ResponseComparison(
        rms_error_pu=float(np.sqrt(np.mean(error ** 2))),
        max_error_pu=float(abs(error[k])),
        worst_t_s=float(declared.t_s[k]),
        worst_declared_pu=float(declared.value_pu[k]),
        worst_measured_pu=float(measured_at[k]),
        first_beyond_band_s=band.first_violation_t_s,
        t_s=declared.t_s, declared_pu=declared.value_pu, measured_pu=measured_at)


def response_quantity_pu(quantity: str, *, p_w: np.ndarray, q_var: np.ndarray, iq_pu: np.ndarray,
                         s_rated_va: float) -> np.ndarray:
    """The declared quantity from the measured signals, per unit of the PCS's rating."""
    if quantity == "p_pu":
        return np.asarray(p_w) / s_rated_va
    if quantity == "q_pu":
        return np.asarray(q_var) / s_rated_va
    if quantity == "iq_pu":
        return np.asarray(iq_pu)
    raise ValueError(f"unknown quantity {quantity!r} (one of {', '.join(QUANTITIES)})")


def decimated_trace(t_s: np.ndarray, value_pu: np.ndarray, *, start_s: float, end_s: float, step_s: float,
                    decimals: int) -> DeclaredTrace:
    """A trace resampled on a regular grid and rounded: how the simulated PCS's declared
    responses were made from a healthy run's measured trace (a one-off, not part of a run)."""
    grid = np.arange(start_s, end_s + step_s / 2, step_s)
    return DeclaredTrace(np.round(grid, 6), np.round(np.interp(grid, t_s, value_pu), decimals))


# ------------------------------------------------------------------ evidence plot

@dataclass
class DeclaredVsMeasuredPlot:
    title: str
    quantity_label: str
    measured_t_s: np.ndarray            # the full measured trace, s from the stimulus
    measured_pu: np.ndarray
    comparison: ResponseComparison
    band_pu: float
    stimulus_span_s: tuple[float, float] | None = None   # shaded (e.g. the sag)


def plot_declared_vs_measured(plot: DeclaredVsMeasuredPlot, path: Path) -> Path:
    """Declared trace with its tolerance band, the measured trace, and their difference."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    c = plot.comparison
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(3, 1.4))
    top.fill_between(c.t_s, c.declared_pu - plot.band_pu, c.declared_pu + plot.band_pu, color="tab:green",
                     alpha=0.15, label=f"declared ± {plot.band_pu:g} pu")
    top.plot(c.t_s, c.declared_pu, color="tab:green", lw=1.5, label="declared (vendor package)")
    top.plot(plot.measured_t_s, plot.measured_pu, color="tab:blue", lw=1.0, label="measured (bench scope)")
    top.set_ylabel(plot.quantity_label)
    bottom.plot(c.t_s, c.measured_pu - c.declared_pu, color="tab:blue", lw=1.0)
    bottom.axhline(plot.band_pu, color="tab:red", ls="--", lw=1)
    bottom.axhline(-plot.band_pu, color="tab:red", ls="--", lw=1, label="tolerance")
    bottom.set_ylabel("measured − declared (pu)")
    bottom.set_xlabel("time from the stimulus (s)")
    for axis in (top, bottom):
        if plot.stimulus_span_s is not None:
            axis.axvspan(*plot.stimulus_span_s, color="tab:orange", alpha=0.08)
        axis.axvline(c.worst_t_s, color="tab:red", ls=":", lw=1.2)
        axis.grid(True, alpha=0.3)
    worst_error_pu = c.worst_measured_pu - c.worst_declared_pu
    bottom.annotate(f"largest divergence {worst_error_pu:+.3f} pu at {c.worst_t_s:.3f} s",
                    (c.worst_t_s, worst_error_pu), xytext=(6, 0), textcoords="offset points", fontsize=8,
                    color="tab:red", va="center")
    top.legend(loc="best", fontsize=8)
    bottom.legend(loc="upper right", fontsize=8)
    top.set_title(plot.title, fontsize=10)
    top.set_xlim(c.t_s[0], c.t_s[-1])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
