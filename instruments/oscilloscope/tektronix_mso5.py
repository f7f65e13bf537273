"""Tektronix 4/5/6 Series MSO (MSO44 … MSO58, MSO64 …) for single-shot transient captures.

SCPI from the 4/5/6 Series MSO programmer manual. Waveforms come back as ``CURVe?`` in
signed 16-bit little-endian codes (``DATa:ENCdg SRIbinary``, ``WFMOutpre:BYT_Nr 2``) and are
scaled with the waveform preamble:

    V = (code − YOFf) · YMUlt + YZEro          t = XZEro + (i − PT_Off) · XINcr

so t = 0 is the trigger. These scopes have no SCPI ``SYST:ERR?``: errors are flagged in the
event status register (``*ESR?``) and read from the event queue (``ALLEv?``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any


from instruments.oscilloscope import Oscilloscope, RawWaveform, ReadTiming
from instruments.scpi import ScpiChannel, control, format_number, measurement

log = logging.getLogger(__name__)

_ON_OFF = {True: "ON", False: "OFF"}
#: *ESR? bits that mean an error: command (32), execution (16), device (8), query (4)
_ESR_ERROR_BITS = 0b0011_1100
_EVENT = re.compile(r'([+-]?\d+)\s*,\s*"([^"]*)"')


class TekChannel(ScpiChannel):
    """One analog input, CH<x>."""

    scale_v_per_div = control(
        "CH{ch}:SCAle?", "CH{ch}:SCAle {value}", "Vertical scale.",
        valid_range=(1e-4, 1e4), units="V/div")
    offset_v = control(
        "CH{ch}:OFFSet?", "CH{ch}:OFFSet {value}", "Vertical offset (subtracted before the ADC).",
        valid_range=(-1e5, 1e5), units="V")
    position_div = control(
        "CH{ch}:POSition?", "CH{ch}:POSition {value}", "Graticule position of the trace.",
        valid_range=(-5.0, 5.0), units="div")
    displayed = control(
        "DISplay:GLObal:CH{ch}:STATE?", "DISplay:GLObal:CH{ch}:STATE {value}",
        "Channel turned on (only channels that are on are acquired).", choices=_ON_OFF)
    trigger_level_v = control(
        "TRIGger:A:LEVel:CH{ch}?", "TRIGger:A:LEVel:CH{ch} {value}",
        "Edge trigger level when this channel is the trigger source.",
        valid_range=(-1e5, 1e5), units="V")


class TektronixMso5(Oscilloscope):
    """4/5/6 Series MSO; the channel count is read from the model name (MSO58 → 8)."""

    MODEL_PATTERNS = ("MSO4*", "MSO5*", "MSO6*", "LPD6*")
    MANUFACTURERS = ("Tektronix",)

    response_headers = control("HEADer?", "HEADer {value}",
                               "Replies prefixed with the command header.", choices=_ON_OFF)
    horizontal_mode = control(
        "HORizontal:MODE?", "HORizontal:MODE {value}",
        "MANual lets sample rate and record length be set independently.",
        choices={"auto": "AUTO", "constant": "CONStant", "manual": "MANual"})
    sample_rate_hz = control(
        "HORizontal:MODE:SAMPLERate?", "HORizontal:MODE:SAMPLERate {value}",
        "Sample rate in manual horizontal mode.", valid_range=(1.0, 25e9), units="Sa/s")
    record_length = control(
        "HORizontal:MODE:RECOrdlength?", "HORizontal:MODE:RECOrdlength {value}",
        "Record length in manual horizontal mode.", valid_range=(1_000, 1_000_000_000), cast=int)
    trigger_position_pct = control(
        "HORizontal:POSition?", "HORizontal:POSition {value}",
        "Where the trigger sits in the record, in percent from its start (= pretrigger × 100).",
        valid_range=(0.0, 100.0), units="%")
    trigger_type = control("TRIGger:A:TYPe?", "TRIGger:A:TYPe {value}", "A-trigger type.",
                           choices={"edge": "EDGE"})
    trigger_mode = control(
        "TRIGger:A:MODe?", "TRIGger:A:MODe {value}",
        "NORMal waits for a real trigger; AUTO would fire by itself after a timeout.",
        choices={"normal": "NORMal", "auto": "AUTO"})
    trigger_source = control("TRIGger:A:EDGE:SOUrce?", "TRIGger:A:EDGE:SOUrce {value}",
                             "Edge trigger source.", choices={
                                 "aux": "AUXiliary", **{f"ch{n}": f"CH{n}" for n in range(1, 9)}})
    trigger_slope = control("TRIGger:A:EDGE:SLOpe?", "TRIGger:A:EDGE:SLOpe {value}",
                            "Edge trigger slope.", choices={"rise": "RISe", "fall": "FALL"})
    aux_trigger_level_v = control(
        "TRIGger:AUXLevel?", "TRIGger:AUXLevel {value}", "Threshold of the AUX trigger input.",
        valid_range=(-10.0, 10.0), units="V")
    stop_after = control("ACQuire:STOPAfter?", "ACQuire:STOPAfter {value}",
                         "Run continuously or stop after one sequence.",
                         choices={"sequence": "SEQuence", "run_stop": "RUNSTop"})

    data_source = control("DATa:SOUrce?", "DATa:SOUrce {value}", "Waveform that CURVe? returns.",
                          choices={f"ch{n}": f"CH{n}" for n in range(1, 9)})
    data_encoding = control("DATa:ENCdg?", "DATa:ENCdg {value}", "CURVe? encoding.",
                            choices={"signed_lsb_first": "SRIbinary"})
    data_start = control("DATa:STARt?", "DATa:STARt {value}", "First point CURVe? returns.",
                         valid_range=(1, 1_000_000_000), cast=int)
    data_stop = control("DATa:STOP?", "DATa:STOP {value}", "Last point CURVe? returns.",
                        valid_range=(1, 1_000_000_000), cast=int)
    bytes_per_point = control("WFMOutpre:BYT_Nr?", "WFMOutpre:BYT_Nr {value}",
                              "Bytes per CURVe? point.", valid_range=(1, 8), cast=int)

    # the waveform preamble of the DATa:SOUrce waveform
    x_increment_s = measurement("WFMOutpre:XINcr?", "Time between samples.", units="s")
    x_zero_s = measurement("WFMOutpre:XZEro?", "Time of point PT_Off relative to the trigger.", units="s")
    point_offset = measurement("WFMOutpre:PT_Off?", "Point to which XZEro refers.")
    y_multiplier_v = measurement("WFMOutpre:YMUlt?", "Volts per code.", units="V")
    y_offset_codes = measurement("WFMOutpre:YOFf?", "Code subtracted before scaling.")
    y_zero_v = measurement("WFMOutpre:YZEro?", "Volts added after scaling.", units="V")
    number_of_points = measurement("WFMOutpre:NR_Pt?", "Points CURVe? will return.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel_count = int(self.options.get("channels", 4))
        self.channels: dict[int, TekChannel] = {}
        self._make_channels()
        self.last_read_timing: ReadTiming | None = None
        self._record_length: int | None = None   # as the last read_waveform found it

    def _make_channels(self) -> None:
        self.channels = {n: TekChannel(self, n) for n in range(1, self.channel_count + 1)}

    def identify(self):  # type: ignore[override]
        identity = super().identify()
        if "channels" not in self.options:
            # MSO58 → 8 channels, MSO64 → 4, LPD64 → 4
            match = re.match(r"^(?:MSO|LPD)\d(\d)", identity.model.upper())
            if match:
                self.channel_count = int(match.group(1))
                self._make_channels()
        return identity

    def initialize(self) -> None:
        super().initialize()
        self.response_headers = False   # replies carry values only, as the parsers expect

    # -- errors: *ESR? + ALLEv? (these scopes have no SYST:ERR?) -------------------------
    def check_errors(self, context: str = "") -> None:
        if str(self.options.get("error_query", "")).upper().startswith("SYST"):
            return super().check_errors(context)
        status = self.query_int("*ESR?")
        if not status & _ESR_ERROR_BITS:
            return
        reply = self.query("ALLEv?")
        events = [(int(code), text) for code, text in _EVENT.findall(reply)]
        # 100–399: command, execution and device errors; higher codes are notices
        errors = [f'{code},"{text}"' for code, text in events if 100 <= abs(code) < 400]
        where = f" after {context}" if context else ""
        detail = "; ".join(errors) if errors else f"*ESR? = {status}, ALLEv? = {reply!r}"
        raise self.error(f"instrument reported error(s){where}: {detail}")

    # -- role methods ---------------------------------------------------------------------
    def configure_channel(self, channel: int, volts_per_div: float, offset_v: float = 0.0) -> None:
        ch = self._channel(channel)
        ch.scale_v_per_div = volts_per_div
        ch.offset_v = offset_v
        ch.position_div = 0          # offset alone places the trace: V at centre = offset
        if self.options.get("display_channels", True):
            ch.displayed = True
        self.check_errors(f"configuring CH{channel}")

    def configure_acquisition(self, sample_rate_hz: float, record_length: int,
                              pretrigger_fraction: float) -> None:
        self.check_value("pretrigger_fraction", float(pretrigger_fraction), valid_range=(0.0, 1.0))
        self.check_value("sample_rate_hz", float(sample_rate_hz),
                         valid_range=self.range_of("sample_rate_hz"), units="Sa/s")
        self.check_value("record_length", float(record_length),
                         valid_range=self.range_of("record_length"))
        self.horizontal_mode = "manual"
        self.sample_rate_hz = sample_rate_hz
        self.record_length = record_length
        self.trigger_position_pct = 100.0 * pretrigger_fraction
        self.check_errors("configuring the acquisition")

    def trigger_external(self, level_v: float = 1.0, slope: str = "rise") -> None:
        slope_word = self._slope(slope)
        self.check_value("level_v", float(level_v),
                         valid_range=self.range_of("aux_trigger_level_v"), units="V")
        self.trigger_type = "edge"
        self.trigger_source = "aux"
        self.trigger_slope = slope_word
        header = self.options.get("aux_trigger_level_header")
        if header:   # firmware/model variants that name the AUX threshold differently
            self.write(f"{header} {format_number(float(level_v))}")
        else:
            self.aux_trigger_level_v = level_v
        self.trigger_mode = "normal"
        self.check_errors("setting the AUX trigger")

    def trigger_edge(self, channel: int, level_v: float, slope: str) -> None:
        ch = self._channel(channel)
        slope_word = self._slope(slope)
        self.trigger_type = "edge"
        self.trigger_source = f"ch{channel}"
        self.trigger_slope = slope_word
        ch.trigger_level_v = level_v
        self.trigger_mode = "normal"
        self.check_errors(f"setting the CH{channel} edge trigger")

    def arm_single(self) -> None:
        self.stop_after = "sequence"
        self.write("ACQuire:STATE ON")

    def is_ready_for_trigger(self) -> bool:
        """Armed *and* the pre-trigger part of the record filled (``TRIGger:STATE?`` READY).

        A trigger that arrives while the scope still reports ARMED is ignored, so a stimulus
        must not start before this is true (or before the pre-trigger time has passed).
        """
        state = self.query("TRIGger:STATE?").upper()
        return state in ("READY", "TRIGGER", "TRIG", "AUTO")

    def is_acquisition_complete(self) -> bool:
        # in single-sequence mode ACQuire:STATE? returns to 0 once the record is complete
        reply = self.query("ACQuire:STATE?").upper()
        if reply in ("0", "OFF", "STOP"):
            return True
        if reply in ("1", "ON", "RUN"):
            return False
        raise self.error(f"'ACQuire:STATE?' answered {reply!r}, expected 0 or 1")

    #: the preamble fields read_waveform needs, in the order read_preamble returns them
    PREAMBLE_QUERIES = ("WFMOutpre:XINcr?", "WFMOutpre:XZEro?", "WFMOutpre:PT_Off?", "WFMOutpre:YMUlt?",
                        "WFMOutpre:YOFf?", "WFMOutpre:YZEro?", "WFMOutpre:NR_Pt?")

    def read_preamble(self) -> tuple[float, ...]:
        """XINcr, XZEro, PT_Off, YMUlt, YOFf, YZEro, NR_Pt of the DATa:SOUrce waveform.

        One concatenated query (set commands and queries may be concatenated in one message,
        executed in the order received, the replies joined by ``;``), so one
        round trip instead of seven (MSO54/56/58 programmer manual, Command Syntax,
        "Concatenating"). Each field is named in the query rather than taken by position
        from ``WFMOutpre?``, so a model or firmware listing other fields cannot shift them.
        """
        return tuple(self.query_floats(self.PREAMBLE_QUERIES))

    def read_waveform(self, channel: int) -> RawWaveform:
        started = time.perf_counter()
        self._channel(channel)
        self.data_source = f"ch{channel}"
        self.data_encoding = "signed_lsb_first"
        self.bytes_per_point = 2
        self.data_start = 1
        # DATa:STARt 1 and DATa:STOP = the record length select the whole record. The record
        # length the last read found is checked in the preamble's round trip; it is asked
        # for on its own only when unknown or changed (every round trip waits for the scope).
        n_record = self._record_length or int(self.query_float("HORizontal:MODE:RECOrdlength?"))
        for _ in range(3):
            self.data_stop = max(n_record, 1)
            record_now, *preamble = self.query_floats(("HORizontal:MODE:RECOrdlength?",
                                                       *self.PREAMBLE_QUERIES))
            if int(record_now) == n_record:
                break
            n_record = int(record_now)   # a new record length since the last read: select it
        else:
            raise self.error(f"HORizontal:MODE:RECOrdlength? keeps changing ({n_record} now) "
                             "while the waveform is being selected")
        self._record_length = n_record
        x_increment_s, x_zero_s, point_offset, y_multiplier_v, y_offset_codes, y_zero_v, n_points_raw = preamble
        where = f"CH{channel} preamble"
        if not x_increment_s > 0:
            raise self.error(f"{where}: XINcr = {x_increment_s!r} s is not a positive sample interval")
        if y_multiplier_v == 0:
            raise self.error(f"{where}: YMUlt = 0 would make every sample the same voltage")
        if not n_points_raw.is_integer() or n_points_raw < 1:
            raise self.error(f"{where}: NR_Pt = {n_points_raw!r} is not a positive point count")
        n_points = int(n_points_raw)
        volts = self._download_word_record(
            "CURVe?", n_points, code_offset=y_offset_codes, volts_per_code=y_multiplier_v, volts_offset=y_zero_v,
            started_s=started, expectation=f"(NR_Pt = {n_points} points × 2 bytes)")
        trigger_index = int(round(point_offset - x_zero_s / x_increment_s))
        return RawWaveform.uniform(volts, interval_s=x_increment_s, reference_index=point_offset,
                                   reference_time_s=x_zero_s, trigger_index=trigger_index)

    # -- helpers --------------------------------------------------------------------------
    def _channel(self, channel: int) -> TekChannel:
        try:
            return self.channels[int(channel)]
        except (KeyError, ValueError, TypeError):
            raise self.limit_error(f"channel {channel!r} does not exist on this "
                                   f"{self.channel_count}-channel scope", quantity="channel") from None

    def _slope(self, slope: str) -> str:
        try:
            return {"rise": "rise", "rising": "rise", "fall": "fall", "falling": "fall"}[slope.lower()]
        except (KeyError, AttributeError):
            raise self.limit_error(f"slope {slope!r} is not 'rise' or 'fall'", quantity="slope") from None

    def safe_state(self) -> bool:
        """Stop acquiring; never raises."""
        return self._send_safely(["ACQuire:STATE OFF"])
