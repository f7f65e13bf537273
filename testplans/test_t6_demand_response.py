"""T6 — Demand response: fast and slow dispatch to commanded setpoints.

Procedure, for each dispatch of the profile (kind fast | slow, from one setpoint to another):
  setup    the PCS runs at the starting setpoint, reached at a quick preparatory ramp;
  stimulus its ramp rate is set so that it arrives in the time the profile allows for this
           kind of dispatch (ramp = change / time), then the new setpoint is sent;
  capture  the oscilloscope records PCC voltages and PCS currents from just before the
           dispatch until the settled hold ends, in consecutive records where the dispatch is
           longer than one record; the grid simulator's trigger output (a transient at nominal
           voltage, which changes nothing at the PCC) starts each record and marks the dispatch
           instant. The PCS's own active power is polled alongside;
  judge    response time (first reach of 90 % of the commanded change, P from the scope's v·i)
           within the allowed time; settled active power within the profile's accuracy, as an
           error of reading. The PCS's telemetry is recorded next to it, not judged here (T1
           judges telemetry accuracy).
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from bench.analysis import per_cycle_power
from bench.capture import CaptureSettings
from bench.demand_response import dispatch_figures, dispatch_ramp_w_per_s, record_segments_s
from bench.dispatch_plot import DispatchPlot, plot_dispatch
from bench.plugin import PROFILE_KEY
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES, energise_bench, run_pcs_at
from instruments.grid_simulator import GridSegment

pytestmark = [pytest.mark.test_id("T6"), pytest.mark.profile_sections("demand_response")]

MARKER_SEGMENT_S = 0.05  # the nominal-voltage "transient" whose trigger output starts a record
PREPOSITION_TOLERANCE_PU = 0.02  # close enough to the starting setpoint to begin (not judged)


@dataclass(frozen=True)
class Dispatch:
    kind: str          # "fast" | "slow": which allowed time of the profile applies
    from_p_pu: float
    to_p_pu: float

    @property
    def label(self) -> str:
        return f"{self.kind}-{self.from_p_pu:.2f}to{self.to_p_pu:.2f}pu"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dispatch" in metafunc.fixturenames:
        profile = metafunc.config.stash[PROFILE_KEY]
        points = [Dispatch(str(p["kind"]), float(p["from_p_pu"]), float(p["to_p_pu"]))
                  for p in profile.setting("demand_response.test_points")]
        metafunc.parametrize("dispatch", points, ids=[p.label for p in points])


@pytest.fixture(scope="module")
def running_pcs(bench_config, dc_source, grid_simulator, pcs, clock):
    """DC source and grid at nominal, the PCS running at zero power."""
    # charging dispatches sink current into the DC source: energise allows both directions
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    run_pcs_at(pcs, clock, 0.0, bench_config.pcs.s_rated_va)
    return pcs


@pytest.fixture
def at_starting_setpoint(dispatch, running_pcs, bench_config, profile, pcs, clock):
    """The PCS settled at the dispatch's starting setpoint."""
    procedure = profile.setting("demand_response.procedure")
    s_rated_va = bench_config.pcs.s_rated_va
    p_w = dispatch.from_p_pu * s_rated_va
    pcs.set_active_power_ramp_w_per_s(procedure["preposition_ramp_pu_per_s"] * s_rated_va)
    pcs.set_active_power_w(p_w)
    clock.wait_until(lambda: abs(pcs.telemetry().p_w - p_w) < PREPOSITION_TOLERANCE_PU * s_rated_va,
                     timeout_s=10.0, poll_s=0.1, what=f"the PCS to reach the starting {p_w / 1e3:.0f} kW")
    clock.wait(procedure["settle_s"])
    return p_w


def test_T6_demand_response_dispatch(dispatch: Dispatch, at_starting_setpoint, bench_config, profile,
                                     grid_simulator, capture, pcs, clock, measurements, run_folder, request):
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("demand_response.procedure")
    allowed = profile.clause(f"demand_response.{dispatch.kind}.response_time", "s")
    accuracy = profile.clause("demand_response.accuracy.max_error", "% of reading")
    from_w, target_w = at_starting_setpoint, dispatch.to_p_pu * pcs_cfg.s_rated_va

    # --- stimulus: a ramp that arrives in the allowed time, then the new setpoint ---------
    pcs.set_active_power_ramp_w_per_s(dispatch_ramp_w_per_s(from_w, target_w, allowed.value))
    telemetry: list[tuple[float, float | None]] = []
    poller = clock.every(procedure["telemetry_poll_s"], lambda now_s: telemetry.append((now_s, pcs.telemetry().p_w)),
                         name="PCS active power")

    # --- capture: consecutive scope records, the first one starting at the dispatch ----
    nominal = GridSegment(MARKER_SEGMENT_S, (pcs_cfg.v_ln_nom_v,) * 3, pcs_cfg.f_nom_hz)
    pretrigger_s = procedure["pretrigger_s"]
    lengths_s = record_segments_s(pretrigger_s + allowed.value + procedure["hold_s"], procedure["scope_segment_s"])
    dispatch_at_s = None
    cycle_t, cycle_p, starts_s = [], [], []
    for index, length_s in enumerate(lengths_s):
        settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=length_s,
                                   pretrigger_s=min(pretrigger_s, length_s / 2))
        grid_simulator.program_transient([nominal])
        capture.arm(settings, PHASE_VOLTAGES + PHASE_CURRENTS)
        clock.wait(settings.pretrigger_s)      # the scope fills its pre-trigger record
        triggered_at_s = clock.now_s()
        grid_simulator.start_transient()
        if dispatch_at_s is None:
            pcs.set_active_power_w(target_w)   # the dispatch, on the first record's trigger
            dispatch_at_s = triggered_at_s
        clock.wait(length_s - settings.pretrigger_s)
        capture.wait_complete(timeout_s=10.0 + length_s)
        frame = capture.fetch(request.node.name, f"dispatch_record_{index}", PHASE_VOLTAGES + PHASE_CURRENTS,
                              metadata={"dispatch": dispatch.label, "record": index,
                                        "trigger_from_dispatch_s": triggered_at_s - dispatch_at_s})
        power = per_cycle_power(*frame[PHASE_VOLTAGES + PHASE_CURRENTS].to_numpy().T,
                                sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                                t0_s=float(frame.index[0]))
        # each record's time is relative to its own trigger; place it on the dispatch's time
        offset_s = triggered_at_s - dispatch_at_s
        cycle_t.append(power.t_s + offset_s)
        cycle_p.append(power.p_w)
        starts_s.append(float(frame.index[0]) + offset_s)
    poller.cancel()
    telemetry_frame = pd.DataFrame({"p_w": [p for _, p in telemetry]},
                                   index=pd.Index([t - dispatch_at_s for t, _ in telemetry], name="t_s"))
    telemetry_frame.attrs.update({"units": {"p_w": "W"}, "source": "PCS telemetry (Modbus)",
                                  "time_reference": "t_s = 0 at the dispatch (bench clock)"})
    run_folder.save_capture(request.node.name, "pcs_telemetry", telemetry_frame)

    # --- analysis -----------------------------------------------------------------
    t_s, p_w = np.concatenate(cycle_t), np.concatenate(cycle_p)
    end_s = allowed.value + procedure["hold_s"]
    settled_from_s = end_s - procedure["settled_window_s"]
    scope = dispatch_figures(t_s, p_w, target_w=target_w, settled_from_s=settled_from_s, settled_to_s=end_s)
    reported = telemetry_frame["p_w"].dropna()
    pcs_view = dispatch_figures(reported.index.to_numpy(), reported.to_numpy(), target_w=target_w,
                                settled_from_s=settled_from_s, settled_to_s=end_s) if len(reported) else None

    # --- judge --------------------------------------------------------------------
    change_kw = (target_w - scope.initial_w) / 1e3
    measurements.record(
        "dispatch_response_time", scope.response_time_s, "s", clause=allowed, high=allowed.value,
        fail_message=(f"active power never reached 90 % of the {change_kw:+.0f} kW change"
                      f" in the {end_s:g} s recorded" if scope.response_time_s is None else
                      f"active power reached 90 % of the {change_kw:+.0f} kW change after "
                      f"{scope.response_time_s:.2f} s") +
                     f" ({dispatch.kind} dispatch {scope.initial_w / 1e3:.0f} → {target_w / 1e3:.0f} kW); "
                     f"required within {allowed.value:g} s")
    measurements.record(
        "dispatch_settled_error", scope.settled_error_pct, "% of reading", clause=accuracy,
        low=-accuracy.value, high=accuracy.value,
        fail_message=f"active power settled at {scope.settled_w / 1e3:.1f} kW for a {target_w / 1e3:.0f} kW "
                     f"dispatch ({scope.settled_error_pct:+.2f} % of reading); at most ±{accuracy.value:g} % is allowed")
    measurements.record("telemetry_response_time", None if pcs_view is None else pcs_view.response_time_s, "s")
    measurements.record("telemetry_settled_error", None if pcs_view is None else pcs_view.settled_error_pct,
                        "% of reading")

    # --- evidence plot --------------------------------------------------------------
    plot = DispatchPlot(
        title=f"T6 {dispatch.kind} dispatch {scope.initial_w / 1e3:.0f} → {target_w / 1e3:.0f} kW "
              f"within {allowed.value:g} s ({profile.id})",
        t_s=t_s, p_w=p_w, telemetry_t_s=reported.index.to_numpy(), telemetry_p_w=reported.to_numpy(),
        initial_w=scope.initial_w, target_w=target_w, commanded_time_s=allowed.value,
        response_time_s=scope.response_time_s, accuracy_pct=accuracy.value, record_starts_s=tuple(starts_s))
    measurements.plots.append(plot_dispatch(plot, run_folder.plot_path(request.node.name, "dispatch")))
    measurements.verdict()
