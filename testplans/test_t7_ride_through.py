"""T7 — Ride-through: low-voltage sags (balanced and unbalanced) and high-voltage swells; and the
grid events of the same test: off-nominal frequency (LF/HF), RoCoF ramps, phase-angle jumps.

Procedure, for each test point of the profile (voltage, duration, faulted phases):
  setup    the PCS exports its pre-fault power with the profile's trip settings written to it;
  stimulus the grid simulator takes the faulted phases (all three unless the point names some)
           to the point's voltage for the duration, then returns to nominal; its trigger output
           starts the oscilloscope. The ride-through region is the one of the point's voltage
           (the lowest phase for a sag, the highest for a swell);
  capture  per-phase PCC voltage and PCS current with pre-trigger, kept on disk;
  judge    it stays connected; in mandatory operation its current never ceases; reactive
           current is injected within the profile's response time (where the profile asks
           for it); active power recovers within the profile's time after the voltage returns.
Grid events (each point from the profile's frt / rocof / phase_jump sections):
  frequency  the grid simulator ramps to the point's frequency, holds it, ramps back; the PCS,
             its frequency droop written from the profile, stays connected and in current and
             settles at the power the droop asks for;
  RoCoF      nominal -> the point's frequency -> nominal at the profile's rate (frequency droop
             off, restored after): stays connected, keeps its power (its PLL follows), recovers;
  jump       all phases (or one) jump by the profile's angle, held, then jump back: stays
             connected, ceases for no longer than allowed, the power settles after each jump.
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest

from bench.analysis import frequency_hz, rocof_hz_per_s
from bench.capture import CaptureSettings
from bench.plots import LevelMarker, RideThroughPlot, TimeMarker, plot_ride_through
from bench.plugin import PROFILE_KEY
from bench.procedures import (PHASE_CURRENTS, PHASE_VOLTAGES, capture_transient, energise_bench,
                              frequency_excursion, phase_jump_event, run_pcs_at, voltage_event, write_ride_through)
from bench.ride_through import (applied_rocof_hz_per_s, frequency_bands, frequency_watt_expected_pu,
                                grid_event_figures, mean_frequency_between, phase_change_deg, ride_through_signals,
                                sag_figures, settling_time_s)
from dut.errors import NotSupportedByPcs
from dut.pcs import FrequencyDroopSettings

pytestmark = pytest.mark.test_id("T7")


@dataclass(frozen=True)
class RideThroughPoint:
    v_pu: float            # the faulted phases' voltage during the event
    duration_s: float
    phases: str = "ABC"

    @property
    def label(self) -> str:
        faulted = "" if self.phases == "ABC" else f"-{self.phases}"
        return f"{self.v_pu:.2f}pu-{self.duration_s:g}s{faulted}"


@dataclass(frozen=True)
class FrequencyPoint:
    f_hz: float            # held for duration_s
    duration_s: float

    @property
    def label(self) -> str:
        return f"{self.f_hz:.2f}Hz-{self.duration_s:g}s"


@dataclass(frozen=True)
class RocofPoint:
    to_hz: float           # nominal -> to_hz -> nominal at the profile's RoCoF
    hold_s: float

    @property
    def label(self) -> str:
        return f"to-{self.to_hz:.2f}Hz"


@dataclass(frozen=True)
class PhaseJumpPoint:
    kind: str              # "positive_sequence" (all phases) | "single_phase"
    phase: str = "A"       # the phase that jumps alone
    direction: str = "lead"    # "lead" | "lag"

    @property
    def label(self) -> str:
        who = "positive-sequence" if self.kind == "positive_sequence" else f"phase-{self.phase}"
        return f"{who}-{self.direction}"


JUMP_KINDS = ("positive_sequence", "single_phase")


def _points(profile, section: str) -> list[RideThroughPoint]:
    if not profile.has(f"{section}.test_points"):
        return []
    return [RideThroughPoint(float(p["v_pu"]), float(p["duration_s"]), str(p.get("phases", "ABC")))
            for p in profile.setting(f"{section}.test_points")]


def _event_points(profile, fixture: str) -> list:
    if fixture == "frequency_point" and profile.has("frt.test_points"):
        return [FrequencyPoint(float(p["f_hz"]), float(p["duration_s"])) for p in profile.setting("frt.test_points")]
    if fixture == "rocof_point" and profile.has("rocof.test_points"):
        return [RocofPoint(float(p["to_hz"]), float(p["hold_s"])) for p in profile.setting("rocof.test_points")]
    if fixture == "jump_point" and profile.has("phase_jump.test_points"):
        points = []
        for index, p in enumerate(profile.setting("phase_jump.test_points")):
            point = PhaseJumpPoint(str(p.get("kind", "")), str(p.get("phase", "A")), str(p.get("direction", "lead")))
            if point.kind not in JUMP_KINDS or point.phase not in "ABC" or len(point.phase) != 1 \
                    or point.direction not in ("lead", "lag"):
                raise ValueError(f"profile {profile.id}: phase_jump.test_points[{index}] = {p!r}: kind must be one of "
                                 f"{', '.join(JUMP_KINDS)}, phase one of A, B, C, direction lead or lag")
            points.append(point)
        return points
    return []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    profile = metafunc.config.stash[PROFILE_KEY]
    for fixture, section in (("sag", "lvrt"), ("swell", "hvrt")):
        if fixture in metafunc.fixturenames:
            points = _points(profile, section)
            metafunc.parametrize(fixture, points, ids=[p.label for p in points])
    for fixture in ("frequency_point", "rocof_point", "jump_point"):
        if fixture in metafunc.fixturenames:
            points = _event_points(profile, fixture)
            metafunc.parametrize(fixture, points, ids=[p.label for p in points])


@pytest.fixture(scope="module")
def energised_bench(bench_config, dc_source, grid_simulator, pcs, clock, profile):
    """DC source and grid at nominal, the profile's ride-through settings in the PCS."""
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    procedure = profile.setting("lvrt.procedure")
    write_ride_through(pcs, procedure, profile.setting("hvrt.procedure") if profile.has("hvrt.procedure") else None)
    return procedure


@pytest.fixture
def exporting_pcs(energised_bench, bench_config, pcs, clock):
    """The PCS running at the pre-fault power, restarted if an earlier point tripped it."""
    procedure = energised_bench
    p_w = procedure["pre_fault_p_pu"] * bench_config.pcs.s_rated_va
    run_pcs_at(pcs, clock, p_w, bench_config.pcs.s_rated_va)
    clock.wait(procedure["settle_s"])
    return p_w


def test_T7_lvrt_sag(sag: RideThroughPoint, exporting_pcs, bench_config, profile, grid_simulator, capture,
                     pcs, clock, measurements, run_folder, request):
    ride_through_test(sag, "lvrt", "sag", bench_config, profile, grid_simulator, capture, pcs, clock,
                      measurements, run_folder, request)


def test_T7_hvrt_swell(swell: RideThroughPoint, exporting_pcs, bench_config, profile, grid_simulator, capture,
                       pcs, clock, measurements, run_folder, request):
    ride_through_test(swell, "hvrt", "swell", bench_config, profile, grid_simulator, capture, pcs, clock,
                      measurements, run_folder, request)


def ride_through_test(point: RideThroughPoint, section: str, event: str, bench_config, profile, grid_simulator,
                      capture, pcs, clock, measurements, run_folder, request) -> None:
    """One ride-through event: stimulus, capture, judge. Behaviour clauses (current ceased,
    stability, power recovery, reactive current) are shared by sags and swells (lvrt.*)."""
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("lvrt.procedure")
    region = profile.region_for(f"{section}.regions", point.v_pu)
    if region is None:
        pytest.fail(f"profile {profile.id}: no {section} region covers {point.v_pu} pu")
    if point.duration_s > region.duration_s + 1e-9:
        pytest.fail(f"profile {profile.id}: test point {point.label} lasts longer than its region "
                    f"({region.duration_s:g} s)")

    # --- stimulus and capture ------------------------------------------------------
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"],
                               duration_s=procedure["pretrigger_s"] + point.duration_s + procedure["post_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    frame = capture_transient(
        capture, clock, grid_simulator,
        voltage_event(point.v_pu, point.duration_s, pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz, point.phases), settings,
        test_name=request.node.name, capture_name="pcc_waveforms", metadata={"test_point": point.label})
    after = pcs.telemetry()

    # --- analysis -----------------------------------------------------------------
    window_s = 1.0 / pcs_cfg.f_nom_hz
    t_s = frame.index.to_numpy()
    sig = ride_through_signals(t_s, frame[PHASE_VOLTAGES].to_numpy().T, frame[PHASE_CURRENTS].to_numpy().T,
                               sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                               v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)
    ceased_below = profile.clause("lvrt.current_ceased_below", "pu")
    recovery_fraction = profile.clause("lvrt.power_recovery.fraction", "pu")
    recovery_within = profile.clause("lvrt.power_recovery.within", "s")
    fig = sag_figures(sig, sag_duration_s=point.duration_s, window_s=window_s,
                      ceased_below_pu=ceased_below.value, recovery_fraction=recovery_fraction.value)

    # --- judge --------------------------------------------------------------------
    measurements.record("residual_voltage_pcc", fig.residual_v_pu, "pu")
    stability = profile.clause("lvrt.stability.max_voltage_swing", "pu")
    measurements.record(
        f"voltage_swing_during_{event}", fig.v_swing_pu, "pu", clause=stability, high=stability.value,
        fail_message=f"the PCC voltage swung by ±{fig.v_swing_pu:.3f} pu during the second half of the "
                     f"{point.v_pu:.2f} pu {event} (loss of synchronism or sustained oscillation); "
                     f"at most ±{stability.value:g} pu is allowed")
    if region.kind == "mandatory_operation":
        observed_s = point.duration_s + procedure["post_s"]
        continuous_s = fig.current_ceased_at_s if fig.current_ceased_at_s is not None else observed_s
        measurements.record(
            "continuous_current", continuous_s, "s", clause=region.clause, low=observed_s,
            fail_message=f"current ceased {continuous_s * 1e3:.0f} ms into a {point.v_pu:.2f} pu {event}; "
                         f"mandatory operation requires continuous current for {region.duration_s:g} s")
        if section == "lvrt" and profile.has("lvrt.reactive_current"):
            gain = profile.clause("lvrt.reactive_current.min_gain", "pu/pu")
            response = profile.clause("lvrt.reactive_current.response_time", "cycles")
            required_delta_pu = gain.value * max(0.0, 1.0 - fig.residual_v_pu)
            measurements.record(
                "reactive_current_injection", fig.delta_iq_pu, "pu", clause=gain, low=required_delta_pu,
                fail_message=f"reactive current rose by {fig.delta_iq_pu:.3f} pu during a {fig.residual_v_pu:.2f} pu "
                             f"sag; at least {required_delta_pu:.3f} pu is required")
            measurements.record(
                "reactive_current_response_time", fig.iq_response_s, "s", clause=response,
                high=response.value / pcs_cfg.f_nom_hz,
                fail_message=("no reactive current response was seen" if fig.iq_response_s is None else
                              f"reactive current reached 90 % after {fig.iq_response_s * 1e3:.1f} ms") +
                             f"; required within {response.value:g} cycles ({response.value / pcs_cfg.f_nom_hz * 1e3:.1f} ms)")
    measurements.record(
        "stayed_connected", 0.0 if after.state in ("TRIPPED", "FAULT") else 1.0, "bool",
        clause=region.clause, low=1.0,
        fail_message=f"the PCS tripped during a {point.v_pu:.2f} pu {event} of {point.duration_s:g} s "
                     f"(state {after.state}); the region requires riding through for {region.duration_s:g} s")
    measurements.record(
        "active_power_recovery_time", fig.p_recovery_s, "s", clause=recovery_within, high=recovery_within.value,
        fail_message=("active power did not recover" if fig.p_recovery_s is None else
                      f"active power took {fig.p_recovery_s:.3f} s to recover") +
                     f" to {recovery_fraction.value:.0%} of the pre-fault {fig.pre_p_w / 1e3:.0f} kW after the voltage "
                     f"returned; required within {recovery_within.value:g} s")

    # --- evidence plot --------------------------------------------------------------
    markers = [TimeMarker(point.duration_s + recovery_within.value, "P recovery limit")]
    if section == "lvrt" and profile.has("lvrt.reactive_current") and region.kind == "mandatory_operation":
        markers.append(TimeMarker(response.value / pcs_cfg.f_nom_hz, "Iq response limit", "tab:purple"))
    plot = RideThroughPlot(
        title=f"T7 {section.upper()} {point.label} ({profile.id}, {region.kind.replace('_', ' ')})",
        t_s=t_s, v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
        i_phases={n: frame[n].to_numpy() for n in PHASE_CURRENTS},
        cycle_t_s=sig.t_s, p_w=sig.p_w, q_var=sig.q_var, disturbance_s=(0.0, point.duration_s),
        pu_traces={"V1 (pu)": sig.v_pu, "Id (pu)": sig.id_pu, "Iq (pu)": sig.iq_pu},
        time_markers=markers,
        level_markers=[LevelMarker("power", recovery_fraction.value * fig.pre_p_w / 1e3, "P recovery level"),
                       LevelMarker("pu", ceased_below.value, "current ceased below", "tab:gray")],
    )
    measurements.plots.append(plot_ride_through(plot, run_folder.plot_path(request.node.name, "ride_through")))
    measurements.verdict()


# ==================================================================================
# Grid events: frequency, RoCoF, phase-angle jump
# ==================================================================================

@contextmanager
def frequency_droop_written(pcs, settings: FrequencyDroopSettings | None):
    """The PCS's frequency droop as a point needs it (None: switched off), the PCS's own
    setting put back afterwards. A PCS without the function is left alone when the point
    wants it off, and refused (NotSupportedByPcs) when the point needs it."""
    try:
        previous = pcs.frequency_droop()
    except NotSupportedByPcs:
        if settings is not None:
            raise
        previous = None
    if previous is not None:
        pcs.set_frequency_droop(settings if settings is not None else
                                FrequencyDroopSettings(False, previous.deadband_hz, previous.droop_pct,
                                                       previous.response_time_s))
    try:
        yield
    finally:
        if previous is not None:
            pcs.set_frequency_droop(previous)


@contextmanager
def momentary_cessation_written(pcs, profile, hv_mom_cess_v_pu: float | None):
    """The ride-through settings of the T7 fixture with the point's own high-voltage
    momentary-cessation voltage (None: as they are), the fixture's put back afterwards."""
    if hv_mom_cess_v_pu is None:
        yield
        return
    lv = profile.setting("lvrt.procedure")
    hv = profile.setting("hvrt.procedure") if profile.has("hvrt.procedure") else None
    write_ride_through(pcs, lv, {**(hv or {}), "hv_mom_cess_v_pu": float(hv_mom_cess_v_pu)})
    try:
        yield
    finally:
        write_ride_through(pcs, lv, hv)


def _event_capture(grid_simulator, capture, clock, segments, procedure: dict, event_s: float, request,
                   metadata: dict):
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"],
                               duration_s=procedure["pretrigger_s"] + event_s + procedure["post_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    frame = capture_transient(capture, clock, grid_simulator, segments, settings, test_name=request.node.name,
                              capture_name="pcc_waveforms", metadata=metadata)
    return frame, settings


def _signals(frame, settings: CaptureSettings, pcs_cfg):
    t_s = frame.index.to_numpy()
    v_abc = frame[PHASE_VOLTAGES].to_numpy().T
    sig = ride_through_signals(t_s, v_abc, frame[PHASE_CURRENTS].to_numpy().T,
                               sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                               v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)
    freq = frequency_hz(*v_abc, settings.sample_rate_hz, pcs_cfg.f_nom_hz, step_fraction=0.25, t0_s=float(t_s[0]))
    return t_s, sig, freq


def _record_continuity(measurements, figures, observed_s: float, clause, what: str) -> None:
    continuous_s = figures.current_ceased_at_s if figures.current_ceased_at_s is not None else observed_s
    measurements.record(
        "continuous_current", continuous_s, "s", clause=clause, low=observed_s,
        fail_message=f"current ceased {continuous_s:.3f} s into {what}; the PCS must keep injecting "
                     f"current through it")


def _record_stayed_connected(measurements, pcs, clause, what: str) -> None:
    state = pcs.telemetry().state
    measurements.record(
        "stayed_connected", 0.0 if state in ("TRIPPED", "FAULT") else 1.0, "bool", clause=clause, low=1.0,
        fail_message=f"the PCS tripped during {what} (state {state}, alarms: {', '.join(pcs.alarms()) or 'none'}); "
                     f"it must ride through")


def _plot(measurements, run_folder, request, title: str, t_s, frame, sig, freq, f_nom_hz: float,
          disturbance_s: tuple[float, float], markers: list, levels: list) -> None:
    f_on_cycles = np.interp(sig.t_s, freq.t_s, freq.f_hz)
    plot = RideThroughPlot(
        title=title, t_s=t_s, v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
        i_phases={n: frame[n].to_numpy() for n in PHASE_CURRENTS}, cycle_t_s=sig.t_s, p_w=sig.p_w,
        q_var=sig.q_var, disturbance_s=disturbance_s,
        pu_traces={"V1 (pu)": sig.v_pu, "I1 (pu)": sig.i_pu, "f - f_nom (Hz)": f_on_cycles - f_nom_hz},
        time_markers=markers, level_markers=levels)
    measurements.plots.append(plot_ride_through(plot, run_folder.plot_path(request.node.name, "grid_event")))


def test_T7_frequency_ride_through(frequency_point: FrequencyPoint, energised_bench, bench_config, profile,
                                   grid_simulator, capture, pcs, clock, measurements, run_folder, request):
    """Off-nominal frequency held for the point's duration: no trip, current all through, and the
    frequency droop's power."""
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("frt.procedure")
    band = next((b for b in frequency_bands(profile, "frt.bands") if b.contains(frequency_point.f_hz)), None)
    if band is None:
        pytest.fail(f"profile {profile.id}: no frt.bands entry covers {frequency_point.f_hz} Hz")
    if frequency_point.duration_s > band.duration_s + 1e-9:
        pytest.fail(f"profile {profile.id}: frequency point {frequency_point.label} lasts longer than its band "
                    f"({band.duration_s:g} s)")
    deadband = profile.clause("frt.frequency_watt.deadband", "Hz")
    droop = profile.clause("frt.frequency_watt.droop", "%")
    response = profile.clause("frt.frequency_watt.response_time", "s")
    tolerance = profile.clause("frt.frequency_watt.tolerance", "pu")
    settle_window_s = float(procedure["settle_window_s"])
    if frequency_point.duration_s < settle_window_s + 2.0 * response.value:
        pytest.fail(f"profile {profile.id}: frequency point {frequency_point.label} holds too briefly for the "
                    f"{response.value:g} s frequency response to settle before frt.procedure.settle_window_s "
                    f"({settle_window_s:g} s): hold at least {settle_window_s + 2 * response.value:g} s")

    # --- stimulus and capture, with the profile's frequency droop written ----------------
    approach = float(procedure["approach_rocof_hz_per_s"])
    ramp_s = abs(frequency_point.f_hz - pcs_cfg.f_nom_hz) / approach
    hold_end_s = ramp_s + frequency_point.duration_s
    event_end_s = hold_end_s + ramp_s
    pre_p_w = procedure["pre_fault_p_pu"] * pcs_cfg.s_rated_va
    droop_settings = FrequencyDroopSettings(True, deadband.value, droop.value, response.value)
    with frequency_droop_written(pcs, droop_settings):
        run_pcs_at(pcs, clock, pre_p_w, pcs_cfg.s_rated_va)
        clock.wait(procedure["settle_s"])
        frame, settings = _event_capture(
            grid_simulator, capture, clock,
            frequency_excursion(frequency_point.f_hz, frequency_point.duration_s, pcs_cfg.v_ln_nom_v,
                                pcs_cfg.f_nom_hz, approach),
            procedure, event_end_s, request, {"test_point": frequency_point.label})
        _record_stayed_connected(measurements, pcs, band.clause,
                                 f"{frequency_point.duration_s:g} s at {frequency_point.f_hz:g} Hz")
        # the droop's response fades back to the setpoint (three response times) before the
        # next point starts from a settled PCS
        clock.wait(max(3.0 * response.value - procedure["post_s"], 0.0))

    # --- analysis and judgement ----------------------------------------------------------
    t_s, sig, freq = _signals(frame, settings, pcs_cfg)
    window_s = 1.0 / pcs_cfg.f_nom_hz
    ceased_below = profile.clause("lvrt.current_ceased_below", "pu")
    figures = grid_event_figures(sig, event_end_s=event_end_s, window_s=window_s,
                                 ceased_below_pu=ceased_below.value, recovery_fraction=1.0)
    late = (hold_end_s - settle_window_s, hold_end_s)
    held_hz = mean_frequency_between(freq, *late)
    measurements.record(
        "held_frequency", held_hz, "Hz", clause=band.clause, low=band.f_min_hz, high=band.f_max_hz,
        fail_message=f"the PCC frequency was {held_hz:.3f} Hz at the end of the hold, outside the band "
                     f"{band.f_min_hz:g}–{band.f_max_hz:g} Hz the point tests (the stimulus did not hold it)")
    if band.kind == "mandatory_operation":
        _record_continuity(measurements, figures, event_end_s + procedure["post_s"], band.clause,
                           f"{frequency_point.duration_s:g} s at {frequency_point.f_hz:g} Hz")
    expected_pu = frequency_watt_expected_pu(held_hz, pcs_cfg.f_nom_hz, deadband.value, droop.value,
                                             figures.pre_p_w / pcs_cfg.s_rated_va)
    settled_pu = float(np.mean(sig.p_w[(sig.t_s >= late[0]) & (sig.t_s <= late[1])])) / pcs_cfg.s_rated_va
    measurements.record("frequency_response_expected", expected_pu, "pu")
    measurements.record(
        "frequency_response_error", settled_pu - expected_pu, "pu", clause=tolerance,
        low=-tolerance.value, high=tolerance.value,
        fail_message=f"active power settled at {settled_pu:.3f} pu at {held_hz:.3f} Hz; a {droop.value:g} % droop "
                     f"with a {deadband.value:g} Hz deadband from {figures.pre_p_w / pcs_cfg.s_rated_va:.3f} pu asks "
                     f"for {expected_pu:.3f} pu (±{tolerance.value:g} pu)")

    _plot(measurements, run_folder, request,
          f"T7 frequency {frequency_point.label} ({profile.id}, {band.kind.replace('_', ' ')})",
          t_s, frame, sig, freq, pcs_cfg.f_nom_hz, (0.0, event_end_s),
          [TimeMarker(late[0], "settled window"), TimeMarker(hold_end_s, "ramp back", "tab:gray")],
          [LevelMarker("power", expected_pu * pcs_cfg.s_rated_va / 1e3, "droop's power")])
    measurements.verdict()


def test_T7_rocof(rocof_point: RocofPoint, energised_bench, bench_config, profile, grid_simulator, capture, pcs,
                  clock, measurements, run_folder, request):
    """A frequency ramp at the profile's RoCoF there and back: no trip, current and power all through."""
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("rocof.procedure")
    required = profile.clause("rocof.ride_through", "Hz/s")
    applied_min = profile.clause("rocof.applied.min_fraction", "pu")
    power_min = profile.clause("rocof.power.min_fraction", "pu")
    recovery_fraction = profile.clause("lvrt.power_recovery.fraction", "pu")
    recovery_within = profile.clause("lvrt.power_recovery.within", "s")
    ramp_s = abs(rocof_point.to_hz - pcs_cfg.f_nom_hz) / required.value
    event_end_s = 2.0 * ramp_s + rocof_point.hold_s
    what = (f"a {required.value:g} Hz/s ramp to {rocof_point.to_hz:g} Hz and back")

    with frequency_droop_written(pcs, None):
        run_pcs_at(pcs, clock, procedure["pre_fault_p_pu"] * pcs_cfg.s_rated_va, pcs_cfg.s_rated_va)
        clock.wait(procedure["settle_s"])
        frame, settings = _event_capture(
            grid_simulator, capture, clock,
            frequency_excursion(rocof_point.to_hz, rocof_point.hold_s, pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz,
                                required.value),
            procedure, event_end_s, request, {"test_point": rocof_point.label})
        _record_stayed_connected(measurements, pcs, required, what)

    t_s, sig, freq = _signals(frame, settings, pcs_cfg)
    window_s = 1.0 / pcs_cfg.f_nom_hz
    rocof = rocof_hz_per_s(freq.t_s, freq.f_hz, window_s=min(5 * window_s, ramp_s / 2))
    applied = applied_rocof_hz_per_s(rocof, 0.0, ramp_s)
    measurements.record(
        "applied_rocof", applied, "Hz/s", clause=applied_min, low=applied_min.value * required.value,
        fail_message=f"the ramp measured at the PCC ran at {applied:.3f} Hz/s; the point needs "
                     f"{required.value:g} Hz/s (at least {applied_min.value:.0%} of it)")
    ceased_below = profile.clause("lvrt.current_ceased_below", "pu")
    figures = grid_event_figures(sig, event_end_s=event_end_s, window_s=window_s,
                                 ceased_below_pu=ceased_below.value, recovery_fraction=recovery_fraction.value)
    _record_continuity(measurements, figures, event_end_s + procedure["post_s"], required, what)
    lowest = figures.p_min_w / figures.pre_p_w if figures.pre_p_w > 0 else 0.0
    measurements.record(
        "lowest_active_power_during_ramp", lowest, "pu of pre-event", clause=power_min, low=power_min.value,
        fail_message=f"active power fell to {lowest:.0%} of the pre-event {figures.pre_p_w / 1e3:.0f} kW during {what} "
                     f"(its PLL did not follow); at least {power_min.value:.0%} is required")
    measurements.record(
        "active_power_recovery_time", figures.p_recovery_s, "s", clause=recovery_within, high=recovery_within.value,
        fail_message=("active power did not recover" if figures.p_recovery_s is None else
                      f"active power took {figures.p_recovery_s:.3f} s to recover") +
                     f" to {recovery_fraction.value:.0%} of pre-event after {what}; required within "
                     f"{recovery_within.value:g} s")

    _plot(measurements, run_folder, request, f"T7 RoCoF {required.value:g} Hz/s {rocof_point.label} ({profile.id})",
          t_s, frame, sig, freq, pcs_cfg.f_nom_hz, (0.0, event_end_s),
          [TimeMarker(event_end_s + recovery_within.value, "P recovery limit")],
          [LevelMarker("power", power_min.value * figures.pre_p_w / 1e3, "lowest allowed P")])
    measurements.verdict()


def test_T7_phase_jump(jump_point: PhaseJumpPoint, energised_bench, bench_config, profile, grid_simulator, capture,
                       pcs, clock, measurements, run_folder, request):
    """All phases (or one) jump, hold, and jump back: no trip, a short cessation at most, settled power."""
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("phase_jump.procedure")
    size = profile.clause(f"phase_jump.{jump_point.kind}", "deg")
    cessation_max = profile.clause("phase_jump.cessation.max", "s")
    band = profile.clause("phase_jump.settling.band", "pu")
    within = profile.clause("phase_jump.settling.within", "s")
    angle = size.value if jump_point.direction == "lead" else -size.value
    shift = (angle,) * 3 if jump_point.kind == "positive_sequence" else \
        tuple(angle if name == jump_point.phase else 0.0 for name in "ABC")
    hold_s = float(procedure["hold_s"])
    what = f"a {angle:+g} deg jump of {'all phases' if jump_point.kind == 'positive_sequence' else 'phase ' + jump_point.phase}"

    with frequency_droop_written(pcs, None), \
            momentary_cessation_written(pcs, profile, procedure.get("hv_mom_cess_v_pu")):
        run_pcs_at(pcs, clock, procedure["pre_fault_p_pu"] * pcs_cfg.s_rated_va, pcs_cfg.s_rated_va)
        clock.wait(procedure["settle_s"])
        frame, settings = _event_capture(
            grid_simulator, capture, clock, phase_jump_event(shift, hold_s, pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz),
            procedure, hold_s, request, {"test_point": jump_point.label})
        _record_stayed_connected(measurements, pcs, size, what)

    t_s, sig, freq = _signals(frame, settings, pcs_cfg)
    window_s = 1.0 / pcs_cfg.f_nom_hz
    ceased_below = profile.clause("lvrt.current_ceased_below", "pu")
    figures = grid_event_figures(sig, event_end_s=hold_s, window_s=window_s, ceased_below_pu=ceased_below.value,
                                 recovery_fraction=0.0)
    reference_s = min(0.2, hold_s / 4.0)
    measurements.record("pcc_phase_jump", phase_change_deg(sig, (-reference_s, -window_s),
                                                           (hold_s - reference_s, hold_s - window_s)), "deg")
    measurements.record(
        "current_ceased_total", figures.ceased_total_s, "s", clause=cessation_max, high=cessation_max.value,
        fail_message=f"current ceased for {figures.ceased_total_s:.3f} s in all after {what} and the jump back; "
                     f"momentary cessation of at most {cessation_max.value:g} s is allowed")
    band_w = band.value * pcs_cfg.s_rated_va
    end_s = float(sig.t_s[-1])
    # each response up to a cycle before the next event (the one-cycle windows would see it)
    for name, start_s, stop_s in (("after_jump", 0.0, hold_s - window_s), ("after_jump_back", hold_s, end_s)):
        final = float(np.mean(sig.p_w[(sig.t_s >= stop_s - reference_s) & (sig.t_s <= stop_s)]))
        settled = settling_time_s(sig.t_s, sig.p_w, start_s, stop_s, final, band_w)
        measurements.record(
            f"power_settling_time_{name}", settled, "s", clause=within, high=within.value,
            fail_message=("active power had not settled" if settled is None else
                          f"active power took {settled:.3f} s to settle") +
                         f" within ±{band.value:g} pu of {final / 1e3:.0f} kW {name.replace('_', ' ')} ({what}); "
                         f"a positively damped response settles within {within.value:g} s")

    _plot(measurements, run_folder, request, f"T7 phase jump {jump_point.label} {angle:+g} deg ({profile.id})",
          t_s, frame, sig, freq, pcs_cfg.f_nom_hz, (0.0, hold_s),
          [TimeMarker(within.value, "settling limit"), TimeMarker(hold_s + within.value, "settling limit", "tab:gray")],
          [LevelMarker("pu", ceased_below.value, "current ceased below", "tab:gray")])
    measurements.verdict()
