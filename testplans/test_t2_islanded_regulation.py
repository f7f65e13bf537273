"""T2 — Grid-adaptive voltage and frequency regulation, islanded.

Procedure:
  setup    a dead bus (grid simulator output off, PCC breaker open) with the RLC bank's base
           load (resistive) on it; the PCS black-starts it in grid-forming droop mode with the
           profile's droops;
  stimulus for each step of the profile (resistive, inductive, capacitive), from the base load,
           the bank adds the step's branch (constant impedance at nominal voltage). The bench's
           RLC load bank draws the steps, quantised to its contactors (the step actually drawn
           is recorded and judged); a bench without one uses its AC load's constant-impedance
           mode;
  capture  per-phase bus voltage and PCS current; the scope is started by the phase-A current
           rising past the midpoint of its before and after peaks (t = 0 within one cycle after
           the step, so the step is placed one cycle before the trigger);
  judge    voltage and frequency deviation from their pre-step values, settling time (both
           back within their bands around their settled values), and the damping ratio of the
           voltage oscillation after the step (no unstable or poorly damped ring; an
           oscillation too small to fit is recorded, not judged). Definitions: bench/islanded.py.
A bench without a load bank whose AC load cannot draw a step's branch (an electronic load
without a linear reactive mode) skips that step and says so; a bench with neither skips T2.
Every limit comes from the profile.
Afterwards the PCS is stopped, set back to grid following and the grid reconnected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from bench.capture import CaptureSettings
from bench.edge_capture import capture_on_edge
from bench.island_procedures import (RUNNING, RlcLoad, back_to_grid_following, black_start, island_rlc_load,
                                     make_dead_bus)
from bench.islanded import bus_signals, load_step_figures
from bench.islanded_plot import IslandPlot, plot_island
from bench.plots import LevelMarker, TimeMarker
from bench.plugin import profile_procedure
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES
from instruments.ac_load import LoadCapabilityError

pytestmark = [pytest.mark.test_id("T2"), pytest.mark.profile_sections("islanded_regulation")]


@dataclass(frozen=True)
class BankStep:
    kind: str               # "resistive" | "inductive" | "capacitive"
    size_pu: float          # of rated power (W or var)

    def bank_after(self, base_pu: float, s_rated_va: float) -> RlcLoad:
        """The bank after the step (W, var at nominal voltage) from the base load, pu of rating."""
        return RlcLoad((base_pu + (self.size_pu if self.kind == "resistive" else 0.0)) * s_rated_va,
                       (self.size_pu if self.kind == "inductive" else 0.0) * s_rated_va,
                       (self.size_pu if self.kind == "capacitive" else 0.0) * s_rated_va)

    def drawn_pu(self, after: RlcLoad, base: RlcLoad, s_rated_va: float) -> float:
        """The step actually drawn (quantised by a load bank), pu of rating."""
        if self.kind == "resistive":
            return (after.p_w - base.p_w) / s_rated_va
        return (after.q_inductive_var if self.kind == "inductive" else after.q_capacitive_var) / s_rated_va


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bank_step" in metafunc.fixturenames:
        entries = profile_procedure(metafunc, "bank_step", "islanded_regulation.steps")
        if entries is None:
            return
        steps = [BankStep(str(e["kind"]), float(e["p_pu"] if e["kind"] == "resistive" else e["q_pu"]))
                 for e in entries]
        metafunc.parametrize("bank_step", steps, ids=[s.kind for s in steps])


@pytest.fixture(scope="module")
def rlc_load(bench_session, bench_config):
    """What draws the RLC steps: the load bank, else the AC load's constant-impedance mode."""
    load = island_rlc_load(bench_session.instruments, bench_config)
    if load is None:
        pytest.skip("T2 needs a load to step on the island: this bench has neither a load_bank nor an "
                    f"ac_load (roles: {', '.join(bench_session.instruments)})")
    return load


@pytest.fixture(scope="module")
def island(bench_config, dc_source, grid_simulator, rlc_load, pcs, clock, profile):
    """The black-started island at the base load; afterwards the bench as other plans expect it."""
    procedure = profile.setting("islanded_regulation.procedure")
    # the base load goes on first: the bus then discharges through it once the grid is gone
    rlc_load.draw(RlcLoad(procedure["base_load_pu"] * bench_config.pcs.s_rated_va))
    make_dead_bus(bench_config, dc_source, grid_simulator, pcs, clock, control_mode=procedure["control_mode"],
                  droop_f_pct=procedure["droop_f_pct"], droop_v_pct=procedure["droop_v_pct"],
                  settle_s=procedure["dead_bus_settle_s"])
    black_start(pcs, clock, timeout_s=procedure["start_timeout_s"])
    clock.wait(procedure["energise_s"])
    yield procedure
    back_to_grid_following(bench_config, grid_simulator, rlc_load, pcs, clock, settle_s=procedure["restore_settle_s"])


@pytest.fixture
def at_base_load(island, rlc_load, pcs, clock, bench_config) -> RlcLoad:
    """The island at the base load; returns the base load as drawn."""
    procedure = island
    state = pcs.telemetry().state
    if state != RUNNING:
        pytest.fail(f"the island is not energised (PCS {state}): no load step")
    base = rlc_load.draw(RlcLoad(procedure["base_load_pu"] * bench_config.pcs.s_rated_va))
    clock.wait(procedure["settle_s"])
    return base


def test_T2_islanded_load_step(bank_step: BankStep, island, at_base_load, bench_config, profile, capture, rlc_load,
                               pcs, clock, measurements, run_folder, request):
    procedure, base = island, at_base_load
    pcs_cfg = bench_config.pcs
    s_va = pcs_cfg.s_rated_va
    base_pu = base.p_w / s_va
    try:
        after = rlc_load.planned(bank_step.bank_after(procedure["base_load_pu"], s_va))
    except LoadCapabilityError as refusal:
        pytest.skip(f"{bank_step.kind} step not run on this bench: {refusal}")
    drawn_pu = bank_step.drawn_pu(after, base, s_va)
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["record_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    # phase-A current peaks before and after the step at nominal voltage (pu of rating → A)
    peak_per_pu_a = math.sqrt(2.0) * s_va / (3.0 * pcs_cfg.v_ln_nom_v)
    after_mag_pu = math.hypot(after.p_w, after.q_inductive_var - after.q_capacitive_var) / s_va
    level_a = (base_pu + after_mag_pu) / 2 * peak_per_pu_a
    try:
        frame = capture_on_edge(
            capture, clock, settings, PHASE_VOLTAGES + PHASE_CURRENTS, trigger_on="i_a", level=level_a, slope="rise",
            stimulus=lambda: rlc_load.draw(after), test_name=request.node.name, capture_name="load_step",
            metadata={"step": bank_step.kind, "size_pu": bank_step.size_pu, "drawn_pu": drawn_pu,
                      "drawn_by": rlc_load.what})
    except LoadCapabilityError as refusal:
        pytest.skip(f"{bank_step.kind} step not run on this bench: {refusal}")
    measurements.record("step_drawn", drawn_pu, "pu")
    after_step = pcs.telemetry()

    window_s = 1.0 / pcs_cfg.f_nom_hz
    t_s = frame.index.to_numpy()
    sig = bus_signals(t_s, frame[PHASE_VOLTAGES].to_numpy().T, frame[PHASE_CURRENTS].to_numpy().T,
                      sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                      v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)
    step_at_s = -window_s              # the current trigger fires within one cycle of the step
    v_band = profile.clause("islanded_regulation.settling_band.voltage", "pu")
    f_band = profile.clause("islanded_regulation.settling_band.frequency", "Hz")
    fig = load_step_figures(sig, step_at_s=step_at_s, end_s=float(sig.t_s[-1]), pre_s=procedure["pre_s"],
                            final_s=procedure["final_s"], v_band_pu=v_band.value, f_band_hz=f_band.value,
                            fit_window_s=procedure["fit_window_s"], window_s=window_s)

    label = f"the {drawn_pu:.3g} pu {bank_step.kind} step"
    v_dev = profile.clause("islanded_regulation.voltage_deviation.max", "pu")
    f_dev = profile.clause("islanded_regulation.frequency_deviation.max", "Hz")
    settle = profile.clause("islanded_regulation.settling_time.max", "s")
    zeta_min = profile.clause("islanded_regulation.damping_ratio.min", "pu")
    judged_above = profile.clause("islanded_regulation.damping_ratio.judged_above", "pu")
    v_deviation = max(-fig.v_dip_pu, fig.v_rise_pu)
    f_deviation = max(-fig.f_dip_hz, fig.f_rise_hz)
    measurements.record("voltage_before_step", fig.v_initial_pu, "pu")
    measurements.record("frequency_before_step", fig.f_initial_hz, "Hz")
    measurements.record("voltage_after_step", fig.v_final_pu, "pu")
    measurements.record("frequency_after_step", fig.f_final_hz, "Hz")
    measurements.record(
        "voltage_deviation", v_deviation, "pu", clause=v_dev, high=v_dev.value,
        fail_message=f"the bus voltage deviated by {v_deviation:.3f} pu from its pre-step {fig.v_initial_pu:.3f} pu "
                     f"after {label}; at most {v_dev.value:g} pu is allowed")
    measurements.record(
        "frequency_deviation", f_deviation, "Hz", clause=f_dev, high=f_dev.value,
        fail_message=f"the bus frequency deviated by {f_deviation:.3f} Hz from its pre-step {fig.f_initial_hz:.3f} Hz "
                     f"after {label}; at most {f_dev.value:g} Hz is allowed")
    observed_s = float(sig.t_s[-1]) - step_at_s
    measurements.record(
        "settling_time", fig.settling_s, "s", clause=settle, high=settle.value,
        fail_message=(f"voltage and frequency had not settled (±{v_band.value:g} pu, ±{f_band.value:g} Hz) "
                      f"{observed_s:.1f} s after " if fig.settling_s is None else
                      f"voltage and frequency took {fig.settling_s:.2f} s to settle (±{v_band.value:g} pu, "
                      f"±{f_band.value:g} Hz) after ") + f"{label}; at most {settle.value:g} s is allowed")
    osc = fig.oscillation
    measurements.record("oscillation_amplitude", None if osc is None else osc.amplitude, "pu")
    measurements.record("oscillation_frequency", None if osc is None else osc.damped_frequency_hz, "Hz")
    if osc is not None and osc.amplitude >= judged_above.value:
        measurements.record(
            "damping_ratio", osc.damping_ratio, "pu", clause=zeta_min, low=zeta_min.value,
            fail_message=f"the bus voltage rang at {osc.damped_frequency_hz:.2f} Hz with a damping ratio of "
                         f"{osc.damping_ratio:.3f} (amplitude {osc.amplitude:.3f} pu) after {label}; at least "
                         f"{zeta_min.value:g} is required")
    else:
        measurements.record("damping_ratio", None if osc is None else osc.damping_ratio, "pu")
    measurements.record(
        "running_after_step", 1.0 if after_step.state == RUNNING else 0.0, "bool", low=1.0,
        fail_message=f"after {label} the PCS reports {after_step.state} "
                     f"({after_step.trip_reason or 'no trip reason'})")

    plot = IslandPlot(
        title=f"T2 islanded {bank_step.kind} step of {drawn_pu:.3g} pu on {base_pu:.3g} pu base, drawn by "
              f"{rlc_load.what} ({profile.id})",
        t_s=t_s, v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
        i_phases={n: frame[n].to_numpy() for n in PHASE_CURRENTS}, cycle_t_s=sig.t_s, v_pu=sig.v_pu, f_hz=sig.f_hz,
        current_pu={"|I1| PCS (pu)": sig.i_pu}, shaded_s=(step_at_s, step_at_s + window_s),
        time_markers=[TimeMarker(step_at_s + settle.value, "settling limit")],
        level_markers=[LevelMarker("voltage_pu", fig.v_initial_pu - v_dev.value, "deviation limit"),
                       LevelMarker("voltage_pu", fig.v_initial_pu + v_dev.value, ""),
                       LevelMarker("frequency", fig.f_initial_hz - f_dev.value, "deviation limit"),
                       LevelMarker("frequency", fig.f_initial_hz + f_dev.value, "")])
    measurements.plots.append(plot_island(plot, run_folder.plot_path(request.node.name, "islanded_step")))
    measurements.verdict()
