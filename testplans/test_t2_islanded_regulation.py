"""T2 — Grid-adaptive voltage and frequency regulation, islanded.

Procedure:
  setup    a dead bus (grid simulator output off, PCC breaker open) with the RLC bank's base
           load (resistive) on it; the PCS black-starts it in grid-forming droop mode with the
           profile's droops;
  stimulus for each step of the profile (resistive, inductive, capacitive), from the base load,
           the bank adds the step's branch (constant impedance at nominal voltage);
  capture  per-phase bus voltage and PCS current; the scope is started by the phase-A current
           rising past the midpoint of its before and after peaks (t = 0 within one cycle after
           the step, so the step is placed one cycle before the trigger);
  judge    voltage and frequency deviation from their pre-step values, settling time (both
           back within their bands around their settled values), and the damping ratio of the
           voltage oscillation after the step (no unstable or poorly damped ring; an
           oscillation too small to fit is recorded, not judged). Definitions: bench/islanded.py.
A bench whose AC load cannot draw a step's branch (an electronic load without a linear
reactive mode) skips that step and says so. Every limit comes from the profile.
Afterwards the PCS is stopped, set back to grid following and the grid reconnected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from bench.capture import CaptureSettings
from bench.edge_capture import capture_on_edge
from bench.island_procedures import RUNNING, back_to_grid_following, black_start, make_dead_bus
from bench.islanded import bus_signals, load_step_figures
from bench.islanded_plot import IslandPlot, plot_island
from bench.plots import LevelMarker, TimeMarker
from bench.plugin import PROFILE_KEY
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES
from instruments.ac_load import LoadCapabilityError

pytestmark = pytest.mark.test_id("T2")


@dataclass(frozen=True)
class BankStep:
    kind: str               # "resistive" | "inductive" | "capacitive"
    size_pu: float          # of rated power (W or var)

    def bank_pu(self, base_pu: float) -> tuple[float, float, float]:
        """(P, Q inductive, Q capacitive) of the bank after the step, pu of rating."""
        return (base_pu + (self.size_pu if self.kind == "resistive" else 0.0),
                self.size_pu if self.kind == "inductive" else 0.0,
                self.size_pu if self.kind == "capacitive" else 0.0)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bank_step" in metafunc.fixturenames:
        entries = metafunc.config.stash[PROFILE_KEY].setting("islanded_regulation.steps")
        steps = [BankStep(str(e["kind"]), float(e["p_pu"] if e["kind"] == "resistive" else e["q_pu"]))
                 for e in entries]
        metafunc.parametrize("bank_step", steps, ids=[s.kind for s in steps])


def draw(ac_load, bench_config, p_pu: float, q_inductive_pu: float = 0.0, q_capacitive_pu: float = 0.0) -> None:
    s_va = bench_config.pcs.s_rated_va
    ac_load.set_rlc_load(p_pu * s_va, q_inductive_pu * s_va, q_capacitive_pu * s_va,
                         v_ln_nominal_v=bench_config.pcs.v_ln_nom_v)


@pytest.fixture(scope="module")
def island(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, profile):
    """The black-started island at the base load; afterwards the bench as other plans expect it."""
    procedure = profile.setting("islanded_regulation.procedure")
    # the base load goes on first: the bus then discharges through it once the grid is gone
    draw(ac_load, bench_config, procedure["base_load_pu"])
    make_dead_bus(bench_config, dc_source, grid_simulator, pcs, clock, control_mode=procedure["control_mode"],
                  droop_f_pct=procedure["droop_f_pct"], droop_v_pct=procedure["droop_v_pct"],
                  settle_s=procedure["dead_bus_settle_s"])
    black_start(pcs, clock, timeout_s=procedure["start_timeout_s"])
    clock.wait(procedure["energise_s"])
    yield procedure
    back_to_grid_following(bench_config, grid_simulator, ac_load, pcs, clock, settle_s=procedure["restore_settle_s"])


@pytest.fixture
def at_base_load(island, ac_load, pcs, clock, bench_config):
    procedure = island
    state = pcs.telemetry().state
    if state != RUNNING:
        pytest.fail(f"the island is not energised (PCS {state}): no load step")
    draw(ac_load, bench_config, procedure["base_load_pu"])
    clock.wait(procedure["settle_s"])
    return procedure


def test_T2_islanded_load_step(bank_step: BankStep, at_base_load, bench_config, profile, capture, ac_load, pcs,
                               clock, measurements, run_folder, request):
    procedure = at_base_load
    pcs_cfg = bench_config.pcs
    base_pu = procedure["base_load_pu"]
    after_pu = bank_step.bank_pu(base_pu)
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["record_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    # phase-A current peaks before and after the step at nominal voltage (pu of rating → A)
    peak_per_pu_a = math.sqrt(2.0) * pcs_cfg.s_rated_va / (3.0 * pcs_cfg.v_ln_nom_v)
    after_mag_pu = math.hypot(after_pu[0], after_pu[1] - after_pu[2])
    level_a = (base_pu + after_mag_pu) / 2 * peak_per_pu_a
    try:
        frame = capture_on_edge(
            capture, clock, settings, PHASE_VOLTAGES + PHASE_CURRENTS, trigger_on="i_a", level=level_a, slope="rise",
            stimulus=lambda: draw(ac_load, bench_config, *after_pu), test_name=request.node.name,
            capture_name="load_step", metadata={"step": bank_step.kind, "size_pu": bank_step.size_pu})
    except LoadCapabilityError as refusal:
        pytest.skip(f"{bank_step.kind} step not run on this bench: {refusal}")
    after = pcs.telemetry()

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

    label = f"the {bank_step.size_pu:g} pu {bank_step.kind} step"
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
        "running_after_step", 1.0 if after.state == RUNNING else 0.0, "bool", low=1.0,
        fail_message=f"after {label} the PCS reports {after.state} ({after.trip_reason or 'no trip reason'})")

    plot = IslandPlot(
        title=f"T2 islanded {bank_step.kind} step of {bank_step.size_pu:g} pu on {base_pu:g} pu base ({profile.id})",
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
