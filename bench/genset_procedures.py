"""Bench procedures on a genset-formed bus (T9): form the bus with the genset alone, run the PCS
following it, record one disturbance, and give the bench back as the other plans expect it.

The genset is the only source: the grid simulator's output is off and the PCS's PCC breaker is
open (pcs.island()), so the grid side cannot reach the bus; the genset controller starts the
engine and closes the generator breaker onto the load bank's base load. Disturbances: a load
bank step (acceptance), the same step taken off (rejection), an AI-load profile on the AC load.

The scope is started by the bus itself: an edge trigger on v_a rising through zero (a
line-synchronous trigger) armed before the stimulus, so the first rising zero crossing after the
pre-trigger record is full starts it; the stimulus goes out at that instant, so the disturbance
lies within one cycle before t = 0 (plus the contactor's or the load's own delay on real
hardware). The genset controller's own readings are polled alongside and kept as evidence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from bench.ai_buffering import ListProfile, training_list
from bench.capture import CaptureSettings
from bench.clock import BenchClock, ClockError
from bench.config import BenchConfig
from bench.edge_capture import capture_on_edge
from bench.island_procedures import back_to_grid_following
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES, energise_bench, run_pcs_at

CASE_KINDS = ("load_step", "load_rejection", "ai_load")


@dataclass(frozen=True)
class GensetCase:
    """One disturbance of the profile's generator_following.cases."""

    kind: str              # "load_step" | "load_rejection" | "ai_load"
    parameters: dict

    @property
    def label(self) -> str:
        if self.kind in ("load_step", "load_rejection"):
            return f"{self.kind.replace('_', '-')}-{self.parameters['p_pu']:.0%}"
        return "ai-load-training"

    def describe(self, drawn_w: float | None = None) -> str:
        """How failure messages name the case."""
        if self.kind == "ai_load":
            return "the AI-load training profile"
        size = f"{drawn_w / 1e3:.0f} kW" if drawn_w is not None else f"{self.parameters['p_pu']:.0%}"
        return f"the {size} load {'step' if self.kind == 'load_step' else 'rejection'}"


def genset_cases(entries: list[dict]) -> list[GensetCase]:
    cases = [GensetCase(str(e["kind"]), {k: v for k, v in e.items() if k != "kind"}) for e in entries]
    unknown = [c.kind for c in cases if c.kind not in CASE_KINDS]
    if unknown:
        raise ValueError(f"generator_following.cases: unknown kind(s) {', '.join(unknown)} "
                         f"(known: {', '.join(CASE_KINDS)})")
    return cases


def make_genset_bus(bench_config: BenchConfig, dc_source, grid_simulator, genset, load_bank, pcs, clock: BenchClock,
                    *, base_load_w: float, start_timeout_s: float, settle_s: float) -> None:
    """DC source on, PCS stopped, grid simulator off and PCC breaker open; the load bank's base
    load on; the genset started and its breaker closed onto the bus."""
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    pcs.stop()
    pcs.reset_alarms()
    grid_simulator.output_off()
    pcs.island()                           # the grid side cannot reach the genset's bus
    load_bank.set_load(base_load_w)
    genset.start_engine()
    try:
        clock.wait_until(lambda: genset.read().running, timeout_s=start_timeout_s, poll_s=0.5,
                         what="the genset to report RUNNING")
    except ClockError as error:
        reading = genset.read()
        raise ClockError(f"{error} (engine {reading.engine_state}, alarms: {', '.join(reading.alarms) or 'none'})") \
            from None
    genset.close_breaker()
    clock.wait_until(lambda: genset.read().breaker_closed, timeout_s=2.0, poll_s=0.1,
                     what="the generator breaker to report CLOSED")
    clock.wait(settle_s)


def follow_genset(bench_config: BenchConfig, pcs, clock: BenchClock, *, control_mode: str, p_w: float) -> None:
    """The PCS running in the given (grid-following) mode on the genset's bus at p_w."""
    if pcs.telemetry().state != "RUNNING":
        pcs.set_control_mode(control_mode)
    run_pcs_at(pcs, clock, p_w, bench_config.pcs.s_rated_va)


def leave_genset_bus(bench_config: BenchConfig, grid_simulator, genset, load_bank, ac_load, pcs, clock: BenchClock,
                     *, settle_s: float) -> None:
    """PCS stopped first (it must not carry the bus once the genset leaves), loads off, genset
    breaker open and engine stopped; then grid simulator on and the PCC breaker closed."""
    pcs.stop()
    if ac_load is not None:
        ac_load.safe_state()
    load_bank.all_off()
    genset.stop_engine()
    clock.wait(settle_s)
    back_to_grid_following(bench_config, grid_simulator, load_bank, pcs, clock, settle_s=settle_s)


@dataclass(frozen=True)
class GensetRecord:
    """One disturbance's scope record and the genset controller's readings alongside."""

    frame: pd.DataFrame                  # PCC voltages and PCS currents; t = 0 at the trigger
    readings: pd.DataFrame               # genset controller: t_s from the stimulus, f, V, P, Q
    stimulus_at_s: float                 # bench clock time of the stimulus


def record_disturbance(capture, clock: BenchClock, genset, settings: CaptureSettings, *,
                       stimulus: Callable[[], Any], poll_s: float, test_name: str, capture_name: str,
                       run_folder, metadata: dict) -> GensetRecord:
    """Arm the scope on v_a rising through zero, run the stimulus once the pre-trigger record is
    full, and return the record (on disk before any analysis) with the genset's readings."""
    started: list[float] = []
    polled: list[tuple[float, Any]] = []

    def stimulate() -> None:
        started.append(clock.now_s())
        stimulus()

    poller = clock.every(poll_s, lambda now_s: polled.append((now_s, genset.read())), name="genset readings")
    try:
        frame = capture_on_edge(capture, clock, settings, PHASE_VOLTAGES + PHASE_CURRENTS, trigger_on="v_a",
                                level=0.0, slope="rise", stimulus=stimulate, test_name=test_name,
                                capture_name=capture_name, metadata=metadata)
    finally:
        poller.cancel()
    t0 = started[0]
    readings = pd.DataFrame(
        {"freq_hz": [r.freq_hz for _, r in polled], "v_ln_mean_v": [sum(r.v_ln_rms_v) / 3 for _, r in polled],
         "p_w": [r.p_w for _, r in polled], "q_var": [r.q_var for _, r in polled],
         "breaker_closed": [r.breaker_closed for _, r in polled]},
        index=pd.Index([t - t0 for t, _ in polled], name="t_s"))
    readings.attrs.update({"units": {"freq_hz": "Hz", "v_ln_mean_v": "V", "p_w": "W", "q_var": "var"},
                           "source": "genset controller's own meter (evidence, not judged)",
                           "time_reference": "t_s = 0 at the stimulus (bench clock)"})
    run_folder.save_capture(test_name, "genset_readings", readings)
    return GensetRecord(frame=frame, readings=readings, stimulus_at_s=t0)


def ai_load_list(case: GensetCase, *, base_w: float, swing_w: float, after_trigger_s: float) -> ListProfile:
    """The AI-load case as the AC load's power list: training iterations, then the base load
    until the end of the record (the record's tail is where sustained oscillation is judged)."""
    p = case.parameters
    training = training_list(base_w=base_w, swing_w=swing_w, period_s=p["period_s"],
                             compute_fraction=p["compute_fraction"], duration_s=p["duration_s"])
    if training.end_s >= after_trigger_s:
        raise ValueError(f"the AI-load case lasts {training.end_s:g} s, longer than the record after its "
                         f"trigger ({after_trigger_s:g} s)")
    return ListProfile(training.times_s + (training.end_s,), training.powers_w + (base_w,), after_trigger_s)


__all__ = ["GensetCase", "GensetRecord", "ai_load_list", "follow_genset", "genset_cases", "leave_genset_bus",
           "make_genset_bus", "record_disturbance"]
