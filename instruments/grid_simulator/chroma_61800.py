"""Chroma 61800 series regenerative grid simulator (61830, 61845, 61860) in three-phase mode.

What the sources say (none of it checked on a real unit):

* Programming words shared with the 61500/61600 programmable AC sources, whose manuals are
  public (61501…61504 User's Manual, ch. 8 "Remote Operation", p. 8-12 … 8-18):
  ``[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]:AC``, ``[SOURce:]FREQuency[:IMMediate]``,
  ``[SOURce:]CURRent:LIMit`` (rms, A), ``[SOURce:]LIST:BASE TIME|CYCLE``,
  ``[SOURce:]LIST:VOLTage:AC:STARt|END`` and ``[SOURce:]LIST:FREQuency:STARt|END``
  (comma-separated, one value per list point).
* A public driver for the 61512 (three-phase 61500, A. Zahler 2019) runs a list transient as:
  ``TRIG OFF`` → ``OUTP:MODE FIXED`` → ``LIST:COUPLING ALL`` → ``LIST:COUNT n`` →
  ``LIST:DWELL …`` → ``LIST:SHAPE …`` → ``LIST:BASE TIME`` → ``LIST:VOLT:AC:START/END …`` →
  ``LIST:FREQ:START/END …`` → ``OUTP:MODE LIST`` → ``TRIG ON``, and documents the dwell list
  as 0 … 99 999 999.9 **ms** and the count as 0 … 65535. It sets the standard phase angles
  with ``SOUR:PHASE:P12 120`` / ``SOUR:PHASE:P13 240`` and closes the output with
  ``OUTP:RELAY ON`` then ``OUTP:STATE ON``.
* A public controller for the 61860 (a 61800) reads per-phase values with ``INST:NSEL n``
  then ``FETC:VOLT:AC?``, ``FETC:CURR:AC?``, ``FETC:POW:AC?``; selects the output mode with
  ``OUTP:MODE FIXED|LIST|PULSE|STEP|SYNTH|INTERHAR`` and the phase mode with
  ``INST:PHAS THREE|SINGLE``.
* A public driver written for the 61845 itself (SunSpec SVP energy lab,
  ``Lib/svpelab/chroma_61845.py``, 2017, whose ``cmd()`` reads ``SYST:ERR?`` after each
  command) loads a list as ``TRIG OFF`` → ``OUTP:MODE FIXED`` → ``LIST:COUP ALL`` → ``LIST:COUNT 1`` →
  ``LIST:BASE TIME`` → ``LIST:DWEL …`` (its example: 2000 per 2 s sequence, i.e.
  milliseconds) → ``LIST:SHAPE …`` → ``LIST:VOLT:AC:STAR/END …`` → ``LIST:FREQ:STAR/END …``
  → ``OUTP:MODE LIST``, then ``TRIG ON`` (plus a ``LIST:TRIG AUTO`` no other source has,
  which this driver does not send).

What remains uncertain, hence a bench option each (``options`` in the bench file):

* The list trigger: ``TRIG ON`` (above) versus ``TRIG:STATE ON`` (our notes) —
  ``list_trigger_command``, default ``"TRIG ON"``; ``TRIG OFF`` stops it.
* The dwell unit on the 61800: milliseconds on the 61500 per the 61512 driver, and on the
  61845 per the SVP driver's example — ``list_dwell_unit`` ``"ms"`` (default) or ``"s"``. A
  factor 1000 here would turn a 100 ms sag into 100 s, so the bench file should state it
  once the manual is at hand.
* The number of list sequences: no command sets it. The 61500 manual's LIST pages that are
  stored (8-18: ``LIST:BASE``, ``LIST:VOLT:AC/DC:STAR/END``, ``LIST:FREQ:STAR/END``) have
  none, and both public list sequences above (61512, 61845) program a list without one: the
  list is as long as the value lists written to it. An earlier version of this driver sent
  ``LIST:POINT n`` from a note that named the header without its meaning; no source shows it
  exists, so the driver no longer depends on it (and ignores the old option
  ``send_list_point_count``).
* Per-phase (unbalanced) lists: written phase by phase under ``INST:COUP NONE`` +
  ``INST:NSEL n``, as the fixed-mode settings are; not confirmed for lists.
* Which rear-panel output pulses at the start of a list (to trigger the scope) and how it is
  enabled: not found; the bench wiring must be checked by hand.

Frequency ramps and phase jumps in a list:

* ramps are native: each sequence runs from its ``LIST:FREQ:STAR`` to its ``LIST:FREQ:END``
  value over its dwell (61500 manual p. 8-18 documents both lists; that the change between
  them is a straight line over the dwell is the reading of "start"/"end", unconfirmed).
  A non-ramping sequence has START = END (a step at its start);
* phase jumps: the public 61512 driver programs ``LIST:DEGR`` (one value per sequence,
  0…359.9), whose manual page was not found. This driver assumes it is the angle of the
  phase during that sequence against its fixed-mode position, written per phase like the
  unbalanced voltages (so a sequence whose angle differs from the previous one's jumps at
  its start), and states that assumption here and in the twin. The header is a bench
  option (``list_phase_command``, default ``"LIST:DEGR"``) until the manual settles it. A
  list without jumps writes zeros where an earlier list left angles. A caution for that
  check: the 61512 driver names these values ``StartAngle``, as it names ``STEP:SPHASE``
  (the step's start phase); if ``LIST:DEGR`` is the waveform angle at which a sequence
  begins (a synchronisation, as "start phase" is on many AC sources) rather than a shift of
  the phase, it cannot make a phase jump, and phase-jump tests need another header.

Output impedance: none of the sources above (61500 manual chapter, the 61512 and 61860
drivers) has a command for a programmable output impedance, and no 61800 manual text was
found. The driver therefore offers none: a non-zero impedance raises
``NoProgrammableImpedance`` before anything is sent, and a weak-grid test on this family
needs an external impedance between the source and the PCC, stated in the bench file as part
of the bench's wiring impedance. Zero is accepted (it is what the family always emulates).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from instruments.grid_simulator import (GridReading, GridSegment, NoProgrammableImpedance, OutputImpedance,
                                       PhaseSelectableGridSimulator)
from instruments.scpi import control, format_number, measurement

log = logging.getLogger(__name__)

_ON_OFF = {True: "ON", False: "OFF"}


class Chroma61800(PhaseSelectableGridSimulator):
    """61800 series in three-phase mode; transients through LIST mode."""

    MODEL_PATTERNS = ("618*",)
    MANUFACTURERS = ("Chroma",)

    #: 61800 output frequency range (datasheet: 30 … 100 Hz)
    FREQUENCY_RANGE_HZ = (30.0, 100.0)
    #: list points of the 61500/61800 LIST mode (S1 … S100)
    MAX_LIST_POINTS = 100
    #: dwell range per list point in seconds (0 … 99 999 999.9 ms on the 61500)
    DWELL_RANGE_S = (0.0001, 99_999.9999)

    # -- settings, as the manual lists them ----------------------------------------------
    phase_mode = control("INST:PHAS?", "INST:PHAS {value}", "Three-phase or single-phase output.",
                         choices={"three": "THREE", "single": "SINGLE"})
    phases_coupled = control(
        "INST:COUP?", "INST:COUP {value}",
        "Program all phases at once (ALL) or only the one selected with INST:NSEL (NONE).",
        choices={True: "ALL", False: "NONE"})
    selected_phase = control("INST:NSEL?", "INST:NSEL {value}",
                             "Phase addressed by settings and measurements when uncoupled.",
                             valid_range=(1, 3), cast=int)
    voltage_ac_v = control(
        "SOUR:VOLT:LEV:IMM:AMPL:AC?", "SOUR:VOLT:LEV:IMM:AMPL:AC {value}",
        "Rms line-to-neutral voltage of the addressed phase(s).",
        valid_range="voltage_span_v", units="V", safety_limit="max_voltage_ln_v")
    frequency_hz = control("SOUR:FREQ?", "SOUR:FREQ {value}", "Output frequency.",
                           valid_range=FREQUENCY_RANGE_HZ, units="Hz")
    phase_2_deg = control("SOUR:PHASE:P12?", "SOUR:PHASE:P12 {value}",
                          "Angle of phase 2 behind phase 1 (120 for a positive sequence).",
                          valid_range=(0.0, 359.9), units="deg")
    phase_3_deg = control("SOUR:PHASE:P13?", "SOUR:PHASE:P13 {value}",
                          "Angle of phase 3 behind phase 1 (240 for a positive sequence).",
                          valid_range=(0.0, 359.9), units="deg")
    current_limit_a = control(
        "SOUR:CURR:LIM?", "SOUR:CURR:LIM {value}", "Rms current limit (software protection).",
        valid_range="current_span_a", units="A", safety_limit="max_current_a")
    voltage_slew_v_per_ms = control(
        "OUTP:SLEW:VOLT:AC?", "OUTP:SLEW:VOLT:AC {value}",
        "Slew rate of AC voltage changes (0 = as fast as possible on the 61500).",
        valid_range=(0.0, 1e6), units="V/ms")
    output_relay_closed = control("OUTP:RELAY?", "OUTP:RELAY {value}", "Output relay.",
                                  choices=_ON_OFF)
    output_enabled = control("OUTP:STATE?", "OUTP:STATE {value}", "Output on.", choices=_ON_OFF)
    output_mode = control(
        "OUTP:MODE?", "OUTP:MODE {value}", "What the output follows.",
        choices={"fixed": "FIXED", "list": "LIST", "pulse": "PULSE", "step": "STEP"})

    list_base = control("LIST:BASE?", "LIST:BASE {value}",
                        "Dwell in time (TIME) or in cycles (CYCLE).",
                        choices={"time": "TIME", "cycle": "CYCLE"})
    list_repeat_count = control("LIST:COUNT?", "LIST:COUNT {value}",
                                "Times the list runs per trigger.", valid_range=(1, 65535), cast=int)

    measured_voltage_ac_v = measurement("FETC:VOLT:AC?", "Rms voltage of the selected phase.", units="V")
    measured_current_ac_a = measurement("FETC:CURR:AC?", "Rms current of the selected phase.", units="A")
    measured_power_ac_w = measurement("FETC:POW:AC?", "Real power of the selected phase.", units="W")
    measured_frequency_hz = measurement("FETC:FREQ?", "Output frequency.", units="Hz")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # 61845: 0–150 V / 0–300 V line-to-neutral ranges; which one is wired is a bench fact
        self.voltage_span_v = (0.0, float(self.options.get("voltage_range_v", 300.0)))
        self.current_span_a = (0.0, float(self.options.get("current_range_a", 1000.0)))
        self.list_trigger_command = str(self.options.get("list_trigger_command", "TRIG ON"))
        unit = str(self.options.get("list_dwell_unit", "ms")).lower()
        if unit not in ("ms", "s"):
            raise self.limit_error(f"option list_dwell_unit = {unit!r} is not 'ms' or 's'",
                                   quantity="list_dwell_unit")
        self.list_dwell_per_s = 1000.0 if unit == "ms" else 1.0
        self.list_phase_command = str(self.options.get("list_phase_command", "LIST:DEGR"))
        if "send_list_point_count" in self.options:
            log.warning("%s at %s: option send_list_point_count is obsolete and ignored: no "
                        "list-length command is known for the 61800 (see the driver's notes)",
                        self.role, self.resource_name)
        self._phase_lists_written = False       # angles an earlier list left in the unit
        #: angles of phases 2 and 3 behind phase 1 for a balanced positive sequence
        self.phase_angles_deg = (float(self.options.get("phase_2_deg", 120.0)),
                                 float(self.options.get("phase_3_deg", 240.0)))

    # -- role methods ---------------------------------------------------------------------
    def configure_nominal(self, v_ln_v: float, freq_hz: float) -> None:
        self._check_voltage(v_ln_v)
        self._check_frequency(freq_hz)
        current_a = self.options.get("current_limit_a")
        if current_a is not None:
            self.check_value("current_limit_a", float(current_a), valid_range=self.current_span_a,
                             units="A", safety_limit="max_current_a")
        slew = self.options.get("voltage_slew_v_per_ms")
        self.write("TRIG OFF")                     # a running list would override fixed values
        self.phase_mode = "three"
        self.phases_coupled = True
        self.output_mode = "fixed"
        self.frequency_hz = freq_hz
        self.voltage_ac_v = v_ln_v
        self.phase_2_deg, self.phase_3_deg = self.phase_angles_deg
        if current_a is not None:
            self.current_limit_a = float(current_a)
        if slew is not None:
            self.voltage_slew_v_per_ms = float(slew)
        self.check_errors("configuring nominal voltage and frequency")

    def output_on(self) -> None:
        self.output_relay_closed = True
        self.output_enabled = True
        self.check_errors("closing the output")

    def output_off(self) -> None:
        self.output_enabled = False

    def program_transient(self, segments: list[GridSegment]) -> None:
        segments = list(segments)
        self._check_segments(segments)              # everything, before the first command
        n = len(segments)
        dwell = ",".join(format_number(round(s.duration_s * self.list_dwell_per_s, 4))
                         for s in segments)
        freq = ",".join(format_number(s.freq_hz) for s in segments)
        # a ramp runs START -> END over its sequence; a step has START = END
        freq_start = ",".join(format_number(s.start_freq_hz) for s in segments)
        self.write("TRIG OFF")                       # an idle list accepts new points
        self.output_mode = "fixed"
        self.phases_coupled = True
        self.list_repeat_count = 1
        self.list_base = "time"
        self.write(f"LIST:DWEL {dwell}")
        self.write("LIST:SHAPE " + ",".join("A" for _ in segments))   # waveform A: the sine
        self.write(f"LIST:FREQ:STAR {freq_start}")
        self.write(f"LIST:FREQ:END {freq}")
        if all(s.balanced for s in segments):
            levels = ",".join(format_number(s.v_ln_v[0]) for s in segments)
            self.write(f"LIST:VOLT:AC:STAR {levels}")
            self.write(f"LIST:VOLT:AC:END {levels}")
        else:
            self.phases_coupled = False
            for index in range(3):
                self.selected_phase = index + 1
                levels = ",".join(format_number(s.v_ln_v[index]) for s in segments)
                self.write(f"LIST:VOLT:AC:STAR {levels}")
                self.write(f"LIST:VOLT:AC:END {levels}")
            self.phases_coupled = True
        self._write_phase_lists(segments)
        self.output_mode = "list"
        self.check_errors(f"programming a {n}-point list transient")

    def _write_phase_lists(self, segments: list[GridSegment]) -> None:
        """Each phase's angle per sequence (see module notes), 0…359.9 deg; zeros once where
        an earlier list left angles."""
        if not any(s.shifts_phase for s in segments):
            if self._phase_lists_written:
                self.write(f"{self.list_phase_command} " + ",".join("0" for _ in segments))
                self._phase_lists_written = False
            return
        self.phases_coupled = False
        for index in range(3):
            self.selected_phase = index + 1
            angles = (round(s.phase_shift_deg[index] % 360.0, 1) % 360.0 for s in segments)
            self.write(f"{self.list_phase_command} " + ",".join(format_number(a) for a in angles))
        self.phases_coupled = True
        self._phase_lists_written = True

    def start_transient(self) -> None:
        self.write(self.list_trigger_command)
        self.check_errors("starting the list transient")

    def abort_transient(self) -> None:
        self.write("TRIG OFF")
        self.output_mode = "fixed"
        self.check_errors("aborting the list transient")

    def measure(self) -> GridReading:
        volts: list[float] = []
        amps: list[float] = []
        watts: list[float] = []
        self.phases_coupled = False                 # measurements follow INST:NSEL
        try:
            for phase in (1, 2, 3):
                self.selected_phase = phase
                volts.append(self.measured_voltage_ac_v)
                amps.append(self.measured_current_ac_a)
                watts.append(self.measured_power_ac_w)
        finally:
            self.phases_coupled = True
        return GridReading(v_ln_rms_v=(volts[0], volts[1], volts[2]),
                           i_rms_a=(amps[0], amps[1], amps[2]),
                           p_w=(watts[0], watts[1], watts[2]),
                           freq_hz=self.measured_frequency_hz)

    def set_output_impedance(self, r_ohm: float, l_h: float) -> None:
        # a negative or non-finite value is a wrong argument whatever the family can do
        self.check_output_impedance(r_ohm, l_h, r_range_ohm=(0.0, math.inf), l_range_h=(0.0, math.inf))
        if r_ohm == 0.0 and l_h == 0.0:
            return                                  # nothing emulated: already the case
        raise NoProgrammableImpedance(
            self.role, self.resource_name,
            f"this family has no programmable output impedance (asked for {r_ohm:g} ohm + {l_h * 1e3:g} mH); "
            "emulate the weak grid with an external impedance between the source and the PCC and state it "
            "in the bench file; nothing was sent")

    def output_impedance(self) -> OutputImpedance:
        return OutputImpedance(0.0, 0.0)

    # -- checks ---------------------------------------------------------------------------
    def safe_state(self) -> bool:
        """Stop the list and open the output; never raises (no ABORT in this dialect)."""
        return self._send_safely(["TRIG OFF", "OUTP:STATE OFF"])
