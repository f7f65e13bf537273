"""AMETEK / California Instruments MX series three-phase AC source (MX30, MX45, MX90 …).

SCPI from the MX/Sequoia programming manuals: phases are addressed with ``INST:NSEL 1|2|3``
while ``INST:COUP NONE``, or all at once with ``INST:COUP ALL``. Measurements are "phase
selectable": they report the phase chosen with ``INST:NSEL``. Transients are lists
(``LIST:DWEL``, ``LIST:VOLT``, ``LIST:FREQ``) played once when the transient system is
initiated; the rear-panel trigger output ("function strobe") pulses at the beginning of the
transient (``OUTP:TTLT:SOUR BOT``) and is wired to the oscilloscope's AUX input.

Programmable output impedance (weak-grid emulation): ``OUTPut:IMPedance:REAL <R>`` (the
resistive part), ``OUTPut:IMPedance:REACtive <X>`` (the inductive part) and
``OUTPut:IMPedance[:STATe] ON|OFF``. What is confirmed and what is not:

* confirmed: those three headers, in that form, in the SCPI command list of the HP/Agilent
  6811B…6834B AC source family (public pymeasure driver notes), the SCPI tree the
  California Instruments sources share for OUTPut, MEASure and the transient system;
* not found in the reference corpora: the MX manual's own page (only its front matter is
  stored). So the model's ranges, the unit of the reactive part (mH, H, or Ω of reactance)
  and whether the setting follows ``INST:COUP`` per phase are unconfirmed; each is a bench
  option (``output_impedance_r_max_ohm``, default 1.0; ``output_impedance_l_max_h``,
  default 1 mH; ``output_impedance_reactive_unit``: ``"mH"`` (default), ``"H"`` or
  ``"ohm"``, the last one converted at the programmed output frequency). The values are
  sent with all phases coupled, so every phase gets the same impedance.
* assumed: the impedance may be changed with the output on (the weak-grid plan changes it
  while the PCS runs); a unit that refuses it reports an error the driver raises.

Frequency ramps and phase jumps in a transient list. The list subsystem of the SCPI tree
these sources share has, besides ``LIST:FREQ``, a frequency slew list
``[SOURce:]LIST:FREQuency:SLEW <n>{,<n>}`` and a phase list ``[SOURce:]LIST:PHASe <n>{,<n>}``
(AMETEK Sequoia series manual, section 4.21 "Source Subsystem - List", and the HP/Agilent
6811B…6834B programming guide, "Source Subsystem (List)"); each function takes part in a
list when its mode is LIST. What is assumed here, for a check against the MX manual:

* a list point's frequency moves from where the output is to its ``LIST:FREQ`` value at its
  ``LIST:FREQ:SLEW`` rate (Hz/s) and then holds, as the front-panel transient steps of the
  California Instruments sources do ("the rate of change for voltage and frequency is
  determined by the slew rate set", 2253i user manual p. 87); ``MAX`` is a step. So a ramp
  must start where the previous point (or the steady output, for the first) ended: the
  driver refuses a list whose ramp would not, before anything is sent;
* the slew list takes part with ``FREQ:SLEW:MODE LIST`` and the phase list with
  ``PHAS:MODE LIST`` (the 6811B tree's mode headers); the modes are set only for a list
  that ramps or jumps, and returned to FIXed by the next list that does not;
* ``LIST:PHAS`` is written per phase (``INST:COUP NONE``, ``INST:NSEL n``) in the
  convention of ``PHAS``: degrees 0…360, B nominally at 240, C at 120; a list angle for
  phase A moves A against the source's internal reference, so an all-phase shift is a
  positive-sequence jump of the whole output.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from instruments.grid_simulator import GridReading, GridSegment, OutputImpedance, PhaseSelectableGridSimulator
from instruments.scpi import control, format_number, measurement

log = logging.getLogger(__name__)

_ON_OFF = {True: "ON", False: "OFF"}
#: units the reactive part of the output impedance may be programmed in (see module notes)
_REACTIVE_UNITS = ("mH", "H", "ohm")
#: PHAS angles of phases A, B, C on a balanced positive sequence (B lags A by 120 deg)
_NOMINAL_PHASE_DEG = (0.0, 240.0, 120.0)
#: two frequencies closer than this are the same point of a ramp (continuity check)
_FREQ_MATCH_HZ = 1e-6


class AmetekMx(PhaseSelectableGridSimulator):
    """MX series in three-phase mode."""

    MODEL_PATTERNS = ("MX*",)
    MANUFACTURERS = ("AMETEK", "California Instruments")

    #: frequency range of the MX series (standard, without the 5 kHz option)
    FREQUENCY_RANGE_HZ = (16.0, 1000.0)
    #: transient list length of the MX controller
    MAX_LIST_POINTS = 100
    #: shortest / longest dwell of one list point
    DWELL_RANGE_S = (0.0002, 86_400.0)

    # -- settings, as the manual lists them ----------------------------------------------
    phases_coupled = control(
        "INST:COUP?", "INST:COUP {value}",
        "Program all phases at once (ALL) or only the one selected with INST:NSEL (NONE).",
        choices={True: "ALL", False: "NONE"})
    selected_phase = control(
        "INST:NSEL?", "INST:NSEL {value}",
        "Phase addressed by programming commands when uncoupled, and by measurements.",
        valid_range=(1, 3), cast=int)
    voltage_ac_v = control(
        "VOLT:AC?", "VOLT:AC {value}",
        "Rms line-to-neutral output voltage of the addressed phase(s).",
        valid_range="voltage_span_v", units="V", safety_limit="max_voltage_ln_v")
    frequency_hz = control(
        "FREQ?", "FREQ {value}", "Output frequency (common to all phases).",
        valid_range=FREQUENCY_RANGE_HZ, units="Hz")
    phase_angle_deg = control(
        "PHAS?", "PHAS {value}",
        "Phase angle of the addressed phase relative to phase A.",
        valid_range=(0.0, 360.0), units="deg")
    current_limit_a = control(
        "CURR?", "CURR {value}", "Rms current limit of the addressed phase(s).",
        valid_range="current_span_a", units="A", safety_limit="max_current_a")
    output_enabled = control("OUTP?", "OUTP {value}", "Output relay closed.", choices=_ON_OFF)

    voltage_mode = control(
        "VOLT:MODE?", "VOLT:MODE {value}", "What a transient trigger does to the voltage.",
        choices={"fixed": "FIXed", "step": "STEP", "pulse": "PULSe", "list": "LIST"})
    frequency_mode = control(
        "FREQ:MODE?", "FREQ:MODE {value}", "What a transient trigger does to the frequency.",
        choices={"fixed": "FIXed", "step": "STEP", "pulse": "PULSe", "list": "LIST"})
    frequency_slew_mode = control(
        "FREQ:SLEW:MODE?", "FREQ:SLEW:MODE {value}",
        "Whether the frequency slew follows the list (LIST) or stays fixed (see module notes).",
        choices={"fixed": "FIXed", "list": "LIST"})
    phase_mode = control(
        "PHAS:MODE?", "PHAS:MODE {value}",
        "Whether the phase angles follow the list (LIST) or stay fixed (see module notes).",
        choices={"fixed": "FIXed", "list": "LIST"})
    list_repeat_count = control(
        "LIST:COUN?", "LIST:COUN {value}", "How many times the list runs per trigger.",
        valid_range=(1, 65535), cast=int)
    transient_trigger_source = control(
        "TRIG:TRAN:SOUR?", "TRIG:TRAN:SOUR {value}", "What starts an initiated transient.",
        choices={"immediate": "IMMediate", "bus": "BUS", "external": "EXTernal"})
    trigger_output_enabled = control(
        "OUTP:TTLT?", "OUTP:TTLT {value}", "Rear-panel trigger output (function strobe) enabled.",
        choices=_ON_OFF)
    trigger_output_source = control(
        "OUTP:TTLT:SOUR?", "OUTP:TTLT:SOUR {value}",
        "When the trigger output pulses: beginning / end of transient, or per list point.",
        choices={"begin": "BOT", "end": "EOT", "list": "LIST"})

    output_impedance_enabled = control(
        "OUTP:IMP?", "OUTP:IMP {value}", "Programmable output impedance in series with the output.",
        choices=_ON_OFF)
    output_resistance_ohm = control(
        "OUTP:IMP:REAL?", "OUTP:IMP:REAL {value}", "Resistive part of the output impedance.",
        valid_range="impedance_r_range_ohm", units="ohm")
    output_reactance = control(
        "OUTP:IMP:REAC?", "OUTP:IMP:REAC {value}",
        "Inductive part of the output impedance, in the unit of option output_impedance_reactive_unit.",
        valid_range="impedance_reactance_range")

    measured_voltage_ac_v = measurement("MEAS:VOLT:AC?", "Rms voltage of the selected phase.", units="V")
    measured_current_ac_a = measurement("MEAS:CURR:AC?", "Rms current of the selected phase.", units="A")
    measured_power_ac_w = measurement("MEAS:POW:AC?", "Real power of the selected phase.", units="W")
    measured_frequency_hz = measurement("MEAS:FREQ?", "Output frequency.", units="Hz")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The MX has a 150 V and a 300 V (line-to-neutral) range; which one the bench wiring
        # uses is a bench fact (option), not something to switch from a test plan.
        self.voltage_span_v = (0.0, float(self.options.get("voltage_range_v", 300.0)))
        self.current_span_a = (0.0, float(self.options.get("current_range_a", 1000.0)))
        self.use_trigger_output = bool(self.options.get("trigger_output", True))
        self.impedance_r_range_ohm = (0.0, float(self.options.get("output_impedance_r_max_ohm", 1.0)))
        self.impedance_l_range_h = (0.0, float(self.options.get("output_impedance_l_max_h", 1e-3)))
        self.reactive_unit = str(self.options.get("output_impedance_reactive_unit", "mH"))
        # FREQ:SLEW:MODE / PHAS:MODE this driver left in LIST (set back by the next list)
        self._event_modes_listed = False
        if self.reactive_unit not in _REACTIVE_UNITS:
            raise self.limit_error(f"option output_impedance_reactive_unit = {self.reactive_unit!r} is not one "
                                   f"of {', '.join(_REACTIVE_UNITS)}", quantity="output_impedance_reactive_unit")

    @property
    def impedance_reactance_range(self) -> tuple[float, float]:
        # the instrument's own range in the unit it is programmed in (the check before sending)
        return (0.0, self._reactance_from_h(self.impedance_l_range_h[1]))

    # -- role methods ---------------------------------------------------------------------
    def configure_nominal(self, v_ln_v: float, freq_hz: float) -> None:
        self._check_voltage(v_ln_v)
        self._check_frequency(freq_hz)
        current_a = self.options.get("current_limit_a")
        if current_a is not None:
            self.check_value("current_limit_a", float(current_a), valid_range=self.current_span_a,
                             units="A", safety_limit="max_current_a")
        self.phases_coupled = True
        self.voltage_mode = "fixed"
        self.frequency_mode = "fixed"
        self.frequency_hz = freq_hz
        self.voltage_ac_v = v_ln_v
        if current_a is not None:
            self.current_limit_a = float(current_a)
        # phase B lags A by 120°, phase C leads A by 120° (= lags by 240°)
        self.phases_coupled = False
        for phase, angle_deg in ((2, 240.0), (3, 120.0)):
            self.selected_phase = phase
            self.phase_angle_deg = angle_deg
        self.phases_coupled = True
        self.check_errors("configuring nominal voltage and frequency")

    def output_on(self) -> None:
        self.output_enabled = True
        self.check_errors("closing the output")

    def output_off(self) -> None:
        self.output_enabled = False

    def program_transient(self, segments: list[GridSegment]) -> None:
        segments = list(segments)
        self._check_segments(segments)          # everything, before the first command
        ramps = any(s.ramps for s in segments)
        jumps = any(s.shifts_phase for s in segments)
        if ramps:
            self._check_ramps_start_where_the_output_is(segments)
        dwell = ",".join(format_number(s.duration_s) for s in segments)
        freq = ",".join(format_number(s.freq_hz) for s in segments)
        self.write("ABORT")                      # an idle transient system accepts new lists
        self.phases_coupled = True
        self.write(f"LIST:DWEL {dwell}")
        self.write(f"LIST:FREQ {freq}")
        if ramps:
            # Hz/s per point; MAX: the point steps to its frequency
            self.write("LIST:FREQ:SLEW " + ",".join(
                format_number(round(abs(s.rocof_hz_per_s), 9)) if s.ramps else "MAX" for s in segments))
        if all(s.balanced for s in segments):
            self.write("LIST:VOLT " + ",".join(format_number(s.v_ln_v[0]) for s in segments))
        else:
            # unbalanced sags: one voltage list per phase, addressed one phase at a time
            self.phases_coupled = False
            for index in range(3):
                self.selected_phase = index + 1
                self.write("LIST:VOLT " + ",".join(format_number(s.v_ln_v[index]) for s in segments))
            self.phases_coupled = True
        if jumps:
            self._write_phase_lists(segments)
        self.list_repeat_count = 1
        self.voltage_mode = "list"
        self.frequency_mode = "list"
        if ramps or jumps or self._event_modes_listed:
            self.frequency_slew_mode = "list" if ramps else "fixed"
            self.phase_mode = "list" if jumps else "fixed"
            self._event_modes_listed = ramps or jumps
        self.transient_trigger_source = "immediate"
        if self.use_trigger_output:
            self.trigger_output_source = "begin"
            self.trigger_output_enabled = True
        self.check_errors(f"programming a {len(segments)}-segment transient")

    def _check_ramps_start_where_the_output_is(self, segments: list[GridSegment]) -> None:
        """An MX point slews from where the output is (module notes): each ramp must start at
        the frequency the previous point ended at, the first at the steady frequency."""
        before_hz = None
        for number, segment in enumerate(segments, start=1):
            if segment.ramps:
                if before_hz is None:
                    before_hz = self.frequency_hz          # a query: nothing is set yet
                if abs(segment.start_freq_hz - before_hz) > _FREQ_MATCH_HZ:
                    raise self.limit_error(
                        f"segment {number} ramps from {segment.start_freq_hz:g} Hz but the output is at "
                        f"{before_hz:g} Hz when it starts: an MX list point slews from where the output "
                        "is, so put a step to the ramp's start frequency before it; nothing was sent",
                        quantity=f"segment {number} freq_start_hz", value=segment.start_freq_hz)
            before_hz = segment.freq_hz

    def _write_phase_lists(self, segments: list[GridSegment]) -> None:
        """LIST:PHAS per phase: its nominal angle plus the segment's shift (0…360 deg)."""
        self.phases_coupled = False
        for index in range(3):
            self.selected_phase = index + 1
            angles = ((_NOMINAL_PHASE_DEG[index] + s.phase_shift_deg[index]) % 360.0 for s in segments)
            self.write("LIST:PHAS " + ",".join(format_number(round(a, 6)) for a in angles))
        self.phases_coupled = True

    def start_transient(self) -> None:
        # with TRIG:TRAN:SOUR IMM the list starts as soon as the transient system is initiated
        self.write("INIT")
        self.check_errors("starting the transient")

    def abort_transient(self) -> None:
        self.write("ABORT")
        self.voltage_mode = "fixed"
        self.frequency_mode = "fixed"
        if self._event_modes_listed:
            self.frequency_slew_mode = "fixed"
            self.phase_mode = "fixed"
            self._event_modes_listed = False
        self.check_errors("aborting the transient")

    def measure(self) -> GridReading:
        volts: list[float] = []
        amps: list[float] = []
        watts: list[float] = []
        for phase in (1, 2, 3):
            self.selected_phase = phase
            volts.append(self.measured_voltage_ac_v)
            amps.append(self.measured_current_ac_a)
            watts.append(self.measured_power_ac_w)
        return GridReading(v_ln_rms_v=(volts[0], volts[1], volts[2]),
                           i_rms_a=(amps[0], amps[1], amps[2]),
                           p_w=(watts[0], watts[1], watts[2]),
                           freq_hz=self.measured_frequency_hz)

    def set_output_impedance(self, r_ohm: float, l_h: float) -> None:
        self.check_output_impedance(r_ohm, l_h, r_range_ohm=self.impedance_r_range_ohm,
                                    l_range_h=self.impedance_l_range_h)
        if r_ohm == 0.0 and l_h == 0.0:
            self.output_impedance_enabled = False
            self.check_errors("turning the programmable output impedance off")
            return
        self.phases_coupled = True                  # the same impedance on every phase
        self.output_resistance_ohm = r_ohm
        self.output_reactance = self._reactance_from_h(l_h)
        self.output_impedance_enabled = True
        self.check_errors(f"programming the output impedance {r_ohm:g} ohm + {l_h * 1e3:g} mH")

    def output_impedance(self) -> OutputImpedance:
        if not self.output_impedance_enabled:
            return OutputImpedance(0.0, 0.0)
        return OutputImpedance(self.output_resistance_ohm, self._reactance_to_h(self.output_reactance))

    def _reactance_from_h(self, l_h: float) -> float:
        if self.reactive_unit == "mH":
            return l_h * 1e3
        if self.reactive_unit == "H":
            return l_h
        return 2.0 * math.pi * self.frequency_hz * l_h      # ohm of reactance at the output frequency

    def _reactance_to_h(self, value: float) -> float:
        if self.reactive_unit == "mH":
            return value * 1e-3
        if self.reactive_unit == "H":
            return value
        return value / (2.0 * math.pi * self.frequency_hz)

    # -- checks ---------------------------------------------------------------------------
    def safe_state(self) -> bool:
        """Stop the transient, return to fixed mode and open the output relay; never raises."""
        return self._send_safely(["ABORT", "OUTP OFF"])
