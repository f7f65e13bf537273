"""Tektronix MSO 5 Series (MSO58, 8 analog channels) oscilloscope twin.

Commands after the "4/5/6 Series MSO Programmer Manual": `HEADer`, `VERBose`,
`CH<x>:SCAle|OFFSet|POSition`, `HORizontal:MODE MANual`, `HORizontal:MODE:SAMPLERate`,
`HORizontal:MODE:RECOrdlength`, `HORizontal:POSition` (trigger point, % of the record),
`TRIGger:A:TYPe EDGE`, `TRIGger:A:EDGE:SOUrce|SLOpe`, `TRIGger:A:LEVel:CH<x>`,
`TRIGger:A:MODe AUTO|NORMal`, `TRIGger:STATE?`, `ACQuire:STOPAfter`, `ACQuire:STATE`,
`DATa:SOUrce|ENCdg|STARt|STOP`, `WFMOutpre...?`, `CURVe?`.

What the channel inputs see is configured on the simulator side (`ProbeWiring`): a plant
ring signal divided by a probe attenuation, e.g. a 100:1 differential probe on a PCC
phase voltage or a 100 A/V current probe (0.01 V per A at the input). The plant records
its signals at its own step (20 kSa/s at 50 µs); an acquisition resamples them onto the
scope's sample clock by linear interpolation and quantises them like the 8-bit or 16-bit
waveform codes of the real instrument, clipped at the top and bottom codes.

Acquisition follows the real sequence: `ACQuire:STATE ON` arms; the scope first fills its
pre-trigger part (TRIGger:STATE? ARMED, triggers ignored), then waits for a trigger
(READY), then fills the post-trigger part (TRIGGER); the record completes once plant
time has passed its end. With `TRIGger:A:MODe AUTO` (the *RST state, as on the real
instrument) a missing trigger is forced after a timeout: plans must select NORMal.

Limits (each refused with a SCPI error naming it): record length 1 000 to 62.5 M points
(`HORizontal:MODE:RECOrdlength`, -222; the MSO58's standard memory), and a record that
spans more than 90 % of the plant's ring buffer (30 s by default) cannot be armed (-221 at
`ACQuire:STATE ON`). A 10 M-point record (1 MSa/s × 10 s, 2 MSa/s × 5 s) is served from
the plant's 20 kSa/s ring; its 16-bit `CURVe?` block (20 MB) is encoded once per capture,
channel and format and then sent from a cache (in slices: `server.send_response`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bench.sim.scpi.server import (
    Call,
    CommandTable,
    ScpiError,
    ScpiInstrument,
    data_out_of_range,
    format_nr3,
    settings_conflict,
)
from bench.sim.scpi.waveform_codes import BlockCache, CodeScale, SampleClock, encode_block

if TYPE_CHECKING:
    from bench.sim.plant import Plant


@dataclass(frozen=True)
class ProbeWiring:
    """A channel input: plant ring signal / attenuation = volts at the scope input."""

    signal: str
    attenuation: float  # plant units per volt at the input (100 for 100:1, 100 for 100 A/V)


DEFAULT_WIRING: dict[int, ProbeWiring] = {
    1: ProbeWiring("pcc_va_v", 100.0),  # 100:1 differential probes on the PCC phases
    2: ProbeWiring("pcc_vb_v", 100.0),
    3: ProbeWiring("pcc_vc_v", 100.0),
    4: ProbeWiring("pcs_ia_a", 100.0),  # 100 A/V current probes on the PCS phases
    5: ProbeWiring("pcs_ib_a", 100.0),
    6: ProbeWiring("pcs_ic_a", 100.0),
    7: ProbeWiring("vdc_v", 100.0),
    8: ProbeWiring("grid_ia_a", 100.0),
}


@dataclass(frozen=True)
class MsoRatings:
    model: str = "MSO58"
    channels: int = 8
    record_length_min: int = 1000
    record_length_max: int = 62_500_000  # MSO58 standard record length
    sample_rate_max_hz: float = 6.25e9
    sample_rate_min_hz: float = 1.0
    divisions: int = 10  # vertical graticule: ±5 divisions about centre
    codes_per_div_8bit: int = 25  # 8-bit codes: ±127 ≈ ±5.1 div
    codes_per_div_16bit: int = 6400  # 16-bit codes: ±32767 ≈ ±5.1 div
    aux_pulse_width_s: float = 10e-6  # the grid simulator's trigger-out pulse


def allowed_sample_rates(ratings: MsoRatings) -> list[float]:
    """1-2-5 steps up to the model maximum (the scope rounds a request to one of them)."""
    rates = []
    for decade in range(0, 10):
        for mantissa in (1.0, 2.0, 5.0):
            rate = mantissa * 10.0**decade
            if ratings.sample_rate_min_hz <= rate < ratings.sample_rate_max_hz:
                rates.append(rate)
    rates += [3.125e9, ratings.sample_rate_max_hz]
    return sorted(set(rates))


@dataclass
class ChannelSetup:
    scale_v_per_div: float = 0.1
    offset_v: float = 0.0
    position_div: float = 0.0
    display_on: bool = True
    coupling: str = "DC"
    termination_ohm: float = 1e6
    trigger_level_v: float = 0.0


@dataclass
class Capture:
    """A completed acquisition: plant samples around the record, kept in volts at the inputs."""

    trigger_t_s: float
    first_sample_t_s: float  # time of scope record point 1
    sample_rate_hz: float
    record_length: int
    plant_t0_s: float
    plant_dt_s: float
    input_v: dict[int, np.ndarray]  # channel → plant-rate samples, volts at the input
    channels: dict[int, ChannelSetup]  # vertical settings at acquisition time

    def resample(self, channel: int, first_point: int, last_point: int) -> np.ndarray:
        """Input volts at scope record points first..last (1-based, inclusive)."""
        points = np.arange(first_point - 1, last_point, dtype=np.float64)
        t_s = self.first_sample_t_s + points / self.sample_rate_hz
        samples = self.input_v[channel]
        plant_times = self.plant_t0_s + np.arange(samples.size) * self.plant_dt_s
        return np.interp(t_s, plant_times, samples)


@dataclass
class Acquisition:
    """An armed acquisition in progress."""

    armed_t_s: float
    ready_t_s: float  # pre-trigger filled: triggers accepted from here
    record_length: int
    sample_rate_hz: float
    pretrigger_points: int
    trigger_t_s: float | None = None
    scan_from_t_s: float = 0.0
    last_level_sample: float | None = None

    @property
    def record_s(self) -> float:
        return self.record_length / self.sample_rate_hz

    @property
    def end_t_s(self) -> float | None:
        if self.trigger_t_s is None:
            return None
        return self.trigger_t_s + (self.record_length - 1 - self.pretrigger_points) / self.sample_rate_hz


@dataclass
class TriggerSetup:
    type: str = "EDGE"
    source: str = "CH1"  # CH<x> | AUX | LINE
    slope: str = "RISE"  # RISE | FALL | EITHER
    mode: str = "AUTO"  # AUTO | NORMAL
    aux_level_v: float = 1.0


@dataclass
class WaveformOutput:
    source: int = 1
    encoding: str = "BINARY"  # BINARY | ASCII
    binary_format: str = "RI"
    byte_order: str = "MSB"
    byte_count: int = 1
    start: int = 1
    stop: int = 10_000


log = logging.getLogger(__name__)

SCAN_INTERVAL_S = 0.02  # how often (plant time) an armed scope looks for its trigger


def scan_for_edge(plant: "Plant", acquisition: Acquisition, wiring: ProbeWiring, level_v: float,
                  slope: str, now_s: float) -> None:
    """Look for an edge crossing of `level_v` (volts at the input) in the plant samples
    recorded since the last scan; sets `acquisition.trigger_t_s` (interpolated) if found.
    `slope` is RISE, FALL or EITHER."""
    dt_s = plant.dt_s
    first_index = math.ceil(acquisition.scan_from_t_s / dt_s - 1e-9)
    last_index = math.floor((now_s - dt_s) / dt_s + 1e-9)
    if last_index < first_index:
        return
    samples = plant.read_ring([wiring.signal], first_index * dt_s, last_index - first_index + 1)[0]
    volts = samples / wiring.attenuation
    previous = np.concatenate(([volts[0] if acquisition.last_level_sample is None
                                else acquisition.last_level_sample], volts[:-1]))
    rising = (previous < level_v) & (volts >= level_v)
    falling = (previous > level_v) & (volts <= level_v)
    crossings = {"RISE": rising, "FALL": falling, "EITHER": rising | falling}[slope]
    hits = np.flatnonzero(crossings)
    if hits.size:
        k = int(hits[0])
        before, after = previous[k], volts[k]
        fraction = (level_v - before) / (after - before) if after != before else 1.0
        acquisition.trigger_t_s = (first_index + k - 1 + fraction) * dt_s
    acquisition.last_level_sample = float(volts[-1])
    acquisition.scan_from_t_s = (last_index + 1) * dt_s


def record_capture(plant: "Plant", acquisition: Acquisition, wiring: dict[int, ProbeWiring],
                   channels: dict[int, ChannelSetup]) -> Capture:
    """The plant samples spanning a triggered acquisition's record, at the inputs."""
    dt_s = plant.dt_s
    trigger_t_s = acquisition.trigger_t_s
    assert trigger_t_s is not None
    first_t_s = trigger_t_s - acquisition.pretrigger_points / acquisition.sample_rate_hz
    last_t_s = first_t_s + (acquisition.record_length - 1) / acquisition.sample_rate_hz
    first_index = max(0, math.floor(first_t_s / dt_s + 1e-9))
    last_index = math.ceil(last_t_s / dt_s - 1e-9)
    names = [wiring[ch].signal for ch in sorted(wiring)]
    samples = plant.read_ring(names, first_index * dt_s, last_index - first_index + 1)
    inputs = {ch: samples[i] / wiring[ch].attenuation for i, ch in enumerate(sorted(wiring))}
    return Capture(trigger_t_s=trigger_t_s, first_sample_t_s=first_t_s,
                   sample_rate_hz=acquisition.sample_rate_hz, record_length=acquisition.record_length,
                   plant_t0_s=first_index * dt_s, plant_dt_s=dt_s, input_v=inputs,
                   channels={ch: replace(setup) for ch, setup in channels.items()})


class TektronixMso(ScpiInstrument):
    def __init__(self, plant: "Plant", *, ring_s: float, wiring: dict[int, ProbeWiring] | None = None,
                 ratings: MsoRatings = MsoRatings(), serial: str = "C000001") -> None:
        self.plant = plant
        self.ring_s = ring_s
        self.wiring = dict(DEFAULT_WIRING if wiring is None else wiring)
        self.ratings = ratings
        self.sample_rates_hz = allowed_sample_rates(ratings)
        self.header_on = True  # the instrument answers with headers until told HEADer OFF
        self.verbose_on = True
        self._generation = 0
        self.acquisition: Acquisition | None = None
        self.capture: Capture | None = None
        self._capture_serial = 0  # names the capture in the block cache
        self._blocks = BlockCache()
        super().__init__(manufacturer="TEKTRONIX", model=ratings.model, serial=serial,
                         firmware="CF:91.1CT FV:1.40.6.1076")
        self.reset()

    def reset(self) -> None:
        """*RST: default vertical/horizontal/trigger setup; acquisition running (RUNSTop)."""
        self._generation += 1
        self.channels = {ch: ChannelSetup() for ch in range(1, self.ratings.channels + 1)}
        self.horizontal_mode = "AUTO"
        self.sample_rate_hz = 6.25e9
        self.record_length = 10_000
        self.horizontal_position_pct = 50.0
        self.trigger = TriggerSetup()
        self.stop_after = "RUNSTOP"
        self.acquiring = False
        self.acquisitions_completed = 0
        self.acquisition = None
        self.output = WaveformOutput(stop=self.record_length)

    # ------------------------------------------------------------------------------------
    def build_commands(self, t: CommandTable) -> None:
        t.add("HEADer", set=lambda c: setattr(self, "header_on", c.boolean()),
              query=lambda c: "1" if self.header_on else "0")
        t.add("VERBose", set=lambda c: setattr(self, "verbose_on", c.boolean()),
              query=lambda c: "1" if self.verbose_on else "0")

        # vertical
        t.add("CH<x>:SCAle", set=lambda c: self._set_channel(c, "scale_v_per_div", low=500e-6, high=10.0),
              query=lambda c: format_nr3(self._channel(c).scale_v_per_div))
        t.add("CH<x>:OFFSet", set=lambda c: self._set_channel(c, "offset_v", low=-100.0, high=100.0),
              query=lambda c: format_nr3(self._channel(c).offset_v))
        t.add("CH<x>:POSition", set=lambda c: self._set_channel(c, "position_div", low=-5.0, high=5.0),
              query=lambda c: format_nr3(self._channel(c).position_div))
        t.add("CH<x>:COUPling", set=lambda c: setattr(self._channel(c), "coupling", c.choice(("DC", "AC", "DCREJect"))),
              query=lambda c: self._channel(c).coupling)
        t.add("CH<x>:TERmination", set=lambda c: setattr(self._channel(c), "termination_ohm",
                                                          50.0 if c.number(unit="OHM", low=50, high=1e6) < 1e3 else 1e6),
              query=lambda c: format_nr3(self._channel(c).termination_ohm))
        t.add("DISplay:GLObal:CH<x>:STATE", set=lambda c: setattr(self._channel(c), "display_on", c.boolean()),
              query=lambda c: "1" if self._channel(c).display_on else "0")
        t.add("SELect:CH<x>", set=lambda c: setattr(self._channel(c), "display_on", c.boolean()),
              query=lambda c: "1" if self._channel(c).display_on else "0")

        # horizontal
        t.add("HORizontal:MODE", set=lambda c: setattr(self, "horizontal_mode", c.choice(("AUTO", "MANual", "CONStant"))),
              query=lambda c: self.horizontal_mode)
        t.add("HORizontal:MODE:SAMPLERate", set=self._set_sample_rate, query=lambda c: format_nr3(self.sample_rate_hz))
        t.add("HORizontal:SAMPLERate", set=self._set_sample_rate, query=lambda c: format_nr3(self.sample_rate_hz))
        t.add("HORizontal:MODE:RECOrdlength", set=self._set_record_length, query=lambda c: str(self.record_length))
        t.add("HORizontal:RECOrdlength", set=self._set_record_length, query=lambda c: str(self.record_length))
        t.add("HORizontal:MODE:SCAle", set=self._set_horizontal_scale, query=lambda c: format_nr3(self._horizontal_scale()))
        t.add("HORizontal:SCAle", set=self._set_horizontal_scale, query=lambda c: format_nr3(self._horizontal_scale()))
        t.add("HORizontal:POSition", set=self._set_horizontal_position,
              query=lambda c: format_nr3(self.horizontal_position_pct))

        # trigger
        t.add("TRIGger:A:TYPe", set=lambda c: setattr(self.trigger, "type", c.choice(("EDGE",))),
              query=lambda c: self.trigger.type)
        t.add("TRIGger:A:EDGE:SOUrce", set=self._set_trigger_source, query=lambda c: self.trigger.source)
        t.add("TRIGger:A:EDGE:SLOpe", set=lambda c: setattr(self.trigger, "slope", c.choice(("RISe", "FALL", "EITher"))),
              query=lambda c: self.trigger.slope)
        t.add("TRIGger:A:EDGE:COUPling", set=lambda c: c.choice(("DC", "HFRej", "LFRej", "NOISErej")),
              query=lambda c: "DC")
        t.add("TRIGger:A:LEVel:CH<x>", set=lambda c: self._set_channel(c, "trigger_level_v", low=-1000.0, high=1000.0),
              query=lambda c: format_nr3(self._channel(c).trigger_level_v))
        t.add("TRIGger:AUXLevel", set=lambda c: setattr(self.trigger, "aux_level_v", c.number(unit="V", low=-8.0, high=8.0)),
              query=lambda c: format_nr3(self.trigger.aux_level_v))
        t.add("TRIGger:A:LEVel:AUXin", set=lambda c: setattr(self.trigger, "aux_level_v", c.number(unit="V", low=-8.0, high=8.0)),
              query=lambda c: format_nr3(self.trigger.aux_level_v))
        t.add("TRIGger:A:MODe", set=lambda c: setattr(self.trigger, "mode", c.choice(("AUTO", "NORMal"))),
              query=lambda c: self.trigger.mode)
        t.add("TRIGger:STATE", query=lambda c: self._trigger_state())
        t.add("TRIGger[:FORCe]", set=lambda c: self._force_trigger())

        # acquisition
        t.add("ACQuire:STOPAfter", set=self._set_stop_after, query=lambda c: self.stop_after)
        t.add("ACQuire:STATE", set=self._set_acquire_state, query=lambda c: self._acquire_state())
        t.add("ACQuire:MODe", set=lambda c: c.choice(("SAMple",)), query=lambda c: "SAMPLE")
        t.add("ACQuire:NUMACq", query=lambda c: self._num_acquisitions())

        # waveform transfer
        t.add("DATa:SOUrce", set=self._set_data_source, query=lambda c: f"CH{self.output.source}")
        t.add("DATa:ENCdg", set=self._set_data_encoding, query=lambda c: self._data_encoding())
        t.add("DATa:STARt", set=lambda c: setattr(self.output, "start", c.integer(low=1)),
              query=lambda c: str(self.output.start))
        t.add("DATa:STOP", set=lambda c: setattr(self.output, "stop", c.integer(low=1)),
              query=lambda c: str(self.output.stop))
        t.add("DATa:WIDth", set=self._set_byte_count, query=lambda c: str(self.output.byte_count))
        t.add("WFMOutpre:BYT_Nr", set=self._set_byte_count, query=lambda c: str(self.output.byte_count))
        t.add("WFMOutpre:BIT_Nr", set=lambda c: self._set_bits(c), query=lambda c: str(8 * self.output.byte_count))
        t.add("WFMOutpre:ENCdg", set=lambda c: setattr(self.output, "encoding", c.choice(("BINary", "ASCii"))),
              query=lambda c: self.output.encoding)
        t.add("WFMOutpre:BN_Fmt", set=lambda c: setattr(self.output, "binary_format", c.choice(("RI",))),
              query=lambda c: self.output.binary_format)
        t.add("WFMOutpre:BYT_Or", set=lambda c: setattr(self.output, "byte_order", c.choice(("LSB", "MSB"))),
              query=lambda c: self.output.byte_order)
        t.add("WFMOutpre", query=lambda c: self._preamble())
        for name in ("XINcr", "XZEro", "PT_Off", "YMUlt", "YOFf", "YZEro", "NR_Pt", "XUNit", "YUNit", "WFId",
                     "PT_Fmt"):
            t.add(f"WFMOutpre:{name}", query=lambda c, key=name.upper(): self._preamble_fields()[key])
        t.add("CURVe", query=self._curve)

        # Tektronix event reporting (the same queue SYSTem:ERRor? reads)
        t.add("ALLEv", query=lambda c: self._all_events())
        t.add("EVMsg", query=lambda c: self.errors.popleft().queue_text if self.errors else '0,"No events to report"')

    def _all_events(self) -> str:
        if not self.errors:
            return '0,"No events to report - queue empty"'
        texts = [error.queue_text for error in self.errors]
        self.errors.clear()
        return ",".join(texts)

    # --- responses with headers (HEADer ON), as the instrument sends them ----------------
    def format_response(self, call: Call, response: str) -> str:
        if (not self.header_on or call.header.startswith("*") or call.path == ["WFMOUTPRE"]
                or call.path[0] in ("SYSTEM", "ALLEV", "EVMSG")):
            return response
        return ":" + ":".join(call.path) + " " + response

    # --- vertical ----------------------------------------------------------------------
    def _channel(self, c: Call) -> ChannelSetup:
        return self.channels[c.suffix("x", low=1, high=self.ratings.channels)]

    def _set_channel(self, c: Call, attribute: str, *, low: float, high: float) -> None:
        setattr(self._channel(c), attribute, c.number(unit="V" if attribute != "position_div" else None,
                                                      low=low, high=high))

    # --- horizontal ----------------------------------------------------------------------
    def _set_sample_rate(self, c: Call) -> None:
        requested = c.number(unit="HZ", low=self.ratings.sample_rate_min_hz, high=self.ratings.sample_rate_max_hz)
        # the instrument takes the nearest rate it can run (compare on a log scale)
        self.sample_rate_hz = min(self.sample_rates_hz, key=lambda rate: abs(math.log(rate / requested)))

    def _set_record_length(self, c: Call) -> None:
        points = c.number()
        if not self.ratings.record_length_min <= points <= self.ratings.record_length_max:
            raise data_out_of_range(f"record length {c.text()} outside {self.ratings.record_length_min} to "
                                    f"{self.ratings.record_length_max} points")
        self.record_length = c.integer()

    def _horizontal_scale(self) -> float:
        return self.record_length / self.sample_rate_hz / 10.0

    def _set_horizontal_scale(self, c: Call) -> None:
        seconds_per_div = c.number(unit="S", low=1e-10, high=1000.0)
        requested_rate = self.record_length / (10.0 * seconds_per_div)
        self.sample_rate_hz = min(self.sample_rates_hz, key=lambda rate: abs(math.log(rate / requested_rate)))

    def _set_horizontal_position(self, c: Call) -> None:
        self.horizontal_position_pct = c.number(unit="PCT", low=0.0, high=100.0)

    # --- trigger -------------------------------------------------------------------------
    def _set_trigger_source(self, c: Call) -> None:
        word = c.text().upper()
        if word in ("AUX", "AUXIN", "AUXILIARY"):
            self.trigger.source = "AUX"
        elif word == "LINE":
            self.trigger.source = "LINE"
        elif word.startswith("CH") and word[2:].isdigit() and 1 <= int(word[2:]) <= self.ratings.channels:
            self.trigger.source = word
        else:
            raise ScpiError(-224, "Illegal parameter value", word)

    def external_trigger_input(self, t_s: float) -> None:
        """The launcher's name for the input the grid simulator's trigger output drives."""
        self.aux_input(t_s)

    def aux_input(self, t_s: float) -> None:
        """The AUX trigger input saw the rising edge of a pulse at plant time t_s."""
        acquisition = self.acquisition
        if acquisition is None or acquisition.trigger_t_s is not None or self.trigger.source != "AUX":
            return
        edge_t_s = t_s + (self.ratings.aux_pulse_width_s if self.trigger.slope == "FALL" else 0.0)
        if self._pretrigger_filled(acquisition, edge_t_s):  # triggers while still ARMED are ignored
            acquisition.trigger_t_s = edge_t_s
        self._safe_update()

    def _force_trigger(self) -> None:
        acquisition = self.acquisition
        if acquisition is not None and acquisition.trigger_t_s is None:
            acquisition.trigger_t_s = max(self.plant.t_s, acquisition.ready_t_s)

    def _trigger_state(self) -> str:
        self._update()
        acquisition = self.acquisition
        if acquisition is None:
            return "SAVE"
        if acquisition.trigger_t_s is not None:
            return "TRIGGER"
        return "READY" if self._pretrigger_filled(acquisition, self.plant.t_s) else "ARMED"

    def _pretrigger_filled(self, acquisition: Acquisition, t_s: float) -> bool:
        return t_s >= acquisition.ready_t_s - 0.5 * self.plant.dt_s  # tolerate float round-off

    # --- acquisition ---------------------------------------------------------------------
    def _set_stop_after(self, c: Call) -> None:
        self.stop_after = c.choice(("RUNSTop", "SEQuence"))

    def _set_acquire_state(self, c: Call) -> None:
        word = c.text().upper()
        if word in ("ON", "RUN", "1"):
            if not self.acquiring:
                self._arm()
        elif word in ("OFF", "STOP", "0"):
            self.acquiring = False
            self.acquisition = None
            self._generation += 1
        else:
            raise ScpiError(-224, "Illegal parameter value", word)

    def _acquire_state(self) -> str:
        self._update()
        return "1" if self.acquiring else "0"

    def _num_acquisitions(self) -> str:
        self._update()
        return str(self.acquisitions_completed)

    def _arm(self) -> None:
        record_s = self.record_length / self.sample_rate_hz
        if record_s > self.ring_s * 0.9:
            raise settings_conflict(f"record of {record_s:g} s ({self.record_length} points at "
                                    f"{self.sample_rate_hz:g} Sa/s) exceeds the acquisition memory span "
                                    f"of {self.ring_s * 0.9:g} s")
        pretrigger_points = int(round((self.record_length - 1) * self.horizontal_position_pct / 100.0))
        now_s = self.plant.t_s
        ready_t_s = now_s + pretrigger_points / self.sample_rate_hz
        self.acquisition = Acquisition(armed_t_s=now_s, ready_t_s=ready_t_s, record_length=self.record_length,
                                       sample_rate_hz=self.sample_rate_hz, pretrigger_points=pretrigger_points,
                                       scan_from_t_s=ready_t_s)
        self.acquiring = True
        self._generation += 1
        generation = self._generation
        self.acquisitions_completed = 0 if self.stop_after == "SEQUENCE" else self.acquisitions_completed
        self.plant.schedule(now_s + SCAN_INTERVAL_S, lambda _plant: self._poll(generation))

    def _poll(self, generation: int) -> None:
        """Plant-time callback while armed: look for the trigger, finish the record."""
        if generation != self._generation or not self.acquiring:
            return
        if not self._safe_update():
            return
        # a RUNSTop re-arm bumps the generation and schedules its own poll
        if self.acquiring and generation == self._generation:
            self.plant.schedule(self.plant.t_s + SCAN_INTERVAL_S, lambda _plant: self._poll(generation))

    def _safe_update(self) -> bool:
        """_update from plant callbacks: a failure must never break the plant's step loop."""
        try:
            self._update()
            return True
        except Exception as error:
            log.exception("acquisition failed")
            self.push_error(ScpiError(-300, "Device-specific error", f"acquisition failed: {error}"))
            self.acquiring, self.acquisition = False, None
            return False

    def _update(self) -> None:
        acquisition = self.acquisition
        if acquisition is None:
            return
        now_s = self.plant.t_s
        if acquisition.trigger_t_s is None:
            if self.trigger.source.startswith("CH"):
                self._scan_for_edge(acquisition, now_s)
            if acquisition.trigger_t_s is None and self.trigger.mode == "AUTO":
                # auto mode forces a trigger when none came within a record length
                auto_t_s = acquisition.ready_t_s + max(0.1, acquisition.record_s)
                if now_s >= auto_t_s:
                    acquisition.trigger_t_s = auto_t_s
        end_t_s = acquisition.end_t_s
        if end_t_s is not None and now_s - self.plant.dt_s >= end_t_s:
            self._complete(acquisition)

    def _scan_for_edge(self, acquisition: Acquisition, now_s: float) -> None:
        channel = int(self.trigger.source[2:])
        wiring = self.wiring.get(channel)
        if wiring is None:
            return
        scan_for_edge(self.plant, acquisition, wiring, self.channels[channel].trigger_level_v,
                      self.trigger.slope, now_s)

    def _complete(self, acquisition: Acquisition) -> None:
        self.capture = record_capture(self.plant, acquisition, self.wiring, self.channels)
        self._capture_serial += 1
        self.acquisitions_completed += 1
        if self.stop_after == "SEQUENCE":
            self.acquiring = False
            self.acquisition = None
        else:
            self.acquiring = False
            self._arm()  # run/stop: the next acquisition starts at once

    # --- waveform transfer -----------------------------------------------------------------
    def _set_data_source(self, c: Call) -> None:
        word = c.text().upper()
        if word.startswith("CH") and word[2:].isdigit() and 1 <= int(word[2:]) <= self.ratings.channels:
            self.output.source = int(word[2:])
        else:
            raise ScpiError(-224, "Illegal parameter value", word)

    def _set_data_encoding(self, c: Call) -> None:
        encoding = c.choice(("ASCIi", "RIBinary", "SRIbinary"))
        if encoding == "ASCII":
            self.output.encoding = "ASCII"
        else:
            self.output.encoding, self.output.binary_format = "BINARY", "RI"
            self.output.byte_order = "LSB" if encoding == "SRIBINARY" else "MSB"

    def _data_encoding(self) -> str:
        if self.output.encoding == "ASCII":
            return "ASCII"
        return "SRIBINARY" if self.output.byte_order == "LSB" else "RIBINARY"

    def _set_byte_count(self, c: Call) -> None:
        self.output.byte_count = c.integer(low=1, high=2)

    def _set_bits(self, c: Call) -> None:
        bits = c.integer(low=8, high=16)
        if bits not in (8, 16):
            raise ScpiError(-224, "Illegal parameter value", str(bits))
        self.output.byte_count = bits // 8

    def _codes_per_div(self) -> int:
        return self.ratings.codes_per_div_16bit if self.output.byte_count == 2 else self.ratings.codes_per_div_8bit

    def _transfer_range(self) -> tuple[int, int]:
        """DATa:STARt/STOP clamped to the record, as the instrument does."""
        length = self.capture.record_length if self.capture else self.record_length
        start, stop = sorted((self.output.start, self.output.stop))
        return min(start, length), min(stop, length)

    def _preamble_fields(self) -> dict[str, str]:
        capture = self.capture
        channel = self.output.source
        setup = capture.channels[channel] if capture else self.channels[channel]
        sample_rate_hz = capture.sample_rate_hz if capture else self.sample_rate_hz
        start, stop = self._transfer_range()
        codes_per_div = self._codes_per_div()
        if capture:
            x_zero_s = capture.first_sample_t_s + (start - 1) / sample_rate_hz - capture.trigger_t_s
        else:
            x_zero_s = (start - 1) / sample_rate_hz
        wfid = (f'"Ch{channel}, DC coupling, {setup.scale_v_per_div:.4g}V/div, '
                f'{self._horizontal_scale():.4g}s/div, {self.record_length} points, Sample mode"')
        return {
            "BYT_NR": str(self.output.byte_count),
            "BIT_NR": str(8 * self.output.byte_count),
            "ENCDG": self.output.encoding,
            "BN_FMT": self.output.binary_format,
            "BYT_OR": self.output.byte_order,
            "WFID": wfid,
            "NR_PT": str(stop - start + 1),
            "PT_FMT": "Y",
            "PT_ORDER": "LINEAR",
            "XUNIT": '"s"',
            "XINCR": format_nr3(1.0 / sample_rate_hz),
            "XZERO": format_nr3(x_zero_s),
            "PT_OFF": "0",
            "YUNIT": '"V"',
            "YMULT": format_nr3(setup.scale_v_per_div / codes_per_div),
            "YOFF": format_nr3(setup.position_div * codes_per_div),
            "YZERO": format_nr3(setup.offset_v),
            "DOMAIN": "TIME",
            "WFMTYPE": "ANALOG",
        }

    def _preamble(self) -> str:
        fields = self._preamble_fields()
        if self.header_on:
            return ":WFMOUTPRE:" + ";".join(f"{key} {value}" for key, value in fields.items())
        return ";".join(fields.values())

    def _curve(self, c: Call) -> bytes | bytearray:
        self._update()
        capture = self.capture
        if capture is None:
            raise ScpiError(-200, "Execution error", "no waveform acquired")
        channel = self.output.source
        if channel not in capture.input_v:
            raise ScpiError(-200, "Execution error", f"CH{channel} is not connected")
        start, stop = self._transfer_range()
        setup = capture.channels[channel]
        codes_per_div = self._codes_per_div()
        top_code = 32767 if self.output.byte_count == 2 else 127
        if self.output.encoding == "ASCII":
            volts = capture.resample(channel, start, stop)
            divisions = (volts - setup.offset_v) / setup.scale_v_per_div + setup.position_div
            codes = np.clip(np.round(divisions * codes_per_div), -top_code - 1, top_code)
            text = ",".join(str(int(code)) for code in codes)
            return (":CURVE " if self.header_on else "").encode() + text.encode()
        key = (self._capture_serial, channel, start, stop, self.output.byte_count, self.output.byte_order,
               self.header_on)
        block = self._blocks.get(key)
        if block is None:
            # code = (volts - offset) / scale + position, in divisions, times codes per division
            scale = CodeScale(codes_per_volt=codes_per_div / setup.scale_v_per_div,
                              code_at_zero_volts=(setup.position_div - setup.offset_v / setup.scale_v_per_div)
                              * codes_per_div,
                              code_min=-top_code - 1, code_max=top_code)
            clock = SampleClock(plant_t0_s=capture.plant_t0_s, plant_dt_s=capture.plant_dt_s,
                                first_point_t_s=capture.first_sample_t_s + (start - 1) / capture.sample_rate_hz,
                                point_interval_s=1.0 / capture.sample_rate_hz)
            byte_order = "<" if self.output.byte_order == "LSB" else ">"
            block = encode_block(capture.input_v[channel], clock, stop - start + 1, scale,
                                 np.dtype(f"{byte_order}i{self.output.byte_count}"),
                                 prefix=b":CURVE " if self.header_on else b"")
            self._blocks.put(key, block)
        return block
