"""T7 — Voltage ride-through: low-voltage sags (balanced and unbalanced) and high-voltage swells.

Procedure, for each test point of the profile (voltage, duration, faulted phases):
  setup    the PCS exports its pre-fault power with the profile's trip settings written to it;
  stimulus the grid simulator takes the faulted phases (all three unless the point names some)
           to the point's voltage for the duration, then returns to nominal; its trigger output
           starts the oscilloscope. The ride-through region is the one of the point's voltage
           (the lowest phase for a sag, the highest for a swell);
  capture  per-phase PCC voltage and PCS current with pre-trigger, kept on disk;
  judge    it stays connected; in mandatory operation its current never ceases; reactive
           current is injected within the profile's response time (where the profile asks
           for it); active power recovers within the profile's time after the voltage returns.
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.capture import CaptureSettings
from bench.plots import LevelMarker, RideThroughPlot, TimeMarker, plot_ride_through
from bench.plugin import PROFILE_KEY
from bench.procedures import (PHASE_CURRENTS, PHASE_VOLTAGES, capture_transient, energise_bench, run_pcs_at,
                              voltage_event, write_ride_through)
from bench.ride_through import ride_through_signals, sag_figures

pytestmark = pytest.mark.test_id("T7")


@dataclass(frozen=True)
class RideThroughPoint:
    v_pu: float            # the faulted phases' voltage during the event
    duration_s: float
    phases: str = "ABC"

    @property
    def label(self) -> str:
        faulted = "" if self.phases == "ABC" else f"-{self.phases}"
        return f"{self.v_pu:.2f}pu-{self.duration_s:g}s{faulted}"


def _points(profile, section: str) -> list[RideThroughPoint]:
    if not profile.has(f"{section}.test_points"):
        return []
    return [RideThroughPoint(float(p["v_pu"]), float(p["duration_s"]), str(p.get("phases", "ABC")))
            for p in profile.setting(f"{section}.test_points")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    profile = metafunc.config.stash[PROFILE_KEY]
    for fixture, section in (("sag", "lvrt"), ("swell", "hvrt")):
        if fixture in metafunc.fixturenames:
            points = _points(profile, section)
            metafunc.parametrize(fixture, points, ids=[p.label for p in points])


@pytest.fixture(scope="module")
def energised_bench(bench_config, dc_source, grid_simulator, pcs, clock, profile):
    """DC source and grid at nominal, the profile's ride-through settings in the PCS."""
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    procedure = profile.setting("lvrt.procedure")
    write_ride_through(pcs, procedure, profile.setting("hvrt.procedure") if profile.has("hvrt.procedure") else None)
    return procedure


@pytest.fixture
def exporting_pcs(energised_bench, bench_config, pcs, clock):
    """The PCS running at the pre-fault power, restarted if an earlier point tripped it."""
    procedure = energised_bench
    p_w = procedure["pre_fault_p_pu"] * bench_config.pcs.s_rated_va
    run_pcs_at(pcs, clock, p_w, bench_config.pcs.s_rated_va)
    clock.wait(procedure["settle_s"])
    return p_w


def test_T7_lvrt_sag(sag: RideThroughPoint, exporting_pcs, bench_config, profile, grid_simulator, capture,
                     pcs, clock, measurements, run_folder, request):
    ride_through_test(sag, "lvrt", "sag", bench_config, profile, grid_simulator, capture, pcs, clock,
                      measurements, run_folder, request)


def test_T7_hvrt_swell(swell: RideThroughPoint, exporting_pcs, bench_config, profile, grid_simulator, capture,
                       pcs, clock, measurements, run_folder, request):
    ride_through_test(swell, "hvrt", "swell", bench_config, profile, grid_simulator, capture, pcs, clock,
                      measurements, run_folder, request)


def ride_through_test(point: RideThroughPoint, section: str, event: str, bench_config, profile, grid_simulator,
                      capture, pcs, clock, measurements, run_folder, request) -> None:
    """One ride-through event: stimulus, capture, judge. Behaviour clauses (current ceased,
    stability, power recovery, reactive current) are shared by sags and swells (lvrt.*)."""
    pcs_cfg = bench_config.pcs
    procedure = profile.setting("lvrt.procedure")
    region = profile.region_for(f"{section}.regions", point.v_pu)
    if region is None:
        pytest.fail(f"profile {profile.id}: no {section} region covers {point.v_pu} pu")
    if point.duration_s > region.duration_s + 1e-9:
        pytest.fail(f"profile {profile.id}: test point {point.label} lasts longer than its region "
                    f"({region.duration_s:g} s)")

    # --- stimulus and capture ------------------------------------------------------
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"],
                               duration_s=procedure["pretrigger_s"] + point.duration_s + procedure["post_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    frame = capture_transient(
        capture, clock, grid_simulator,
        voltage_event(point.v_pu, point.duration_s, pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz, point.phases), settings,
        test_name=request.node.name, capture_name="pcc_waveforms", metadata={"test_point": point.label})
    after = pcs.telemetry()

    # --- analysis -----------------------------------------------------------------
    window_s = 1.0 / pcs_cfg.f_nom_hz
    t_s = frame.index.to_numpy()
    sig = ride_through_signals(t_s, frame[PHASE_VOLTAGES].to_numpy().T, frame[PHASE_CURRENTS].to_numpy().T,
                               sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                               v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)
    ceased_below = profile.clause("lvrt.current_ceased_below", "pu")
    recovery_fraction = profile.clause("lvrt.power_recovery.fraction", "pu")
    recovery_within = profile.clause("lvrt.power_recovery.within", "s")
    fig = sag_figures(sig, sag_duration_s=point.duration_s, window_s=window_s,
                      ceased_below_pu=ceased_below.value, recovery_fraction=recovery_fraction.value)

    # --- judge --------------------------------------------------------------------
    measurements.record("residual_voltage_pcc", fig.residual_v_pu, "pu")
    stability = profile.clause("lvrt.stability.max_voltage_swing", "pu")
    measurements.record(
        f"voltage_swing_during_{event}", fig.v_swing_pu, "pu", clause=stability, high=stability.value,
        fail_message=f"the PCC voltage swung by ±{fig.v_swing_pu:.3f} pu during the second half of the "
                     f"{point.v_pu:.2f} pu {event} (loss of synchronism or sustained oscillation); "
                     f"at most ±{stability.value:g} pu is allowed")
    if region.kind == "mandatory_operation":
        observed_s = point.duration_s + procedure["post_s"]
        continuous_s = fig.current_ceased_at_s if fig.current_ceased_at_s is not None else observed_s
        measurements.record(
            "continuous_current", continuous_s, "s", clause=region.clause, low=observed_s,
            fail_message=f"current ceased {continuous_s * 1e3:.0f} ms into a {point.v_pu:.2f} pu {event}; "
                         f"mandatory operation requires continuous current for {region.duration_s:g} s")
        if section == "lvrt" and profile.has("lvrt.reactive_current"):
            gain = profile.clause("lvrt.reactive_current.min_gain", "pu/pu")
            response = profile.clause("lvrt.reactive_current.response_time", "cycles")
            required_delta_pu = gain.value * max(0.0, 1.0 - fig.residual_v_pu)
            measurements.record(
                "reactive_current_injection", fig.delta_iq_pu, "pu", clause=gain, low=required_delta_pu,
                fail_message=f"reactive current rose by {fig.delta_iq_pu:.3f} pu during a {fig.residual_v_pu:.2f} pu "
                             f"sag; at least {required_delta_pu:.3f} pu is required")
            measurements.record(
                "reactive_current_response_time", fig.iq_response_s, "s", clause=response,
                high=response.value / pcs_cfg.f_nom_hz,
                fail_message=("no reactive current response was seen" if fig.iq_response_s is None else
                              f"reactive current reached 90 % after {fig.iq_response_s * 1e3:.1f} ms") +
                             f"; required within {response.value:g} cycles ({response.value / pcs_cfg.f_nom_hz * 1e3:.1f} ms)")
    measurements.record(
        "stayed_connected", 0.0 if after.state in ("TRIPPED", "FAULT") else 1.0, "bool",
        clause=region.clause, low=1.0,
        fail_message=f"the PCS tripped during a {point.v_pu:.2f} pu {event} of {point.duration_s:g} s "
                     f"(state {after.state}); the region requires riding through for {region.duration_s:g} s")
    measurements.record(
        "active_power_recovery_time", fig.p_recovery_s, "s", clause=recovery_within, high=recovery_within.value,
        fail_message=("active power did not recover" if fig.p_recovery_s is None else
                      f"active power took {fig.p_recovery_s:.3f} s to recover") +
                     f" to {recovery_fraction.value:.0%} of the pre-fault {fig.pre_p_w / 1e3:.0f} kW after the voltage "
                     f"returned; required within {recovery_within.value:g} s")

    # --- evidence plot --------------------------------------------------------------
    markers = [TimeMarker(point.duration_s + recovery_within.value, "P recovery limit")]
    if section == "lvrt" and profile.has("lvrt.reactive_current") and region.kind == "mandatory_operation":
        markers.append(TimeMarker(response.value / pcs_cfg.f_nom_hz, "Iq response limit", "tab:purple"))
    plot = RideThroughPlot(
        title=f"T7 {section.upper()} {point.label} ({profile.id}, {region.kind.replace('_', ' ')})",
        t_s=t_s, v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
        i_phases={n: frame[n].to_numpy() for n in PHASE_CURRENTS},
        cycle_t_s=sig.t_s, p_w=sig.p_w, q_var=sig.q_var, disturbance_s=(0.0, point.duration_s),
        pu_traces={"V1 (pu)": sig.v_pu, "Id (pu)": sig.id_pu, "Iq (pu)": sig.iq_pu},
        time_markers=markers,
        level_markers=[LevelMarker("power", recovery_fraction.value * fig.pre_p_w / 1e3, "P recovery level"),
                       LevelMarker("pu", ceased_below.value, "current ceased below", "tab:gray")],
    )
    measurements.plots.append(plot_ride_through(plot, run_folder.plot_path(request.node.name, "ride_through")))
    measurements.verdict()
