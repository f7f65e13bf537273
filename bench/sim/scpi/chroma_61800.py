"""Chroma 61800 series (61845, 45 kVA) regenerative grid simulator twin.

No 61800 programming manual text was found in the reference corpora. The command set below
follows public drivers of the same Chroma AC-source command family (61500/61509 series,
whose manuals the drivers cite) and the bench's reference notes:
- confirmed in those drivers: `INSTrument:PHASe THREE|SINGLE`, `INSTrument:COUPle ALL|NONE`,
  `INSTrument:NSELect 1|2|3`, `SOURce:VOLTage:LEVel:IMMediate:AMPLitude:AC`,
  `SOURce:VOLTage:RANGe LOW|HIGH`, `SOURce:VOLTage:LIMit:AC`, `SOURce:FREQuency[:IMMediate]`,
  `SOURce:PHASe:P12 120` / `P13 240` (0–359.9°, phase 2 and 3 behind phase 1 for a positive
  sequence), `SOURce:CURRent:LIMit`, `OUTPut:SLEW:VOLTage:AC` (V/ms), `OUTPut:RELay ON|OFF`,
  `OUTPut:STATe ON|OFF`, `OUTPut:MODE FIXED|LIST|PULSE|STEP|…`, `OUTPut:PROTection:CLEar`,
  `MEASure:VOLTage:AC?`, `MEASure:CURRent:AC?`, `MEASure:POWer:AC[:REACtive|APParent]?`,
  `MEASure:FREQuency?`;
- the LIST sequence, as one of those drivers programs it: `TRIG OFF`, `OUTPUT:MODE FIXED`,
  `LIST:COUPLING ALL`, `LIST:COUNT n` (0…65535), `LIST:DWELL` (milliseconds, 0…99999999.9),
  `LIST:SHAPE A|B`, `LIST:BASE TIME|CYCLE`, `LIST:VOLTAGE:AC:START/END`,
  `LIST:FREQUENCY:START/END`, `LIST:DEGREE`, `OUTPUT:MODE LIST`, `TRIG ON` — up to 100
  sequences; TRIG ON starts the list, TRIG OFF stops it. A public driver for the 61845
  itself (SunSpec SVP energy lab, `Lib/svpelab/chroma_61845.py`) loads a list the same
  way (`LIST:COUP ALL`, `LIST:COUNT 1`, `LIST:BASE TIME`, dwell in ms, shapes, START/END
  lists, `OUTP:MODE LIST`, `TRIG ON`). Neither sets a number of sequences: the list is as
  long as the value lists written to it, and a list-length header (`LIST:POINt`, named in
  old notes without a source) is -113 here, undefined.
Assumed here (to cross-check against the 61800 manual on a real unit):
- a sequence ramps linearly from its START to its END values over its dwell (START = END:
  a step): the frequency as one continuous ramp of the plant's source (phase-continuous,
  at the rate END - START over the dwell), the voltage in 1 ms steps; `LIST:COUNt 0`
  repeats until `TRIG OFF`; after the list the output holds the last sequence's END values
  until the next FIXED-mode setting or `TRIG OFF`;
- `LIST:DEGRee` (0-359.9 deg, one value per sequence) is the angle of the phase during
  that sequence against its fixed-mode position (0, -P12, -P13), applied at the sequence's
  start: a jump where it changes. The driver assumes the same; neither could check it;
- per-phase lists: written with `LIST:COUPling NONE` or `INSTrument:COUPle NONE`, each to
  the phase chosen with `INSTrument:NSELect` (the driver uses the latter, as for its
  fixed-mode settings);
- `TRIG?` answers ON while a list runs and OFF once it has ended;
- `LIST:BASE CYCLE` and waveform B are refused (not simulated);
- `OUTPut:SLEW:VOLTage:AC 0` means no slew limit (a step); a positive slew ramps
  steady-state voltage changes; output relay open after *RST (the output terminals are
  live only with `OUTPut:RELay ON` and `OUTPut:STATe ON`);
- measurements report the phase chosen with `INSTrument:NSELect`;
- the rear-panel trigger output pulses at the start of a list (wired to the scope).
- no programmable output impedance: none of the sources above has a command for one, so
  the twin has none either (an `OUTPut:IMPedance…` header is -113, undefined header) and the
  plant's source impedance stays the bench's own wiring impedance; a weak grid on this
  family is an external impedance, i.e. part of the bench file's wiring impedance.

Ratings: one 61845 is 45 kVA (0–150/0–300 V L-N ranges, 30–100 Hz on the 61800 series
data sheet). The bench's source must carry a 250 kVA PCS, so the twin stands for six
61845 in master/slave parallel (270 kVA): the current limit scales with the unit count.
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
    settings_conflict,
)

if TYPE_CHECKING:
    from bench.sim.plant import Plant

PHASES = (1, 2, 3)
RAMP_STEP_S = 1e-3  # a START→END voltage ramp (or a slewed step) is laid out in 1 ms plant-time steps


@dataclass(frozen=True)
class Chroma61800Ratings:
    model: str = "61845"
    voltage_range_low_v: float = 150.0  # L-N rms
    voltage_range_high_v: float = 300.0
    freq_min_hz: float = 30.0
    freq_max_hz: float = 100.0
    current_per_unit_a: float = 90.0  # rms per phase, one 61845 in the low range (assumed)
    units_in_parallel: int = 6
    list_sequences_max: int = 100
    list_count_max: int = 65535
    dwell_max_ms: float = 99_999_999.9
    slew_max_v_per_ms: float = 1200.0

    @property
    def current_limit_max_a(self) -> float:
        return self.current_per_unit_a * self.units_in_parallel


@dataclass
class ListProgram:
    count: int = 1
    dwell_ms: list[float] = field(default_factory=list)
    shape: list[str] = field(default_factory=list)
    base: str = "TIME"
    voltage_start_v: list[float] = field(default_factory=list)
    voltage_end_v: list[float] = field(default_factory=list)
    freq_start_hz: list[float] = field(default_factory=list)
    freq_end_hz: list[float] = field(default_factory=list)
    degree: list[float] = field(default_factory=list)
    coupling: str = "ALL"


class Chroma61800(ScpiInstrument):
    def __init__(self, plant: "Plant", *, ratings: Chroma61800Ratings = Chroma61800Ratings(),
                 serial: str = "618450000001", nominal_v_ln_v: float = 277.1,
                 nominal_freq_hz: float = 60.0) -> None:
        self.plant = plant
        self.ratings = ratings
        self.nominal_v_ln_v = nominal_v_ln_v
        self.nominal_freq_hz = nominal_freq_hz
        self.trigger_output_listeners: list[Callable[[float], None]] = []  # the launcher wires the scope here
        self._generation = 0
        super().__init__(manufacturer="Chroma ATE", model=ratings.model, serial=serial, firmware="1.02")
        self.reset()

    def reset(self) -> None:
        """*RST: output off, relay open, 0 V, nominal frequency, FIXED mode, list cleared."""
        self._generation += 1
        self.phase_mode = "THREE"
        self.coupled = True
        self.selected_phase = 1
        self.voltage_range_v = self.ratings.voltage_range_high_v
        self.voltage_limit_v = self.ratings.voltage_range_high_v
        self.voltage_v = {p: 0.0 for p in PHASES}
        self.freq_hz = self.nominal_freq_hz
        self.p12_deg, self.p13_deg = 120.0, 240.0
        self.current_limit_a = self.ratings.current_limit_max_a
        self.slew_v_per_ms = 0.0
        self.relay_closed = False
        self.output_on = False
        self.output_mode = "FIXED"
        self.lists = {p: ListProgram() for p in PHASES}
        self.list_running = False
        self._applied_v = {p: 0.0 for p in PHASES}  # what the terminals carry (for slewing)
        self._apply_steady_state(slew=False)

    # --- command table -----------------------------------------------------------------
    def build_commands(self, t: CommandTable) -> None:
        t.add("INSTrument:PHASe", set=self._set_phase_mode, query=lambda c: self.phase_mode)
        t.add("INSTrument:COUPle", set=lambda c: setattr(self, "coupled", c.choice(("ALL", "NONE")) == "ALL"),
              query=lambda c: "ALL" if self.coupled else "NONE")
        t.add("INSTrument:NSELect", set=lambda c: setattr(self, "selected_phase", c.integer(low=1, high=3)),
              query=lambda c: str(self.selected_phase))
        t.add("INSTrument:EDIT", set=lambda c: setattr(self, "coupled", c.choice(("ALL", "EACH")) == "ALL"),
              query=lambda c: "ALL" if self.coupled else "EACH")

        t.add("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]:AC", set=self._set_voltage,
              query=lambda c: format_nr3(self.voltage_v[self.selected_phase]))
        t.add("[SOURce:]VOLTage:RANGe", set=self._set_range, query=lambda c: "LOW" if self._low_range() else "HIGH")
        t.add("[SOURce:]VOLTage:LIMit:AC", set=self._set_voltage_limit, query=lambda c: format_nr3(self.voltage_limit_v))
        t.add("[SOURce:]FREQuency[:IMMediate]", set=self._set_frequency, query=lambda c: format_nr3(self.freq_hz))
        t.add("[SOURce:]PHASe:P12", set=lambda c: self._set_phase_angle(c, "p12_deg"),
              query=lambda c: format_nr3(self.p12_deg))
        t.add("[SOURce:]PHASe:P13", set=lambda c: self._set_phase_angle(c, "p13_deg"),
              query=lambda c: format_nr3(self.p13_deg))
        t.add("[SOURce:]CURRent:LIMit[:RMS]", set=self._set_current_limit, query=lambda c: format_nr3(self.current_limit_a))
        t.add("[SOURce:]FUNCtion:SHAPe[:A]", set=lambda c: c.choice(("A", "SINE")), query=lambda c: "A")

        t.add("OUTPut:SLEW:VOLTage:AC", set=self._set_slew, query=lambda c: format_nr3(self.slew_v_per_ms))
        t.add("OUTPut:RELay", set=self._set_relay, query=lambda c: "ON" if self.relay_closed else "OFF")
        t.add("OUTPut[:STATe]", set=self._set_output, query=lambda c: "ON" if self.output_on else "OFF")
        t.add("OUTPut:MODE", set=self._set_output_mode, query=lambda c: self.output_mode)
        t.add("OUTPut:PROTection:CLEar", set=lambda c: None)  # the plant has no source protection to latch

        for verb in ("MEASure", "FETCh"):
            t.add(f"{verb}[:SCALar]:VOLTage[:AC]", query=lambda c: self._measure("voltage"))
            t.add(f"{verb}[:SCALar]:CURRent[:AC]", query=lambda c: self._measure("current"))
            t.add(f"{verb}[:SCALar]:POWer[:AC][:REAL]", query=lambda c: self._measure("power"))
            t.add(f"{verb}[:SCALar]:POWer:AC:REACtive", query=lambda c: self._measure("reactive"))
            t.add(f"{verb}[:SCALar]:POWer:AC:APParent", query=lambda c: self._measure("apparent"))
            t.add(f"{verb}[:SCALar]:POWer:AC:TOTal", query=lambda c: self._measure("total_power"))
            t.add(f"{verb}[:SCALar]:FREQuency", query=lambda c: self._measure("frequency"))

        t.add("[SOURce:]LIST:COUPling", set=self._set_list_coupling, query=lambda c: self.lists[1].coupling)
        t.add("[SOURce:]LIST:COUNt", set=lambda c: self._set_list_value(c, "count"),
              query=lambda c: str(self._list().count))
        t.add("[SOURce:]LIST:DWELl", set=lambda c: self._set_list_values(c, "dwell_ms", 0.0, self.ratings.dwell_max_ms),
              query=lambda c: _nr3_list(self._list().dwell_ms))
        t.add("[SOURce:]LIST:SHAPe", set=self._set_list_shape, query=lambda c: ",".join(self._list().shape))
        t.add("[SOURce:]LIST:BASE", set=self._set_list_base, query=lambda c: self._list().base)
        t.add("[SOURce:]LIST:VOLTage:AC:STARt", set=lambda c: self._set_list_values(c, "voltage_start_v", 0.0, self.voltage_range_v),
              query=lambda c: _nr3_list(self._list().voltage_start_v))
        t.add("[SOURce:]LIST:VOLTage:AC:END", set=lambda c: self._set_list_values(c, "voltage_end_v", 0.0, self.voltage_range_v),
              query=lambda c: _nr3_list(self._list().voltage_end_v))
        t.add("[SOURce:]LIST:FREQuency:STARt", set=lambda c: self._set_list_values(
            c, "freq_start_hz", self.ratings.freq_min_hz, self.ratings.freq_max_hz),
              query=lambda c: _nr3_list(self._list().freq_start_hz))
        t.add("[SOURce:]LIST:FREQuency:END", set=lambda c: self._set_list_values(
            c, "freq_end_hz", self.ratings.freq_min_hz, self.ratings.freq_max_hz),
              query=lambda c: _nr3_list(self._list().freq_end_hz))
        t.add("[SOURce:]LIST:DEGRee", set=lambda c: self._set_list_values(c, "degree", 0.0, 359.9),
              query=lambda c: _nr3_list(self._list().degree))
        t.add("TRIGger[:STATe]", set=self._set_trigger, query=lambda c: "ON" if self.list_running else "OFF")

    # --- steady state ------------------------------------------------------------------
    def _targets(self) -> tuple[int, ...]:
        return PHASES if self.coupled else (self.selected_phase,)

    def _low_range(self) -> bool:
        return self.voltage_range_v == self.ratings.voltage_range_low_v

    def _set_phase_mode(self, c: Call) -> None:
        mode = c.choice(("THREE", "SINGLE"))
        if mode == "SINGLE":
            raise settings_conflict("single-phase mode is not simulated on this three-phase bench")
        self.phase_mode = mode

    def _set_voltage(self, c: Call) -> None:
        volts = c.number(unit="V", low=0.0, high=min(self.voltage_range_v, self.voltage_limit_v))
        for p in self._targets():
            self.voltage_v[p] = volts
        self._apply_unless_list()

    def _set_range(self, c: Call) -> None:
        word = c.text().upper()
        if word in ("LOW", "HIGH"):
            chosen = self.ratings.voltage_range_low_v if word == "LOW" else self.ratings.voltage_range_high_v
        elif word == "AUTO":
            raise settings_conflict("AUTO range is not simulated")
        else:
            requested = c.number(unit="V", low=0.0, high=self.ratings.voltage_range_high_v)
            chosen = self.ratings.voltage_range_low_v if requested <= self.ratings.voltage_range_low_v \
                else self.ratings.voltage_range_high_v
        if self.output_on and chosen != self.voltage_range_v:
            raise settings_conflict("range change with the output on")
        if any(v > chosen for v in self.voltage_v.values()):
            raise settings_conflict("programmed voltage above the new range")
        self.voltage_range_v = chosen

    def _set_voltage_limit(self, c: Call) -> None:
        self.voltage_limit_v = c.number(unit="V", low=0.0, high=self.ratings.voltage_range_high_v)

    def _set_frequency(self, c: Call) -> None:
        self.freq_hz = c.number(unit="HZ", low=self.ratings.freq_min_hz, high=self.ratings.freq_max_hz)
        self._apply_unless_list()

    def _set_phase_angle(self, c: Call, attribute: str) -> None:
        setattr(self, attribute, c.number(unit="DEG", low=0.0, high=359.9))
        self._apply_unless_list()

    def _set_current_limit(self, c: Call) -> None:
        self.current_limit_a = c.number(unit="A", low=0.0, high=self.ratings.current_limit_max_a)

    def _set_slew(self, c: Call) -> None:
        self.slew_v_per_ms = c.number(low=0.0, high=self.ratings.slew_max_v_per_ms)

    def _set_relay(self, c: Call) -> None:
        self.relay_closed = c.boolean()
        self._apply_unless_list()

    def _set_output(self, c: Call) -> None:
        self.output_on = c.boolean()
        if not self.output_on:
            self._stop_list()
        self._apply_unless_list()

    def _set_output_mode(self, c: Call) -> None:
        mode = c.choice(("FIXed", "LIST", "PULSe", "STEP", "SYNThesis", "INTERHARmonics"))
        if mode not in ("FIXED", "LIST"):
            raise settings_conflict(f"output mode {mode} is not simulated")
        if self.list_running:
            raise settings_conflict("output mode change while a list runs (send TRIG OFF first)")
        self.output_mode = mode
        if mode == "FIXED":
            self._apply_steady_state(slew=False)

    def _energised(self) -> bool:
        return self.output_on and self.relay_closed

    def _angles_deg(self) -> list[float]:
        # P12/P13: phase 2 and 3 behind phase 1 (120 and 240 give the positive sequence)
        return [0.0, -self.p12_deg, -self.p13_deg]

    def _apply_unless_list(self) -> None:
        if not self.list_running:
            self._apply_steady_state(slew=True)

    def _apply_steady_state(self, *, slew: bool) -> None:
        self._generation += 1
        self.plant.set_source(output_on=self._energised(), freq_hz=self.freq_hz, phase_deg=self._angles_deg())
        targets = [self.voltage_v[p] for p in PHASES]
        largest_change_v = max(abs(t - self._applied_v[p]) for p, t in zip(PHASES, targets))
        if slew and self.slew_v_per_ms > 0.0 and largest_change_v > 0.0:
            duration_s = largest_change_v / (self.slew_v_per_ms * 1e3)
            start = [self._applied_v[p] for p in PHASES]
            self._schedule_ramp(self.plant.t_s, duration_s, start, targets, None, None, self._generation)
        else:
            self._set_volts(targets)

    def _set_volts(self, volts: list[float], freq_hz: float | None = None) -> None:
        self._applied_v = dict(zip(PHASES, volts))
        self.plant.set_source(v_ln_rms_v=volts, freq_hz=freq_hz)

    # --- measurements ------------------------------------------------------------------
    def _measure(self, quantity: str) -> str:
        readings = self.plant.source_measurements()
        index = self.selected_phase - 1
        v = float(readings["v_ln_rms_v"][index])
        i = float(readings["i_rms_a"][index])
        values = {
            "voltage": v, "current": i,
            "power": float(readings["p_w"]) / 3.0, "reactive": float(readings["q_var"]) / 3.0,
            "apparent": v * i, "total_power": float(readings["p_w"]), "frequency": float(readings["freq_hz"]),
        }
        return format_nr3(values[quantity])

    # --- LIST mode ---------------------------------------------------------------------
    def _lists_coupled(self) -> bool:
        # per-phase lists under LIST:COUPling NONE or INSTrument:COUPle NONE (module notes)
        return self.lists[1].coupling == "ALL" and self.coupled

    def _list(self) -> ListProgram:
        return self.lists[1 if self._lists_coupled() else self.selected_phase]

    def _list_targets(self) -> tuple[int, ...]:
        return PHASES if self._lists_coupled() else (self.selected_phase,)

    def _set_list_coupling(self, c: Call) -> None:
        coupling = c.choice(("ALL", "NONE"))
        for program in self.lists.values():
            program.coupling = coupling

    def _set_list_value(self, c: Call, attribute: str) -> None:
        value = c.integer(low=0, high=self.ratings.list_count_max)
        for p in self._list_targets():
            setattr(self.lists[p], attribute, value)

    def _set_list_values(self, c: Call, attribute: str, low: float, high: float) -> None:
        values = c.numbers(low=low, high=high)
        if len(values) > self.ratings.list_sequences_max:
            raise data_out_of_range(f"{len(values)} sequences (max {self.ratings.list_sequences_max})")
        for p in self._list_targets():
            setattr(self.lists[p], attribute, list(values))

    def _set_list_shape(self, c: Call) -> None:
        shapes = [c.choice(("A", "B"), index=i) for i in range(len(c.args))]
        if "B" in shapes:
            raise settings_conflict("waveform B is not simulated")
        for p in self._list_targets():
            self.lists[p].shape = shapes

    def _set_list_base(self, c: Call) -> None:
        base = c.choice(("TIME", "CYCLe"))
        if base != "TIME":
            raise settings_conflict("LIST:BASE CYCLE is not simulated")
        for p in self._list_targets():
            self.lists[p].base = base

    def _set_trigger(self, c: Call) -> None:
        if c.boolean():
            if self.output_mode != "LIST":
                raise settings_conflict("TRIG ON needs OUTPut:MODE LIST")
            if self.list_running:
                raise settings_conflict("list already running")
            if not self._energised():
                raise settings_conflict("output is off")
            self._start_list()
        else:
            self._stop_list()

    def _sequences(self) -> list[tuple[float, list[float], list[float], float, float, list[float] | None]]:
        """(dwell_s, start volts per phase, end volts per phase, start Hz, end Hz, phase
        angles per phase or None) per sequence."""
        programs = [self.lists[p] for p in PHASES]
        lengths = {len(program.dwell_ms) for program in programs}
        if lengths == {0}:
            raise settings_conflict("empty list (LIST:DWELl)")
        sequences = []
        n = max(lengths)
        for k in range(n):
            try:
                dwell_s = programs[0].dwell_ms[k] / 1e3
                start_v = [prog.voltage_start_v[k] for prog in programs]
                end_v = [prog.voltage_end_v[k] for prog in programs]
                start_hz = programs[0].freq_start_hz[k]
                end_hz = programs[0].freq_end_hz[k]
            except IndexError:
                raise settings_conflict(f"list sequence {k + 1} is not fully programmed "
                                        "(DWELl, VOLTage:AC:STARt/END, FREQuency:STARt/END)") from None
            # LIST:DEGRee: a phase without one for this sequence stays where it is (0)
            degrees = [prog.degree[k] if k < len(prog.degree) else 0.0 for prog in programs]
            sequences.append((dwell_s, start_v, end_v, start_hz, end_hz,
                              degrees if any(degrees) else None))
        return sequences

    def _start_list(self) -> None:
        sequences = self._sequences()  # validated before anything moves
        self._generation += 1
        generation = self._generation
        self.list_running = True
        start_s = self.plant.t_s
        for listener in self.trigger_output_listeners:
            listener(start_s)  # the trigger output pulses as the list starts
        self._schedule_pass(start_s, sequences, self.lists[1].count, generation)

    def _schedule_pass(self, start_s: float, sequences: list, remaining: int, generation: int) -> None:
        """One pass through the list; COUNt 0 repeats until TRIG OFF."""
        offset_s = 0.0
        for dwell_s, start_v, end_v, start_hz, end_hz, degrees in sequences:
            self._schedule_ramp(start_s + offset_s, dwell_s, start_v, end_v, start_hz, end_hz, generation,
                                self._list_angles_deg(degrees))
            offset_s += dwell_s
        end_s = start_s + offset_s
        if remaining == 1:
            self.plant.schedule(end_s, lambda _plant: self._finish_list(generation))
        else:
            next_remaining = 0 if remaining == 0 else remaining - 1
            self.plant.schedule(end_s, lambda _plant: self._schedule_pass(end_s, sequences, next_remaining,
                                                                          generation))

    def _list_angles_deg(self, degrees: list[float] | None) -> list[float]:
        """The phase angles a sequence applies: the fixed-mode ones plus its LIST:DEGRee."""
        fixed = self._angles_deg()
        if degrees is None:
            return fixed
        return [a + d for a, d in zip(fixed, degrees)]

    def _schedule_ramp(self, t0_s: float, duration_s: float, start_v: list[float], end_v: list[float],
                       start_hz: float | None, end_hz: float | None, generation: int,
                       angles_deg: list[float] | None = None) -> None:
        """At t0 the START values (and the sequence's phase angles); a frequency ramp runs on
        the plant's source from START to END over the duration; the voltage goes in straight
        1 ms steps to END at t0 + duration (a sequence with START = END is one step held)."""
        volts_change = start_v != end_v
        rocof = None
        if start_hz is not None and end_hz is not None and start_hz != end_hz:
            rocof = abs(end_hz - start_hz) / duration_s if duration_s > 0.0 else None
            if rocof is not None and rocof >= MAX_SOURCE_ROCOF_HZ_PER_S:
                rocof = None                       # faster than any ramp: a step to END
        self._apply_at(t0_s, list(start_v), start_hz, end_hz, rocof, angles_deg, generation)
        if not volts_change:
            return
        steps = max(1, int(round(duration_s / RAMP_STEP_S)))
        for k in range(1, steps):
            fraction = k / steps
            volts = [a + (b - a) * fraction for a, b in zip(start_v, end_v)]
            self._apply_at(t0_s + k * duration_s / steps, volts, None, None, None, None, generation)
        self._apply_at(t0_s + duration_s, list(end_v), None, None, None, None, generation)

    def _apply_at(self, t_s: float, volts: list[float], start_hz: float | None, end_hz: float | None,
                  rocof_hz_per_s: float | None, angles_deg: list[float] | None, generation: int) -> None:
        def apply(_plant=None) -> None:
            if generation != self._generation:
                return
            self._applied_v = dict(zip(PHASES, volts))
            if rocof_hz_per_s is not None:
                self.plant.set_source(v_ln_rms_v=volts, freq_hz=end_hz, freq_start_hz=start_hz,
                                      rocof_hz_per_s=rocof_hz_per_s, phase_deg=angles_deg)
            else:
                freq = end_hz if end_hz is not None else start_hz
                self.plant.set_source(v_ln_rms_v=volts, freq_hz=freq, phase_deg=angles_deg)
        if t_s <= self.plant.t_s:
            apply()
        else:
            self.plant.schedule(t_s, apply)

    def _finish_list(self, generation: int) -> None:
        if generation == self._generation:
            self.list_running = False  # the output holds the last sequence's END values

    def _stop_list(self) -> None:
        """TRIG OFF: the list stops; the output returns to the FIXED-mode settings."""
        was_running = self.list_running
        self.list_running = False
        self._generation += 1
        if was_running or self.output_mode == "LIST":
            self._apply_steady_state(slew=False)


def _nr3_list(values: list[float]) -> str:
    return ",".join(format_nr3(v) for v in values)
