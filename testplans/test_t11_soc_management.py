"""T11 — SOC management with competing missions: a long mixed duty, then a ride-through.

Procedure:
  setup    DC source and grid at nominal; the PCS running at zero power with the profile's
           ride-through settings (T7), SOC band and mission priority; the AC load at the base
           IT load and the PCS's load smoothing on (as T4);
  duty     the virtual bench switches to phasor fidelity (real hardware runs in real time);
           the AC load plays a mixed AI duty (training iterations and checkpoints) for the
           profile's duty, and the PCS receives the profile's demand-response dispatches, each
           asking for more than the SOC band allows. The bench clock polls the DC source's
           voltage and current (the bench's energy count of the battery → its own SOC) and the
           PCS's SOC estimate;
  end      the AI duty stops; the PCS is dispatched to T7's pre-fault power; the bench returns
           to EMT fidelity and one balanced sag of the profile's LVRT points arrives;
  judge    SOC drift (PCS estimate minus the bench's count at the end of the duty); how far the
           bench's SOC left the band; the reserve held at the event (SOC for the reserve power
           and time); the reserve power exported before the sag; it stays connected and active
           power recovers. Definitions: bench/soc_check.py.
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bench.buffering_procedure import it_load_base_w, return_to_base_load, start_buffering, stop_buffering  # noqa: E402
from bench.capture import CaptureSettings  # noqa: E402
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES, balanced_sag, capture_transient, write_ride_through  # noqa: E402
from bench.ride_through import ride_through_signals, sag_figures  # noqa: E402
from bench.soc_check import (ai_duty_list, band_figures, dc_energy_wh, drift_series_pct, reference_soc_pct,  # noqa: E402
                             reserve_soc_pct, soc_drift_pct)
from dut.telemetry import TelemetryPoller  # noqa: E402

pytestmark = [pytest.mark.test_id("T11"), pytest.mark.profile_sections("soc_management", "lvrt", "demand_response")]

SECONDS_PER_HOUR = 3600.0


@pytest.fixture(scope="module")
def missions_set(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, profile):
    """The PCS serving smoothing under its SOC band and mission priority, ride-through settings
    written; afterwards smoothing off, the load open and the PCS back at zero."""
    procedure = profile.setting("soc_management.procedure")
    start_buffering(bench_config, dc_source, grid_simulator, ac_load, pcs, clock, procedure)
    write_ride_through(pcs, profile.setting("lvrt.procedure"))
    pcs.set_soc_band(profile.clause("soc_management.band.min", "% SOC").value,
                     profile.clause("soc_management.band.max", "% SOC").value)
    pcs.set_mission_priority(procedure["mission_priority"])
    yield procedure
    pcs.set_active_power_w(0.0)
    stop_buffering(ac_load, pcs, clock, procedure)


@dataclass
class DutyRecord:
    """What the bench saw over the duty; t_s = 0 at the duty start (bench clock)."""

    dc: pd.DataFrame                 # t_s → v_v, i_a (DC source readings)
    telemetry: pd.DataFrame          # the TelemetryPoller frame (soc_pct among it)
    start_soc_pct: float
    end_s: float                     # end of the duty (the event follows)
    end_pcs_soc_pct: float | None
    dispatches: list[tuple[float, float]]   # (t_s, target_w)


def test_T11_soc_management(missions_set, bench_config, profile, grid_simulator, ac_load, dc_source, capture,
                            pcs, clock, measurements, run_folder, request):
    procedure = missions_set
    pcs_cfg = bench_config.pcs
    test_name = request.node.name
    capacity_wh = procedure["battery_capacity_wh"]
    sag_point = _end_sag_point(profile, procedure["end_sag_v_pu"])
    region = profile.region_for("lvrt.regions", sag_point["v_pu"])
    if region is None or region.kind != "mandatory_operation":
        pytest.fail(f"profile {profile.id}: the end sag at {sag_point['v_pu']} pu must lie in a mandatory-operation "
                    "region of lvrt.regions (the PCS must ride through it with current)")

    # --- the duty (phasor fidelity on the virtual bench) --------------------------------
    it_base_w = it_load_base_w(bench_config, procedure)
    duty = ai_duty_list(base_w=procedure["base_load_pu"] * it_base_w, swing_w=procedure["swing_pu"] * it_base_w,
                        period_s=procedure["iteration_period_s"], compute_fraction=procedure["compute_fraction"],
                        iterations=procedure["iterations_per_checkpoint"],
                        checkpoint_dip_w=procedure["checkpoint_dip_pu"] * it_base_w, checkpoint_s=procedure["checkpoint_s"])
    ac_load.program_profile(duty.times_s, duty.powers_w, end_s=duty.end_s,
                            repeat=math.ceil(procedure["duty_s"] / duty.end_s))
    dc_readings: list[tuple[float, float, float]] = []
    try:
        clock.set_fidelity("phasor", procedure["phasor_step_s"])
        duty_start_s = clock.now_s()

        def count_dc(now_s: float) -> None:
            dc_readings.append((now_s - duty_start_s, dc_source.measure_voltage_v(), dc_source.measure_current_a()))

        count_dc(duty_start_s)
        start_soc_pct = pcs.telemetry().soc_pct
        if start_soc_pct is None:
            pytest.fail("the PCS reports no SOC (telemetry soc_pct): T11 judges its SOC estimate")
        dc_count = clock.every(procedure["dc_poll_s"], count_dc, name="DC energy count")
        poller = TelemetryPoller(pcs, clock, procedure["telemetry_poll_s"], name="PCS SOC estimate")
        ac_load.start_profile()
        dispatched: list[tuple[float, float]] = []
        for entry in sorted(procedure["dispatches"], key=lambda d: d["at_s"]):
            if entry["at_s"] >= procedure["duty_s"]:
                break
            clock.wait(duty_start_s + entry["at_s"] - clock.now_s())
            target_w = entry["target_pu"] * pcs_cfg.s_rated_va
            pcs.dispatch(target_w, entry["within_s"])
            dispatched.append((clock.now_s() - duty_start_s, target_w))
        clock.wait(duty_start_s + procedure["duty_s"] - clock.now_s())
        poller.stop()
        count_dc(clock.now_s())               # the last count at the instant of the last estimate
        duty_end_s = clock.now_s() - duty_start_s
        end_pcs_soc_pct = pcs.telemetry().soc_pct

        # --- the end event: reserve power, then a balanced sag in EMT ------------------
        ac_load.stop_profile()
        return_to_base_load(bench_config, ac_load, clock, procedure)
        pre_fault_w = profile.setting("lvrt.procedure")["pre_fault_p_pu"] * pcs_cfg.s_rated_va
        pcs.dispatch(pre_fault_w, procedure["reserve_dispatch_s"])
        clock.wait(procedure["reserve_dispatch_s"])
        clock.set_fidelity("emt")             # the sag needs sub-cycle physics
        clock.wait(procedure["settle_s"])
        dc_count.cancel()
        count_dc(clock.now_s())               # the energy count up to the event
        event_s = clock.now_s() - duty_start_s
        lvrt = profile.setting("lvrt.procedure")
        settings = CaptureSettings(sample_rate_hz=lvrt["sample_rate_hz"],
                                   duration_s=lvrt["pretrigger_s"] + sag_point["duration_s"] + lvrt["post_s"],
                                   pretrigger_s=lvrt["pretrigger_s"])
        frame = capture_transient(
            capture, clock, grid_simulator,
            balanced_sag(sag_point["v_pu"], sag_point["duration_s"], pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz), settings,
            test_name=test_name, capture_name="end_sag", metadata={"v_pu": sag_point["v_pu"],
                                                                   "duration_s": sag_point["duration_s"]})
        after = pcs.telemetry()
    finally:
        clock.set_fidelity("emt")             # later plans expect the bench at full fidelity

    # --- evidence on disk before the analysis ------------------------------------------
    dc = pd.DataFrame(dc_readings, columns=["t_s", "v_v", "i_a"]).set_index("t_s")
    dc.attrs.update({"units": {"v_v": "V", "i_a": "A"}, "source": "DC source MEAS:VOLT? / MEAS:CURR? (bench)",
                     "time_reference": "t_s = 0 at the duty start (bench clock)"})
    telemetry = poller.frame()
    telemetry.index = telemetry.index - duty_start_s
    run_folder.save_capture(test_name, "dc_energy_count", dc)
    run_folder.save_capture(test_name, "pcs_telemetry", telemetry)
    record = DutyRecord(dc, telemetry, start_soc_pct, duty_end_s, end_pcs_soc_pct, dispatched)

    # --- analysis -----------------------------------------------------------------
    t_s = dc.index.to_numpy()
    bench_soc_pct = reference_soc_pct(t_s, dc["v_v"].to_numpy(), dc["i_a"].to_numpy(),
                                      start_soc_pct=start_soc_pct, capacity_wh=capacity_wh)
    in_duty = t_s <= duty_end_s
    end_bench_soc_pct = float(bench_soc_pct[in_duty][-1])
    event_bench_soc_pct = float(bench_soc_pct[-1])
    drift_pct = None if end_pcs_soc_pct is None else soc_drift_pct(end_pcs_soc_pct, end_bench_soc_pct)
    estimates = telemetry["soc_pct"].dropna()
    drift_during_pct = drift_series_pct(estimates.index.to_numpy(), estimates.to_numpy().astype(float),
                                        t_s, bench_soc_pct)
    band_min = profile.clause("soc_management.band.min", "% SOC")
    band_max = profile.clause("soc_management.band.max", "% SOC")
    band = band_figures(t_s[in_duty], bench_soc_pct[in_duty], band_min.value, band_max.value)
    energy_wh = dc_energy_wh(t_s[in_duty], dc["v_v"].to_numpy()[in_duty], dc["i_a"].to_numpy()[in_duty])
    discharged_wh = float(np.sum(np.clip(np.diff(energy_wh), 0.0, None)))
    window_s = 1.0 / pcs_cfg.f_nom_hz
    sig = ride_through_signals(frame.index.to_numpy(), frame[PHASE_VOLTAGES].to_numpy().T,
                               frame[PHASE_CURRENTS].to_numpy().T, sample_rate_hz=settings.sample_rate_hz,
                               f_nominal_hz=pcs_cfg.f_nom_hz, v_ln_nom_v=pcs_cfg.v_ln_nom_v,
                               i_rated_a=pcs_cfg.i_rated_a)
    recovery_fraction = profile.clause("lvrt.power_recovery.fraction", "pu")
    recovery_within = profile.clause("lvrt.power_recovery.within", "s")
    sag = sag_figures(sig, sag_duration_s=sag_point["duration_s"], window_s=window_s,
                      ceased_below_pu=profile.clause("lvrt.current_ceased_below", "pu").value,
                      recovery_fraction=recovery_fraction.value)

    # --- judge --------------------------------------------------------------------
    hours = duty_end_s / SECONDS_PER_HOUR
    drift_max = profile.clause("soc_management.drift.max", "% SOC")
    measurements.record(
        "soc_drift", drift_pct, "% SOC", clause=drift_max, low=-drift_max.value, high=drift_max.value,
        fail_message=("the PCS reported no SOC at the end of the duty" if drift_pct is None else
                      f"the PCS's SOC estimate read {end_pcs_soc_pct:.1f} % after the {hours:.1f} h duty while the "
                      f"bench's DC energy count gives {end_bench_soc_pct:.1f} % (drift {drift_pct:+.1f} points, "
                      f"{discharged_wh / 1e3:.0f} kWh discharged)") + f"; at most ±{drift_max.value:g} % is allowed")
    measurements.record("soc_drift_largest_during_duty",
                        float(drift_during_pct[np.argmax(np.abs(drift_during_pct))]) if drift_during_pct.size else None,
                        "% SOC")
    tolerance = profile.clause("soc_management.band.tolerance", "% SOC")
    measurements.record(
        "soc_band_excursion", band.excursion_pct, "% SOC", clause=tolerance, high=tolerance.value,
        fail_message=f"the bench's SOC reached {band.lowest_pct:.1f}–{band.highest_pct:.1f} %, "
                     f"{band.excursion_pct:.1f} points outside the {band_min.value:g}–{band_max.value:g} % band "
                     f"(at {(band.excursion_at_s or 0.0) / SECONDS_PER_HOUR:.2f} h, {band.time_outside_s / 60:.0f} min "
                     f"outside in all); at most {tolerance.value:g} point outside is allowed")
    measurements.record("soc_time_outside_band", band.time_outside_s, "s")
    measurements.record("soc_lowest", band.lowest_pct, "% SOC")
    measurements.record("soc_highest", band.highest_pct, "% SOC")
    measurements.record("energy_discharged", discharged_wh / 1e3, "kWh")

    reserve_power = profile.clause("soc_management.reserve.power", "pu")
    reserve_duration = profile.clause("soc_management.reserve.duration", "s")
    reserve_floor = profile.clause("soc_management.reserve.floor", "% SOC")
    needed_pct = reserve_soc_pct(power_w=reserve_power.value * pcs_cfg.s_rated_va, duration_s=reserve_duration.value,
                                 capacity_wh=capacity_wh, floor_pct=reserve_floor.value)
    measurements.record(
        "reserve_soc_at_event", event_bench_soc_pct, "% SOC", clause=reserve_duration, low=needed_pct,
        fail_message=f"the battery held {event_bench_soc_pct:.1f} % (bench count) when the sag arrived; "
                     f"{reserve_power.value:g} pu for {reserve_duration.value / 60:g} min above the "
                     f"{reserve_floor.value:g} % floor needs at least {needed_pct:.1f} %")
    accuracy = profile.clause("demand_response.accuracy.max_error", "% of reading")
    reserve_w = reserve_power.value * pcs_cfg.s_rated_va
    measurements.record(
        "reserve_power_before_sag", sag.pre_p_w / pcs_cfg.s_rated_va, "pu", clause=reserve_power,
        low=reserve_power.value * (1.0 - accuracy.value / 100.0),
        fail_message=f"the PCS exported {sag.pre_p_w / 1e3:.0f} kW when dispatched to its {reserve_w / 1e3:.0f} kW "
                     f"reserve before the sag; at least {reserve_power.value:g} pu within ±{accuracy.value:g} % "
                     "is required")
    measurements.record(
        "stayed_connected", 0.0 if after.state in ("TRIPPED", "FAULT") else 1.0, "bool", clause=region.clause,
        low=1.0, fail_message=f"the PCS tripped during the {sag_point['v_pu']:.2f} pu sag of "
                              f"{sag_point['duration_s']:g} s at the end of the duty (state {after.state})")
    measurements.record(
        "active_power_recovery_time", sag.p_recovery_s, "s", clause=recovery_within, high=recovery_within.value,
        fail_message=("active power did not recover" if sag.p_recovery_s is None else
                      f"active power took {sag.p_recovery_s:.3f} s to recover") +
                     f" to {recovery_fraction.value:.0%} of the pre-fault {sag.pre_p_w / 1e3:.0f} kW after the "
                     f"end-of-duty sag; required within {recovery_within.value:g} s")

    # --- evidence plot --------------------------------------------------------------
    path = run_folder.plot_path(test_name, "soc_duty")
    _plot_soc_duty(path, title=f"T11 SOC over a {hours:.1f} h duty ({profile.id})", record=record, t_s=t_s,
                   bench_soc_pct=bench_soc_pct, band_pct=(band_min.value, band_max.value),
                   reserve_pct=needed_pct, event_s=event_s, sag_label=f"{sag_point['v_pu']:.2f} pu sag",
                   s_rated_va=pcs_cfg.s_rated_va)
    measurements.plots.append(path)
    measurements.verdict()


def _end_sag_point(profile, v_pu: float) -> dict:
    """The balanced LVRT test point (T7's) at the profile's end-sag voltage."""
    for point in profile.setting("lvrt.test_points"):
        if math.isclose(point["v_pu"], v_pu) and point.get("phases", "ABC") == "ABC":
            return {"v_pu": float(point["v_pu"]), "duration_s": float(point["duration_s"])}
    pytest.fail(f"profile {profile.id}: soc_management.procedure.end_sag_v_pu = {v_pu} is not a balanced point "
                "of lvrt.test_points")


def _plot_soc_duty(path: Path, *, title: str, record: DutyRecord, t_s: np.ndarray, bench_soc_pct: np.ndarray,
                   band_pct: tuple[float, float], reserve_pct: float, event_s: float, sag_label: str,
                   s_rated_va: float) -> Path:
    """SOC of the PCS and of the bench over the duty, the band, the dispatches and the end event."""
    fig, ax = plt.subplots(figsize=(12, 5.5))
    hours = 1.0 / SECONDS_PER_HOUR
    estimates = record.telemetry["soc_pct"].dropna()
    ax.axhspan(*band_pct, color="tab:green", alpha=0.08, label=f"band {band_pct[0]:g}–{band_pct[1]:g} %")
    ax.axhline(reserve_pct, color="tab:red", lw=0.8, ls=":", label=f"reserve needed {reserve_pct:.1f} %")
    ax.plot(t_s * hours, bench_soc_pct, color="tab:blue", lw=1.2, label="bench (DC energy count)")
    ax.plot(estimates.index.to_numpy() * hours, estimates.to_numpy(), color="tab:orange", lw=1.0, ls="--",
            label="PCS estimate (telemetry)")
    for index, (at_s, target_w) in enumerate(record.dispatches):
        ax.axvline(at_s * hours, color="tab:gray", lw=0.6, alpha=0.6, label="DR dispatch" if index == 0 else None)
        ax.annotate(f"{target_w / s_rated_va:+.1f} pu", (at_s * hours, 1.0), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=7, color="tab:gray")
    ax.axvline(event_s * hours, color="tab:red", lw=1.2, label=f"end event: {sag_label}")
    ax.set(title=title, xlabel="time from the duty start (h)", ylabel="SOC (%)", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
