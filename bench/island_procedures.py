"""Bench procedures the islanded plans share (T2, T10): a dead bus, a black start onto it, and
the way back to a grid-connected, grid-following PCS for the plans that follow.

A dead bus on the bench: the grid simulator's output off (the grid is not there) and the PCS's
PCC breaker open (pcs.island()), so that nothing but the PCS can energise the bus, and the
grid's return cannot reach it unsynchronised.
"""
from __future__ import annotations

from bench.clock import BenchClock, ClockError
from bench.config import BenchConfig
from bench.procedures import energise_bench

RUNNING = "RUNNING"


def make_dead_bus(bench_config: BenchConfig, dc_source, grid_simulator, pcs, clock: BenchClock, *,
                  control_mode: str, droop_f_pct: float, droop_v_pct: float, settle_s: float) -> None:
    """DC source on, PCS OFF in the given grid-forming mode, grid simulator off, PCC breaker open."""
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    pcs.stop()
    pcs.reset_alarms()
    pcs.set_control_mode(control_mode)
    pcs.set_droop(droop_f_pct, droop_v_pct)
    grid_simulator.output_off()
    pcs.island()
    clock.wait(settle_s)                      # the bus capacitance discharges through the load


def black_start(pcs, clock: BenchClock, *, timeout_s: float) -> None:
    """Command the black start and wait for the PCS to report RUNNING (raises on timeout)."""
    pcs.black_start()
    try:
        clock.wait_until(lambda: pcs.telemetry().state == RUNNING, timeout_s=timeout_s, poll_s=0.1,
                         what="the PCS to report RUNNING after the black start")
    except ClockError as error:
        tel = pcs.telemetry()
        raise ClockError(f"{error} (state {tel.state}, alarms: {', '.join(tel.alarms) or 'none'})") from None


def back_to_grid_following(bench_config: BenchConfig, grid_simulator, ac_load, pcs, clock: BenchClock, *,
                           settle_s: float) -> None:
    """Load open, PCS stopped and grid following, grid at nominal and the PCC breaker closed
    (a dead bus needs no synchronising): the bench as the other plans expect it."""
    pcs_cfg = bench_config.pcs
    ac_load.safe_state()
    pcs.stop()
    pcs.set_control_mode("GFL")
    clock.wait(settle_s)
    grid_simulator.configure_nominal(pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz)
    grid_simulator.output_on()
    pcs.reconnect()
    clock.wait(settle_s)
