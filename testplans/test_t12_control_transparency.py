"""T12 — Control transparency: the vendor's submission package, and its declared responses
replayed on the bench.

Procedure:
  package  (no bench needed) read the submission package the profile names: every file its
           manifest lists is present; every parameter the profile requires is declared with a
           value and units; the EMT model's declared time step is within the profile's; dq
           impedance data is usable at enough distinct operating points;
  for each response the package declares:
  setup    the PCS runs at the response's initial P and Q, with the settings the response is
           declared for (active-power ramp, k-factor);
  stimulus the declared stimulus: a setpoint step sent on the grid simulator's trigger (a
           transient at nominal voltage, which changes nothing at the PCC, marks the instant),
           or the grid simulator's balanced sag;
  capture  PCC voltages and PCS currents with pre-trigger; time zero is the trigger, which is
           the stimulus instant of the declared trace too;
  judge    the measured P, Q or Iq (one-cycle windows) against the declared trace over the
           declared window: RMS and maximum error within the profile's tolerance; the report
           names the time where the two diverge most, and the plot draws the tolerance band.
Every limit comes from the profile; the declared responses are files of the package, never
regenerated during a run.
"""
from __future__ import annotations

import pandas as pd
import pytest

from bench.capture import CaptureSettings
from bench.plugin import PROFILE_KEY
from bench.procedures import (PHASE_CURRENTS, PHASE_VOLTAGES, balanced_sag, capture_transient, energise_bench,
                              run_pcs_at)
from bench.ride_through import ride_through_signals
from bench.transparency import (DeclaredResponse, DeclaredVsMeasuredPlot, SubmissionError, SubmissionPackage,
                                compare_with_declared, distinct_operating_points, dq_point_problems,
                                load_submission, missing_files, parameter_gaps, plot_declared_vs_measured,
                                read_declared_trace, referenced_files, resolve_package_dir,
                                response_quantity_pu)
from instruments.grid_simulator import GridSegment

pytestmark = [pytest.mark.test_id("T12"), pytest.mark.profile_sections("transparency")]

QUANTITY_LABELS = {"p_pu": "active power P (pu of S rated)", "q_pu": "reactive power Q (pu of S rated)",
                   "iq_pu": "reactive current Iq (pu of rated current)"}


def _submission(profile) -> SubmissionPackage:
    return load_submission(resolve_package_dir(profile.setting("transparency.submission")))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "declared_response" in metafunc.fixturenames:
        profile = metafunc.config.stash[PROFILE_KEY]
        try:
            responses = [pytest.param(r, id=r.name) for r in _submission(profile).responses]
        except SubmissionError as exc:
            # an unreadable manifest must fail the comparison, not make it vanish from the run
            responses = [pytest.param(str(exc), id="manifest-unreadable")]
        metafunc.parametrize("declared_response", responses)


# ------------------------------------------------------------------ the package (no bench)

def test_T12_submission_package(profile, measurements):
    try:
        package = _submission(profile)
    except SubmissionError as exc:
        pytest.fail(str(exc))

    files_missing = profile.clause("transparency.package.files_missing.max", "files")
    absent = set(missing_files(package))
    for name in referenced_files(package):
        measurements.record(
            f"package_file_missing[{name}]", float(name in absent), "files", clause=files_missing,
            high=files_missing.value,
            fail_message=f"{name}, listed in the submission manifest, is not in the package {package.root}")

    parameters_missing = profile.clause("transparency.package.parameters_missing.max", "parameters")
    gaps = parameter_gaps(package, profile.setting("transparency.required_parameters"))
    for name in profile.setting("transparency.required_parameters"):
        measurements.record(
            f"parameter_missing[{name}]", float(name in gaps), "parameters", clause=parameters_missing,
            high=parameters_missing.value,
            fail_message=f"required parameter {name} is {gaps.get(name)} of the submission package")

    step = profile.clause("transparency.emt_time_step.max", "s")
    declared_step_s = package.emt_time_step_s
    measurements.record(
        "declared_emt_time_step", declared_step_s, "s", clause=step, high=step.value,
        fail_message="the package declares no EMT time step (emt_model.time_step_s)" if declared_step_s is None else
                     f"the EMT model's declared time step is {declared_step_s * 1e6:g} µs; "
                     f"at most {step.value * 1e6:g} µs is allowed")

    points = profile.clause("transparency.dq_impedance.operating_points.min", "operating points")
    problems = dq_point_problems(package)
    usable = [p for p in package.dq_points if not problems[p.label]]
    unusable = "; ".join(f"{label}: {why}" for label, why in problems.items() if why)
    count = distinct_operating_points(usable)
    measurements.record(
        "dq_impedance_operating_points", count, "operating points", clause=points, low=points.value,
        fail_message=f"dq impedance data is usable at {count} distinct operating point(s); at least "
                     f"{points.value:g} are required" + (f" ({unusable})" if unusable else ""))
    measurements.verdict()


# ------------------------------------------------------------------ declared vs measured

@pytest.fixture(scope="module")
def energised_bench(bench_config, dc_source, grid_simulator, clock):
    energise_bench(bench_config, dc_source, grid_simulator, clock)


@pytest.fixture
def at_declared_initial_state(declared_response, energised_bench, bench_config, profile, pcs, clock):
    """The PCS at the response's initial P and Q, with the settings it is declared for."""
    if isinstance(declared_response, str):
        pytest.fail(declared_response)
    response: DeclaredResponse = declared_response
    s_rated_va = bench_config.pcs.s_rated_va
    run_pcs_at(pcs, clock, response.initial_p_pu * s_rated_va, s_rated_va)
    pcs.set_reactive_power_var(response.initial_q_pu * s_rated_va)
    _write_declared_settings(pcs, response)
    clock.wait(profile.setting("transparency.procedure")["settle_s"])
    if response.ramp_pu_per_s is not None:
        # set once at the initial state: the ramp governs the step, not the way to the start
        pcs.set_active_power_ramp_w_per_s(response.ramp_pu_per_s * s_rated_va)
    return response


def _write_declared_settings(pcs, response: DeclaredResponse) -> None:
    writers = {"k_factor": pcs.set_k_factor}
    unknown = sorted(set(response.settings) - set(writers))
    if unknown:
        pytest.fail(f"declared response {response.name}: the bench cannot write setting(s) {', '.join(unknown)}")
    for name, value in response.settings.items():
        writers[name](float(value))


def _stimulus(response: DeclaredResponse, pcs, pcs_cfg, procedure: dict):
    """The grid simulator's transient list, and the PCS command sent at its trigger (if any)."""
    if response.stimulus == "balanced_sag":
        return balanced_sag(response.sag_v_pu, response.sag_duration_s, pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz), None
    marker = [GridSegment(procedure["marker_segment_s"], (pcs_cfg.v_ln_nom_v,) * 3, pcs_cfg.f_nom_hz)]
    if response.stimulus == "active_power_step":
        return marker, lambda: pcs.set_active_power_w(response.final_p_pu * pcs_cfg.s_rated_va)
    return marker, lambda: pcs.set_reactive_power_var(response.final_q_pu * pcs_cfg.s_rated_va)


def test_T12_declared_response(at_declared_initial_state, bench_config, profile, grid_simulator, capture, pcs,
                               clock, measurements, run_folder, request):
    response: DeclaredResponse = at_declared_initial_state
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("transparency.procedure")
    rms_limit = profile.clause("transparency.response_error.rms.max", "pu")
    max_limit = profile.clause("transparency.response_error.max.max", "pu")
    package = _submission(profile)
    try:
        declared = read_declared_trace(package.path(response.file))
    except (OSError, ValueError) as exc:
        measurements.record(f"{response.name}_rms_error", None, "pu", clause=rms_limit, high=rms_limit.value,
                            fail_message=f"declared response {response.name} cannot be read: {exc}")
        measurements.verdict()
    start_s, end_s = declared.window_s

    # --- stimulus and capture: time zero is the trigger, the stimulus instant ----------
    segments, command = _stimulus(response, pcs, pcs_cfg, procedure)
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"],
                               duration_s=procedure["pretrigger_s"] + end_s + procedure["post_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    frame = capture_transient(capture, clock, grid_simulator, segments, settings, test_name=request.node.name,
                              capture_name="pcc_waveforms", metadata={"declared_response": response.name},
                              during=None if command is None else (0.0, command))

    # --- analysis -----------------------------------------------------------------
    sig = ride_through_signals(frame.index.to_numpy(), frame[PHASE_VOLTAGES].to_numpy().T,
                               frame[PHASE_CURRENTS].to_numpy().T, sample_rate_hz=settings.sample_rate_hz,
                               f_nominal_hz=pcs_cfg.f_nom_hz, v_ln_nom_v=pcs_cfg.v_ln_nom_v,
                               i_rated_a=pcs_cfg.i_rated_a)
    measured_pu = response_quantity_pu(response.quantity, p_w=sig.p_w, q_var=sig.q_var, iq_pu=sig.iq_pu,
                                       s_rated_va=pcs_cfg.s_rated_va)
    trace = pd.DataFrame({"value_pu": measured_pu}, index=pd.Index(sig.t_s, name="t_s"))
    trace.attrs.update({"units": {"value_pu": "pu"}, "quantity": response.quantity,
                        "time_reference": "t_s = 0 at the stimulus (grid simulator trigger)"})
    run_folder.save_capture(request.node.name, "measured_trace", trace)
    comparison = compare_with_declared(sig.t_s, measured_pu, declared, band_pu=max_limit.value)

    # --- judge --------------------------------------------------------------------
    first = comparison.first_beyond_band_s
    where = (f"they diverge most {comparison.worst_t_s:.3f} s after the stimulus (declared "
             f"{comparison.worst_declared_pu:.3f} pu, measured {comparison.worst_measured_pu:.3f} pu)"
             + ("" if first is None else f", first beyond ±{max_limit.value:g} pu at {first:.3f} s"))
    what = f"{response.description}: measured {response.quantity}"
    measurements.record(
        f"{response.name}_rms_error", comparison.rms_error_pu, "pu", clause=rms_limit, high=rms_limit.value,
        fail_message=f"{what} is {comparison.rms_error_pu:.3f} pu RMS from the declared response over "
                     f"{start_s:g}…{end_s:g} s; at most {rms_limit.value:g} pu is allowed; {where}")
    measurements.record(
        f"{response.name}_max_error", comparison.max_error_pu, "pu", clause=max_limit, high=max_limit.value,
        fail_message=f"{what} departs from the declared response by up to {comparison.max_error_pu:.3f} pu; "
                     f"at most {max_limit.value:g} pu is allowed; {where}")
    measurements.record(f"{response.name}_worst_divergence_time", comparison.worst_t_s, "s")
    measurements.record(f"{response.name}_first_beyond_band_time", first, "s")

    # --- evidence plot --------------------------------------------------------------
    in_window = (sig.t_s >= start_s) & (sig.t_s <= end_s)
    plot = DeclaredVsMeasuredPlot(
        title=f"T12 declared vs measured, {response.name} ({profile.id})\n{response.description}",
        quantity_label=QUANTITY_LABELS[response.quantity], measured_t_s=sig.t_s[in_window],
        measured_pu=measured_pu[in_window], comparison=comparison, band_pu=max_limit.value,
        stimulus_span_s=(0.0, response.sag_duration_s) if response.sag_duration_s else None)
    measurements.plots.append(plot_declared_vs_measured(plot, run_folder.plot_path(request.node.name,
                                                                                  "declared_vs_measured")))
    measurements.verdict()
