"""Bench procedures the islanded plans share (T2, T10): a dead bus, a black start onto it, and
the way back to a grid-connected, grid-following PCS for the plans that follow.

A dead bus on the bench: the grid simulator's output off (the grid is not there) and the PCS's
PCC breaker open (pcs.island()), so that nothing but the PCS can energise the bus, and the
grid's return cannot reach it unsynchronised.

The island's RLC steps are drawn by the bench's load bank where it has one (resistive,
inductive and capacitive steps), else by the AC load's constant-impedance mode (which may draw
the resistive part only): `island_rlc_load`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from bench.clock import BenchClock, ClockError
from bench.config import BenchConfig
from bench.procedures import energise_bench

RUNNING = "RUNNING"


@dataclass(frozen=True)
class RlcLoad:
    """A constant-impedance load (P, Q inductive, Q capacitive: W, var at nominal voltage)."""

    p_w: float
    q_inductive_var: float = 0.0
    q_capacitive_var: float = 0.0


class BankOnLoadBank:
    """The bench's RLC load bank (steps quantised to its contactors)."""

    def __init__(self, load_bank) -> None:
        self.instrument = load_bank
        self.what = f"the load bank ({load_bank.identity.model if load_bank.identity else 'load_bank'})"

    def planned(self, load: RlcLoad) -> RlcLoad:
        """What the bank will draw for this request (refused before anything is sent)."""
        s = self.instrument.plan(load.p_w, load.q_inductive_var, load.q_capacitive_var)
        return RlcLoad(s.p_w, s.q_inductive_var, s.q_capacitive_var)

    def draw(self, load: RlcLoad) -> RlcLoad:
        s = self.instrument.set_load(load.p_w, load.q_inductive_var, load.q_capacitive_var)
        return RlcLoad(s.p_w, s.q_inductive_var, s.q_capacitive_var)

    def safe_state(self) -> bool:
        return self.instrument.safe_state()


class BankOnAcLoad:
    """An AC load's constant-impedance mode (an electronic load may lack the reactive parts:
    it raises LoadCapabilityError for them when asked)."""

    def __init__(self, ac_load, v_ln_nominal_v: float) -> None:
        self.instrument = ac_load
        self.v_ln_nominal_v = v_ln_nominal_v
        self.what = "the AC load"

    def planned(self, load: RlcLoad) -> RlcLoad:
        return load

    def draw(self, load: RlcLoad) -> RlcLoad:
        self.instrument.set_rlc_load(load.p_w, load.q_inductive_var, load.q_capacitive_var,
                                     v_ln_nominal_v=self.v_ln_nominal_v)
        return load

    def safe_state(self) -> bool:
        return self.instrument.safe_state()


def island_rlc_load(instruments: Mapping[str, Any], bench_config: BenchConfig) -> BankOnLoadBank | BankOnAcLoad | None:
    """What draws an islanded plan's RLC steps on this bench: the load bank where there is one
    (it draws L and C too), else the AC load's constant-impedance mode, else None."""
    if "load_bank" in instruments:
        return BankOnLoadBank(instruments["load_bank"])
    if "ac_load" in instruments:
        return BankOnAcLoad(instruments["ac_load"], bench_config.pcs.v_ln_nom_v)
    return None


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
    (a dead bus needs no synchronising): the bench as the other plans expect it. `ac_load` is
    whatever loaded the island (an AC load, or an RLC load above): its safe state opens it."""
    pcs_cfg = bench_config.pcs
    ac_load.safe_state()
    pcs.stop()
    pcs.set_control_mode("GFL")
    clock.wait(settle_s)
    grid_simulator.configure_nominal(pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz)
    grid_simulator.output_on()
    pcs.reconnect()
    clock.wait(settle_s)
