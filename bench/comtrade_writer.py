"""COMTRADE writer (IEEE C37.111-2013): the simulated PCS's disturbance records and the
bench's own captures, so a protection engineer opens either in the tools they use.

One job: turn sampled channels into `.cfg` (ASCII text) and `.dat` (16-bit BINARY, or ASCII).
Written from the standard, not from any reader, so that a public reader (the `comtrade`
package) can check it independently.

Choices, and why:
- BINARY (int16) data: the smallest file to serve over Modbus FC20; each analog channel gets
  its own a/b scaling so that its range maps onto -32767..+32767 (value = a * raw + b).
  -32768 is COMTRADE's "missing sample" code (used for NaN, e.g. frequency of a dead bus).
- One sample rate; time stamps in microseconds with a time multiplier of 1. They are
  informative only (nrates = 1, so readers use the sample rate).
- Line endings CR LF, as the standard asks for the text file.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

REV_YEAR = 2013
RAW_MAX = 32767                  # -32768 is reserved for "missing"
RAW_MISSING = -32768
STATUS_BITS_PER_WORD = 16


@dataclass(frozen=True)
class AnalogChannel:
    name: str                    # channel id, e.g. "VA"
    unit: str                    # e.g. "V", "A", "W", "var", "Hz"
    values: np.ndarray           # engineering values, NaN = missing
    phase: str = ""              # "A", "B", "C" or "" (standard's ph field)
    circuit: str = ""            # ccbm: the circuit component being monitored


@dataclass(frozen=True)
class DigitalChannel:
    name: str
    values: np.ndarray           # bool per sample
    normal_state: int = 0        # the state in normal operation (standard's y field)
    phase: str = ""
    circuit: str = ""


@dataclass(frozen=True)
class ComtradeRecord:
    station_name: str
    device_id: str
    line_frequency_hz: float
    sample_rate_hz: float
    start_time: dt.datetime      # time of the first sample
    trigger_time: dt.datetime
    analogs: Sequence[AnalogChannel] = field(default_factory=tuple)
    digitals: Sequence[DigitalChannel] = field(default_factory=tuple)
    time_code: str = "0"         # offset of the time stamps from UTC (2013 field)
    local_code: str = "0"        # offset of local time from UTC (2013 field)
    time_quality_code: str = "0" # C37.118 time quality: 0 = clock locked
    leap_second: int = 0         # 0 = no leap second in the record

    @property
    def n_samples(self) -> int:
        lengths = {len(c.values) for c in (*self.analogs, *self.digitals)}
        if len(lengths) > 1:
            raise ValueError(f"channels have different lengths: {sorted(lengths)}")
        return lengths.pop() if lengths else 0


@dataclass(frozen=True)
class ComtradeFiles:
    cfg: bytes
    dat: bytes


@dataclass(frozen=True)
class _Scaling:
    a: float                     # multiplier
    b: float                     # offset


def _scaling(values: np.ndarray) -> _Scaling:
    """a/b so that the finite range of `values` spans -RAW_MAX..+RAW_MAX."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return _Scaling(1.0, 0.0)
    lo, hi = float(finite.min()), float(finite.max())
    b = (hi + lo) / 2.0
    half_span = (hi - lo) / 2.0
    # a flat channel still needs a non-zero multiplier; any will do, raw is then 0
    a = half_span / RAW_MAX if half_span > 0.0 else max(abs(b), 1.0) / RAW_MAX
    return _Scaling(a, b)


def _quantise(values: np.ndarray, scaling: _Scaling) -> np.ndarray:
    raw = np.full(values.shape, RAW_MISSING, dtype=np.int16)
    finite = np.isfinite(values)
    raw[finite] = np.clip(np.rint((values[finite] - scaling.b) / scaling.a), -RAW_MAX, RAW_MAX)
    return raw


def _text_field(text: str) -> str:
    # commas separate fields; CR/LF end lines: neither may appear inside a field
    return text.replace(",", " ").replace("\r", " ").replace("\n", " ")


def comtrade_timestamp(when: dt.datetime) -> str:
    """dd/mm/yyyy,hh:mm:ss.ssssss (the 1999/2013 date order)."""
    return when.strftime("%d/%m/%Y,%H:%M:%S.%f")


def _number(value: float) -> str:
    return f"{value:.9g}"


FILE_TYPES = ("BINARY", "ASCII")


def _cfg_lines(record: ComtradeRecord, scalings: list[_Scaling], file_type: str) -> list[str]:
    n_a, n_d = len(record.analogs), len(record.digitals)
    lines = [f"{_text_field(record.station_name)},{_text_field(record.device_id)},{REV_YEAR}",
             f"{n_a + n_d},{n_a}A,{n_d}D"]
    for index, (channel, scaling) in enumerate(zip(record.analogs, scalings), start=1):
        # skew 0 (all channels sampled together); primary = secondary = 1, values are primary
        lines.append(",".join([
            str(index), _text_field(channel.name), _text_field(channel.phase),
            _text_field(channel.circuit), _text_field(channel.unit),
            _number(scaling.a), _number(scaling.b), "0", str(-RAW_MAX), str(RAW_MAX),
            "1", "1", "P"]))
    for index, channel in enumerate(record.digitals, start=1):
        lines.append(",".join([str(index), _text_field(channel.name), _text_field(channel.phase),
                               _text_field(channel.circuit), str(int(channel.normal_state))]))
    lines += [
        _number(record.line_frequency_hz),
        "1",                                              # one sample rate
        f"{_number(record.sample_rate_hz)},{record.n_samples}",
        comtrade_timestamp(record.start_time),
        comtrade_timestamp(record.trigger_time),
        file_type,
        "1",                                              # time multiplier: stamps in us
        f"{record.time_code},{record.local_code}",
        f"{record.time_quality_code},{record.leap_second}",
    ]
    return lines


def _dat_bytes(record: ComtradeRecord, scalings: list[_Scaling]) -> bytes:
    n = record.n_samples
    n_a = len(record.analogs)
    n_words = math.ceil(len(record.digitals) / STATUS_BITS_PER_WORD)
    # little-endian throughout, as C37.111 specifies for binary data
    row = np.dtype([("sample", "<u4"), ("time_us", "<u4"),
                    ("analog", "<i2", (n_a,)), ("status", "<u2", (n_words,))])
    data = np.zeros(n, dtype=row)
    data["sample"] = np.arange(1, n + 1, dtype=np.uint32)
    data["time_us"] = np.rint(np.arange(n) * 1e6 / record.sample_rate_hz).astype(np.uint32)
    for i, (channel, scaling) in enumerate(zip(record.analogs, scalings)):
        data["analog"][:, i] = _quantise(np.asarray(channel.values, dtype=np.float64), scaling)
    for i, channel in enumerate(record.digitals):
        word, bit = divmod(i, STATUS_BITS_PER_WORD)
        bits = np.asarray(channel.values, dtype=bool).astype(np.uint16) << bit
        data["status"][:, word] |= bits
    return data.tobytes()


def _dat_ascii(record: ComtradeRecord, scalings: list[_Scaling]) -> bytes:
    """One line per sample: number, time stamp (µs), analog raw values, one 0/1 per status
    channel; a missing analog sample is left empty (the ASCII form of 'missing')."""
    n = record.n_samples
    columns = [np.arange(1, n + 1).astype(str),
               np.rint(np.arange(n) * 1e6 / record.sample_rate_hz).astype(np.int64).astype(str)]
    for channel, scaling in zip(record.analogs, scalings):
        raw = _quantise(np.asarray(channel.values, dtype=np.float64), scaling).astype(str)
        raw[raw == str(RAW_MISSING)] = ""
        columns.append(raw)
    for channel in record.digitals:
        columns.append(np.asarray(channel.values, dtype=bool).astype(np.int8).astype(str))
    lines = [",".join(row) for row in zip(*columns)] if n else []
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def write_comtrade(record: ComtradeRecord, file_type: str = "BINARY") -> ComtradeFiles:
    """The .cfg text and the .dat (BINARY or ASCII) of `record`."""
    if record.sample_rate_hz <= 0.0:
        raise ValueError(f"sample rate must be > 0, got {record.sample_rate_hz}")
    if file_type not in FILE_TYPES:
        raise ValueError(f"COMTRADE file type {file_type!r} not written (use {', '.join(FILE_TYPES)})")
    scalings = [_scaling(np.asarray(c.values, dtype=np.float64)) for c in record.analogs]
    cfg = "\r\n".join(_cfg_lines(record, scalings, file_type)) + "\r\n"
    dat = _dat_bytes(record, scalings) if file_type == "BINARY" else _dat_ascii(record, scalings)
    return ComtradeFiles(cfg=cfg.encode("ascii", errors="replace"), dat=dat)
