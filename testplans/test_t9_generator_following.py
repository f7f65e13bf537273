"""T9 — Generator following: the PCS on a genset-formed bus.

Procedure:
  setup    the genset is the only source: grid simulator output off and the PCS's PCC breaker
           open; the load bank's base load on; the genset controller starts the engine and
           closes the generator breaker; the PCS runs grid following on the genset's bus at the
           profile's active-power share (bench/genset_procedures.py);
  stimulus for each case of the profile: a load-bank step (acceptance), the same step taken
           off (rejection, from base + step), an AI-load training profile played by the AC load
           (as T4 plays it), each started on a line-synchronous scope trigger (v_a rising
           through zero) with the disturbance within the cycle before t = 0;
  capture  per-phase bus voltage and PCS current (the oscilloscope); the genset controller's
           own readings polled alongside and kept as evidence;
  judge    against the genset's ISO 8528-5 performance class (from the bench file), the
           profile's limits for that class: transient frequency and voltage deviation in % of
           rated (dip and rise) and their recovery times (steps); and T9's own criterion, no
           sustained oscillation in 1-30 Hz: the in-band content of the bus frequency and of the
           PCS's active power over the last seconds of each record (definitions:
           bench/generator_following.py). The PCS must still run and the genset still carry the
           bus afterwards.
Every limit comes from the profile. Afterwards the PCS is stopped, the loads opened, the genset
stopped, and the grid simulator and PCC breaker restored.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.capture import CaptureSettings
from bench.generator_following import genset_transient_figures
from bench.genset_procedures import (GensetCase, ai_load_list, follow_genset, genset_cases, leave_genset_bus,
                                     make_genset_bus, record_disturbance)
from bench.islanded import bus_signals
from bench.islanded_plot import IslandPlot, plot_island
from bench.plots import LevelMarker, TimeMarker
from bench.plugin import profile_procedure
from bench.procedures import PHASE_CURRENTS, PHASE_VOLTAGES
from bench.profiles import Clause, Profile

pytestmark = [pytest.mark.test_id("T9"), pytest.mark.profile_sections("generator_following")]

FREQ_UNITS = "% of rated frequency"
VOLT_UNITS = "% of rated voltage"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "genset_case" in metafunc.fixturenames:
        entries = profile_procedure(metafunc, "genset_case", "generator_following.cases")
        if entries is None:
            return
        cases = genset_cases(entries)
        metafunc.parametrize("genset_case", cases, ids=[c.label for c in cases])


@dataclass(frozen=True)
class ClassLimits:
    """The ISO 8528-5 limits of one performance class, as the profile states them."""

    iso_class: str
    frequency_dip: Clause
    frequency_rise: Clause
    frequency_recovery: Clause
    voltage_dip: Clause
    voltage_rise: Clause
    voltage_recovery: Clause


def class_limits(profile: Profile, iso_class: str) -> ClassLimits:
    key = f"generator_following.iso_8528_5.{iso_class}"
    return ClassLimits(iso_class,
                       profile.clause(f"{key}.frequency_dip.max", FREQ_UNITS),
                       profile.clause(f"{key}.frequency_rise.max", FREQ_UNITS),
                       profile.clause(f"{key}.frequency_recovery.max", "s"),
                       profile.clause(f"{key}.voltage_dip.max", VOLT_UNITS),
                       profile.clause(f"{key}.voltage_rise.max", VOLT_UNITS),
                       profile.clause(f"{key}.voltage_recovery.max", "s"))


@pytest.fixture(scope="module")
def genset_bus(bench_session, bench_config, dc_source, grid_simulator, genset, load_bank, pcs, clock, profile):
    """The genset alone on the bus at the base load, the PCS following it; afterwards the bench
    as other plans expect it."""
    procedure = profile.setting("generator_following.procedure")
    try:
        make_genset_bus(bench_config, dc_source, grid_simulator, genset, load_bank, pcs, clock,
                        base_load_w=procedure["base_load_pu"] * genset.rating.s_rated_va,
                        start_timeout_s=procedure["start_timeout_s"], settle_s=procedure["settle_s"])
        follow_genset(bench_config, pcs, clock, control_mode=procedure["pcs_control_mode"],
                      p_w=procedure["pcs_p_pu"] * bench_config.pcs.s_rated_va)
    except BaseException:
        # a setup that fails half way (breaker never reports closed, PCS does not start) must
        # not leave a running genset on the bus for the next plan to close the grid onto
        pcs.stop()
        load_bank.safe_state()
        genset.safe_state()
        raise
    yield procedure
    leave_genset_bus(bench_config, grid_simulator, genset, load_bank, bench_session.instruments.get("ac_load"), pcs,
                     clock, settle_s=procedure["restore_settle_s"])


@pytest.fixture
def before_case(genset_bus, genset_case: GensetCase, genset, load_bank, pcs, clock):
    """The bank at the case's starting load (base, or base + step before a rejection), settled
    with the PCS running on the genset's bus; returns the base load in W."""
    procedure = genset_bus
    state, reading = pcs.telemetry().state, genset.read()
    if state != "RUNNING" or not reading.breaker_closed:
        pytest.fail(f"the bus is not as the case needs it: PCS {state}, genset {reading.engine_state} with its "
                    f"breaker {'closed' if reading.breaker_closed else 'open'}")
    base_w = procedure["base_load_pu"] * genset.rating.s_rated_va
    start_w = base_w + (genset_case.parameters["p_pu"] * genset.rating.s_rated_va
                        if genset_case.kind == "load_rejection" else 0.0)
    load_bank.set_load(start_w)
    clock.wait(procedure["settle_s"])
    return base_w


def test_T9_generator_following(genset_case: GensetCase, genset_bus, before_case, bench_config, bench_session,
                                profile, capture, genset, load_bank, pcs, clock, measurements, run_folder, request):
    procedure, base_w = genset_bus, before_case
    pcs_cfg = bench_config.pcs
    rating = genset.rating
    limits = class_limits(profile, rating.iso_class)
    band = profile.clause("generator_following.oscillation_band", "Hz")
    f_osc_max = profile.clause("generator_following.oscillation.frequency.max", "Hz")
    p_osc_max = profile.clause("generator_following.oscillation.pcs_power.max", "pu")
    f_band = profile.clause("generator_following.recovery_band.frequency", FREQ_UNITS)
    v_band = profile.clause("generator_following.recovery_band.voltage", VOLT_UNITS)
    settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"], duration_s=procedure["record_s"],
                               pretrigger_s=procedure["pretrigger_s"])
    after_trigger_s = settings.duration_s - settings.pretrigger_s

    # --- the stimulus of this case
    ac_load, drawn_w = None, None
    if genset_case.kind == "ai_load":
        ac_load = bench_session.instruments.get("ac_load")
        if ac_load is None:
            pytest.skip(f"the AI-load case needs an ac_load; this bench has none "
                        f"(roles: {', '.join(bench_session.instruments)})")
        p = genset_case.parameters
        ai_base_w = p["base_pu"] * pcs_cfg.s_rated_va
        ai_list = ai_load_list(genset_case, base_w=ai_base_w, swing_w=p["swing_pu"] * pcs_cfg.s_rated_va,
                               after_trigger_s=after_trigger_s)
        ac_load.set_constant_power_w(ai_base_w)
        ac_load.load_on()
        clock.wait(procedure["settle_s"])
        ac_load.program_profile(ai_list.times_s, ai_list.powers_w, end_s=ai_list.end_s)
        stimulus = ac_load.start_profile
    else:
        target_w = base_w + (genset_case.parameters["p_pu"] * rating.s_rated_va
                             if genset_case.kind == "load_step" else 0.0)
        setting = load_bank.plan(target_w)      # quantised to the bank's steps, refused beyond its rating
        drawn_w = abs(setting.p_w - load_bank.read().setting.p_w)
        requested_w = genset_case.parameters["p_pu"] * rating.s_rated_va
        # not a requirement but the stimulus's validity: a bank whose steps round the request
        # far down would let every dip and recovery check pass on a non-event
        measurements.record("load_step_drawn", drawn_w, "W", low=procedure["min_step_drawn_fraction"] * requested_w,
                            fail_message=f"the load bank drew {drawn_w / 1e3:.1f} kW of the {requested_w / 1e3:.1f} kW "
                                         f"step the case asks for (its steps cannot make it): the case is not a test")

        def stimulus() -> None:
            load_bank.apply(setting)
    what = genset_case.describe(drawn_w)

    # --- stimulus and capture (evidence on disk before the analysis)
    record = record_disturbance(capture, clock, genset, settings, stimulus=stimulus,
                                poll_s=procedure["genset_poll_s"], test_name=request.node.name,
                                capture_name="genset_bus", run_folder=run_folder,
                                metadata={"case": genset_case.label, "iso_class": rating.iso_class,
                                          "genset_s_rated_va": rating.s_rated_va})
    after = pcs.telemetry()
    after_genset = genset.read()
    if ac_load is not None:
        ac_load.stop_profile()
        ac_load.safe_state()

    # --- figures
    frame = record.frame
    window_s = 1.0 / pcs_cfg.f_nom_hz
    t_s = frame.index.to_numpy()
    sig = bus_signals(t_s, frame[PHASE_VOLTAGES].to_numpy().T, frame[PHASE_CURRENTS].to_numpy().T,
                      sample_rate_hz=settings.sample_rate_hz, f_nominal_hz=pcs_cfg.f_nom_hz,
                      v_ln_nom_v=pcs_cfg.v_ln_nom_v, i_rated_a=pcs_cfg.i_rated_a)
    step_at_s = -window_s              # the disturbance lies within the cycle before the trigger
    end_s = float(sig.t_s[-1])
    fig = genset_transient_figures(sig, step_at_s=step_at_s, end_s=end_s, pre_s=procedure["pre_s"],
                                   final_s=procedure["final_s"], window_s=window_s, f_rated_hz=pcs_cfg.f_nom_hz,
                                   f_band_pct=f_band.value, v_band_pct=v_band.value,
                                   oscillation_window_s=procedure["oscillation_window_s"],
                                   band_hz=(band.value[0], band.value[1]), pcs_rated_va=pcs_cfg.s_rated_va)

    # --- judge
    cls = f"ISO 8528-5 class {rating.iso_class}"
    measurements.record("frequency_before", fig.f_initial_hz, "Hz")
    measurements.record("frequency_after", fig.f_final_hz, "Hz")
    measurements.record("voltage_before", fig.v_initial_pu, "pu")
    measurements.record("voltage_after", fig.v_final_pu, "pu")
    for name, value, limit, quantity, units in (
            ("frequency_dip", abs(fig.f_dip_pct), limits.frequency_dip, "bus frequency fell", FREQ_UNITS),
            ("frequency_rise", fig.f_rise_pct, limits.frequency_rise, "bus frequency rose", FREQ_UNITS),
            ("voltage_dip", abs(fig.v_dip_pct), limits.voltage_dip, "bus voltage fell", VOLT_UNITS),
            ("voltage_rise", fig.v_rise_pct, limits.voltage_rise, "bus voltage rose", VOLT_UNITS)):
        measurements.record(
            name, value, units, clause=limit, high=limit.value,
            fail_message=f"the {quantity} by {value:.2f} {units} after {what}; {cls} allows at most "
                         f"{limit.value:g} {units}")
    if genset_case.kind == "ai_load":
        # a training profile is a train of steps, not one: recovery is judged on the steps
        measurements.record("frequency_recovery_time", fig.f_recovery_s, "s")
        measurements.record("voltage_recovery_time", fig.v_recovery_s, "s")
    else:
        observed_s = end_s - step_at_s
        for name, value, limit, quantity, band_clause, units in (
                ("frequency_recovery_time", fig.f_recovery_s, limits.frequency_recovery, "frequency", f_band,
                 FREQ_UNITS),
                ("voltage_recovery_time", fig.v_recovery_s, limits.voltage_recovery, "voltage", v_band, VOLT_UNITS)):
            measurements.record(
                name, value, "s", clause=limit, high=limit.value,
                fail_message=(f"the bus {quantity} had not recovered (±{band_clause.value:g} {units} of its settled "
                              f"value) {observed_s:.1f} s after " if value is None else
                              f"the bus {quantity} took {value:.2f} s to recover (±{band_clause.value:g} {units}) "
                              f"after ") + f"{what}; {cls} allows at most {limit.value:g} s")
    osc = fig.oscillation
    lo_hz, hi_hz = band.value
    window_text = f"over the last {procedure['oscillation_window_s']:g} s of the record"
    measurements.record(
        "bus_frequency_oscillation", osc.frequency_hz, "Hz", clause=f_osc_max, high=f_osc_max.value,
        fail_message=f"the bus frequency oscillated by {osc.frequency_hz:.3f} Hz in {lo_hz:g}-{hi_hz:g} Hz "
                     f"(strongest at {osc.dominant_hz:.2f} Hz) {window_text} after {what}; at most "
                     f"{f_osc_max.value:g} Hz is allowed")
    measurements.record(
        "pcs_power_oscillation", osc.pcs_power_pu, "pu", clause=p_osc_max, high=p_osc_max.value,
        fail_message=f"the PCS's active power oscillated by {osc.pcs_power_pu:.3f} pu of its rating in "
                     f"{lo_hz:g}-{hi_hz:g} Hz (strongest at {osc.dominant_pcs_hz:.2f} Hz) {window_text} after "
                     f"{what}; at most {p_osc_max.value:g} pu is allowed")
    measurements.record("oscillation_frequency", osc.dominant_hz, "Hz")
    measurements.record(
        "pcs_running_after", 1.0 if after.state == "RUNNING" else 0.0, "bool", low=1.0,
        fail_message=f"after {what} the PCS reports {after.state} ({after.trip_reason or 'no trip reason'})")
    measurements.record(
        "genset_on_bus_after", 1.0 if after_genset.running and after_genset.breaker_closed else 0.0, "bool", low=1.0,
        fail_message=f"after {what} the genset reports {after_genset.engine_state} with its breaker "
                     f"{'closed' if after_genset.breaker_closed else 'open'} "
                     f"(alarms: {', '.join(after_genset.alarms) or 'none'})")
    readings = record.readings
    if len(readings):
        # the controller's own meter, kept as evidence (not a calibrated instrument: not judged)
        measurements.record("genset_power_reading_after", float(readings["p_w"].iloc[-1]), "W")
        measurements.record("genset_frequency_reading_after", float(readings["freq_hz"].iloc[-1]), "Hz")

    # --- plot
    f_nom = pcs_cfg.f_nom_hz
    plot = IslandPlot(
        title=f"T9 generator following: {what} on a {rating.s_rated_va / 1e3:.0f} kVA class {rating.iso_class} "
              f"genset ({profile.id})",
        t_s=t_s, v_phases={n: frame[n].to_numpy() for n in PHASE_VOLTAGES},
        i_phases={n: frame[n].to_numpy() for n in PHASE_CURRENTS}, cycle_t_s=sig.t_s, v_pu=sig.v_pu, f_hz=sig.f_hz,
        current_pu={"PCS P (pu of its rating)": sig.p_w / pcs_cfg.s_rated_va},
        shaded_s=osc.window_s,
        time_markers=[TimeMarker(step_at_s, "disturbance"),
                      TimeMarker(step_at_s + limits.frequency_recovery.value, "f recovery limit")],
        # the recovery bands around the settled values (the class's dip limits, several % away,
        # would flatten the traces; they are in the measurement table)
        level_markers=[LevelMarker("frequency", fig.f_final_hz - f_band.value / 100 * f_nom, "recovery band"),
                       LevelMarker("frequency", fig.f_final_hz + f_band.value / 100 * f_nom, ""),
                       LevelMarker("voltage_pu", fig.v_final_pu - v_band.value / 100, "recovery band"),
                       LevelMarker("voltage_pu", fig.v_final_pu + v_band.value / 100, "")])
    measurements.plots.append(plot_island(plot, run_folder.plot_path(request.node.name, "genset_bus")))
    measurements.verdict()
