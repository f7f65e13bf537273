"""T3 — Current limiting under P-, Q- and mixed priority.

Procedure, for each limit priority of the profile (P, Q, mixed):
  setup    the priority is written to the PCS, which exports its pre-event power with the
           profile's ride-through settings (so it rides through the sag instead of tripping);
  stimulus the grid simulator sags all three phases deep enough that the PCS's reactive
           current injection (ΔIq = k·(1 − V)) on top of its held active current asks for
           more than its current limit; then the voltage returns;
  capture  per-phase PCC voltage and PCS current with pre-trigger, kept on disk;
  judge    Id and Iq during the limit follow the priority that applies in ride-through (the
           profile's `ride_through_priority`: "Q" where the requirement is reactive-current
           priority during ride-through whatever the normal-operation setting, "declared" for
           the priority just written); the expected split is derived from the measured voltage,
           the PCS's current limit and its k-factor; the settled
           and the peak instantaneous phase current stay within the limit; the limit is
           reached in time; |I| does not oscillate in the profile's band (no limit cycle);
           active power recovers within the profile's time after the voltage returns.
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

import math

import pytest

from bench.capture import CaptureSettings
from bench.current_limit import limit_episode, limited_current_split_pu, sag_current_reference_pu
from bench.plots import LevelMarker, RideThroughPlot, TimeMarker, plot_ride_through
from bench.plugin import PROFILE_KEY
from bench.procedures import (PHASE_CURRENTS, PHASE_VOLTAGES, balanced_sag, capture_transient, energise_bench,
                              run_pcs_at, write_ride_through)
from bench.ride_through import ride_through_signals

pytestmark = [pytest.mark.test_id("T3"), pytest.mark.profile_sections("current_limit")]

PRIORITY_NAMES = {"P": "active-current (P) priority", "Q": "reactive-current (Q) priority",
                  "mixed": "mixed priority (both scaled)"}
DECLARED = "declared"  # ride_through_priority: the priority written to the PCS applies in ride-through too


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "priority" in metafunc.fixturenames:
        profile = metafunc.config.stash[PROFILE_KEY]
        priorities = list(profile.setting("current_limit.procedure.priorities"))
        metafunc.parametrize("priority", priorities, ids=[f"{p}-priority" for p in priorities])


@pytest.fixture(scope="module")
def energised_bench(bench_config, dc_source, grid_simulator, pcs, clock, profile):
    """DC source and grid at nominal; the profile's ride-through settings in the PCS."""
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    write_ride_through(pcs, profile.setting("lvrt.procedure"))
    return profile.setting("current_limit.procedure")


@pytest.fixture
def exporting_pcs(priority, energised_bench, bench_config, pcs, clock):
    """The PCS with this limit priority, running at the pre-event power (restarted if it tripped)."""
    procedure = energised_bench
    p_w = procedure["pre_event_p_pu"] * bench_config.pcs.s_rated_va
    pcs.set_limit_priority(priority)
    run_pcs_at(pcs, clock, p_w, bench_config.pcs.s_rated_va)
    clock.wait(procedure["settle_s"])
    return p_w


def test_T3_current_limit_priority(priority: str, exporting_pcs, bench_config, profile, grid_simulator,
                                   capture, pcs, clock, measurements, run_folder, request):
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("current_limit.procedure")
    sag_s = procedure["sag_duration_s"]
    i_limit_pu = pcs_cfg.i_max_a / pcs_cfg.i_rated_a
    required = procedure["ride_through_priority"]
    if required not in (*PRIORITY_NAMES, DECLARED):
        pytest.fail(f"profile {profile.id}: current_limit.procedure.ride_through_priority = {required!r}; "
                    f"use one of {', '.join((*PRIORITY_NAMES, DECLARED))}")
    judged_priority = priority if required == DECLARED else required

    # --- stimulus and capture: a deep balanced sag ------------------------------------
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"],
                               duration_s=procedure["pretrigger_s"] + sag_s + procedure["post_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    seen_during: list = []                     # the PCS's own view of the limit, for the record
    frame = capture_transient(
        capture, clock, grid_simulator,
        balanced_sag(procedure["sag_residual_v_pu"], sag_s, pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz), settings,
        test_name=request.node.name, capture_name="pcc_waveforms", metadata={"limit_priority": priority},
        during=(sag_s / 2, lambda: seen_during.append(pcs.telemetry())))
    during = seen_during[0]
    after = pcs.telemetry()

    # --- analysis -----------------------------------------------------------------
    window_s = 1.0 / pcs_cfg.f_nom_hz
    t_s = frame.index.to_numpy()
    i_abc_a = frame[PHASE_CURRENTS].to_numpy().T
    sig = ride_through_signals(t_s, frame[PHASE_VOLTAGES].to_numpy().T, i_abc_a,
                               sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                               v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)
    band = profile.clause("current_limit.limit_cycle.band", "Hz")
    recovery_fraction = profile.clause("current_limit.recovery.fraction", "pu")
    episode = limit_episode(sig, t_s, i_abc_a, phase_names=PHASE_CURRENTS, release_s=sag_s, window_s=window_s,
                            i_rated_a=pcs_cfg.i_rated_a,
                            limit_reached_pu=procedure["limit_reached_fraction"] * i_limit_pu,
                            band_hz=tuple(band.value), recovery_fraction=recovery_fraction.value)
    # What the PCS asks for (held active current plus k·(1 − V) reactive current at the
    # voltage it actually saw), and what its limiter must make of that with this priority.
    reference = sag_current_reference_pu(episode.pre_current, episode.v_pu, procedure["k_factor"])
    expected = limited_current_split_pu(reference, i_limit_pu, judged_priority)

    # --- judge --------------------------------------------------------------------
    measurements.record("residual_voltage_pcc", episode.v_pu, "pu")
    measurements.record("pcs_reports_current_limited",
                        None if during.current_limited is None else float(during.current_limited), "bool")
    measurements.record(
        "current_reference_beyond_limit", reference.magnitude_pu, "pu", low=i_limit_pu,
        fail_message=f"the sag asked the PCS for only {reference.magnitude_pu:.3f} pu of current (held "
                     f"Id {reference.id_pu:.3f} pu, Iq {reference.iq_pu:.3f} pu at {episode.v_pu:.3f} pu), "
                     f"not beyond its {i_limit_pu:.3f} pu limit: the test point does not exercise the "
                     f"limiter; deepen current_limit.procedure.sag_residual_v_pu")
    split_tol = profile.clause("current_limit.split_tolerance", "pu")
    for name, axis, measured, wanted in (("active_current_at_limit", "Id", episode.current.id_pu, expected.id_pu),
                                         ("reactive_current_at_limit", "Iq", episode.current.iq_pu, expected.iq_pu)):
        measurements.record(
            name, measured, "pu", clause=split_tol, low=wanted - split_tol.value, high=wanted + split_tol.value,
            fail_message=f"{axis} at the current limit was {measured:.3f} pu; {PRIORITY_NAMES[judged_priority]} "
                         f"gives {wanted:.3f} ± {split_tol.value:g} pu (reference Id {reference.id_pu:.3f}, "
                         f"Iq {reference.iq_pu:.3f} pu at V {episode.v_pu:.3f} pu, limit {i_limit_pu:.3f} pu)")
    settled_min = profile.clause("current_limit.settled_current.min", "pu of limit")
    settled_max = profile.clause("current_limit.settled_current.max", "pu of limit")
    measurements.record(
        "settled_current", episode.i_settled_pu / i_limit_pu, "pu of limit", clause=settled_max,
        low=settled_min.value, high=settled_max.value,
        fail_message=f"the settled current was {episode.i_settled_pu * pcs_cfg.i_rated_a:.1f} A "
                     f"({episode.i_settled_pu / i_limit_pu:.3f} of the {pcs_cfg.i_max_a:g} A limit); "
                     f"{settled_min.value:g}–{settled_max.value:g} of the limit is required while the "
                     f"reference exceeds it ({settled_min.cite()})")
    peak_max = profile.clause("current_limit.peak_current.max", "pu of limit")
    limit_peak_a = math.sqrt(2.0) * pcs_cfg.i_max_a
    measurements.record(
        "peak_phase_current", episode.peak_phase_a / limit_peak_a, "pu of limit", clause=peak_max,
        high=peak_max.value,
        fail_message=f"phase {episode.peak_phase} peaked at {episode.peak_phase_a:.0f} A instantaneous "
                     f"({episode.peak_phase_a / limit_peak_a:.3f} of the {limit_peak_a:.0f} A limit peak); "
                     f"at most {peak_max.value:g} of it is allowed")
    reach = profile.clause("current_limit.time_to_limit", "cycles")
    measurements.record(
        "time_to_limit", episode.time_to_limit_s, "s", clause=reach, high=reach.value / pcs_cfg.f_nom_hz,
        fail_message=("the current never reached the limit" if episode.time_to_limit_s is None else
                      f"the current reached {procedure['limit_reached_fraction']:.0%} of the limit "
                      f"{episode.time_to_limit_s * 1e3:.1f} ms into the sag") +
                     f"; required within {reach.value:g} cycles ({reach.value / pcs_cfg.f_nom_hz * 1e3:.1f} ms)")
    oscillation = profile.clause("current_limit.limit_cycle.max_amplitude", "pu")
    measurements.record(
        "limit_cycle_amplitude", episode.limit_cycle_amplitude_pu, "pu", clause=oscillation,
        high=oscillation.value,
        fail_message=f"|I| oscillated by ±{episode.limit_cycle_amplitude_pu:.3f} pu in "
                     f"{band.value[0]:g}–{band.value[1]:g} Hz while at the limit (limit cycle); "
                     f"at most ±{oscillation.value:g} pu is allowed")
    measurements.record(
        "stayed_connected", 0.0 if after.state in ("TRIPPED", "FAULT") else 1.0, "bool", low=1.0,
        fail_message=f"the PCS tripped while current-limited (state {after.state}, {after.trip_reason or 'no reason'})")
    recovery_within = profile.clause("current_limit.recovery.within", "s")
    measurements.record(
        "active_power_recovery_time", episode.p_recovery_s, "s", clause=recovery_within, high=recovery_within.value,
        fail_message=("active power did not recover" if episode.p_recovery_s is None else
                      f"active power took {episode.p_recovery_s:.3f} s to recover") +
                     f" to {recovery_fraction.value:.0%} of the pre-sag {episode.pre_p_w / 1e3:.0f} kW after "
                     f"the limit was released; required within {recovery_within.value:g} s")

    # --- evidence plot --------------------------------------------------------------
    plot = RideThroughPlot(
        title=f"T3 current limit, PCS set to {PRIORITY_NAMES[priority]}, judged as {judged_priority} in "
              f"ride-through ({profile.id}): sag to {procedure['sag_residual_v_pu']:.2f} pu for {sag_s:g} s",
        t_s=t_s, v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
        i_phases={n: frame[n].to_numpy() for n in PHASE_CURRENTS},
        cycle_t_s=sig.t_s, p_w=sig.p_w, q_var=sig.q_var, disturbance_s=(0.0, sag_s),
        pu_traces={"V1 (pu)": sig.v_pu, "|I1| (pu)": sig.i_pu, "Id (pu)": sig.id_pu, "Iq (pu)": sig.iq_pu},
        time_markers=[TimeMarker(reach.value / pcs_cfg.f_nom_hz, "time-to-limit limit", "tab:purple"),
                      TimeMarker(sag_s + recovery_within.value, "P recovery limit")],
        level_markers=[LevelMarker("current", peak_max.value * limit_peak_a, "peak limit"),
                       LevelMarker("current", -peak_max.value * limit_peak_a, ""),
                       LevelMarker("pu", i_limit_pu, "current limit", "black"),
                       LevelMarker("pu", expected.id_pu, "expected Id", "tab:green"),
                       LevelMarker("pu", expected.iq_pu, "expected Iq", "tab:red"),
                       LevelMarker("power", recovery_fraction.value * episode.pre_p_w / 1e3, "P recovery level")],
    )
    measurements.plots.append(plot_ride_through(plot, run_folder.plot_path(request.node.name, "current_limit")))
    measurements.verdict()
