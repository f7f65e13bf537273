"""Catalogue of seeded PCS defects of the virtual bench.

A defect makes the simulated PCS behave (or report) the way a faulty product would; it
is never a flag that a test plan could read. Every qualification plan must pass the
healthy PCS and fail the defect(s) listed with its test id in ``caught_by``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    name: str
    description: str
    caught_by: str              # qualification test id, e.g. "T7"
    implemented: bool = False   # False: catalogued, physics not written yet


def _catalogue(*defects: Defect) -> dict[str, Defect]:
    return {d.name: d for d in defects}


DEFECTS: dict[str, Defect] = _catalogue(
    Defect("trip_on_sag",
           "A leftover undervoltage element trips the PCS about 40 ms into any sag below "
           "0.88 pu, whatever its ride-through settings say.",
           "T7", implemented=True),
    Defect("no_reactive_injection",
           "Dynamic voltage support ignores k_factor: the PCS rides through sags but "
           "injects no additional reactive current.",
           "T7", implemented=True),
    Defect("trip_on_rocof",
           "The PCS's RoCoF protection is set far too sensitive (0.25 Hz/s for 0.1 s, df/dt of "
           "its own frequency measurement through a 0.5 s lag): it trips on the frequency ramps it "
           "must ride through (IEEE 1547 0.5/2/3 Hz/s, IEEE 2800 5 Hz/s).",
           "T7", implemented=True),
    Defect("legacy_frequency_trip",
           "A fixed frequency element of an old firmware (59.3 / 60.5 Hz at 60 Hz nominal, "
           "0.16 s) was never removed: the PCS trips on off-nominal frequencies inside the "
           "ride-through bands, whatever its LF/HF trip settings say.",
           "T7", implemented=True),
    Defect("pll_loses_lock_on_jump",
           "The PLL's lock window is 5 degrees: a phase jump takes the PLL out of it and the "
           "firmware ceases current until the PLL has been locked again for 1 s, twice the "
           "0.5 s of momentary cessation IEEE 1547 allows after a phase jump.",
           "T7", implemented=True),
    Defect("gfm_underdamped",
           "Grid-forming PCC voltage regulator measures |V| through a 300 ms filter (a "
           "telemetry RMS reused) with its integral gain raised to keep the bandwidth: load "
           "steps on an island ring at ~3 Hz with a damping ratio below 0.1 (black start "
           "still completes, the start-up regime holds the integrator).",
           "T2", implemented=True),
    Defect("limit_priority_ignored",
           "The current limiter always scales active and reactive current proportionally, "
           "whatever limit_priority says.",
           "T3", implemented=True),
    Defect("limiter_limit_cycle",
           "The current limiter regulates the measured current with a slow hysteretic "
           "integrator: driven into its limit, |I| limit-cycles at 5-15 Hz by more than "
           "5 % of rated current instead of settling.",
           "T3", implemented=True),
    Defect("telemetry_scale_error",
           "Reported active power is 3 % high (wrong scale factor in the metering path).",
           "T1", implemented=True),
    Defect("telemetry_flatline",
           "Reported reactive power freezes at its value when the PCS reaches RUNNING.",
           "T1", implemented=True),
    Defect("telemetry_timestamp_lag",
           "Telemetry is served from a stale buffer: values and their time stamp lag the "
           "plant by 120 ms.",
           "T1", implemented=True),
    Defect("ramp_buffer_slow",
           "The load-smoothing injection is routed through a slew limiter at a quarter of "
           "the active-power ramp setting (4x too slow): AI-load steps reach the grid, which "
           "sees ramps far above the smoothing limit.",
           "T4", implemented=True),
    Defect("dr_slow_response",
           "The active-power ramp limiter uses the wrong time base: setpoint changes and "
           "demand-response dispatches take 5x longer than the ramp setting says.",
           "T6", implemented=True),
    Defect("soc_drift",
           "The SOC estimate counts discharged energy 5 % high (energy-counting gain error "
           "on one direction only): over charge/discharge cycles the reported SOC drifts "
           "away from the battery's, and the SOC manager keeps the wrong band.",
           "T11", implemented=True),
    Defect("blackstart_overshoot",
           "Black start without a real soft start (50 ms ramp) and with an integral-only "
           "start-up voltage regulator at 3x gain: energising a dead bus overshoots the "
           "voltage by 15 % or more.",
           "T10", implemented=True),
    Defect("island_transfer_gap",
           "On grid loss the PCS ceases output for 150 ms while its firmware changes from "
           "grid following to grid forming: the load voltage collapses for ~9 cycles.",
           "T8", implemented=True),
    Defect("genset_interaction_oscillation",
           "A factory fast-frequency-response function left on (whatever fw_enabled says) "
           "acts on the 10 Hz telemetry frequency (held 100 ms) with its droop read as "
           "per-mille (10x gain) and no response lag: silent on a stiff grid, but on a "
           "genset-formed bus it fights the governor in a sustained 2-5 Hz oscillation "
           "bounded by the PCS rating.",
           "T9", implemented=True),
)


def check_defects(names: tuple[str, ...] | list[str]) -> None:
    """ValueError naming every unknown or not-yet-implemented defect."""
    unknown = [n for n in names if n not in DEFECTS]
    pending = [n for n in names if n in DEFECTS and not DEFECTS[n].implemented]
    problems = []
    if unknown:
        problems.append(f"unknown defect(s): {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(DEFECTS))})")
    if pending:
        problems.append(f"defect(s) not implemented yet: {', '.join(pending)}")
    if problems:
        raise ValueError("; ".join(problems))


# --- disturbance recorder defects: applied by bench/sim/recorder.py (the PCS's recorder) ---
DEFECTS.update(_catalogue(
    Defect("recorder_short_pretrigger",
           "The disturbance recorder's pre-trigger buffer holds only 5 ms (not 0.1 s): "
           "records start after the disturbance has begun.",
           "DR", implemented=True),
    Defect("recorder_missing_channels",
           "The disturbance recorder does not record the per-phase PCS currents "
           "(IA, IB, IC are absent from its COMTRADE records).",
           "DR", implemented=True),
))


# --- settings defects: applied by bench/sim/modbus_pcs.py (curve adoption), caught by C2 ---
DEFECTS.update(_catalogue(
    Defect("trip_setting_drift",
           "The PCS stores the first point of an adopted LV must-trip curve (model 707) 0.5 s "
           "longer than written, as a firmware that rounds or offsets settings would: the "
           "protection then waits longer than the approved setting.",
           "C2", implemented=True),
))
