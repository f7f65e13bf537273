"""The AI-load buffering procedure (T4), as steps other plans repeat: T5 runs it on a weak grid.

Set-up, one AI-load case (stimulus, capture, analysis) and its judgement against the
profile's ``ai_buffering`` clauses, written once so that T4's procedure and T5's are the
same procedure. The definitions of the figures are in ``bench/ai_buffering.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.ai_buffering import (BufferingFigures, ListProfile, buffering_figures, checkpoint_dip_list, step_list,
                                training_list, two_wattmeter_power_w)
from bench.analysis import per_cycle_power
from bench.capture import CaptureSettings
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES, energise_bench, run_pcs_at
from bench.profiles import Clause, Profile
from instruments.grid_simulator import GridSegment

#: grid-feeder currents (two-wattmeter connection; the bench is three-wire)
GRID_CURRENTS = ["ig_a", "ig_b"]
#: the nominal-voltage "transient" whose trigger output starts the scope record
MARKER_SEGMENT_S = 0.05


@dataclass(frozen=True)
class AiLoadCase:
    kind: str           # "training" | "step" | "checkpoint"
    parameters: dict

    @property
    def label(self) -> str:
        return self.kind

    def list_profile(self, base_w: float, it_base_w: float, record_after_trigger_s: float) -> ListProfile:
        """The case as the AC load's power list (profile fractions of the IT-load base → W)."""
        p = self.parameters
        if self.kind == "training":
            return training_list(base_w=base_w, swing_w=p["swing_pu"] * it_base_w, period_s=p["period_s"],
                                 compute_fraction=p["compute_fraction"], duration_s=p["duration_s"])
        if self.kind == "step":
            return step_list(base_w=base_w, step_w=p["step_pu"] * it_base_w, at_s=p["at_s"],
                             duration_s=record_after_trigger_s)
        if self.kind == "checkpoint":
            return checkpoint_dip_list(base_w=base_w, dip_w=p["dip_pu"] * it_base_w, at_s=p["at_s"],
                                       dip_s=p["dip_s"], duration_s=record_after_trigger_s)
        raise ValueError(f"unknown AI-load case kind {self.kind!r} (known: training, step, checkpoint)")


def ai_load_cases(profile: Profile) -> list[AiLoadCase]:
    return [AiLoadCase(str(c["kind"]), {k: v for k, v in c.items() if k != "kind"})
            for c in profile.setting("ai_buffering.cases")]


@dataclass(frozen=True)
class BufferingLimits:
    ramp: Clause
    tracking: Clause
    bands: dict[str, Clause]                     # band name -> clause
    bands_hz: dict[str, tuple[float, float]]


def buffering_limits(profile: Profile) -> BufferingLimits:
    band_settings = profile.setting("ai_buffering.residual_oscillation")
    return BufferingLimits(
        ramp=profile.clause("ai_buffering.grid_ramp.max", "pu of IT load per s"),
        tracking=profile.clause("ai_buffering.tracking_error.max", "% of IT load"),
        bands={name: profile.clause(f"ai_buffering.residual_oscillation.{name}", "pu of IT load")
               for name in band_settings},
        bands_hz={name: tuple(band_settings[name]["band_hz"]) for name in band_settings})


def it_load_base_w(bench_config, procedure: dict) -> float:
    return procedure["it_load_base_pu"] * bench_config.pcs.s_rated_va


def start_buffering(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, procedure: dict) -> None:
    """The PCS at zero power with smoothing on, the AC load at the base IT load."""
    s_rated_va = bench_config.pcs.s_rated_va
    it_base_w = it_load_base_w(bench_config, procedure)
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    run_pcs_at(pcs, clock, 0.0, s_rated_va)
    ac_load.set_constant_power_w(procedure["base_load_pu"] * it_base_w)
    ac_load.load_on()
    clock.wait(procedure["settle_s"])
    # the PCS's ramp setting is per unit of its own rating; the profile's is of the IT load
    pcs.set_smoothing(True, procedure["smoothing_ramp_pu_per_s"] * it_base_w / s_rated_va)
    clock.wait(procedure["settle_s"])


def stop_buffering(ac_load, pcs, clock, procedure: dict) -> None:
    """Smoothing off and the load open again, so later plans find the bench as usual."""
    pcs.set_smoothing(False)
    ac_load.safe_state()
    clock.wait(procedure["settle_s"])


def return_to_base_load(bench_config, ac_load, clock, procedure: dict) -> None:
    """The AC load at the base IT load and the grid side settled there (a case may end elsewhere)."""
    ac_load.set_constant_power_w(procedure["base_load_pu"] * it_load_base_w(bench_config, procedure))
    clock.wait(procedure["settle_s"])


@dataclass(frozen=True)
class AiLoadRecord:
    """One case's scope record and what follows from it (t_s = 0 at the list start)."""

    frame: pd.DataFrame                 # PCC voltages, PCS currents, grid-feeder currents
    sample_rate_hz: float
    t_s: np.ndarray                     # per-cycle window centres
    grid_w: np.ndarray                  # grid side (two-wattmeter)
    pcs_w: np.ndarray
    it_load_w: np.ndarray               # PCC power balance
    readings: pd.DataFrame              # the AC load's own meter, polled alongside
    figures: BufferingFigures


def run_ai_load_case(case: AiLoadCase, *, procedure: dict, limits: BufferingLimits, bench_config, grid_simulator,
                     ac_load, capture, clock, run_folder, test_name: str, metadata: dict | None = None) -> AiLoadRecord:
    """Play the case on the AC load from the scope's trigger, capture the PCC and the grid
    feeder, and compute the buffering figures (evidence written before the analysis)."""
    pcs_cfg = bench_config.pcs
    it_base_w = it_load_base_w(bench_config, procedure)
    after_trigger_s = procedure["record_s"] - procedure["pretrigger_s"]
    case_list = case.list_profile(procedure["base_load_pu"] * it_base_w, it_base_w, after_trigger_s)
    ac_load.program_profile(case_list.times_s, case_list.powers_w, end_s=case_list.end_s)
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["record_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    names = PHASE_VOLTAGES + PHASE_CURRENTS + GRID_CURRENTS
    grid_simulator.program_transient([GridSegment(MARKER_SEGMENT_S, (pcs_cfg.v_ln_nom_v,) * 3, pcs_cfg.f_nom_hz)])
    capture.arm(settings, names)
    clock.wait(settings.pretrigger_s)          # the scope fills its pre-trigger record
    triggered_at_s = clock.now_s()
    grid_simulator.start_transient()
    ac_load.start_profile()                    # the AI load starts with the record's t = 0
    polled: list[tuple[float, float]] = []
    poller = clock.every(procedure["ac_load_poll_s"],
                         lambda now_s: polled.append((now_s - triggered_at_s, ac_load.measure().p_w)),
                         name="AC load power")
    clock.wait(after_trigger_s)
    poller.cancel()
    capture.wait_complete(timeout_s=10.0 + settings.duration_s)
    frame = capture.fetch(test_name, "pcc_and_grid_feeder", names, metadata={"case": case.label, **(metadata or {})})
    ac_load.stop_profile()
    readings = pd.DataFrame({"p_w": [p for _, p in polled]}, index=pd.Index([t for t, _ in polled], name="t_s"))
    readings.attrs.update({"units": {"p_w": "W"}, "source": "AC load MEAS:POW? (its own meter)",
                           "time_reference": "t_s = 0 at the list start (bench clock)"})
    run_folder.save_capture(test_name, "ac_load_readings", readings)

    t0_s = float(frame.index[0])
    v = frame[PHASE_VOLTAGES].to_numpy().T
    grid = two_wattmeter_power_w(*v, *frame[GRID_CURRENTS].to_numpy().T, sample_rate_hz=settings.sample_rate_hz,
                                 f_nominal_hz=pcs_cfg.f_nom_hz, t0_s=t0_s)
    pcs_power = per_cycle_power(*v, *frame[PHASE_CURRENTS].to_numpy().T, sample_rate_hz=settings.sample_rate_hz,
                                f_nominal_hz=pcs_cfg.f_nom_hz, t0_s=t0_s)
    it_load_w = grid.p_w + pcs_power.p_w       # PCC power balance: what the load bus draws
    figures = buffering_figures(grid.t_s, grid.p_w, it_load_w, it_base_w=it_base_w,
                                ramp_w_per_s=limits.ramp.value * it_base_w, ramp_window_s=procedure["ramp_window_s"],
                                tracking_window_s=procedure["tracking_window_s"],
                                bands_hz=list(limits.bands_hz.values()),
                                initial_grid_w=float(np.mean(grid.p_w[grid.t_s < 0.0])))
    return AiLoadRecord(frame=frame, sample_rate_hz=settings.sample_rate_hz, t_s=grid.t_s, grid_w=grid.p_w,
                        pcs_w=pcs_power.p_w, it_load_w=it_load_w, readings=readings, figures=figures)


def judge_buffering(measurements, record: AiLoadRecord, limits: BufferingLimits, procedure: dict, *,
                    it_base_w: float, where: str) -> None:
    """Record the buffering figures against the profile's ai_buffering clauses; ``where`` names
    the case (and condition) in the failure messages."""
    fig = record.figures
    measurements.record("it_load_ramp", fig.it_load_ramp_fraction_per_s, "pu of IT load per s")
    measurements.record(
        "grid_side_ramp_rate", fig.ramp_fraction_per_s, "pu of IT load per s", clause=limits.ramp,
        high=limits.ramp.value,
        fail_message=f"grid-side power changed by {fig.ramp_fraction_per_s:.0%} of the IT load per second over the "
                     f"{procedure['ramp_window_s']:g} s window from t = {fig.ramp_at_s:.2f} s ({where}; the IT load "
                     f"ramped at up to {fig.it_load_ramp_fraction_per_s:.0%}/s); at most {limits.ramp.value:.0%} per "
                     "second is allowed")
    measurements.record("held_ramp", fig.held_ramp_fraction_per_s, "pu of IT load per s")
    tracking_pct = 100.0 * fig.tracking_error_fraction
    measurements.record(
        "tracking_error", tracking_pct, "% of IT load", clause=limits.tracking, high=limits.tracking.value,
        fail_message=f"grid-side power ({procedure['tracking_window_s']:g} s average) was {tracking_pct:.1f} % of the "
                     f"IT load away from the IT load ramp-limited at the {fig.held_ramp_fraction_per_s:.0%}/s it held "
                     f"(t = {fig.tracking_error_at_s:.2f} s, {where}); at most {limits.tracking.value:g} % is allowed")
    measurements.record("tracking_error_at_permitted_ramp", 100.0 * fig.tracking_error_at_permitted_fraction,
                        "% of IT load")
    for (name, limit), band in zip(limits.bands.items(), fig.bands):
        lo_hz, hi_hz = band.band_hz
        measurements.record(
            f"residual_oscillation_{name}", band.amplitude_fraction, "pu of IT load", clause=limit, high=limit.value,
            fail_message=f"grid-side power oscillated by {band.amplitude_fraction:.3f} pu of the IT load in "
                         f"{lo_hz:g}–{hi_hz:g} Hz ({where}); at most {limit.value:g} pu is allowed")
    meter = record.readings["p_w"].to_numpy()
    if meter.size:
        scope_at_readings = np.interp(record.readings.index.to_numpy(), record.t_s, record.it_load_w)
        # median: a poll that lands on a load edge compares two different cycles
        measurements.record("ac_load_meter_vs_scope_it_load",
                            float(np.median(np.abs(meter - scope_at_readings)) / it_base_w), "pu of IT load")
