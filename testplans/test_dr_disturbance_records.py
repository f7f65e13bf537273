"""DR — Disturbance recording: the PCS's own fault records, fit for a root-cause review.

Procedure (the events are the profile's `dr.procedure.events`, in order):
  setup    DC source and grid at nominal, the profile's ride-through settings in the PCS (so
           it rides through the sags), the PCS exporting the pre-event power;
  stimulus each event in turn: a balanced sag from the grid simulator, or a limit entry (at
           nominal voltage, a reactive setpoint that asks for more current than the PCS's
           limit, sent on the grid simulator's trigger). This grid simulator role has no
           phase-angle step (GridSegment holds rms voltages and a frequency only), so a
           phase jump is not among the events; the virtual PCS does record phase jumps;
  capture  the oscilloscope records PCC voltages and PCS currents around the grid
           simulator's trigger (kept on disk); then the bench waits for the PCS to publish
           a record newer than any it held before the event, fetches its .cfg/.dat
           (kept on disk as fetched) and parses them with bessbench's own COMTRADE reader;
  judge    per event: the record exists and parses; it holds the channels the profile lists
           (per-phase V and I, P, Q, f by unit and phase; current-limit and mode flags by
           name); sample rate, pre-trigger and length meet the profile (in cycles);
           time alignment with the bench's capture is within the profile's tolerance.

Time alignment, and why it works on hardware. The PCS stamps its records with its own clock,
the bench has another (on the virtual bench both are plant time; on hardware they are
unrelated until the site's time source is checked). The same physical instant is found on
both sides: the onset of the step (sag, current rise) is located in the record's own samples
and in the bench's capture with one detector (halfway crossing of the instantaneous
space-vector magnitude, so no averaging window delays it and any detector bias is common to
both). The bench's capture is tied to the bench clock through the grid simulator's trigger
output, which starts the scope: the bench clock read when the transient has been started is
the trigger instant (on hardware a few ms late by the command's round trip - constant, so it
cancels below). The first event is the reference: it fixes the offset between the PCS's
record clock and the bench clock. Every later event is judged on the interval from the
reference: (record onset − reference record onset) − (bench onset − reference bench onset),
which is zero for a recorder whose time stamps follow real time, whatever its clock offset.
Telemetry time stamps are not used for the offset: their age at the moment of the Modbus
read (averaging window plus round trip) is unknown to several ms on a real link.
What this does not prove: that the PCS clock is synchronised to UTC (NERC PRC-002's ±2 ms);
that needs the site's time source, and is a commissioning check of its own.

Control: listing the records writes the record-select register, and the stimuli command
the PCS; on a real bench the run needs --allow-control (the virtual PCS always allows it).
Every limit comes from the profile; the report names the clause that judged it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from bench.capture import CaptureSettings
from bench.clock import ClockError
from bench.comtrade_reader import ComtradeError, ComtradeRecord, read_comtrade
from bench.disturbance_records import (channels_by_quantity, elapsed_time_mismatch_s, missing_channels,
                                       record_figures, record_onset_s, record_time, space_vector_magnitude,
                                       step_onset_s)
from bench.dr_plot import RecordOverlayPlot, plot_record_overlay
from bench.evidence import safe_name
from bench.plugin import profile_procedure
from bench.procedures import (PHASE_CURRENTS, PHASE_VOLTAGES, balanced_sag, capture_transient, energise_bench,
                              run_pcs_at, write_ride_through)
from dut.pcs import RecordInfo
from instruments.grid_simulator import GridSegment

pytestmark = [pytest.mark.test_id("DR"), pytest.mark.profile_sections("dr")]

MARKER_SEGMENT_S = 0.05  # the nominal-voltage "transient" whose trigger output starts the scope
# which three quantities carry each kind of event's step, in the record and in the capture
STEP_QUANTITIES = {"sag": (("VA", "VB", "VC"), PHASE_VOLTAGES),
                   "limit_entry": (("IA", "IB", "IC"), PHASE_CURRENTS)}


@dataclass
class RecordedEvent:
    """One stimulus and what both sides recorded of it."""

    label: str
    kind: str
    description: str
    frame: pd.DataFrame                 # the bench's capture, t = 0 at the grid simulator trigger
    bench_trigger_s: float              # bench clock at that trigger
    info: RecordInfo | None = None      # the PCS's record of it, None if none appeared
    record: ComtradeRecord | None = None
    problem: str = ""                   # why there is no parsed record

    @property
    def bench_onset_s(self) -> float | None:
        """Onset of the step in the bench's capture, on the bench clock."""
        t_s = self.frame.index.to_numpy()
        magnitude = space_vector_magnitude(*(self.frame[n].to_numpy() for n in STEP_QUANTITIES[self.kind][1]))
        onset = step_onset_s(t_s, magnitude, steady_until_s=0.0)
        return None if onset is None else self.bench_trigger_s + onset


def _event_label(index: int, event: dict) -> str:
    if event["kind"] == "sag":
        return f"{index + 1}-sag-{event['residual_v_pu']:.2f}pu-{event['duration_s']:g}s"
    return f"{index + 1}-limit-entry-Q{event['q_pu']:+.2f}pu"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "event_index" in metafunc.fixturenames:
        events = profile_procedure(metafunc, "event_index", "dr.procedure.events")
        if events is None:
            return
        metafunc.parametrize("event_index", range(len(events)),
                             ids=[_event_label(i, e) for i, e in enumerate(events)])


def _newest_trigger_s(pcs) -> float | None:
    times = [r.trigger_time_s for r in pcs.disturbance_records() if r.trigger_time_s is not None]
    return max(times) if times else None


def _first_record_after(pcs, after_s: float | None) -> RecordInfo | None:
    fresh = [r for r in pcs.disturbance_records()
             if r.trigger_time_s is not None and (after_s is None or r.trigger_time_s > after_s)]
    return min(fresh, key=lambda r: r.trigger_time_s) if fresh else None


@pytest.fixture(scope="module")
def recorded_events(bench_config, dc_source, grid_simulator, pcs, clock, profile, capture, run_folder):
    """Run every event of the profile in order; each with the bench's capture and the PCS's record."""
    procedure = profile.setting("dr.procedure")
    pcs_cfg = bench_config.pcs
    s_rated_va = pcs_cfg.s_rated_va
    energise_bench(bench_config, dc_source, grid_simulator, clock)
    write_ride_through(pcs, profile.setting("lvrt.procedure"))
    test_name = "test_DR_disturbance_record"
    evidence = run_folder.captures_dir / test_name
    evidence.mkdir(parents=True, exist_ok=True)
    results: list[RecordedEvent] = []
    for index, event in enumerate(procedure["events"]):
        label, kind = _event_label(index, event), event["kind"]
        # --- setup: the PCS at the pre-event operating point -------------------------
        p_pu = event.get("p_pu", procedure["pre_event_p_pu"])
        run_pcs_at(pcs, clock, p_pu * s_rated_va, s_rated_va)
        clock.wait(procedure["settle_s"])
        held_before_s = _newest_trigger_s(pcs)

        # --- stimulus and capture -----------------------------------------------------
        trigger_stamp: list[float] = []
        if kind == "sag":
            segments = balanced_sag(event["residual_v_pu"], event["duration_s"], pcs_cfg.v_ln_nom_v, pcs_cfg.f_nom_hz)
            description = f"balanced sag to {event['residual_v_pu']:.2f} pu for {event['duration_s']:g} s"
            at_trigger = lambda: trigger_stamp.append(clock.now_s())  # noqa: E731
            after_s = event["duration_s"]
        elif kind == "limit_entry":
            q_var = event["q_pu"] * s_rated_va
            segments = [GridSegment(MARKER_SEGMENT_S, (pcs_cfg.v_ln_nom_v,) * 3, pcs_cfg.f_nom_hz)]
            description = (f"limit entry: {p_pu:.2f} pu active power, then {event['q_pu']:+.2f} pu reactive "
                           f"power commanded at the trigger")

            def at_trigger() -> None:
                trigger_stamp.append(clock.now_s())
                pcs.set_reactive_power_var(q_var)
            after_s = event["hold_s"]
        else:
            pytest.fail(f"profile {profile.id}: dr.procedure.events[{index}].kind = {kind!r}; "
                        "use 'sag' or 'limit_entry'")
        settings = CaptureSettings(sample_rate_hz=procedure["sample_rate_hz"],
                                   duration_s=procedure["pretrigger_s"] + after_s + procedure["post_s"],
                                   pretrigger_s=procedure["pretrigger_s"])
        frame = capture_transient(capture, clock, grid_simulator, segments, settings, test_name=test_name,
                                  capture_name=f"event_{label}", metadata={"event": description},
                                  during=(0.0, at_trigger))
        if kind == "limit_entry":
            pcs.set_reactive_power_var(0.0)         # released: back to the pre-event point
        recorded = RecordedEvent(label, kind, description, frame, trigger_stamp[0])
        results.append(recorded)

        # --- retrieve the PCS's record of it --------------------------------------------
        def record_published() -> bool:
            recorded.info = _first_record_after(pcs, held_before_s)
            return recorded.info is not None
        try:
            clock.wait_until(record_published, timeout_s=procedure["record_timeout_s"],
                             poll_s=procedure["record_poll_s"], what=f"a disturbance record of event {label}")
        except ClockError:
            recorded.problem = (f"the PCS published no disturbance record within {procedure['record_timeout_s']:g} s "
                                f"of the {description}")
        if recorded.info is not None:
            cfg_text, dat_bytes = pcs.fetch_record(recorded.info)
            stem = safe_name(f"event_{label}_record_{recorded.info.index}_{recorded.info.cause}")
            (evidence / f"{stem}.cfg").write_text(cfg_text, encoding="utf-8")   # evidence as fetched
            (evidence / f"{stem}.dat").write_bytes(dat_bytes)
            try:
                recorded.record = read_comtrade(cfg_text, dat_bytes)
            except ComtradeError as exc:
                recorded.problem = f"the PCS's record of the {description} is not valid COMTRADE: {exc}"
        clock.wait(procedure["between_events_s"])
    return results


def test_DR_disturbance_record(event_index: int, recorded_events, bench_config, profile, measurements,
                               run_folder, request):
    f_nom_hz = bench_config.pcs.f_nom_hz
    event = recorded_events[event_index]
    reference = recorded_events[0]
    required = profile.setting("dr.required_channels")

    # --- judge: a record exists and parses ------------------------------------------
    measurements.record(
        "record_retrieved", 1.0 if event.record is not None else 0.0, "bool", low=1.0,
        fail_message=event.problem or f"no record of the {event.description}")
    if event.record is None:
        measurements.verdict()
        return
    record = event.record
    measurements.record("record_trigger_time_pcs_clock", event.info.trigger_time_s, "s")

    # --- judge: content -----------------------------------------------------------------
    missing = missing_channels(record, list(required["analog"]), list(required["status"]))
    allowed_missing = profile.clause("dr.required_channels.missing_max", "channels")
    held = sorted(channels_by_quantity(record)) + sorted(record.digital)
    measurements.record(
        "required_channels_missing", float(len(missing)), "channels", clause=allowed_missing,
        high=allowed_missing.value,
        fail_message=f"the PCS's record of the {event.description} lacks {', '.join(missing)} "
                     f"(it holds {', '.join(held)}); a root-cause review needs "
                     f"{', '.join(list(required['analog']) + list(required['status']))}")
    figures = record_figures(record, f_nom_hz)
    rate = profile.clause("dr.sample_rate.min", "samples/cycle")
    measurements.record(
        "record_sample_rate", figures.samples_per_cycle, "samples/cycle", clause=rate, low=rate.value,
        fail_message=("the record has no single sample rate" if figures.samples_per_cycle is None else
                      f"the record is sampled at {figures.samples_per_cycle:.1f} samples per cycle "
                      f"({record.sample_rate_hz:g} Sa/s)") + f"; at least {rate.value:g} samples/cycle are required")
    pre = profile.clause("dr.pre_trigger.min", "cycles")
    measurements.record(
        "record_pre_trigger", figures.pre_trigger_cycles, "cycles", clause=pre, low=pre.value,
        fail_message=f"the record starts {record.config.pre_trigger_s * 1e3:.1f} ms "
                     f"({figures.pre_trigger_cycles:.2f} cycles) before its trigger; at least {pre.value:g} cycles "
                     f"of pre-trigger data are required")
    length = profile.clause("dr.duration.min", "cycles")
    measurements.record(
        "record_duration", figures.duration_cycles, "cycles", clause=length, low=length.value,
        fail_message=f"the record covers {record.duration_s:.3f} s ({figures.duration_cycles:.1f} cycles); "
                     f"at least {length.value:g} cycles are required")

    # --- judge: time alignment with the bench's capture (see module doc) -----------------
    record_quantities = STEP_QUANTITIES[event.kind][0]
    onset_in_record_s = record_onset_s(record, record_quantities, f_nom_hz)
    bench_onset_s = event.bench_onset_s
    ref_in_record_s = None if reference.record is None else record_onset_s(
        reference.record, STEP_QUANTITIES[reference.kind][0], f_nom_hz)
    ref_bench_s = reference.bench_onset_s
    alignment = profile.clause("dr.time_alignment.max", "ms")
    absent = [q for q in record_quantities if q not in channels_by_quantity(record)]
    unmeasurable = [why for why, missing_part in (
        (f"the record has no {'/'.join(absent)}" if absent else
         f"the record holds no {'/'.join(record_quantities)} step with a cycle of steady data before its "
         f"trigger", onset_in_record_s is None),
        ("the bench's capture shows no step", bench_onset_s is None),
        ("the reference event has no usable record", ref_in_record_s is None or ref_bench_s is None)) if missing_part]
    shift_s = None          # record time (from its first sample) → time from this event's bench trigger
    if event_index == 0:
        if not unmeasurable:
            shift_s = bench_onset_s - event.bench_trigger_s - onset_in_record_s
        measurements.record("reference_onset_bench_clock", bench_onset_s, "s")
    else:
        mismatch_s = None
        if not unmeasurable:
            mismatch_s = elapsed_time_mismatch_s(
                record_time(record, onset_in_record_s), bench_onset_s,
                record_time(reference.record, ref_in_record_s), ref_bench_s)
            shift_s = bench_onset_s - event.bench_trigger_s - onset_in_record_s - mismatch_s
        measurements.record(
            "record_time_alignment", None if mismatch_s is None else abs(mismatch_s) * 1e3, "ms",
            clause=alignment, high=alignment.value,
            fail_message=(f"the record's time cannot be aligned with the bench: {'; '.join(unmeasurable)}"
                          if mismatch_s is None else
                          f"the PCS's records place the {event.description} {mismatch_s * 1e3:+.1f} ms away from "
                          f"where the bench's capture puts it (after aligning both clocks on event 1)") +
                         f"; at most ±{alignment.value:g} ms is allowed")

    # --- evidence plot --------------------------------------------------------------------
    channels = channels_by_quantity(record)
    shift = 0.0 if shift_s is None else shift_s
    bench_t_s = event.frame.index.to_numpy()
    trigger_in_record_s = record.config.pre_trigger_s
    onsets = {"bench onset": None if bench_onset_s is None else bench_onset_s - event.bench_trigger_s,
              "record onset": None if onset_in_record_s is None else onset_in_record_s + shift}
    plot = RecordOverlayPlot(
        title=f"DR event {event.label}: PCS record #{event.info.index} ({event.info.cause}) over the bench's "
              f"capture ({profile.id})" + ("" if shift_s is not None else " — NOT ALIGNED"),
        bench_t_s=bench_t_s,
        bench_v={n: event.frame[n].to_numpy() for n in PHASE_VOLTAGES},
        bench_i={n: event.frame[n].to_numpy() for n in PHASE_CURRENTS},
        record_t_s=record.time_s + shift,
        record_v={q: channels[q] for q in ("VA", "VB", "VC") if q in channels},
        record_i={q: channels[q] for q in ("IA", "IB", "IC") if q in channels},
        record_pq={label: channels[q] / 1e3 for q, label in (("P", "P (kW)"), ("Q", "Q (kvar)")) if q in channels},
        record_status={name: bits for name, bits in record.digital.items()},
        record_trigger_s=trigger_in_record_s + shift, onsets_s=onsets)
    measurements.plots.append(plot_record_overlay(plot, run_folder.plot_path(request.node.name, "record_overlay")))
    measurements.verdict()
