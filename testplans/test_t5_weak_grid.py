"""T5 — AI-load buffering on a weak grid.

Procedure:
  setup    as T4 (bench/buffering_procedure.py): DC source and grid at nominal, the PCS at zero
           power with load smoothing on, the AC load at the base IT load; then, for each
           short-circuit ratio of the profile's sweep (the guideline's point is SCR 2.0), the
           grid simulator emulates the series R-L (of the profile's X/R) that brings the SCR at
           the PCC — on the PCS rating, the bench's own wiring impedance included — to that
           point, and the bench settles; afterwards the emulated impedance is zero again;
  stimulus each AI-load case of the T4 profile, started on the scope's trigger, as in T4;
  capture  one scope record per case and SCR: PCC voltages, PCS currents, grid-feeder currents;
  judge    the T4 limits (grid-side ramp, tracking error, residual oscillation by band), and
           on the weak grid: stability (in-band oscillation of the PCC voltage) and the PCC
           voltage (per-cycle rms of every phase) within the profile's band.
The bench's wiring impedance is a bench fact (bench/weak_grid.py: the virtual bench's
[virtual] scr / x_over_r; on a real bench the grid simulator options wiring_r_ohm and
wiring_l_h). Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.buffering_plot import plot_weak_grid
from bench.buffering_procedure import (AiLoadCase, ai_load_cases, buffering_limits, it_load_base_w, judge_buffering,
                                       return_to_base_load, run_ai_load_case, start_buffering, stop_buffering)
from bench.plugin import PROFILE_KEY
from bench.procedures import PHASE_VOLTAGES
from bench.weak_grid import (SeriesImpedance, WeakerThanTarget, added_impedance_for_scr, pcc_voltage_figures, scr_of,
                             wiring_impedance)
from instruments.grid_simulator import NoProgrammableImpedance

pytestmark = [pytest.mark.test_id("T5"), pytest.mark.profile_sections("weak_grid", "ai_buffering")]


@dataclass(frozen=True)
class WeakGridPoint:
    scr: float                      # the SCR at the PCC this point stands for
    wiring: SeriesImpedance         # the bench's own impedance
    added: SeriesImpedance          # what the grid simulator emulates
    readback: SeriesImpedance       # what the grid simulator says it emulates

    @property
    def label(self) -> str:
        return f"SCR {self.scr:g}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    profile = metafunc.config.stash[PROFILE_KEY]
    if "weak_grid" in metafunc.fixturenames:
        # module scope: the impedance is set once per SCR and every case runs on it
        sweep = [float(scr) for scr in profile.setting("weak_grid.procedure.scr_sweep")]
        metafunc.parametrize("weak_grid", sweep, ids=[f"scr{scr:g}" for scr in sweep], indirect=True, scope="module")
    if "ai_case" in metafunc.fixturenames:
        cases = ai_load_cases(profile)
        metafunc.parametrize("ai_case", cases, ids=[c.label for c in cases])


@pytest.fixture(scope="module")
def buffering_bench(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, profile):
    # T4's procedure, with the IT-load base the weak-grid procedure sets (see the profile)
    procedure = {**profile.setting("ai_buffering.procedure"),
                 "it_load_base_pu": profile.setting("weak_grid.procedure.it_load_base_pu")}
    start_buffering(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, procedure)
    yield procedure
    stop_buffering(ac_load, pcs, clock, procedure)


@pytest.fixture(scope="module")
def weak_grid(request, buffering_bench, bench_config, grid_simulator, clock, profile):
    """The grid simulator emulating the impedance of this SCR point; zero again afterwards."""
    target_scr = float(request.param)
    settings = profile.setting("weak_grid.procedure")
    pcs_cfg = bench_config.pcs
    wiring = wiring_impedance(bench_config)
    if wiring is None:
        pytest.skip("the bench file does not state the bench's wiring impedance (grid simulator options "
                    "wiring_r_ohm and wiring_l_h): the SCR at the PCC cannot be set")
    try:
        added = added_impedance_for_scr(target_scr, wiring, x_over_r=settings["x_over_r"], v_ll_nom_v=pcs_cfg.v_ll_nom_v,
                                        s_rated_va=pcs_cfg.s_rated_va, f_hz=pcs_cfg.f_nom_hz)
    except WeakerThanTarget as exc:
        pytest.skip(f"SCR {target_scr:g} cannot be set on this bench: {exc}")
    try:
        try:
            grid_simulator.set_output_impedance(added.r_ohm, added.l_h)
        except NoProgrammableImpedance as exc:
            pytest.skip(f"SCR {target_scr:g}: {exc}")
        reported = grid_simulator.output_impedance()
        clock.wait(settings["settle_s"])
        yield WeakGridPoint(target_scr, wiring, added, SeriesImpedance(reported.r_ohm, reported.l_h))
    finally:
        # later plans (and the next SCR point) start from the bench's own grid
        grid_simulator.set_output_impedance(0.0, 0.0)
        clock.wait(settings["settle_s"])


@pytest.fixture
def at_base_load(weak_grid, buffering_bench, bench_config, ac_load, clock):
    return_to_base_load(bench_config, ac_load, clock, buffering_bench)
    return buffering_bench


def test_T5_weak_grid_buffering(ai_case: AiLoadCase, weak_grid: WeakGridPoint, at_base_load, bench_config, profile,
                                grid_simulator, ac_load, capture, clock, measurements, run_folder, request):
    pcs_cfg = bench_config.pcs
    procedure = at_base_load
    limits = buffering_limits(profile)
    it_base_w = it_load_base_w(bench_config, procedure)
    oscillation_limit = profile.clause("weak_grid.stability.pcc_voltage_oscillation", "pu")
    oscillation_band_hz = tuple(profile.setting("weak_grid.stability.pcc_voltage_oscillation.band_hz"))
    v_min = profile.clause("weak_grid.pcc_voltage.min", "pu")
    v_max = profile.clause("weak_grid.pcc_voltage.max", "pu")
    where = f"{ai_case.label} case at {weak_grid.label}"

    # --- the grid the PCS sees ------------------------------------------------------
    achieved_scr = scr_of(weak_grid.wiring + weak_grid.readback, v_ll_nom_v=pcs_cfg.v_ll_nom_v,
                          s_rated_va=pcs_cfg.s_rated_va, f_hz=pcs_cfg.f_nom_hz)
    measurements.record("scr_at_pcc", achieved_scr, "pu of PCS rating")
    measurements.record("grid_simulator_r_ohm", weak_grid.readback.r_ohm, "ohm")
    measurements.record("grid_simulator_l_mh", weak_grid.readback.l_h * 1e3, "mH")

    # --- stimulus, capture, buffering figures: the T4 procedure ------------------------
    record = run_ai_load_case(ai_case, procedure=procedure, limits=limits, bench_config=bench_config,
                              grid_simulator=grid_simulator, ac_load=ac_load, capture=capture, clock=clock,
                              run_folder=run_folder, test_name=request.node.name, metadata={"scr": weak_grid.scr})
    voltage = pcc_voltage_figures(record.frame[PHASE_VOLTAGES].to_numpy().T, sample_rate_hz=record.sample_rate_hz,
                                  f_nominal_hz=pcs_cfg.f_nom_hz, v_ln_nom_v=pcs_cfg.v_ln_nom_v,
                                  band_hz=oscillation_band_hz, t0_s=float(record.frame.index[0]))

    # --- judge: the T4 limits, then stability and the PCC voltage ------------------------
    judge_buffering(measurements, record, limits, procedure, it_base_w=it_base_w, where=where)
    lo_hz, hi_hz = oscillation_band_hz
    measurements.record(
        "pcc_voltage_oscillation", voltage.oscillation_pu, "pu", clause=oscillation_limit, high=oscillation_limit.value,
        fail_message=f"PCC voltage oscillated by {voltage.oscillation_pu:.4f} pu in {lo_hz:g}–{hi_hz:g} Hz ({where}); "
                     f"at most {oscillation_limit.value:g} pu is allowed")
    measurements.record(
        "pcc_voltage_min", voltage.min_pu, "pu", clause=v_min, low=v_min.value,
        fail_message=f"PCC voltage fell to {voltage.min_pu:.3f} pu at t = {voltage.min_at_s:.2f} s ({where}); "
                     f"at least {v_min.value:g} pu is required")
    measurements.record(
        "pcc_voltage_max", voltage.max_pu, "pu", clause=v_max, high=v_max.value,
        fail_message=f"PCC voltage rose to {voltage.max_pu:.3f} pu at t = {voltage.max_at_s:.2f} s ({where}); "
                     f"at most {v_max.value:g} pu is allowed")

    path = run_folder.plot_path(request.node.name, "weak_grid_buffering")
    measurements.plots.append(plot_weak_grid(path, title=f"T5 AI-load buffering, {where} ({profile.id})",
                                             record=record, voltage=voltage, it_base_w=it_base_w,
                                             v_band_pu=(v_min.value, v_max.value)))
    measurements.verdict()
