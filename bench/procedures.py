"""Bench procedures that several plans share: energise, run the PCS, capture a transient.

They are the steps a test engineer repeats before every test point, written once so every
plan does them the same way (and a fix reaches them all).
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from bench.capture import CaptureSettings, WaveformCapture
from bench.clock import BenchClock
from bench.config import BenchConfig
from dut.pcs import RideThroughSettings
from instruments.grid_simulator import GridSegment

PHASE_VOLTAGES = ["v_a", "v_b", "v_c"]
PHASE_CURRENTS = ["i_a", "i_b", "i_c"]
RUNNING_STATES = ("RUNNING",)
RETURN_SEGMENT_S = 0.1   # nominal voltage programmed after a disturbance, ends the transient list
SETTLE_TOLERANCE_PU = 0.05
# Getting to a test point is not under test: a brisk ramp, whatever an earlier plan left set.
PREPARATORY_RAMP_PU_PER_S = 1.0


def energise_bench(bench_config: BenchConfig, dc_source, grid_simulator, clock: BenchClock) -> None:
    """DC source (both current directions) and grid simulator at nominal, outputs on."""
    pcs_cfg = bench_config.pcs
    limit_a = bench_config.safety.max_dc_current_a
    dc_source.set_current_limits_a(limit_a, limit_a)
    dc_source.set_voltage_v(pcs_cfg.vdc_nominal_v)
    dc_source.output_on()
    grid_simulator.configure_nominal(pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz)
    grid_simulator.output_on()
    clock.wait(0.2)


def write_ride_through(pcs, procedure: dict, hv_procedure: dict | None = None) -> None:
    """The profile's must-trip and momentary-cessation settings, written to the PCS (the HV
    side too when the profile's HV procedure is given)."""
    hv = hv_procedure or {}
    pcs.set_ride_through(RideThroughSettings(
        lv_must_trip=tuple(tuple(point) for point in procedure["lv_must_trip"]),
        lv_mom_cess_v_pu=float(procedure["lv_mom_cess_v_pu"]),
        hv_must_trip=tuple(tuple(point) for point in hv.get("hv_must_trip", ())),
        hv_mom_cess_v_pu=float(hv["hv_mom_cess_v_pu"]) if "hv_mom_cess_v_pu" in hv else None,
    ))


def run_pcs_at(pcs, clock: BenchClock, p_w: float, s_rated_va: float,
               tolerance_pu: float = SETTLE_TOLERANCE_PU) -> None:
    """The PCS running and exporting p_w; restarted (alarms reset) if an earlier point tripped it."""
    pcs.set_active_power_ramp_w_per_s(PREPARATORY_RAMP_PU_PER_S * s_rated_va)
    if pcs.telemetry().state not in RUNNING_STATES:
        pcs.stop()
        pcs.reset_alarms()
        pcs.set_reactive_power_var(0.0)
        pcs.set_active_power_w(p_w)
        pcs.start()
        clock.wait_until(lambda: pcs.telemetry().state in RUNNING_STATES, timeout_s=5.0, poll_s=0.1,
                         what="the PCS to reach RUNNING")
    pcs.set_active_power_w(p_w)
    clock.wait_until(lambda: abs(pcs.telemetry().p_w - p_w) < tolerance_pu * s_rated_va,
                     timeout_s=10.0, poll_s=0.1, what=f"the PCS to export {p_w / 1e3:.0f} kW")


def voltage_event(v_pu: float, duration_s: float, v_ln_nom_v: float, f_nom_hz: float,
                  phases: str = "ABC") -> list[GridSegment]:
    """The named phases at v_pu (a sag below 1, a swell above) for duration_s, the others at
    nominal, then all back to nominal."""
    unknown = set(phases) - set("ABC")
    if unknown or not phases:
        raise ValueError(f"phases {phases!r}: use a combination of A, B and C")
    during = tuple(v_pu * v_ln_nom_v if name in phases else v_ln_nom_v for name in "ABC")
    nominal = (v_ln_nom_v,) * 3
    return [GridSegment(duration_s, during, f_nom_hz), GridSegment(RETURN_SEGMENT_S, nominal, f_nom_hz)]


def frequency_excursion(to_hz: float, hold_s: float, v_ln_nom_v: float, f_nom_hz: float,
                        rocof_hz_per_s: float | None) -> list[GridSegment]:
    """Nominal to to_hz at rocof_hz_per_s (None: a step), held hold_s, back to nominal at the
    same rate, then nominal: a frequency ride-through point or a RoCoF point."""
    if not hold_s > 0.0:
        raise ValueError(f"hold_s must be > 0, got {hold_s!r}")
    nominal = (v_ln_nom_v,) * 3
    if rocof_hz_per_s is None:
        return [GridSegment(hold_s, nominal, to_hz), GridSegment(RETURN_SEGMENT_S, nominal, f_nom_hz)]
    if not rocof_hz_per_s > 0.0:
        raise ValueError(f"rocof_hz_per_s must be > 0, got {rocof_hz_per_s!r}")
    ramp_s = abs(to_hz - f_nom_hz) / rocof_hz_per_s
    return [GridSegment(ramp_s, nominal, to_hz, freq_start_hz=f_nom_hz),
            GridSegment(hold_s, nominal, to_hz),
            GridSegment(ramp_s, nominal, f_nom_hz, freq_start_hz=to_hz),
            GridSegment(RETURN_SEGMENT_S, nominal, f_nom_hz)]


def phase_jump_event(shift_deg: tuple[float, float, float], hold_s: float, v_ln_nom_v: float,
                     f_nom_hz: float) -> list[GridSegment]:
    """The phases jump by shift_deg (A, B, C) and stay there hold_s, then jump back: two jumps."""
    nominal = (v_ln_nom_v,) * 3
    return [GridSegment(hold_s, nominal, f_nom_hz, phase_shift_deg=tuple(shift_deg)),
            GridSegment(RETURN_SEGMENT_S, nominal, f_nom_hz)]


def balanced_sag(residual_v_pu: float, duration_s: float, v_ln_nom_v: float,
                 f_nom_hz: float) -> list[GridSegment]:
    """A three-phase sag to residual_v_pu for duration_s, then back to nominal."""
    return voltage_event(residual_v_pu, duration_s, v_ln_nom_v, f_nom_hz)


def capture_transient(capture: WaveformCapture, clock: BenchClock, grid_simulator,
                      segments: Sequence[GridSegment], settings: CaptureSettings, *,
                      test_name: str, capture_name: str, metadata: dict | None = None,
                      during: tuple[float, Callable[[], None]] | None = None) -> pd.DataFrame:
    """Program the grid simulator, arm the scope on its trigger output, run the transient,
    and return the per-phase capture (already on disk). `during` = (t_s, action): the action
    runs t_s after the trigger (e.g. reading the PCS's own view in the middle of a sag)."""
    names = PHASE_VOLTAGES + PHASE_CURRENTS
    grid_simulator.program_transient(list(segments))
    capture.arm(settings, names)
    clock.wait(settings.pretrigger_s)          # the scope fills its pre-trigger record first
    grid_simulator.start_transient()
    after_trigger_s = settings.duration_s - settings.pretrigger_s
    if during is not None:
        at_s, action = during
        clock.wait(at_s)
        action()
        clock.wait(after_trigger_s - at_s)
    else:
        clock.wait(after_trigger_s)
    capture.wait_complete(timeout_s=10.0 + settings.duration_s)
    return capture.fetch(test_name, capture_name, names, metadata=metadata)
