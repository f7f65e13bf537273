"""T8 — Seamless grid ↔ island transition (GFL → GFM → GFL without loss of load).

Procedure:
  setup    DC source and grid at nominal; the PCS grid following, exporting the profile's
           power; the load (resistive, constant impedance) on the PCC bus, larger than the
           PCS's export so the grid carries the rest;
  stimulus the grid is lost: the grid simulator's output opens (its output relay: the way a
           utility breaker opening upstream looks to the site). A transient to 0 V would instead
           be a bolted three-phase fault at the grid terminals, a ride-through case, not an
           island. The PCS must detect the loss, open its PCC breaker and form the bus. After
           the profile's hold the grid returns (output on at nominal, breaker still open) and
           the PCS is told to reconnect: it synchronises and closes;
  capture  one record from just before the loss to after the closing: bus voltages, PCS
           currents and the grid-feeder currents (phases A, B; three-wire). The scope starts on
           the grid simulator's trigger output (a transient at nominal voltage, which changes
           nothing at the PCC), the loss follows at a known delay;
  judge    at the load (bus voltage, load current = PCS + grid feeder): lowest voltage and time
           below the dip level, frequency range, lowest load current and time interrupted;
           at the closing: time to close after the command, phase step, slip and voltage
           difference between the island and the grid-connected bus (bench/islanded.py).
Every limit comes from the profile; the report names the clause that judged it.
Afterwards the load is opened and the grid and PCS left grid connected and grid following.
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.capture import CaptureSettings
from bench.island_procedures import RUNNING
from bench.islanded import bus_signals, closing_figures, transfer_figures
from bench.islanded_plot import IslandPlot, plot_island
from bench.plots import LevelMarker, TimeMarker
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES, energise_bench, run_pcs_at
from instruments.grid_simulator import GridSegment

pytestmark = [pytest.mark.test_id("T8"), pytest.mark.profile_sections("island_transition")]

GRID_CURRENTS = ["ig_a", "ig_b"]
MARKER_SEGMENT_S = 0.05   # the nominal-voltage "transient" whose trigger output starts the record


@pytest.fixture
def grid_connected_load(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, profile):
    """Grid following at the pre-loss export with the load on; afterwards grid connected again."""
    procedure = profile.setting("island_transition.procedure")
    pcs_cfg = bench_config.pcs
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    pcs.set_control_mode("GFL")
    ac_load.set_rlc_load(procedure["load_p_pu"] * pcs_cfg.s_rated_va, 0.0, 0.0, v_ln_nominal_v=pcs_cfg.v_ln_nom_v)
    run_pcs_at(pcs, clock, procedure["pre_p_pu"] * pcs_cfg.s_rated_va, pcs_cfg.s_rated_va)
    clock.wait(procedure["settle_s"])
    yield procedure
    ac_load.safe_state()
    grid_simulator.configure_nominal(pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz)
    grid_simulator.output_on()
    pcs.reconnect()                 # a no-op when already closed; synchronises a live island
    clock.wait(procedure["settle_s"])


def test_T8_grid_loss_island_and_reconnect(grid_connected_load, bench_config, profile, grid_simulator, capture, pcs,
                                           clock, measurements, run_folder, request):
    procedure = grid_connected_load
    pcs_cfg = bench_config.pcs
    nominal = (pcs_cfg.v_ln_nom_v,) * 3
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["record_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    names = PHASE_VOLTAGES + PHASE_CURRENTS + GRID_CURRENTS

    # --- stimulus: loss, island, return, reconnect, all in one record --------------------
    grid_simulator.program_transient([GridSegment(MARKER_SEGMENT_S, nominal, pcs_cfg.f_nom_hz)])
    capture.arm(settings, names)
    clock.wait(settings.pretrigger_s)
    triggered_at_s = clock.now_s()
    grid_simulator.start_transient()
    clock.wait(procedure["loss_after_s"])
    grid_simulator.output_off()                       # the grid is lost
    clock.wait(procedure["island_hold_s"])
    during = pcs.telemetry()
    grid_simulator.configure_nominal(pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz)
    grid_simulator.output_on()                        # the grid is back; the PCC breaker is still open
    pcs.reconnect()
    reconnect_at_s = clock.now_s() - triggered_at_s   # bench clock: when the command went out
    clock.wait(settings.duration_s - settings.pretrigger_s - (clock.now_s() - triggered_at_s))
    capture.wait_complete(timeout_s=10.0 + settings.duration_s)
    frame = capture.fetch(request.node.name, "grid_loss_and_reconnect", names,
                          metadata={"reconnect_command_s": reconnect_at_s})
    after = pcs.telemetry()

    # --- analysis: the load's view (KCL at the bus: PCS + grid feeder) ----------------------
    window_s = 1.0 / pcs_cfg.f_nom_hz
    t_s = frame.index.to_numpy()
    v_abc = frame[PHASE_VOLTAGES].to_numpy().T
    i_pcs = frame[PHASE_CURRENTS].to_numpy().T
    ig_a, ig_b = frame[GRID_CURRENTS].to_numpy().T
    i_grid = np.vstack((ig_a, ig_b, -(ig_a + ig_b)))   # three-wire feeder
    kwargs = dict(sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                  v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)
    load = bus_signals(t_s, v_abc, i_pcs + i_grid, **kwargs)
    grid_i_pu = bus_signals(t_s, v_abc, i_grid, **kwargs).i_pu
    transfer = transfer_figures(load, grid_i_pu, after_s=0.0, pre_s=procedure["pre_s"],
                                transfer_window_s=procedure["transfer_window_s"],
                                open_below_pu=procedure["open_below_pu"], dip_below_pu=procedure["dip_below_pu"],
                                interrupted_below_fraction=procedure["interrupted_below_fraction"], window_s=window_s)
    closing = closing_figures(load, grid_i_pu, after_s=reconnect_at_s, closed_above_pu=procedure["closed_above_pu"],
                              pre_s=procedure["closing_pre_s"], post_from_s=procedure["closing_post_from_s"],
                              post_to_s=procedure["closing_post_to_s"], window_s=window_s)

    # --- judge: the transfer --------------------------------------------------------------
    v_min = profile.clause("island_transition.load_voltage.min", "pu")
    dip_max = profile.clause("island_transition.dip_duration.max", "s")
    f_min = profile.clause("island_transition.frequency.min", "Hz")
    f_max = profile.clause("island_transition.frequency.max", "Hz")
    i_min = profile.clause("island_transition.load_current.min_fraction", "pu of pre-loss")
    gap_max = profile.clause("island_transition.load_interruption.max", "s")
    measurements.record("grid_lost_at", transfer.grid_lost_at_s, "s")
    measurements.record("pcs_state_islanded", 1.0 if during.state == RUNNING else 0.0, "bool", low=1.0,
                        fail_message=f"islanded, the PCS reported {during.state} "
                                     f"({during.trip_reason or 'no trip reason'}) instead of carrying the load")
    measurements.record(
        "load_voltage_min", transfer.v_min_pu, "pu", clause=v_min, low=v_min.value,
        fail_message=f"the load voltage fell to {transfer.v_min_pu:.3f} pu (from {transfer.v_pre_pu:.3f} pu) when the "
                     f"grid was lost; at least {v_min.value:g} pu is required")
    measurements.record(
        "load_voltage_dip_duration", transfer.dip_duration_s, "s", clause=dip_max, high=dip_max.value,
        fail_message=f"the load voltage stayed below {procedure['dip_below_pu']:g} pu for "
                     f"{transfer.dip_duration_s * 1e3:.0f} ms after the grid was lost; at most "
                     f"{dip_max.value * 1e3:.0f} ms is allowed")
    f_low = transfer.f_min_hz if np.isfinite(transfer.f_min_hz) else None
    f_high = transfer.f_max_hz if np.isfinite(transfer.f_max_hz) else None
    measurements.record("frequency_excursion", transfer.f_excursion_hz if np.isfinite(transfer.f_excursion_hz) else None,
                        "Hz")
    measurements.record(
        "island_frequency_min", f_low, "Hz", clause=f_min, low=f_min.value,
        fail_message=("the bus had no frequency (dead) during the transfer" if f_low is None else
                      f"the island's frequency fell to {f_low:.2f} Hz") + f"; at least {f_min.value:g} Hz is required")
    measurements.record(
        "island_frequency_max", f_high, "Hz", clause=f_max, high=f_max.value,
        fail_message=("the bus had no frequency (dead) during the transfer" if f_high is None else
                      f"the island's frequency rose to {f_high:.2f} Hz") + f"; at most {f_max.value:g} Hz is allowed")
    measurements.record(
        "load_current_min", transfer.i_load_min_fraction, "pu of pre-loss", clause=i_min, low=i_min.value,
        fail_message=f"the load current fell to {transfer.i_load_min_fraction:.2f} of its pre-loss value when the grid "
                     f"was lost (loss of load); at least {i_min.value:g} is required")
    measurements.record(
        "load_current_interruption", transfer.load_interrupted_s, "s", clause=gap_max, high=gap_max.value,
        fail_message=f"the load current stayed below {procedure['interrupted_below_fraction']:g} of its pre-loss value "
                     f"for {transfer.load_interrupted_s * 1e3:.0f} ms; at most {gap_max.value * 1e3:.0f} ms is allowed")

    # --- judge: re-synchronisation and closing ---------------------------------------------
    t_max = profile.clause("island_transition.resync.time.max", "s")
    angle_max = profile.clause("island_transition.resync.angle.max", "deg")
    slip_max = profile.clause("island_transition.resync.slip.max", "Hz")
    dv_max = profile.clause("island_transition.resync.voltage_difference.max", "pu")
    observed_s = float(t_s[-1]) - reconnect_at_s
    closed_after_s = None if closing.closed_at_s is None else closing.closed_at_s - reconnect_at_s
    measurements.record(
        "resynchronisation_time", closed_after_s, "s", clause=t_max, high=t_max.value,
        fail_message=(f"the PCC breaker had not closed {observed_s:.1f} s after the reconnect command"
                      if closed_after_s is None else
                      f"the PCC breaker closed {closed_after_s:.2f} s after the reconnect command")
                     + f"; at most {t_max.value:g} s is allowed")
    if closing.closed_at_s is not None:
        for name, value, clause, units, what in (
                ("closing_phase_step", closing.angle_deg, angle_max, "deg", "phase step"),
                ("closing_slip", closing.slip_hz, slip_max, "Hz", "frequency difference"),
                ("closing_voltage_difference", closing.voltage_difference_pu, dv_max, "pu", "voltage difference")):
            magnitude = None if value is None else abs(value)
            measurements.record(
                name, magnitude, units, clause=clause, high=clause.value,
                fail_message=(f"the {what} at closing could not be measured (too little record around it)"
                              if value is None else
                              f"the {what} between the island and the grid-connected bus at closing was "
                              f"{value:+.3g} {units}") + f"; at most {clause.value:g} {units} is allowed")
    measurements.record(
        "running_after_reconnect", 1.0 if after.state == RUNNING else 0.0, "bool", low=1.0,
        fail_message=f"after reconnecting the PCS reports {after.state} ({after.trip_reason or 'no trip reason'})")

    # --- evidence plot ----------------------------------------------------------------
    markers = [TimeMarker(reconnect_at_s, "reconnect command", "tab:purple")]
    if transfer.grid_lost_at_s is not None:
        markers.append(TimeMarker(transfer.grid_lost_at_s, "grid lost", "tab:red"))
    if closing.closed_at_s is not None:
        markers.append(TimeMarker(closing.closed_at_s, "breaker closed", "tab:green"))
    loss_s = transfer.grid_lost_at_s if transfer.grid_lost_at_s is not None else 0.0
    plot = IslandPlot(
        title=f"T8 grid loss with {procedure['load_p_pu']:g} pu load, island, reconnect ({profile.id})",
        t_s=t_s, v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
        i_phases={"load a": i_pcs[0] + i_grid[0], "grid a": i_grid[0], "PCS a": i_pcs[0]},
        cycle_t_s=load.t_s, v_pu=load.v_pu, f_hz=load.f_hz,
        current_pu={"|I1| load (pu)": load.i_pu, "|I1| grid feeder (pu)": grid_i_pu},
        shaded_s=(loss_s, loss_s + procedure["transfer_window_s"]), time_markers=markers,
        level_markers=[LevelMarker("voltage_pu", v_min.value, "min load voltage"),
                       LevelMarker("voltage_pu", procedure["dip_below_pu"], "dip level", "tab:gray"),
                       LevelMarker("frequency", f_min.value, "f min"), LevelMarker("frequency", f_max.value, "f max"),
                       LevelMarker("current_pu", i_min.value * transfer.i_load_pre_pu, "min load current")])
    measurements.plots.append(plot_island(plot, run_folder.plot_path(request.node.name, "island_transition")))
    measurements.verdict()
