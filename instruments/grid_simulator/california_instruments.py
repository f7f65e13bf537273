"""What the AMETEK / California Instruments AC sources (MX, Asterion) share: one SCPI tree.

The product drivers (``ametek_mx``, ``ametek_asterion``) set their ranges and identity and
say which optional functions they have; everything below is the tree the California
Instruments programming manuals describe in common.

Confirmed in those manuals (sections that are stored in the reference corpora):

* phase selection: ``INSTrument:COUPle ALL|NONE`` and ``INSTrument:NSELect 1|2|3``;
  ``PHASe`` is the angle of the phase chosen with ``INST:NSEL`` against the internal
  reference, -360…+360 deg, not spread by ``INST:COUP ALL``, *RST phases 0 / 240 / 120 deg;
  ``PHASe:MODE FIXed|STEP|PULSe|LIST`` (Lx/Ls Series II programming manual, section 4.20
  "Source Subsystem - Phase");
* ``CURRent`` is the rms current limit (Sequoia series manual, 6.2.6); the transient
  functions include voltage, frequency, start phase angle and frequency slew rate
  (Sequoia 6.4);
* the list subsystem: ``LIST:COUNt``, ``LIST:DWELl`` (seconds), ``LIST:FREQuency[:LEVel]``,
  ``LIST:FREQuency:SLEW``, up to 100 points, a one-point list is implied at every point
  (Sequoia series manual, section 4.21 "Source Subsystem - List"; the HP/Agilent
  6811B…6834B programming guide, "Source Subsystem (List)", adds ``LIST:PHASe``).

Frequency ramps and phase jumps in a transient list. Each function takes part in a list when
its mode is LIST. What is assumed here, for a check against each product's manual:

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

Programmable output impedance (weak-grid emulation): ``OUTPut:IMPedance:REAL <R>`` (the
resistive part), ``OUTPut:IMPedance:REACtive <X>`` (the inductive part) and
``OUTPut:IMPedance[:STATe] ON|OFF``, headers of the SCPI tree these sources share (HP/Agilent
6811B…6834B OUTPut subsystem). Whether a product has the function, its ranges and the unit
of the reactive part are the product driver's business (``programmable_impedance``); a
source without it raises :class:`NoProgrammableImpedance` before anything is sent.
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
#: units the reactive part of the output impedance may be programmed in
REACTIVE_UNITS = ("mH", "H", "ohm")
#: PHAS angles of phases A, B, C on a balanced positive sequence (B lags A by 120 deg)
_NOMINAL_PHASE_DEG = (0.0, 240.0, 120.0)
#: two frequencies closer than this are the same point of a ramp (continuity check)
_FREQ_MATCH_HZ = 1e-6


class CaliforniaInstrumentsSource(PhaseSelectableGridSimulator):
    """The shared California Instruments tree in three-phase mode.

    Subclasses set ``MODEL_PATTERNS``, ``FREQUENCY_RANGE_HZ``, ``MAX_LIST_POINTS``,
    ``DWELL_RANGE_S`` and ``FAMILY`` (the name error messages use), and say with
    :meth:`has_programmable_impedance` whether the source emulates an output impedance.
    """

    MANUFACTURERS = ("AMETEK", "California Instruments")
    #: how error messages name the product ("an MX list point …")
    FAMILY = "California Instruments"

    # -- settings, as the manuals list them ------------------------------------------------
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
        valid_range="FREQUENCY_RANGE_HZ", units="Hz")
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
        # The sources have a low and a high (line-to-neutral) range; which one the bench wiring
        # uses is a bench fact (option), not something to switch from a test plan.
        self.voltage_span_v = (0.0, float(self.options.get("voltage_range_v", 300.0)))
        self.current_span_a = (0.0, float(self.options.get("current_range_a", 1000.0)))
        self.use_trigger_output = bool(self.options.get("trigger_output", True))
        # FREQ:SLEW:MODE / PHAS:MODE this driver left in LIST (set back by the next list)
        self._event_modes_listed = False
        if self.has_programmable_impedance():
            self.impedance_r_range_ohm = (0.0, float(self.options.get("output_impedance_r_max_ohm", 1.0)))
            self.impedance_l_range_h = (0.0, float(self.options.get("output_impedance_l_max_h", 1e-3)))
            self.reactive_unit = str(self.options.get("output_impedance_reactive_unit", "mH"))
            if self.reactive_unit not in REACTIVE_UNITS:
                raise self.limit_error(
                    f"option output_impedance_reactive_unit = {self.reactive_unit!r} is not one "
                    f"of {', '.join(REACTIVE_UNITS)}", quantity="output_impedance_reactive_unit")

    def has_programmable_impedance(self) -> bool:
        """Whether this source emulates a series R-L (the product driver decides)."""
        return True

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
        # phase B lags A by 120°, phase C leads A by 120° (= lags by 240°); a unit that is not
        # in three-phase mode refuses INST:NSEL 2|3, and the error check below says so
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
        """A list point slews from where the output is (module notes): each ramp must start at
        the frequency the previous point ended at, the first at the steady frequency."""
        before_hz = None
        for number, segment in enumerate(segments, start=1):
            if segment.ramps:
                if before_hz is None:
                    before_hz = self.frequency_hz          # a query: nothing is set yet
                if abs(segment.start_freq_hz - before_hz) > _FREQ_MATCH_HZ:
                    raise self.limit_error(
                        f"segment {number} ramps from {segment.start_freq_hz:g} Hz but the output is at "
                        f"{before_hz:g} Hz when it starts: an {self.FAMILY} list point slews from where "
                        "the output is, so put a step to the ramp's start frequency before it; nothing "
                        "was sent", quantity=f"segment {number} freq_start_hz", value=segment.start_freq_hz)
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

    # -- programmable output impedance -------------------------------------------------------
    def set_output_impedance(self, r_ohm: float, l_h: float) -> None:
        if not self.has_programmable_impedance():
            # a negative or non-finite value is a wrong argument whatever the source can do
            self.check_output_impedance(r_ohm, l_h, r_range_ohm=(0.0, math.inf), l_range_h=(0.0, math.inf))
            if r_ohm == 0.0 and l_h == 0.0:
                return                              # nothing emulated: already the case
            raise NoProgrammableImpedance(self.role, self.resource_name, self._no_impedance_message(r_ohm, l_h))
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

    def _no_impedance_message(self, r_ohm: float, l_h: float) -> str:
        return (f"this source has no programmable output impedance (asked for {r_ohm:g} ohm + "
                f"{l_h * 1e3:g} mH); emulate the weak grid with an external impedance between the "
                "source and the PCC and state it in the bench file; nothing was sent")

    def output_impedance(self) -> OutputImpedance:
        if not self.has_programmable_impedance() or not self.output_impedance_enabled:
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

    # -- safe state -------------------------------------------------------------------------
    def safe_state(self) -> bool:
        """Stop the transient, return to fixed mode and open the output relay; never raises."""
        return self._send_safely(["ABORT", "OUTP OFF"])


__all__ = ["CaliforniaInstrumentsSource", "REACTIVE_UNITS"]
