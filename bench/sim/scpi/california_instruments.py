"""What the AMETEK / California Instruments AC sources (MX, Asterion) share, simulated.

One SCPI tree, after the California Instruments programming manuals (the MX's "BPS / MX / RS
Series SCPI Programming Manual", P/N 7003-961; the Sequoia series manual, section 4.21 "Source
Subsystem - List"; the Lx/Ls Series II programming manual, section 4.20 "Source Subsystem -
Phase"): phase-selectable programming through `INSTrument:COUPle ALL|NONE` and
`INSTrument:NSELect 1|2|3`, the steady-state `VOLTage`, `FREQuency`, `PHASe`, `CURRent`
(current limit), `OUTPut`, phase-selectable measurements (`MEASure:...?` report the phase
chosen with `INST:NSEL`), and list transients (`LIST:DWELl`, `LIST:VOLTage`,
`LIST:FREQuency`, `LIST:COUNt`, `VOLTage:MODE LIST`, `FREQuency:MODE LIST`,
`TRIGger:TRANsient:SOURce`, `INITiate`, `TRIGger`, `ABORt`). The products differ in their
ratings (`SourceRatings`): ranges, list length, shortest dwell, and whether the output
impedance is programmable.

The source output drives the plant's grid source terminals; a list transient is laid out
on the plant's clock with `plant.schedule`, so segment edges fall on plant time exactly,
whatever the pace of the simulation. At the start of a list the trigger output pulses;
the launcher wires that output to the oscilloscope's AUX trigger input.

Programmable output impedance (`OUTPut:IMPedance[:STATe] ON|OFF`, `OUTPut:IMPedance:REAL`,
`OUTPut:IMPedance:REACtive`), only on a source whose ratings say it has one (otherwise the
headers are -113, undefined, and the plant's source impedance is never touched): the headers
are those of the SCPI tree this command set comes from (HP/Agilent 6811B…6834B OUTPut
subsystem); no California Instruments manual page on them was found, so this twin assumes,
and states here for a check against the manual on a real unit:
- REAL in ohms, REACtive in millihenries (suffixes OHM / MH accepted), within the ratings;
  outside that range -222;
- one impedance for all phases: programming it with `INST:COUP NONE` is refused (-221);
- *RST turns the impedance off and sets both parts to 0; the values may be changed with the
  output on and take effect at once while the state is ON;
- while ON, the plant's source impedance (`Plant.set_source_impedance`) is the programmed
  R-L, in series with the bench's own wiring impedance; OFF removes it (the values are kept).

Frequency ramps and phase jumps in a list (`LIST:FREQuency:SLEW`, `LIST:PHASe`, with
`FREQuency:SLEW:MODE LIST` and `PHASe:MODE LIST`): the headers are those of the list
subsystem in the AMETEK Sequoia manual (section 4.21) and the HP/Agilent 6811B tree; the
products' own pages were not found, so this twin assumes, as the drivers' notes do:
- a list point's frequency moves from where the output is to its LIST:FREQ value at its
  slew (Hz/s, 0.001 to `SourceRatings.freq_slew_max_hz_per_s`; MAX is that maximum) and
  holds; a slew at or above the plant's fastest ramp is a step;
- LIST:PHASe is written per phase (the phase chosen with INST:NSEL, as PHAS is), in PHAS's
  convention (0-360 deg); in a list, phase A may move too (against the internal reference),
  so a shift of all three is a positive-sequence jump; the angles apply at the point's start;
- a function whose mode is FIXed keeps its immediate value through the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from bench.sim.plant import MAX_SOURCE_ROCOF_HZ_PER_S
from bench.sim.scpi.server import (
    Call,
    CommandTable,
    ScpiInstrument,
    data_out_of_range,
    format_nr3,
    illegal_parameter,
    settings_conflict,
)

if TYPE_CHECKING:
    from bench.sim.plant import Plant

PHASES = (1, 2, 3)


@dataclass(frozen=True)
class SourceRatings:
    """Programming limits of a model (refused with -222 outside them); each product's twin
    gives its own values."""

    model: str = "CI-SOURCE"
    voltage_range_low_v: float = 150.0   # L-N rms, low range
    voltage_range_high_v: float = 300.0  # L-N rms, high range
    freq_min_hz: float = 16.0
    freq_max_hz: float = 1000.0
    current_limit_max_a: float = 500.0   # stored and range checked; the plant does not limit
    list_points_max: int = 100
    list_count_max: int = 65535
    dwell_min_s: float = 0.0
    dwell_max_s: float = 1.0e5
    programmable_impedance: bool = False    # OUTPut:IMPedance… exist (else -113)
    impedance_real_max_ohm: float = 1.0     # programmable output impedance, resistive part
    impedance_reactive_max_mh: float = 1.0  # inductive part
    freq_slew_max_hz_per_s: float = 1.0e4   # LIST:FREQ:SLEW range top (MAX): a step


# phase angles of A, B, C (manual convention: angles of B and C relative to A, 0..360)
DEFAULT_PHASE_DEG = (0.0, 240.0, 120.0)


@dataclass
class PhaseProgram:
    voltage_v: float = 0.0
    phase_deg: float = 0.0
    current_limit_a: float = 500.0
    voltage_list_v: list[float] = field(default_factory=list)
    phase_list_deg: list[float] = field(default_factory=list)


@dataclass
class ListTransient:
    """The programmed list (shared dwell and frequency lists, per-phase voltage lists)."""

    dwell_s: list[float] = field(default_factory=list)
    freq_hz: list[float] = field(default_factory=list)
    freq_slew_hz_per_s: list[float] = field(default_factory=list)
    count: int = 1
    voltage_mode: str = "FIXED"  # FIXED | LIST
    freq_mode: str = "FIXED"
    freq_slew_mode: str = "FIXED"
    phase_mode: str = "FIXED"
    trigger_source: str = "IMMEDIATE"  # IMMEDIATE | BUS | EXTERNAL | SYNC


class CaliforniaInstrumentsSource(ScpiInstrument):
    """The grid simulator: programming, measurements and list transients."""

    def __init__(self, plant: "Plant", *, ratings: SourceRatings, serial: str, firmware: str,
                 nominal_v_ln_v: float = 277.1, nominal_freq_hz: float = 60.0) -> None:
        self.plant = plant
        self.ratings = ratings
        self.nominal_v_ln_v = nominal_v_ln_v
        self.nominal_freq_hz = nominal_freq_hz
        # Callbacks of the trigger output connector (t_s of the pulse); the launcher wires
        # the oscilloscope's AUX input here.
        self.trigger_output_listeners: list[Callable[[float], None]] = []
        self._generation = 0  # bumps on ABORt/*RST so that scheduled list points go stale
        self.transient_state = "IDLE"
        super().__init__(manufacturer="AMETEK Programmable Power", model=ratings.model,
                         serial=serial, firmware=firmware)
        self.reset()

    # --- state -------------------------------------------------------------------------
    def reset(self) -> None:
        """*RST: output off, 0 V, nominal frequency, FIXED modes; the output relay opens."""
        self._abort_list(restore=False)
        self.coupled = True
        self.selected_phase = 1
        self.voltage_range_v = self.ratings.voltage_range_high_v
        self.freq_hz = self.nominal_freq_hz
        self.output_on = False
        self.phases = {p: PhaseProgram(phase_deg=DEFAULT_PHASE_DEG[p - 1],
                                       current_limit_a=self.ratings.current_limit_max_a) for p in PHASES}
        self.list = ListTransient()
        self.transient_state = "IDLE"  # IDLE | ARMED (waiting for trigger) | RUNNING
        # Trig Out (function strobe) on the system interface connector. Source *RST value
        # BOT per the Sequoia/MX manual (OUTPut:TTLTrg:SOURce). The *RST value of the
        # state is not confirmed; the strobe is cabled to the scope on this bench, so it
        # starts enabled.
        self.trigger_output_on = True
        self.trigger_output_source = "BOT"  # BOT | EOT | LIST (every list point here)
        self.impedance_on = False
        self.impedance_real_ohm = 0.0
        self.impedance_reactive_mh = 0.0
        self._apply_steady_state()
        self._apply_impedance()

    def _targets(self) -> tuple[int, ...]:
        """Phases a programming command applies to (all when coupled)."""
        return PHASES if self.coupled else (self.selected_phase,)

    def _apply_steady_state(self) -> None:
        self.plant.set_source(
            output_on=self.output_on,
            v_ln_rms_v=[self.phases[p].voltage_v for p in PHASES],
            freq_hz=self.freq_hz,
            phase_deg=[self.phases[p].phase_deg for p in PHASES],
        )

    # --- command table -----------------------------------------------------------------
    def build_commands(self, t: CommandTable) -> None:
        t.add("INSTrument:COUPle", set=self._set_coupling, query=lambda c: "ALL" if self.coupled else "NONE")
        t.add("INSTrument:NSELect", set=self._select_phase, query=lambda c: str(self.selected_phase))

        t.add("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude][:AC]", set=self._set_voltage,
              query=lambda c: format_nr3(self.phases[self.selected_phase].voltage_v))
        t.add("[SOURce:]VOLTage:RANGe", set=self._set_range, query=lambda c: f"{self.voltage_range_v:g}")
        t.add("[SOURce:]VOLTage:MODE", set=lambda c: self._set_mode(c, "voltage_mode"),
              query=lambda c: self.list.voltage_mode[:4])
        t.add("[SOURce:]FREQuency[:CW][:IMMediate]", set=self._set_frequency,
              query=lambda c: format_nr3(self.freq_hz))
        t.add("[SOURce:]FREQuency:MODE", set=lambda c: self._set_mode(c, "freq_mode"),
              query=lambda c: self.list.freq_mode[:4])
        t.add("[SOURce:]PHASe[:IMMediate]", set=self._set_phase,
              query=lambda c: format_nr3(self.phases[self.selected_phase].phase_deg))
        t.add("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", set=self._set_current_limit,
              query=lambda c: format_nr3(self.phases[self.selected_phase].current_limit_a))
        t.add("OUTPut[:STATe]", set=self._set_output, query=lambda c: "1" if self.output_on else "0")
        if self.ratings.programmable_impedance:
            t.add("OUTPut:IMPedance[:STATe]", set=self._set_impedance_state,
                  query=lambda c: "1" if self.impedance_on else "0")
            t.add("OUTPut:IMPedance:REAL", set=self._set_impedance_real,
                  query=lambda c: format_nr3(self.impedance_real_ohm))
            t.add("OUTPut:IMPedance:REACtive", set=self._set_impedance_reactive,
                  query=lambda c: format_nr3(self.impedance_reactive_mh))

        for verb in ("MEASure", "FETCh"):
            t.add(f"{verb}[:SCALar]:VOLTage[:AC]", query=lambda c: self._measure("voltage"))
            t.add(f"{verb}[:SCALar]:CURRent[:AC]", query=lambda c: self._measure("current"))
            t.add(f"{verb}[:SCALar]:POWer[:AC][:REAL]", query=lambda c: self._measure("power"))
            t.add(f"{verb}[:SCALar]:POWer:AC:REACtive", query=lambda c: self._measure("reactive"))
            t.add(f"{verb}[:SCALar]:FREQuency", query=lambda c: self._measure("frequency"))

        t.add("[SOURce:]LIST:DWELl", set=self._set_dwell_list, query=lambda c: _nr3_list(self.list.dwell_s))
        t.add("[SOURce:]LIST:DWELl:POINts", query=lambda c: str(len(self.list.dwell_s)))
        t.add("[SOURce:]LIST:VOLTage[:LEVel]", set=self._set_voltage_list,
              query=lambda c: _nr3_list(self.phases[self.selected_phase].voltage_list_v))
        t.add("[SOURce:]LIST:VOLTage:POINts",
              query=lambda c: str(len(self.phases[self.selected_phase].voltage_list_v)))
        t.add("[SOURce:]LIST:FREQuency[:LEVel]", set=self._set_freq_list,
              query=lambda c: _nr3_list(self.list.freq_hz))
        t.add("[SOURce:]LIST:FREQuency:POINts", query=lambda c: str(len(self.list.freq_hz)))
        t.add("[SOURce:]LIST:FREQuency:SLEW", set=self._set_freq_slew_list,
              query=lambda c: _nr3_list(self.list.freq_slew_hz_per_s))
        t.add("[SOURce:]LIST:FREQuency:SLEW:POINts", query=lambda c: str(len(self.list.freq_slew_hz_per_s)))
        t.add("[SOURce:]LIST:PHASe", set=self._set_phase_list,
              query=lambda c: _nr3_list(self.phases[self.selected_phase].phase_list_deg))
        t.add("[SOURce:]LIST:PHASe:POINts",
              query=lambda c: str(len(self.phases[self.selected_phase].phase_list_deg)))
        t.add("[SOURce:]FREQuency:SLEW:MODE", set=lambda c: self._set_fixed_or_list(c, "freq_slew_mode"),
              query=lambda c: self.list.freq_slew_mode[:4])
        t.add("[SOURce:]PHASe:MODE", set=lambda c: self._set_fixed_or_list(c, "phase_mode"),
              query=lambda c: self.list.phase_mode[:4])
        t.add("[SOURce:]LIST:COUNt", set=self._set_list_count, query=lambda c: str(self.list.count))

        t.add("TRIGger:TRANsient:SOURce", set=self._set_trigger_source,
              query=lambda c: self.list.trigger_source[:3])
        t.add("TRIGger[:TRANsient][:IMMediate]", set=lambda c: self.bus_trigger())
        t.add("INITiate[:IMMediate][:SEQuence1]", set=lambda c: self._initiate())
        t.add("INITiate[:IMMediate]:TRANsient", set=lambda c: self._initiate())
        t.add("ABORt", set=lambda c: self._abort_list(restore=True))
        t.add("TRANsient:STATe", query=lambda c: self.transient_state)
        t.add("OUTPut:TTLTrg[:STATe]", set=lambda c: setattr(self, "trigger_output_on", c.boolean()),
              query=lambda c: "1" if self.trigger_output_on else "0")
        t.add("OUTPut:TTLTrg:SOURce", set=lambda c: setattr(self, "trigger_output_source",
                                                             c.choice(("BOT", "EOT", "LIST"))),
              query=lambda c: self.trigger_output_source)

    # --- programming -------------------------------------------------------------------
    def _set_coupling(self, c: Call) -> None:
        self.coupled = c.choice(("ALL", "NONE")) == "ALL"

    def _select_phase(self, c: Call) -> None:
        self.selected_phase = c.integer(low=1, high=3)

    def _set_voltage(self, c: Call) -> None:
        volts = c.number(unit="V", low=0.0, high=self.voltage_range_v)
        for p in self._targets():
            self.phases[p].voltage_v = volts
        self._apply_steady_state_unless_running()

    def _set_range(self, c: Call) -> None:
        ranges = (self.ratings.voltage_range_low_v, self.ratings.voltage_range_high_v)
        requested = c.number(unit="V", low=0.0, high=ranges[1])
        # the source picks the lowest range that holds the requested value
        chosen = ranges[0] if requested <= ranges[0] else ranges[1]
        if self.output_on and chosen != self.voltage_range_v:
            raise settings_conflict("range change with output on")
        if any(self.phases[p].voltage_v > chosen for p in PHASES):
            raise settings_conflict("programmed voltage above the new range")
        self.voltage_range_v = chosen

    def _set_mode(self, c: Call, attribute: str) -> None:
        mode = c.choice(("FIXed", "LIST", "STEP", "PULSe"))
        if mode in ("STEP", "PULSE"):
            raise illegal_parameter("STEP/PULSE transients are not simulated")
        setattr(self.list, attribute, mode)

    def _set_frequency(self, c: Call) -> None:
        self.freq_hz = c.number(unit="HZ", low=self.ratings.freq_min_hz, high=self.ratings.freq_max_hz)
        self._apply_steady_state_unless_running()

    def _set_phase(self, c: Call) -> None:
        # The angle of the phase chosen with INST:NSEL relative to phase A; coupling does
        # not spread it (three phases at one angle would not be a three-phase system).
        angle_deg = c.number(unit="DEG", low=-360.0, high=360.0) % 360.0
        if self.selected_phase == 1 and angle_deg != 0.0:
            raise settings_conflict("phase A is the reference (0 deg)")
        self.phases[self.selected_phase].phase_deg = angle_deg
        self._apply_steady_state_unless_running()

    def _set_current_limit(self, c: Call) -> None:
        amps = c.number(unit="A", low=0.0, high=self.ratings.current_limit_max_a)
        for p in self._targets():
            self.phases[p].current_limit_a = amps

    def _set_output(self, c: Call) -> None:
        self.output_on = c.boolean()
        if not self.output_on:
            self._abort_list(restore=False)
        self._apply_steady_state_unless_running()

    # --- programmable output impedance -------------------------------------------------
    def _require_all_phases(self) -> None:
        if not self.coupled:
            raise settings_conflict("output impedance is common to all phases (INST:COUP ALL)")

    def _set_impedance_state(self, c: Call) -> None:
        self._require_all_phases()
        self.impedance_on = c.boolean()
        self._apply_impedance()

    def _set_impedance_real(self, c: Call) -> None:
        self._require_all_phases()
        self.impedance_real_ohm = c.number(unit="OHM", low=0.0, high=self.ratings.impedance_real_max_ohm)
        self._apply_impedance()

    def _set_impedance_reactive(self, c: Call) -> None:
        self._require_all_phases()
        # plain numbers are millihenries; "500UH" or "0.5MH" are read with their suffix
        henries = c.number(unit="H", low=0.0, high=self.ratings.impedance_reactive_max_mh * 1e-3) \
            if _has_suffix(c.text()) else \
            1e-3 * c.number(low=0.0, high=self.ratings.impedance_reactive_max_mh)
        self.impedance_reactive_mh = henries * 1e3
        self._apply_impedance()

    def _apply_impedance(self) -> None:
        if not self.ratings.programmable_impedance:
            return                      # no such function: the bench wiring impedance alone
        if self.impedance_on:
            self.plant.set_source_impedance(self.impedance_real_ohm, self.impedance_reactive_mh * 1e-3)
        else:
            self.plant.set_source_impedance(0.0, 0.0)

    def _apply_steady_state_unless_running(self) -> None:
        # while a list runs, the list owns the output; new immediate values apply after it
        if self.transient_state != "RUNNING":
            self._apply_steady_state()

    # --- measurements (phase selectable) -----------------------------------------------
    def _measure(self, quantity: str) -> str:
        readings = self.plant.source_measurements()
        index = self.selected_phase - 1
        if quantity == "voltage":
            value = readings["v_ln_rms_v"][index]
        elif quantity == "current":
            value = readings["i_rms_a"][index]
        elif quantity == "power":
            value = _per_phase(readings, "p_w", index)
        elif quantity == "reactive":
            value = _per_phase(readings, "q_var", index)
        else:
            value = readings["freq_hz"]
        return format_nr3(float(value))

    # --- list transients ---------------------------------------------------------------
    def _set_dwell_list(self, c: Call) -> None:
        values = c.numbers(unit="S", low=self.ratings.dwell_min_s, high=self.ratings.dwell_max_s)
        self._check_list_length(values)
        self.list.dwell_s = values

    def _set_voltage_list(self, c: Call) -> None:
        values = c.numbers(unit="V", low=0.0, high=self.voltage_range_v)
        self._check_list_length(values)
        for p in self._targets():
            self.phases[p].voltage_list_v = list(values)

    def _set_freq_list(self, c: Call) -> None:
        values = c.numbers(unit="HZ", low=self.ratings.freq_min_hz, high=self.ratings.freq_max_hz)
        self._check_list_length(values)
        self.list.freq_hz = values

    def _set_freq_slew_list(self, c: Call) -> None:
        values = c.numbers(low=0.001, high=self.ratings.freq_slew_max_hz_per_s)   # Hz/s, MAX: a step
        self._check_list_length(values)
        self.list.freq_slew_hz_per_s = values

    def _set_phase_list(self, c: Call) -> None:
        # the phase chosen with INST:NSEL, as PHAS (coupling does not spread angles)
        values = [v % 360.0 for v in c.numbers(unit="DEG", low=-360.0, high=360.0)]
        self._check_list_length(values)
        self.phases[self.selected_phase].phase_list_deg = values

    def _set_fixed_or_list(self, c: Call, attribute: str) -> None:
        setattr(self.list, attribute, c.choice(("FIXed", "LIST")))

    def _check_list_length(self, values: list[float]) -> None:
        if len(values) > self.ratings.list_points_max:
            raise data_out_of_range(f"{len(values)} list points (max {self.ratings.list_points_max})")

    def _set_list_count(self, c: Call) -> None:
        self.list.count = c.integer(low=1, high=self.ratings.list_count_max)

    def _set_trigger_source(self, c: Call) -> None:
        self.list.trigger_source = c.choice(("IMMediate", "BUS", "EXTernal", "SYNC"))

    def _initiate(self) -> None:
        if self.transient_state != "IDLE":
            raise settings_conflict("transient already initiated")
        self._segments()  # validate now: a bad list is refused at INIT, not at trigger
        self.transient_state = "ARMED"
        if self.list.trigger_source == "IMMEDIATE":
            self._start_list()
        # BUS waits for TRIG / *TRG; EXT and SYNC wait for inputs this bench does not drive

    def bus_trigger(self) -> None:
        if self.transient_state != "ARMED":
            raise settings_conflict("trigger ignored: transient not initiated")
        if self.list.trigger_source != "BUS":
            raise settings_conflict("trigger source is not BUS")
        self._start_list()

    def _segments(self) -> list[tuple[float, list[float], float, float | None, list[float] | None]]:
        """(dwell_s, v_ln per phase, freq_hz, freq slew (Hz/s, None: a step), phase angles
        (None: the immediate ones)) per list point; a 1-point list is implied at every
        point, as the manual allows; other length mismatches are refused."""
        voltage_listed = self.list.voltage_mode == "LIST"
        freq_listed = self.list.freq_mode == "LIST"
        slew_listed = self.list.freq_slew_mode == "LIST"
        phase_listed = self.list.phase_mode == "LIST"
        if not (voltage_listed or freq_listed or phase_listed):
            raise settings_conflict("no function in LIST mode")
        dwell = self.list.dwell_s
        lists = [dwell]
        if voltage_listed:
            lists += [self.phases[p].voltage_list_v for p in PHASES]
        if freq_listed:
            lists.append(self.list.freq_hz)
        if slew_listed:
            lists.append(self.list.freq_slew_hz_per_s)
        if phase_listed:
            lists += [self.phases[p].phase_list_deg for p in PHASES]
        if any(len(values) == 0 for values in lists):
            raise settings_conflict("empty list")
        points = max(len(values) for values in lists)
        if any(len(values) not in (1, points) for values in lists):
            raise settings_conflict("list lengths differ")

        def at(values: list[float], k: int) -> float:
            return values[0] if len(values) == 1 else values[k]

        segments = []
        for k in range(points):
            volts = [at(self.phases[p].voltage_list_v, k) if voltage_listed else self.phases[p].voltage_v
                     for p in PHASES]
            freq = at(self.list.freq_hz, k) if freq_listed else self.freq_hz
            slew = at(self.list.freq_slew_hz_per_s, k) if slew_listed else None
            if slew is not None and slew >= MAX_SOURCE_ROCOF_HZ_PER_S:
                slew = None                       # faster than any ramp: a step
            angles = [at(self.phases[p].phase_list_deg, k) for p in PHASES] if phase_listed else None
            segments.append((at(dwell, k), volts, freq, slew, angles))
        return segments

    def _start_list(self) -> None:
        segments = self._segments() * self.list.count
        start_s = self.plant.t_s
        self.transient_state = "RUNNING"
        self._generation += 1
        generation = self._generation
        offset_s = 0.0
        for index, (dwell_s, volts, freq_hz, slew, angles) in enumerate(segments):
            if index == 0:
                self._apply_segment(generation, volts, freq_hz, slew, angles)
            else:
                self.plant.schedule(start_s + offset_s,
                                    lambda _plant, v=volts, f=freq_hz, r=slew, a=angles:
                                    self._apply_segment(generation, v, f, r, a))
            if self.trigger_output_source == "LIST":
                self._pulse_trigger_output_at(start_s + offset_s, generation)
            offset_s += dwell_s
        self.plant.schedule(start_s + offset_s, lambda _plant: self._finish_list(generation))
        if self.trigger_output_source == "BOT":
            self._pulse_trigger_output_at(start_s, generation)
        elif self.trigger_output_source == "EOT":
            self._pulse_trigger_output_at(start_s + offset_s, generation)

    def _pulse_trigger_output_at(self, t_s: float, generation: int) -> None:
        if t_s <= self.plant.t_s:
            self._pulse_trigger_output(t_s, generation)
        else:
            self.plant.schedule(t_s, lambda _plant: self._pulse_trigger_output(t_s, generation))

    def _pulse_trigger_output(self, t_s: float, generation: int) -> None:
        if generation != self._generation or not self.trigger_output_on:
            return
        for listener in self.trigger_output_listeners:
            listener(t_s)

    def _apply_segment(self, generation: int, volts: list[float], freq_hz: float,
                       slew_hz_per_s: float | None = None, angles_deg: list[float] | None = None) -> None:
        if generation != self._generation:
            return  # aborted or superseded
        self.plant.set_source(v_ln_rms_v=volts, freq_hz=freq_hz, rocof_hz_per_s=slew_hz_per_s,
                              phase_deg=angles_deg)

    def _finish_list(self, generation: int) -> None:
        if generation != self._generation:
            return
        # Manual §6.4.1 (P/N 7003-961 Rev AA): "In List mode, the functions remain at the
        # last list value at the completion of the list." The output therefore keeps the
        # last point until the next steady-state command; VOLT?/FREQ? still report the
        # programmed immediate values.
        self.transient_state = "IDLE"

    def _abort_list(self, *, restore: bool) -> None:
        """ABORt: stop a running list; the output returns to the immediate values."""
        self._generation += 1
        was_running = self.transient_state == "RUNNING"
        self.transient_state = "IDLE"
        if restore and was_running:
            self._apply_steady_state()


def _per_phase(readings: dict, key: str, index: int) -> float:
    """Per-phase power when the plant reports it, else an equal share of the total."""
    per_phase = readings.get(f"{key}_per_phase")
    if per_phase is not None:
        return float(per_phase[index])
    return float(readings[key]) / 3.0


def _has_suffix(text: str) -> bool:
    """Does a numeric parameter carry a unit suffix (`0.5MH`, `500 UH`)?"""
    return text.strip().upper().rstrip().endswith("H")


def _nr3_list(values: list[float]) -> str:
    return ",".join(format_nr3(v) for v in values)
