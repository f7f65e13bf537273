"""Keysight InfiniiVision 3000T X-Series (DSOX3024T, 4 analog channels) oscilloscope twin.

Commands after the "Keysight InfiniiVision 3000T X-Series Oscilloscopes Programmer's Guide":
root commands `:DIGitize`, `:SINGle`, `:RUN`, `:STOP`, `:TER?` (Trigger Event Register: "After
the Trigger Event Register is read, it is cleared. A one indicates a trigger has occurred";
NR1), `:OPERegister:CONDition?` (Operation Status Condition Register: bit 3 "Run — the
oscilloscope is running (not stopped)", bit 5 "Wait Trig — the trigger is armed"),
`:TIMebase:SCALe|POSition|REFerence`, `:ACQuire:TYPE|SRATe?|POINts?`,
`:CHANnel<n>:SCALe|OFFSet|PROBe|DISPlay`, `:TRIGger:MODE EDGE`, `:TRIGger:SWEep`,
`:TRIGger:EDGE:SOURce|LEVel|SLOPe`, and waveform transfer `:WAVeform:SOURce|FORMat|
BYTeorder|UNSigned|POINts:MODE|POINts|PREamble?|DATA?`.

Preamble (guide, :WAVeform:PREamble): format (0 BYTE, 1 WORD, 4 ASCii), type (0 NORMal,
1 PEAK, 2 AVERage, 3 HRESolution), points, count, xincrement, xorigin, xreference,
yincrement, yorigin, yreference; V = (code − yreference)·yincrement + yorigin and
t = (i − xreference)·xincrement + xorigin. The guide gives "Y reference = #Vsteps / 2"
(32768 for WORD, 128 for BYTE) and "Y origin = offset" for unsigned data.

Assumptions of this twin (not confirmed in the guide excerpts found; drivers should rely on
the preamble, not on these numbers):
- codes span 10 vertical divisions about the offset (yincrement = 10·scale / #Vsteps); the
  screen shows 8 of them. WORD data carry 16 significant bits here (the real ADC has 8 to
  12, left-aligned), so a record is never coarser than the real one.
- with `:WAVeform:UNSigned OFF` the codes are shifted by #Vsteps/2 and the preamble's
  yreference is 0, so the formula above still holds.
- `:TIMebase:REFerence LEFT|RIGHt` put the reference one division from that edge of the
  10-division screen; `:TIMebase:POSition` is the time from the trigger to the reference.
- the record covers the screen: sample rate = the fastest 1-2-2.5-5 rate whose record of
  10·scale fits the acquisition memory (2 Mpts per channel with four channels on, at most
  2.5 GSa/s); `:WAVeform:POINts:MODE RAW` transfers that record, NORMal at most 62 500
  points of it (decimated by an integer factor).
- `:DIGitize` does not block: on the lockstep virtual bench plant time moves only between
  client requests, so a blocking command would deadlock. Completion shows in `:TER?`,
  `:OPERegister:CONDition?` (Run bit clears) and `:ACQuire:POINts?`.
- `:SYSTem:ERRor?` answers `+0,"No error"` and `<code>,"<standard SCPI text>"` without
  device-specific detail, InfiniiVision's style.

The EXTernal trigger input is wired (by the launcher) to the grid simulator's trigger
output, as the Tektronix twin's AUX input is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bench.sim.scpi.server import (
    Call,
    CommandTable,
    ScpiError,
    ScpiInstrument,
    illegal_parameter,
    settings_conflict,
)
from bench.sim.scpi.tektronix_mso import (
    Acquisition,
    Capture,
    ChannelSetup,
    ProbeWiring,
    record_capture,
    scan_for_edge,
)
from bench.sim.scpi.waveform_codes import BlockCache, CodeScale, SampleClock, encode_block

if TYPE_CHECKING:
    from bench.sim.plant import Plant

log = logging.getLogger(__name__)

# A 4-channel scope on the PCS bench: the three PCC phase voltages through 100:1
# differential probes, and PCS phase A current through a 100 A/V current probe.
DEFAULT_WIRING: dict[int, ProbeWiring] = {
    1: ProbeWiring("pcc_va_v", 100.0),
    2: ProbeWiring("pcc_vb_v", 100.0),
    3: ProbeWiring("pcc_vc_v", 100.0),
    4: ProbeWiring("pcs_ia_a", 100.0),
}

SCAN_INTERVAL_S = 0.02  # how often (plant time) an armed scope looks for its trigger
REFERENCE_FRACTION = {"LEFT": 0.1, "CENTER": 0.5, "RIGHT": 0.9}  # of the 10-division screen
PREAMBLE_FORMAT = {"BYTE": 0, "WORD": 1, "ASCII": 4}
PREAMBLE_TYPE = {"NORMAL": 0, "PEAK": 1, "AVERAGE": 2, "HRESOLUTION": 3}


@dataclass(frozen=True)
class InfiniiVisionRatings:
    model: str = "DSOX3024T"
    channels: int = 4
    memory_points: int = 2_000_000  # per channel with all four channels on
    sample_rate_max_hz: float = 2.5e9  # all four channels on
    time_per_div_min_s: float = 1e-9
    time_per_div_max_s: float = 50.0
    horizontal_divisions: int = 10
    vertical_divisions: int = 8
    volts_per_div_min: float = 1e-3  # at the BNC; scaled by the probe ratio
    volts_per_div_max: float = 5.0
    offset_max_v: float = 40.0  # at the BNC; scaled by the probe ratio (simplified)
    normal_points_max: int = 62_500  # :WAVeform:POINts:MODE NORMal (screen resolution)
    external_level_max_v: float = 8.0


@dataclass
class ScopeChannel:
    scale_per_div: float = 1.0  # probe-tip units (V at the BNC × probe ratio)
    offset: float = 0.0  # probe-tip units at the screen centre
    probe_ratio: float = 1.0
    display_on: bool = True
    coupling: str = "DC"
    trigger_level: float = 0.0  # probe-tip units


@dataclass
class EdgeTrigger:
    mode: str = "EDGE"
    sweep: str = "AUTO"  # AUTO | NORMAL (the *RST state is AUTO: plans must select NORMal)
    source: str = "CHANNEL1"  # CHANNEL<n> | EXTERNAL | LINE
    slope: str = "POSITIVE"  # POSITIVE | NEGATIVE | EITHER
    external_level_v: float = 0.0


@dataclass
class WaveformOutput:
    source: int = 1
    format: str = "BYTE"
    byte_order: str = "MSBFIRST"
    unsigned: bool = True
    points_mode: str = "NORMAL"  # NORMAL | MAXIMUM | RAW
    points_requested: int = 1000
    cache: BlockCache = field(default_factory=BlockCache)


class KeysightInfiniiVision(ScpiInstrument):
    no_error_text = '+0,"No error"'

    def __init__(self, plant: "Plant", *, ring_s: float, wiring: dict[int, ProbeWiring] | None = None,
                 ratings: InfiniiVisionRatings = InfiniiVisionRatings(), serial: str = "MY58000001") -> None:
        self.plant = plant
        self.ring_s = ring_s
        self.wiring = dict(DEFAULT_WIRING if wiring is None else wiring)
        self.ratings = ratings
        self._generation = 0
        self._capture_serial = 0
        self.acquisition: Acquisition | None = None
        self.capture: Capture | None = None
        self.capture_channels: dict[int, ScopeChannel] = {}  # vertical setup at acquisition time
        super().__init__(manufacturer="KEYSIGHT TECHNOLOGIES", model=ratings.model, serial=serial,
                         firmware="07.50.2021102830")
        self.reset()

    def format_error(self, error: ScpiError) -> str:
        return f'{error.code:+d},"{error.message}"'

    def reset(self) -> None:
        """*RST: default setup; the scope runs (auto trigger), as after a Default Setup."""
        self._generation += 1
        self.channels = {ch: ScopeChannel() for ch in range(1, self.ratings.channels + 1)}
        self.time_per_div_s = 100e-6
        self.time_position_s = 0.0
        self.time_reference = "CENTER"
        self.acquire_type = "NORMAL"
        self.trigger = EdgeTrigger()
        self.output = WaveformOutput()
        self.running = False  # a stopped scope holds its last record
        self.single_shot = False
        self.trigger_event = False  # :TER?
        self.acquisition = None
        self._run(single=False)

    # ------------------------------------------------------------------------------------
    def build_commands(self, t: CommandTable) -> None:
        t.add(":DIGitize", set=self._digitize)
        t.add(":SINGle", set=lambda c: self._run(single=True))
        t.add(":RUN", set=lambda c: self._run(single=False))
        t.add(":STOP", set=lambda c: self._stop())
        t.add(":TER", query=self._read_trigger_event_register)
        t.add(":OPERegister:CONDition", query=lambda c: f"{self._operation_condition():+d}")
        t.add(":AER", query=lambda c: "+1" if self._armed() else "+0")

        t.add(":TIMebase:MODE", set=lambda c: c.choice(("MAIN",)), query=lambda c: "MAIN")
        t.add(":TIMebase[:MAIN]:SCALe", set=self._set_time_scale, query=lambda c: _nr3(self.time_per_div_s))
        t.add(":TIMebase[:MAIN]:RANGe", set=self._set_time_range,
              query=lambda c: _nr3(self.time_per_div_s * self.ratings.horizontal_divisions))
        t.add(":TIMebase[:MAIN]:POSition", set=self._set_time_position, query=lambda c: _nr3(self.time_position_s))
        t.add(":TIMebase:DELay", set=self._set_time_position, query=lambda c: _nr3(self.time_position_s))
        t.add(":TIMebase:REFerence", set=self._set_time_reference, query=lambda c: self.time_reference[:4])

        t.add(":ACQuire:TYPE", set=self._set_acquire_type, query=lambda c: self.acquire_type[:4])
        t.add(":ACQuire:MODE", set=lambda c: c.choice(("RTIMe",)), query=lambda c: "RTIM")
        t.add(":ACQuire:SRATe", query=lambda c: _nr3(self._record_plan()[0]))
        t.add(":ACQuire:POINts", query=lambda c: f"{self._acquired_points():+d}")
        t.add(":ACQuire:COUNt", set=lambda c: c.integer(low=1, high=65536), query=lambda c: "+1")

        t.add(":CHANnel<n>:SCALe", set=self._set_channel_scale, query=lambda c: _nr3(self._channel(c).scale_per_div))
        t.add(":CHANnel<n>:RANGe", set=self._set_channel_range,
              query=lambda c: _nr3(self._channel(c).scale_per_div * self.ratings.vertical_divisions))
        t.add(":CHANnel<n>:OFFSet", set=self._set_channel_offset, query=lambda c: _nr3(self._channel(c).offset))
        t.add(":CHANnel<n>:PROBe", set=self._set_probe, query=lambda c: _nr3(self._channel(c).probe_ratio))
        t.add(":CHANnel<n>:DISPlay", set=lambda c: setattr(self._channel(c), "display_on", c.boolean()),
              query=lambda c: "1" if self._channel(c).display_on else "0")
        t.add(":CHANnel<n>:COUPling", set=lambda c: setattr(self._channel(c), "coupling", c.choice(("AC", "DC"))),
              query=lambda c: self._channel(c).coupling)
        t.add(":CHANnel<n>:IMPedance", set=lambda c: c.choice(("ONEMeg", "FIFTy")), query=lambda c: "ONEM")

        t.add(":TRIGger:MODE", set=lambda c: setattr(self.trigger, "mode", c.choice(("EDGE",))),
              query=lambda c: self.trigger.mode)
        t.add(":TRIGger:SWEep", set=lambda c: setattr(self.trigger, "sweep", c.choice(("AUTO", "NORMal"))),
              query=lambda c: self.trigger.sweep[:4])
        t.add(":TRIGger[:EDGE]:SOURce", set=self._set_trigger_source, query=lambda c: self._trigger_source_text())
        t.add(":TRIGger[:EDGE]:LEVel", set=self._set_trigger_level, query=lambda c: _nr3(self._trigger_level()))
        t.add(":TRIGger[:EDGE]:SLOPe", set=self._set_trigger_slope, query=lambda c: self.trigger.slope[:3])
        t.add(":TRIGger:FORCe", set=lambda c: self._force_trigger())

        t.add(":WAVeform:SOURce", set=self._set_waveform_source, query=lambda c: f"CHAN{self.output.source}")
        t.add(":WAVeform:FORMat", set=self._set_waveform_format, query=lambda c: self.output.format[:4])
        t.add(":WAVeform:BYTeorder", set=lambda c: setattr(self.output, "byte_order",
                                                            c.choice(("LSBFirst", "MSBFirst"))),
              query=lambda c: self.output.byte_order[:3])
        t.add(":WAVeform:UNSigned", set=lambda c: setattr(self.output, "unsigned", c.boolean()),
              query=lambda c: "1" if self.output.unsigned else "0")
        t.add(":WAVeform:POINts:MODE", set=lambda c: setattr(self.output, "points_mode",
                                                              c.choice(("NORMal", "MAXimum", "RAW"))),
              query=lambda c: self.output.points_mode[:4] if self.output.points_mode != "NORMAL" else "NORM")
        t.add(":WAVeform:POINts", set=self._set_waveform_points, query=lambda c: f"{self._transfer_plan()[0]:+d}")
        t.add(":WAVeform:PREamble", query=self._preamble)
        t.add(":WAVeform:XINCrement", query=lambda c: self._preamble_values()[4])
        t.add(":WAVeform:XORigin", query=lambda c: self._preamble_values()[5])
        t.add(":WAVeform:YINCrement", query=lambda c: self._preamble_values()[7])
        t.add(":WAVeform:YORigin", query=lambda c: self._preamble_values()[8])
        t.add(":WAVeform:YREFerence", query=lambda c: self._preamble_values()[9])
        t.add(":WAVeform:DATA", query=self._waveform_data)

    # --- vertical ------------------------------------------------------------------------
    def _channel(self, c: Call) -> ScopeChannel:
        return self.channels[c.suffix("n", low=1, high=self.ratings.channels)]

    def _set_channel_scale(self, c: Call) -> None:
        channel = self._channel(c)
        r = self.ratings
        channel.scale_per_div = c.number(unit="V", low=r.volts_per_div_min * channel.probe_ratio,
                                         high=r.volts_per_div_max * channel.probe_ratio)

    def _set_channel_range(self, c: Call) -> None:
        channel = self._channel(c)
        r = self.ratings
        full_scale = c.number(unit="V", low=r.volts_per_div_min * channel.probe_ratio * r.vertical_divisions,
                              high=r.volts_per_div_max * channel.probe_ratio * r.vertical_divisions)
        channel.scale_per_div = full_scale / r.vertical_divisions

    def _set_channel_offset(self, c: Call) -> None:
        channel = self._channel(c)
        limit = self.ratings.offset_max_v * channel.probe_ratio
        channel.offset = c.number(unit="V", low=-limit, high=limit)

    def _set_probe(self, c: Call) -> None:
        # the guide: changing the probe ratio keeps the screen, i.e. scale and offset follow
        channel = self._channel(c)
        ratio = c.number(low=0.001, high=10000.0)
        factor = ratio / channel.probe_ratio
        channel.probe_ratio = ratio
        channel.scale_per_div *= factor
        channel.offset *= factor
        channel.trigger_level *= factor

    # --- horizontal ----------------------------------------------------------------------
    def _set_time_scale(self, c: Call) -> None:
        self.time_per_div_s = c.number(unit="S", low=self.ratings.time_per_div_min_s,
                                       high=self.ratings.time_per_div_max_s)
        self._restart_if_running()

    def _set_time_range(self, c: Call) -> None:
        divisions = self.ratings.horizontal_divisions
        self.time_per_div_s = c.number(unit="S", low=self.ratings.time_per_div_min_s * divisions,
                                       high=self.ratings.time_per_div_max_s * divisions) / divisions
        self._restart_if_running()

    def _set_time_position(self, c: Call) -> None:
        self.time_position_s = c.number(unit="S", low=-500.0, high=500.0)
        self._restart_if_running()

    def _set_time_reference(self, c: Call) -> None:
        self.time_reference = c.choice(("LEFT", "CENTer", "RIGHt"))
        self._restart_if_running()

    def _restart_if_running(self) -> None:
        """A running scope restarts its acquisition on the new timebase."""
        if self.running:
            self._run(single=self.single_shot)

    def _set_acquire_type(self, c: Call) -> None:
        acquire_type = c.choice(("NORMal", "HRESolution", "PEAK", "AVERage"))
        if acquire_type in ("PEAK", "AVERAGE"):
            # the plant has no noise to average and no detail between samples to peak-detect
            raise settings_conflict(f"acquisition type {acquire_type} is not simulated")
        self.acquire_type = acquire_type

    def _record_plan(self) -> tuple[float, int, int]:
        """(sample rate, record points, pre-trigger points) for the present timebase."""
        r = self.ratings
        window_s = self.time_per_div_s * r.horizontal_divisions
        fastest = min(r.sample_rate_max_hz, r.memory_points / window_s)
        rate = _rate_at_most(fastest)
        points = max(2, int(round(window_s * rate)))
        # screen left edge relative to the trigger: the reference sits at position_s
        left_s = self.time_position_s - REFERENCE_FRACTION[self.time_reference] * window_s
        pretrigger_points = int(round(-left_s * rate))
        return rate, points, pretrigger_points

    # --- trigger -------------------------------------------------------------------------
    def _parse_source(self, text: str) -> str:
        """`CHANnel<n>` | `EXTernal` | `LINE` → CHANNEL<n> | EXTERNAL | LINE."""
        word = text.strip().upper()
        if word in ("EXT", "EXTERNAL"):
            return "EXTERNAL"
        if word == "LINE":
            return "LINE"
        number = _channel_number(word)
        if number is None or not 1 <= number <= self.ratings.channels:
            raise illegal_parameter(text)
        return f"CHANNEL{number}"

    def _set_trigger_source(self, c: Call) -> None:
        self.trigger.source = self._parse_source(c.text())

    def _trigger_source_text(self) -> str:
        if self.trigger.source.startswith("CHANNEL"):
            return "CHAN" + self.trigger.source[7:]
        return self.trigger.source[:3] if self.trigger.source == "EXTERNAL" else self.trigger.source

    def _set_trigger_level(self, c: Call) -> None:
        c.expect_count(1, 2)
        # `:TRIGger:EDGE:LEVel <level>[,<source>]`: without a source, the trigger source's level
        source = self._parse_source(c.args[1]) if len(c.args) == 2 else self.trigger.source
        if source == "EXTERNAL":
            limit = self.ratings.external_level_max_v
            self.trigger.external_level_v = c.number(0, unit="V", low=-limit, high=limit)
        elif source.startswith("CHANNEL"):
            channel = self.channels[int(source[7:])]
            limit = 6 * channel.scale_per_div + abs(channel.offset)  # inside the displayed range
            channel.trigger_level = c.number(0, unit="V", low=-limit, high=limit)
        else:
            raise illegal_parameter(f"trigger level source {source}")

    def _trigger_level(self) -> float:
        if self.trigger.source == "EXTERNAL":
            return self.trigger.external_level_v
        if self.trigger.source.startswith("CHANNEL"):
            return self.channels[int(self.trigger.source[7:])].trigger_level
        return 0.0

    def _set_trigger_slope(self, c: Call) -> None:
        self.trigger.slope = c.choice(("POSitive", "NEGative", "EITHer", "ALTernate"))
        if self.trigger.slope == "ALTERNATE":
            raise settings_conflict("alternate slope is not simulated")

    def external_trigger_input(self, t_s: float) -> None:
        """The EXTernal trigger input saw a rising edge (the grid simulator's trigger out)."""
        acquisition = self.acquisition
        if acquisition is None or acquisition.trigger_t_s is not None or self.trigger.source != "EXTERNAL":
            return
        if self.trigger.slope == "NEGATIVE":
            t_s += 10e-6  # the falling edge of the source's ~10 µs pulse
        if self.trigger.external_level_v > 5.0:
            return  # a TTL pulse never reaches the level
        if t_s >= acquisition.ready_t_s - 0.5 * self.plant.dt_s:  # triggers before pre-trigger fill are ignored
            acquisition.trigger_t_s = t_s
            self.trigger_event = True
        self._safe_update()

    def _force_trigger(self) -> None:
        acquisition = self.acquisition
        if acquisition is not None and acquisition.trigger_t_s is None:
            acquisition.trigger_t_s = max(self.plant.t_s, acquisition.ready_t_s)
            self.trigger_event = True

    # --- run control ---------------------------------------------------------------------
    def _digitize(self, c: Call) -> None:
        # `:DIGitize CHANnel1,CHANnel3` acquires those channels (and turns the others off)
        sources = [self._parse_source(arg) for arg in c.args]
        chosen = {int(source[7:]) for source in sources if source.startswith("CHANNEL")}
        for number, channel in self.channels.items():
            if chosen:
                channel.display_on = number in chosen
        self._run(single=True)

    def _run(self, *, single: bool) -> None:
        rate, points, pretrigger_points = self._record_plan()
        record_s = points / rate
        if record_s > self.ring_s * 0.9:
            raise settings_conflict(f"record of {record_s:g} s exceeds the acquisition memory span "
                                    f"of {self.ring_s * 0.9:g} s")
        now_s = self.plant.t_s
        pretrigger_points = min(max(pretrigger_points, 0), points - 1)
        ready_t_s = now_s + pretrigger_points / rate
        self.acquisition = Acquisition(armed_t_s=now_s, ready_t_s=ready_t_s, record_length=points,
                                       sample_rate_hz=rate, pretrigger_points=pretrigger_points,
                                       scan_from_t_s=ready_t_s)
        self.single_shot = single
        self.running = True
        self.trigger_event = False
        self._generation += 1
        generation = self._generation
        self.plant.schedule(now_s + SCAN_INTERVAL_S, lambda _plant: self._poll(generation))

    def _stop(self) -> None:
        self.running = False
        self.acquisition = None
        self._generation += 1

    def _armed(self) -> bool:
        self._update()
        acquisition = self.acquisition
        return (acquisition is not None and acquisition.trigger_t_s is None
                and self.plant.t_s >= acquisition.ready_t_s - 0.5 * self.plant.dt_s)

    def _operation_condition(self) -> int:
        running_bit, wait_trig_bit = 8, 32
        value = 0
        self._update()
        if self.running:
            value |= running_bit
        if self._armed():
            value |= wait_trig_bit
        return value

    def _read_trigger_event_register(self, c: Call) -> str:
        self._update()
        value, self.trigger_event = self.trigger_event, False
        return "+1" if value else "+0"

    def _acquired_points(self) -> int:
        self._update()
        return self.capture.record_length if self.capture else self._record_plan()[1]

    def _poll(self, generation: int) -> None:
        if generation != self._generation or not self.running:
            return
        if not self._safe_update():
            return
        if self.running and generation == self._generation:
            self.plant.schedule(self.plant.t_s + SCAN_INTERVAL_S, lambda _plant: self._poll(generation))

    def _safe_update(self) -> bool:
        try:
            self._update()
            return True
        except Exception:  # a failure must never break the plant's step loop
            log.exception("acquisition failed")
            self.push_error(ScpiError(-300, "Device-specific error"))
            self.running, self.acquisition = False, None
            return False

    def _update(self) -> None:
        acquisition = self.acquisition
        if acquisition is None:
            return
        now_s = self.plant.t_s
        if acquisition.trigger_t_s is None:
            source = self.trigger.source
            if source.startswith("CHANNEL"):
                channel_number = int(source[7:])
                wiring = self.wiring.get(channel_number)
                if wiring is not None:
                    channel = self.channels[channel_number]
                    level_at_input_v = channel.trigger_level / channel.probe_ratio
                    slope = {"POSITIVE": "RISE", "NEGATIVE": "FALL", "EITHER": "EITHER"}[self.trigger.slope]
                    scan_for_edge(self.plant, acquisition, wiring, level_at_input_v, slope, now_s)
                    if acquisition.trigger_t_s is not None:
                        self.trigger_event = True
            if acquisition.trigger_t_s is None and self.trigger.sweep == "AUTO":
                auto_t_s = acquisition.ready_t_s + max(0.1, acquisition.record_s)
                if now_s >= auto_t_s:
                    acquisition.trigger_t_s = auto_t_s
        end_t_s = acquisition.end_t_s
        if end_t_s is not None and now_s - self.plant.dt_s >= end_t_s:
            self._complete(acquisition)

    def _complete(self, acquisition: Acquisition) -> None:
        setups = {ch: ChannelSetup() for ch in self.wiring}  # record_capture keeps a copy of setups
        self.capture = record_capture(self.plant, acquisition, self.wiring, setups)
        self.capture_channels = {ch: ScopeChannel(**vars(setup)) for ch, setup in self.channels.items()}
        self._capture_serial += 1
        if self.single_shot:
            self.running = False
            self.acquisition = None
        else:
            self._run(single=False)

    # --- waveform transfer -----------------------------------------------------------------
    def _set_waveform_source(self, c: Call) -> None:
        source = self._parse_source(c.text())
        if not source.startswith("CHANNEL"):
            raise illegal_parameter(c.text())
        self.output.source = int(source[7:])

    def _set_waveform_format(self, c: Call) -> None:
        self.output.format = c.choice(("WORD", "BYTE", "ASCii"))

    def _set_waveform_points(self, c: Call) -> None:
        self.output.points_requested = c.integer(low=100, high=8_000_000)

    def _transfer_plan(self) -> tuple[int, int]:
        """(points transferred, decimation step) of the present record and settings."""
        record_points = self.capture.record_length if self.capture else self._record_plan()[1]
        limit = record_points if self.output.points_mode in ("RAW", "MAXIMUM") else \
            min(record_points, self.ratings.normal_points_max)
        wanted = min(self.output.points_requested, limit)
        step = max(1, math.ceil(record_points / wanted))
        return len(range(0, record_points, step)), step

    def _vsteps(self) -> int:
        return 65536 if self.output.format == "WORD" else 256

    def _code_scale(self, channel: ScopeChannel) -> tuple[float, float, int]:
        """(yincrement, yorigin, yreference) of the present format for a channel setup."""
        vsteps = self._vsteps()
        y_increment = channel.scale_per_div * 10.0 / vsteps
        y_reference = vsteps // 2 if self.output.unsigned else 0
        return y_increment, channel.offset, y_reference

    def _preamble_values(self) -> list[str]:
        capture = self.capture
        points, step = self._transfer_plan()
        source = self.output.source
        channel = self.capture_channels[source] if capture else self.channels[source]
        if capture:
            x_increment = step / capture.sample_rate_hz
            x_origin = capture.first_sample_t_s - capture.trigger_t_s
        else:
            rate, _, pretrigger_points = self._record_plan()
            x_increment, x_origin = step / rate, -pretrigger_points / rate
        y_increment, y_origin, y_reference = self._code_scale(channel)
        if self.output.format == "ASCII":
            y_increment, y_origin, y_reference = 0.0, 0.0, 0  # values arrive in volts
        return [f"{PREAMBLE_FORMAT[self.output.format]:+d}", f"{PREAMBLE_TYPE[self.acquire_type]:+d}",
                f"{points:+d}", "+1", _nr3(x_increment), _nr3(x_origin), "+0",
                _nr3(y_increment), _nr3(y_origin), f"{y_reference:+d}"]

    def _preamble(self, c: Call) -> str:
        self._update()
        return ",".join(self._preamble_values())

    def _waveform_data(self, c: Call) -> bytes | bytearray:
        self._update()
        capture = self.capture
        if capture is None:
            raise ScpiError(-222, "Data out of range", "no acquired record")
        source = self.output.source
        if source not in capture.input_v:
            raise ScpiError(-222, "Data out of range")
        channel = self.capture_channels[source]
        points, step = self._transfer_plan()
        key = (self._capture_serial, source, points, step, self.output.format, self.output.byte_order,
               self.output.unsigned)
        block = self.output.cache.get(key)
        if block is not None:
            return block
        clock = SampleClock(plant_t0_s=capture.plant_t0_s, plant_dt_s=capture.plant_dt_s,
                            first_point_t_s=capture.first_sample_t_s, point_interval_s=step / capture.sample_rate_hz)
        # the record holds volts at the BNC; the scope shows probe-tip units
        tip_units = capture.input_v[source] * channel.probe_ratio
        if self.output.format == "ASCII":
            values = _interpolate(tip_units, clock, points)
            payload = ",".join(f"{v:+.6E}" for v in values).encode()
            length = str(len(payload)).encode()
            block = bytearray(b"#" + str(len(length)).encode() + length + payload)
        else:
            y_increment, y_origin, y_reference = self._code_scale(channel)
            vsteps = self._vsteps()
            low = 0 if self.output.unsigned else -(vsteps // 2)
            scale = CodeScale(codes_per_volt=1.0 / y_increment, code_at_zero_volts=y_reference - y_origin / y_increment,
                              code_min=low, code_max=low + vsteps - 1)
            width = 2 if self.output.format == "WORD" else 1
            order = "<" if self.output.byte_order == "LSBFIRST" else ">"
            dtype = np.dtype(f"{order}{'u' if self.output.unsigned else 'i'}{width}")
            block = encode_block(tip_units, clock, points, scale, dtype)
        self.output.cache.put(key, block)
        return block


def _interpolate(samples: np.ndarray, clock: SampleClock, points: int) -> np.ndarray:
    times = clock.first_point_t_s + np.arange(points) * clock.point_interval_s
    plant_times = clock.plant_t0_s + np.arange(samples.size) * clock.plant_dt_s
    return np.interp(times, plant_times, samples)


def _channel_number(word: str) -> int | None:
    for prefix in ("CHANNEL", "CHAN"):
        if word.startswith(prefix) and word[len(prefix):].isdigit():
            return int(word[len(prefix):])
    return None


def _rate_at_most(limit_hz: float) -> float:
    """The fastest 1-2-2.5-5 sample rate not above the limit."""
    exponent = math.floor(math.log10(limit_hz))
    for mantissa in (5.0, 2.5, 2.0, 1.0):
        rate = mantissa * 10.0**exponent
        if rate <= limit_hz * (1 + 1e-12):
            return rate
    return 5.0 * 10.0 ** (exponent - 1)


def _nr3(value: float) -> str:
    return f"{value:+.8E}"  # InfiniiVision answers floats as e.g. +2.00000000E+06
