"""Keysight (Agilent) InfiniiVision 3000T / 4000X oscilloscopes (DSOX/MSOX, 2 or 4 channels).

SCPI from the InfiniiVision 3000T X-Series / 4000 X-Series Programmer's Guides (the shape of a
waveform download also as in pymeasure's ``keysightDSOX1102G``):

* No sample-rate or record-length command: the scope derives both from the timebase. The
  screen shows 10 horizontal divisions, so a record of ``n`` samples at ``fs`` needs
  ``:TIMebase:SCALe = n / fs / 10``; ``:ACQuire:SRATe?`` then tells the rate actually chosen,
  and ``:WAVeform:POINts:MODE RAW`` with ``:WAVeform:POINts n`` asks for the acquisition
  record itself (not the 62 500-point screen record) once the scope is stopped.
* Pre-trigger comes from where the trigger sits on screen: with ``:TIMebase:REFerence LEFT``
  the left screen edge is the delay reference, and ``:TIMebase:POSition`` is the time from
  the trigger to that reference, so a pre-trigger fraction f of a window T is POSition = −f·T.
* Single shot: ``:SINGle`` arms; the Run bit (bit 3, value 8) of ``:OPERegister:CONDition?``
  stays set while the acquisition is armed/running and clears when the single acquisition is
  complete. ``:TER?`` (trigger event register) reads 1 once after a trigger. ``:DIGitize``
  would block the interface until the acquisition is done, which the lockstep virtual bench
  (whose time advances only between our commands) cannot allow, so it is offered but not used
  by the capture path.
* Waveform: ``:WAVeform:FORMat WORD`` with ``:WAVeform:BYTeorder LSBFirst`` and
  ``:WAVeform:UNSigned OFF`` gives signed little-endian 16-bit codes; ``:WAVeform:PREamble?``
  answers ten comma-separated fields — format (0 BYTE, 1 WORD, 4 ASCii), type (0 NORMal,
  1 PEAK, 2 AVERage, 3 HRESolution), points, count, xincrement, xorigin, xreference,
  yincrement, yorigin, yreference — and

      V = (code − yreference) · yincrement + yorigin      t = (i − xreference) · xincrement + xorigin

  so t = 0 is the trigger. ``:WAVeform:DATA?`` is a definite-length block ``#8<len><data>\\n``.
* Errors: ``:SYSTem:ERRor?`` → ``+0,"No error"`` (standard SCPI, the base class drains it).
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any


from instruments.oscilloscope import Oscilloscope, RawWaveform, ReadTiming
from instruments.scpi import ScpiChannel, control, measurement

log = logging.getLogger(__name__)

_ON_OFF = {True: "ON", False: "OFF"}
#: :OPERegister:CONDition? bit 3: the oscilloscope is running (armed or acquiring)
_RUN_BIT = 1 << 3
#: the screen is 10 divisions wide
_DIVISIONS = 10


@dataclass(frozen=True)
class InfiniiVisionPreamble:
    """The ten fields of ``:WAVeform:PREamble?``, in the guide's order and units."""

    format: int              # 0 BYTE, 1 WORD, 4 ASCii
    acquisition_type: int    # 0 NORMal, 1 PEAK, 2 AVERage, 3 HRESolution
    points: int
    count: int               # averages (1 unless AVERage)
    x_increment_s: float
    x_origin_s: float        # time of point x_reference relative to the trigger
    x_reference: float
    y_increment_v: float     # volts per code
    y_origin_v: float
    y_reference: float       # code at y_origin

    FORMAT_WORD = 1

    @classmethod
    def parse(cls, reply: str) -> "InfiniiVisionPreamble":
        fields = [f.strip() for f in reply.strip().split(",")]
        if len(fields) != 10:
            raise ValueError(f"{len(fields)} fields instead of 10")
        numbers = [float(f) for f in fields]          # ValueError names the bad field
        for index in (0, 1, 2, 3):
            if not numbers[index].is_integer():
                raise ValueError(f"field {index + 1} ({fields[index]!r}) is not an integer")
        return cls(int(numbers[0]), int(numbers[1]), int(numbers[2]), int(numbers[3]),
                   *numbers[4:])

    def problems(self, expected_format: int) -> list[str]:
        """Everything that makes the record impossible to scale correctly."""
        found: list[str] = []
        if self.format != expected_format:
            found.append(f"format = {self.format}, but {expected_format} was requested")
        if self.points < 1:
            found.append(f"points = {self.points} is not a positive point count")
        values = (self.x_increment_s, self.x_origin_s, self.x_reference,
                  self.y_increment_v, self.y_origin_v, self.y_reference)
        if not all(math.isfinite(v) for v in values):
            found.append("a scale or origin is not a finite number")
        elif not self.x_increment_s > 0:
            found.append(f"xincrement = {self.x_increment_s!r} s is not a positive sample interval")
        elif self.y_increment_v == 0:
            found.append("yincrement = 0 would make every sample the same voltage")
        return found


class InfiniiVisionChannel(ScpiChannel):
    """One analog input, ``:CHANnel<n>``."""

    scale_v_per_div = control(
        ":CHANnel{ch}:SCALe?", ":CHANnel{ch}:SCALe {value}",
        "Vertical scale at the probe tip (the probe ratio is already applied by the scope).",
        valid_range=(1e-4, 1e5), units="V/div")
    offset_v = control(
        ":CHANnel{ch}:OFFSet?", ":CHANnel{ch}:OFFSet {value}",
        "Voltage at the centre of the screen.", valid_range=(-1e6, 1e6), units="V")
    probe_ratio = control(
        ":CHANnel{ch}:PROBe?", ":CHANnel{ch}:PROBe {value}",
        "Probe attenuation the scope multiplies by (0.001 … 10000 per the guide).",
        valid_range=(0.001, 10_000.0))
    displayed = control(
        ":CHANnel{ch}:DISPlay?", ":CHANnel{ch}:DISPlay {value}",
        "Channel on (only displayed channels are acquired).", choices=_ON_OFF)


class KeysightInfiniiVision(Oscilloscope):
    """DSOX/MSOX 3000T and 4000X; the channel count is the model's last digit (DSOX3034T → 4)."""

    MODEL_PATTERNS = ("DSOX3*", "MSOX3*", "DSOX4*", "MSOX4*",
                      "DSO-X 3*", "MSO-X 3*", "DSO-X 4*", "MSO-X 4*")
    MANUFACTURERS = ("Keysight", "Agilent")

    # -- timebase and acquisition ----------------------------------------------------------
    timebase_scale_s_per_div = control(
        ":TIMebase:SCALe?", ":TIMebase:SCALe {value}", "Horizontal scale (10 divisions on screen).",
        valid_range=(1e-9, 50.0), units="s/div")
    timebase_position_s = control(
        ":TIMebase:POSition?", ":TIMebase:POSition {value}",
        "Time from the trigger to the delay reference point (negative: reference before it).",
        valid_range=(-500.0, 500.0), units="s")
    timebase_reference = control(
        ":TIMebase:REFerence?", ":TIMebase:REFerence {value}",
        "Where on screen the delay reference point sits.",
        choices={"left": "LEFT", "center": "CENTer", "right": "RIGHt"})
    acquisition_type = control(
        ":ACQuire:TYPE?", ":ACQuire:TYPE {value}",
        "NORMal keeps one sample per point (no averaging or peak detection to distort transients).",
        choices={"normal": "NORMal", "average": "AVERage", "high_resolution": "HRESolution",
                 "peak": "PEAK"})
    sample_rate_hz = measurement(":ACQuire:SRATe?", "Sample rate the scope chose.", units="Sa/s")
    acquired_points = measurement(":ACQuire:POINts?", "Points in the acquisition record.")

    # -- trigger -----------------------------------------------------------------------------
    trigger_mode = control(":TRIGger:MODE?", ":TRIGger:MODE {value}", "Trigger type.",
                           choices={"edge": "EDGE"})
    trigger_sweep = control(
        ":TRIGger:SWEep?", ":TRIGger:SWEep {value}",
        "NORMal waits for a real trigger; AUTO would fire by itself after a timeout.",
        choices={"normal": "NORMal", "auto": "AUTO"})
    trigger_source = control(
        ":TRIGger:EDGE:SOURce?", ":TRIGger:EDGE:SOURce {value}", "Edge trigger source.",
        choices={"external": "EXTernal", **{f"ch{n}": f"CHANnel{n}" for n in range(1, 5)}})
    trigger_level_v = control(
        ":TRIGger:EDGE:LEVel?", ":TRIGger:EDGE:LEVel {value}",
        "Edge trigger level of the current source.", valid_range=(-1e6, 1e6), units="V")
    trigger_slope = control(
        ":TRIGger:EDGE:SLOPe?", ":TRIGger:EDGE:SLOPe {value}", "Edge trigger slope.",
        choices={"rise": "POSitive", "fall": "NEGative"})

    # -- waveform transfer -------------------------------------------------------------------
    waveform_source = control(
        ":WAVeform:SOURce?", ":WAVeform:SOURce {value}", "Waveform that :WAVeform:DATA? returns.",
        choices={f"ch{n}": f"CHANnel{n}" for n in range(1, 5)})
    waveform_format = control(
        ":WAVeform:FORMat?", ":WAVeform:FORMat {value}", "Encoding of :WAVeform:DATA?.",
        choices={"word": "WORD", "byte": "BYTE", "ascii": "ASCii"})
    waveform_byte_order = control(
        ":WAVeform:BYTeorder?", ":WAVeform:BYTeorder {value}", "Byte order of WORD data.",
        choices={"lsb_first": "LSBFirst", "msb_first": "MSBFirst"})
    waveform_unsigned = control(
        ":WAVeform:UNSigned?", ":WAVeform:UNSigned {value}", "Unsigned (ON) or signed (OFF) codes.",
        choices=_ON_OFF)
    waveform_points_mode = control(
        ":WAVeform:POINts:MODE?", ":WAVeform:POINts:MODE {value}",
        "RAW: the acquisition record itself (scope stopped); NORMal: the screen record.",
        choices={"normal": "NORMal", "maximum": "MAXimum", "raw": "RAW"})
    waveform_points = control(
        ":WAVeform:POINts?", ":WAVeform:POINts {value}", "Points :WAVeform:DATA? returns.",
        valid_range=(100, 1_000_000_000), cast=int)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel_count = int(self.options.get("channels", 4))
        self.channels: dict[int, InfiniiVisionChannel] = {}
        self._make_channels()
        self.last_read_timing: ReadTiming | None = None
        #: the record length asked for in configure_acquisition (the transfer asks for it)
        self.requested_record_length: int | None = None

    def _make_channels(self) -> None:
        self.channels = {n: InfiniiVisionChannel(self, n) for n in range(1, self.channel_count + 1)}

    def identify(self):  # type: ignore[override]
        identity = super().identify()
        if "channels" not in self.options:
            # DSOX3034T → 4 channels, DSOX3012T → 2, "MSO-X 4054A" → 4
            match = re.search(r"\d{3}(\d)[A-Z]*$", identity.model.replace(" ", "").upper())
            if match and match.group(1) in "24":
                self.channel_count = int(match.group(1))
                self._make_channels()
        return identity

    # -- role methods ---------------------------------------------------------------------
    def configure_channel(self, channel: int, volts_per_div: float, offset_v: float = 0.0,
                          probe_ratio: float = 1.0) -> None:
        """Scale and offset at the scope input; ``probe_ratio`` stays 1 unless the bench
        wants the scope itself to scale (calibration applies bench-file probe ratios)."""
        ch = self._channel(channel)
        ch.probe_ratio = probe_ratio           # first: changing it rescales scale and offset
        ch.scale_v_per_div = volts_per_div
        ch.offset_v = offset_v
        ch.displayed = True
        self.check_errors(f"configuring CHANnel{channel}")

    def configure_acquisition(self, sample_rate_hz: float, record_length: int,
                              pretrigger_fraction: float) -> None:
        self.check_value("pretrigger_fraction", float(pretrigger_fraction), valid_range=(0.0, 1.0))
        if not sample_rate_hz > 0 or not math.isfinite(float(sample_rate_hz)):
            raise self.limit_error(f"sample_rate_hz = {sample_rate_hz!r} is not a positive rate",
                                   quantity="sample_rate_hz")
        self.check_value("record_length", float(record_length),
                         valid_range=self.range_of("waveform_points"))
        window_s = int(record_length) / float(sample_rate_hz)
        scale = window_s / _DIVISIONS
        self.check_value("timebase_scale_s_per_div", scale,
                         valid_range=self.range_of("timebase_scale_s_per_div"), units="s/div")
        self.acquisition_type = "normal"
        self.timebase_reference = "left"
        self.timebase_scale_s_per_div = scale
        self.timebase_position_s = -pretrigger_fraction * window_s
        self.requested_record_length = int(record_length)
        self.check_errors("configuring the acquisition")
        chosen_hz = self.sample_rate_hz
        if chosen_hz > 0 and abs(chosen_hz - sample_rate_hz) > 0.01 * sample_rate_hz:
            # the scope picks its rate from the timebase and memory; a different one is a fact
            # to report, not an error (the record carries its own xincrement)
            log.warning("%s: asked for %g Sa/s, the scope acquires at %g Sa/s",
                        self.role, sample_rate_hz, chosen_hz)

    def trigger_external(self, level_v: float = 1.0, slope: str = "rise") -> None:
        self._edge_trigger("external", level_v, slope)
        self.check_errors("setting the EXTernal trigger")

    def trigger_edge(self, channel: int, level_v: float, slope: str) -> None:
        self._channel(channel)
        self._edge_trigger(f"ch{channel}", level_v, slope)
        self.check_errors(f"setting the CHANnel{channel} edge trigger")

    def _edge_trigger(self, source: str, level_v: float, slope: str) -> None:
        slope_key = self._slope(slope)
        self.check_value("level_v", float(level_v), valid_range=self.range_of("trigger_level_v"),
                         units="V")
        self.trigger_mode = "edge"
        self.trigger_source = source          # the level applies to the selected source
        self.trigger_level_v = level_v
        self.trigger_slope = slope_key
        self.trigger_sweep = "normal"

    def arm_single(self) -> None:
        self.query(":TER?")                   # reading clears a stale trigger event
        self.write(":SINGle")

    def digitize(self, channel: int) -> None:
        """``:DIGitize CHANnel<n>``: acquire and stop (blocks the scope's parser until done)."""
        self._channel(channel)
        self.write(f":DIGitize CHANnel{channel}")

    def has_triggered(self) -> bool:
        """``:TER?`` — 1 once after a trigger event (reading clears it)."""
        return self.query_int(":TER?") == 1

    def is_acquisition_complete(self) -> bool:
        return not self.query_int(":OPERegister:CONDition?") & _RUN_BIT

    def read_preamble(self) -> InfiniiVisionPreamble:
        reply = self.query(":WAVeform:PREamble?")
        try:
            return InfiniiVisionPreamble.parse(reply)
        except ValueError as exc:
            raise self.error(f"':WAVeform:PREamble?' answered {reply!r}: {exc}") from None

    def read_waveform(self, channel: int) -> RawWaveform:
        started = time.perf_counter()
        self._channel(channel)
        self.waveform_source = f"ch{channel}"
        self.waveform_format = "word"
        self.waveform_byte_order = "lsb_first"
        self.waveform_unsigned = False
        self.waveform_points_mode = "raw"
        wanted = self.requested_record_length or int(self.acquired_points)
        self.waveform_points = max(wanted, int(self.range_of("waveform_points")[0]))
        preamble = self.read_preamble()
        problems = preamble.problems(InfiniiVisionPreamble.FORMAT_WORD)
        if problems:
            raise self.error(f"CHANnel{channel} preamble is impossible: " + "; ".join(problems))
        n_points = preamble.points
        volts = self._download_word_record(
            ":WAVeform:DATA?", n_points, code_offset=preamble.y_reference, volts_per_code=preamble.y_increment_v,
            volts_offset=preamble.y_origin_v, started_s=started,
            expectation=f"(preamble: {n_points} points × 2 bytes)")
        trigger_index = int(round(preamble.x_reference - preamble.x_origin_s / preamble.x_increment_s))
        return RawWaveform.uniform(volts, interval_s=preamble.x_increment_s, reference_index=preamble.x_reference,
                                   reference_time_s=preamble.x_origin_s, trigger_index=trigger_index)

    # -- helpers --------------------------------------------------------------------------
    def _channel(self, channel: int) -> InfiniiVisionChannel:
        try:
            return self.channels[int(channel)]
        except (KeyError, ValueError, TypeError):
            raise self.limit_error(f"channel {channel!r} does not exist on this "
                                   f"{self.channel_count}-channel scope", quantity="channel") from None

    def _slope(self, slope: str) -> str:
        try:
            return {"rise": "rise", "rising": "rise", "positive": "rise",
                    "fall": "fall", "falling": "fall", "negative": "fall"}[slope.lower()]
        except (KeyError, AttributeError):
            raise self.limit_error(f"slope {slope!r} is not 'rise' or 'fall'", quantity="slope") from None

    def safe_state(self) -> bool:
        """Stop acquiring; never raises."""
        return self._send_safely([":STOP"])
