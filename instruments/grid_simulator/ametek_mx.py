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
        dwell = ",".join(format_number(s.duration_s) for s in segments)
        freq = ",".join(format_number(s.freq_hz) for s in segments)
        self.write("ABORT")                      # an idle transient system accepts new lists
        self.phases_coupled = True
        self.write(f"LIST:DWEL {dwell}")
        self.write(f"LIST:FREQ {freq}")
        if all(s.balanced for s in segments):
            self.write("LIST:VOLT " + ",".join(format_number(s.v_ln_v[0]) for s in segments))
        else:
            # unbalanced sags: one voltage list per phase, addressed one phase at a time
            self.phases_coupled = False
            for index in range(3):
                self.selected_phase = index + 1
                self.write("LIST:VOLT " + ",".join(format_number(s.v_ln_v[index]) for s in segments))
            self.phases_coupled = True
        self.list_repeat_count = 1
        self.voltage_mode = "list"
        self.frequency_mode = "list"
        self.transient_trigger_source = "immediate"
        if self.use_trigger_output:
            self.trigger_output_source = "begin"
            self.trigger_output_enabled = True
        self.check_errors(f"programming a {len(segments)}-segment transient")

    def start_transient(self) -> None:
        # with TRIG:TRAN:SOUR IMM the list starts as soon as the transient system is initiated
        self.write("INIT")
        self.check_errors("starting the transient")

    def abort_transient(self) -> None:
        self.write("ABORT")
        self.voltage_mode = "fixed"
        self.frequency_mode = "fixed"
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
