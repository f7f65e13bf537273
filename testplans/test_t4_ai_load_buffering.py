"""T4 — AI-load buffering, fast ramps.

Procedure:
  setup    DC source and grid at nominal; the PCS runs at zero active power; the AC load (the
           AI-load emulator) draws the profile's base IT load from the PCC bus; then the PCS's
           load smoothing is enabled with the profile's grid-side ramp;
  stimulus for each AI-load case of the profile (synchronous training iterations, a step, a
           checkpoint dip) the AC load plays the case as a power list, started at the instant
           the grid simulator's trigger output (a transient at nominal voltage, which changes
           nothing at the PCC) starts the oscilloscope;
  capture  one scope record per case: PCC voltages, PCS currents and two grid-feeder currents.
           Grid-side power comes from the two-wattmeter (Aron) connection (ig_a, ig_b with
           v_a − v_c, v_b − v_c; the bench is three-wire). The IT-load power is the power
           balance of the PCC bus in the same record, grid side plus PCS: both sides of every
           comparison then share one instrument and one time base. The AC load's own power
           reading is polled alongside as a cross-check and kept as evidence, not judged;
  judge    grid-side ramp rate (fraction of the IT load per second), tracking error against
           the IT load passed through the permitted ramp limiter, and residual oscillation of
           the grid-side power per band over 0.1–20 Hz (definitions: bench/ai_buffering.py).
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

import pytest

from bench.buffering_plot import plot_buffering
from bench.buffering_procedure import (AiLoadCase, ai_load_cases, buffering_limits, it_load_base_w, judge_buffering,
                                       return_to_base_load, run_ai_load_case, start_buffering, stop_buffering)
from bench.plugin import PROFILE_KEY

pytestmark = [pytest.mark.test_id("T4"), pytest.mark.profile_sections("ai_buffering")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ai_case" in metafunc.fixturenames:
        cases = ai_load_cases(metafunc.config.stash[PROFILE_KEY])
        metafunc.parametrize("ai_case", cases, ids=[c.label for c in cases])


@pytest.fixture(scope="module")
def buffering_bench(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, profile):
    """The PCS at zero power with smoothing on, the AC load at the base IT load; afterwards
    smoothing off and the load open again, so later plans find the bench as usual."""
    procedure = profile.setting("ai_buffering.procedure")
    start_buffering(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, procedure)
    yield procedure
    stop_buffering(ac_load, pcs, clock, procedure)


@pytest.fixture
def at_base_load(buffering_bench, bench_config, ac_load, clock):
    """The AC load back at the base IT load (an earlier case may have ended elsewhere)."""
    return_to_base_load(bench_config, ac_load, clock, buffering_bench)
    return buffering_bench


def test_T4_ai_load_buffering(ai_case: AiLoadCase, at_base_load, bench_config, profile, grid_simulator,
                              ac_load, capture, clock, measurements, run_folder, request):
    procedure = at_base_load
    limits = buffering_limits(profile)
    it_base_w = it_load_base_w(bench_config, procedure)
    # stimulus, capture and the buffering figures (evidence on disk before the analysis)
    record = run_ai_load_case(ai_case, procedure=procedure, limits=limits, bench_config=bench_config,
                              grid_simulator=grid_simulator, ac_load=ac_load, capture=capture, clock=clock,
                              run_folder=run_folder, test_name=request.node.name)
    judge_buffering(measurements, record, limits, procedure, it_base_w=it_base_w, where=f"{ai_case.label} case")
    path = run_folder.plot_path(request.node.name, "ai_buffering")
    measurements.plots.append(plot_buffering(
        path, title=f"T4 AI-load buffering, {ai_case.label} case ({profile.id})", record=record, it_base_w=it_base_w,
        ramp_limit_w_per_s=limits.ramp.value * it_base_w, ramp_window_s=procedure["ramp_window_s"],
        tracking_window_s=procedure["tracking_window_s"]))
    measurements.verdict()
