"""T10 — Black start: the PCS energises a dead bus, then carries load steps 10 → 25 → 50 %.

Procedure:
  setup    DC source on; the grid simulator's output off and the PCS's PCC breaker open (a dead
           bus); the PCS OFF in grid-forming droop mode with the profile's droops; the first
           load step (resistive, constant impedance) switched onto the dead bus;
  stimulus black start; then, once energised, each further load step of the profile;
  capture  per-phase bus voltage and PCS current, the scope started by the signal itself: the
           bus voltage rising through a level (energising), the phase-A current rising past
           the midpoint of its before and after peaks (a step; t = 0 is then within one cycle
           after the step, so the step is placed one cycle before the trigger);
  judge    energising: voltage overshoot above nominal and the settled voltage; each step:
           voltage dip and rise, frequency dip, voltage and frequency recovery time
           (definitions: bench/islanded.py).
Every limit comes from the profile; the report names the clause that judged it.
Afterwards the PCS is stopped, set back to grid following and the grid reconnected.
"""
from __future__ import annotations

import math

import pytest

from bench.capture import CaptureSettings
from bench.edge_capture import capture_on_edge
from bench.island_procedures import RUNNING, back_to_grid_following, black_start, make_dead_bus
from bench.islanded import BusSignals, bus_signals, energising_figures, load_step_figures
from bench.islanded_plot import IslandPlot, plot_island
from bench.plots import LevelMarker, TimeMarker
from bench.plugin import profile_procedure
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES

pytestmark = [pytest.mark.test_id("T10"), pytest.mark.profile_sections("black_start")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "load_step" in metafunc.fixturenames:
        steps_pu = profile_procedure(metafunc, "load_step", "black_start.procedure.load_steps_pu")
        if steps_pu is None:
            return
        pairs = list(zip(steps_pu[:-1], steps_pu[1:]))
        metafunc.parametrize("load_step", pairs, ids=[f"{a:.0%}-to-{b:.0%}" for a, b in pairs])


@pytest.fixture(scope="module")
def dead_bus(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, profile):
    """A dead bus with the first load step on it; afterwards the bench as other plans expect it."""
    procedure = profile.setting("black_start.procedure")
    # the first step's load goes on first: the bus then discharges through it once the grid is gone
    set_resistive_load(ac_load, bench_config, procedure["load_steps_pu"][0])
    make_dead_bus(bench_config, dc_source, grid_simulator, pcs, clock, control_mode=procedure["control_mode"],
                  droop_f_pct=procedure["droop_f_pct"], droop_v_pct=procedure["droop_v_pct"],
                  settle_s=procedure["dead_bus_settle_s"])
    yield procedure
    back_to_grid_following(bench_config, grid_simulator, ac_load, pcs, clock, settle_s=procedure["restore_settle_s"])


def set_resistive_load(ac_load, bench_config, p_pu: float) -> None:
    ac_load.set_rlc_load(p_pu * bench_config.pcs.s_rated_va, 0.0, 0.0, v_ln_nominal_v=bench_config.pcs.v_ln_nom_v)


def signals_of(frame, settings: CaptureSettings, bench_config) -> BusSignals:
    pcs_cfg = bench_config.pcs
    return bus_signals(frame.index.to_numpy(), frame[PHASE_VOLTAGES].to_numpy().T, frame[PHASE_CURRENTS].to_numpy().T,
                       sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                       v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)


def island_plot(title: str, frame, sig: BusSignals, **kwargs) -> IslandPlot:
    return IslandPlot(title=title, t_s=frame.index.to_numpy(), v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
                      i_phases={n: frame[n].to_numpy() for n in PHASE_CURRENTS}, cycle_t_s=sig.t_s, v_pu=sig.v_pu,
                      f_hz=sig.f_hz, current_pu={"|I1| PCS (pu)": sig.i_pu}, **kwargs)


def test_T10_energise_dead_bus(dead_bus, bench_config, profile, capture, pcs, clock, measurements, run_folder,
                               request):
    procedure = dead_bus
    pcs_cfg = bench_config.pcs
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["energise_record_s"],
                               pretrigger_s=procedure["energise_pretrigger_s"])
    level_v = procedure["energise_trigger_pu"] * math.sqrt(2.0) * pcs_cfg.v_ln_nom_v
    frame = capture_on_edge(
        capture, clock, settings, PHASE_VOLTAGES + PHASE_CURRENTS, trigger_on="v_a", level=level_v, slope="rise",
        stimulus=lambda: black_start(pcs, clock, timeout_s=procedure["start_timeout_s"]),
        test_name=request.node.name, capture_name="energising", metadata={"load_pu": procedure["load_steps_pu"][0]})
    after = pcs.telemetry()

    sig = signals_of(frame, settings, bench_config)
    end_s = float(sig.t_s[-1])
    fig = energising_figures(sig, end_s=end_s, settled_window_s=procedure["final_s"])

    overshoot = profile.clause("black_start.energising_overshoot.max", "pu")
    tolerance = profile.clause("black_start.energised_voltage.tolerance", "pu")
    measurements.record("energising_rise_time", fig.rise_time_s, "s")
    measurements.record("energised_frequency", fig.settled_f_hz, "Hz")
    measurements.record(
        "energising_voltage_overshoot", fig.overshoot_pu, "pu", clause=overshoot, high=overshoot.value,
        fail_message=f"energising the dead bus, the positive-sequence voltage peaked at {fig.peak_v_pu:.3f} pu "
                     f"({fig.overshoot_pu:.3f} pu above nominal); at most {overshoot.value:g} pu above nominal "
                     f"is allowed")
    measurements.record(
        "energised_voltage", fig.settled_v_pu, "pu", clause=tolerance, low=1.0 - tolerance.value,
        high=1.0 + tolerance.value,
        fail_message=f"the energised bus settled at {fig.settled_v_pu:.3f} pu; 1 ± {tolerance.value:g} pu is required")
    measurements.record(
        "running_after_black_start", 1.0 if after.state == RUNNING else 0.0, "bool", low=1.0,
        fail_message=f"after the black start the PCS reports {after.state} ({after.trip_reason or 'no trip reason'})")

    markers = [TimeMarker(fig.energised_at_s, "energising starts", "tab:gray")] if fig.energised_at_s is not None else []
    plot = island_plot(f"T10 black start onto {procedure['load_steps_pu'][0]:.0%} load ({profile.id})", frame, sig,
                       time_markers=markers,
                       level_markers=[LevelMarker("voltage_pu", 1.0 + overshoot.value, "overshoot limit"),
                                      LevelMarker("voltage_pu", 1.0, "nominal", "black")])
    measurements.plots.append(plot_island(plot, run_folder.plot_path(request.node.name, "black_start")))
    measurements.verdict()


@pytest.fixture
def energised_island(dead_bus, load_step, pcs, clock, ac_load, bench_config):
    """The bus energised and carrying this step's starting load."""
    procedure = dead_bus
    state = pcs.telemetry().state
    if state != RUNNING:
        pytest.fail(f"the bus is not energised (PCS {state}): the black start did not succeed, no load step")
    set_resistive_load(ac_load, bench_config, load_step[0])
    clock.wait(procedure["step_settle_s"])
    return procedure


def test_T10_load_step(load_step, energised_island, bench_config, profile, capture, ac_load, pcs, clock,
                       measurements, run_folder, request):
    procedure = energised_island
    pcs_cfg = bench_config.pcs
    from_pu, to_pu = load_step
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["step_record_s"],
                               pretrigger_s=procedure["step_pretrigger_s"])
    # phase-A current peak before and after a resistive step at nominal voltage
    peak_a = [math.sqrt(2.0) * p * pcs_cfg.s_rated_va / (3.0 * pcs_cfg.v_ln_nom_v) for p in (from_pu, to_pu)]
    frame = capture_on_edge(
        capture, clock, settings, PHASE_VOLTAGES + PHASE_CURRENTS, trigger_on="i_a", level=sum(peak_a) / 2,
        slope="rise", stimulus=lambda: set_resistive_load(ac_load, bench_config, to_pu),
        test_name=request.node.name, capture_name="load_step", metadata={"from_pu": from_pu, "to_pu": to_pu})
    after = pcs.telemetry()

    window_s = 1.0 / pcs_cfg.f_nom_hz
    sig = signals_of(frame, settings, bench_config)
    step_at_s = -window_s              # the current trigger fires within one cycle of the step
    v_band = profile.clause("black_start.recovery_band.voltage", "pu")
    f_band = profile.clause("black_start.recovery_band.frequency", "Hz")
    fig = load_step_figures(sig, step_at_s=step_at_s, end_s=float(sig.t_s[-1]), pre_s=procedure["pre_s"],
                            final_s=procedure["final_s"], v_band_pu=v_band.value, f_band_hz=f_band.value,
                            fit_window_s=procedure["fit_window_s"], window_s=window_s)

    label = f"the {from_pu:.0%} → {to_pu:.0%} load step"
    observed_s = float(sig.t_s[-1]) - step_at_s
    v_dip = profile.clause("black_start.load_step.voltage_dip.max", "pu")
    v_rise = profile.clause("black_start.load_step.voltage_rise.max", "pu")
    f_dip = profile.clause("black_start.load_step.frequency_dip.max", "% of nominal")
    v_rec = profile.clause("black_start.load_step.voltage_recovery.max", "s")
    f_rec = profile.clause("black_start.load_step.frequency_recovery.max", "s")
    f_dip_pct = -100.0 * fig.f_dip_hz / pcs_cfg.f_nom_hz
    measurements.record("voltage_before_step", fig.v_initial_pu, "pu")
    measurements.record("frequency_before_step", fig.f_initial_hz, "Hz")
    measurements.record("frequency_after_step", fig.f_final_hz, "Hz")
    measurements.record(
        "voltage_dip", -fig.v_dip_pu, "pu", clause=v_dip, high=v_dip.value,
        fail_message=f"the bus voltage dipped by {-fig.v_dip_pu:.3f} pu on {label} (from {fig.v_initial_pu:.3f} pu); "
                     f"at most {v_dip.value:g} pu is allowed")
    measurements.record(
        "voltage_rise", fig.v_rise_pu, "pu", clause=v_rise, high=v_rise.value,
        fail_message=f"the bus voltage rose by {fig.v_rise_pu:.3f} pu after {label}; at most {v_rise.value:g} pu "
                     f"is allowed")
    measurements.record(
        "frequency_dip", f_dip_pct, "% of nominal", clause=f_dip, high=f_dip.value,
        fail_message=f"the bus frequency dipped by {f_dip_pct:.2f} % of nominal on {label}; at most "
                     f"{f_dip.value:g} % is allowed")
    for name, value, clause, what, band in (
            ("voltage_recovery_time", fig.v_recovery_s, v_rec, "voltage", f"±{v_band.value:g} pu"),
            ("frequency_recovery_time", fig.f_recovery_s, f_rec, "frequency", f"±{f_band.value:g} Hz")):
        measurements.record(
            name, value, "s", clause=clause, high=clause.value,
            fail_message=(f"the {what} had not recovered ({band} of its settled value) {observed_s:.1f} s after "
                          if value is None else f"the {what} took {value:.2f} s to recover ({band}) after ")
                         + f"{label}; at most {clause.value:g} s is allowed")
    measurements.record(
        "running_after_step", 1.0 if after.state == RUNNING else 0.0, "bool", low=1.0,
        fail_message=f"after {label} the PCS reports {after.state} ({after.trip_reason or 'no trip reason'})")

    plot = island_plot(f"T10 load step {from_pu:.0%} → {to_pu:.0%} of rating on the black-started island "
                       f"({profile.id})", frame, sig, shaded_s=(step_at_s, step_at_s + window_s),
                       time_markers=[TimeMarker(step_at_s + v_rec.value, "V recovery limit"),
                                     TimeMarker(step_at_s + f_rec.value, "f recovery limit", "tab:purple")],
                       level_markers=[LevelMarker("voltage_pu", fig.v_initial_pu - v_dip.value, "dip limit"),
                                      LevelMarker("voltage_pu", fig.v_initial_pu + v_rise.value, "rise limit"),
                                      LevelMarker("frequency", fig.f_initial_hz - f_dip.value / 100 * pcs_cfg.f_nom_hz,
                                                  "f dip limit")])
    measurements.plots.append(plot_island(plot, run_folder.plot_path(request.node.name, "load_step")))
    measurements.verdict()
