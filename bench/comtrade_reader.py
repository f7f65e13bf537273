"""A small, independent COMTRADE reader (IEEE C37.111-1991/1999/2013): `.cfg` text + `.dat` bytes.

Pure functions, no I/O: the caller hands over the text and the bytes (read from disk, fetched
over Modbus FC20, downloaded by FTP). Written from the standard, not from any writer, so that
the PCS's records (and the bench's own COMTRADE files) are checked by code that shares no
mistake with what produced them.

What it understands
- cfg: station/device/revision; channel totals; analog lines (13 fields, 10 in 1991) and
  digital lines (5 fields, 3 in 1991); line frequency; sample-rate table; start and trigger
  time stamps (dd/mm/yyyy for 1999/2013, mm/dd/yy for 1991; fractions beyond microseconds
  are truncated); file type; time multiplier; the 2013 time-code and time-quality lines.
- dat: ASCII, BINARY (int16), BINARY32 (int32), FLOAT32. Value = a * raw + b. Missing
  samples are NaN: int16 -32768 / int32 -2^31 in binary files, an empty field in ASCII.
- time: from the sample-rate table when it has rates; otherwise (nrates = 0 or rate 0) from
  the per-sample time stamps times the multiplier, as the standard says.

Errors name the line (cfg) or byte count (dat) that is wrong: `ComtradeError`.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import numpy as np

FILE_TYPES = ("ASCII", "BINARY", "BINARY32", "FLOAT32")
# Bytes per analog sample and the raw code for "missing", per binary file type.
_BINARY_ANALOG = {"BINARY": ("<i2", -32768), "BINARY32": ("<i4", -2**31), "FLOAT32": ("<f4", None)}
_BITS_PER_STATUS_WORD = 16


class ComtradeError(ValueError):
    pass


@dataclass(frozen=True)
class AnalogChannelInfo:
    index: int
    name: str
    phase: str
    circuit: str
    unit: str
    a: float
    b: float
    skew_us: float
    raw_min: float
    raw_max: float
    primary: float | None
    secondary: float | None
    primary_or_secondary: str | None   # "P" | "S"


@dataclass(frozen=True)
class DigitalChannelInfo:
    index: int
    name: str
    phase: str
    circuit: str
    normal_state: int


@dataclass(frozen=True)
class ComtradeConfig:
    station_name: str
    device_id: str
    rev_year: int
    analogs: tuple[AnalogChannelInfo, ...]
    digitals: tuple[DigitalChannelInfo, ...]
    line_frequency_hz: float
    sample_rates: tuple[tuple[float, int], ...]   # (rate in Hz, last sample number at that rate)
    start_time: dt.datetime                        # time of the first sample
    trigger_time: dt.datetime
    file_type: str
    time_multiplier: float
    time_code: str | None = None
    local_code: str | None = None
    time_quality_code: str | None = None
    leap_second: str | None = None

    @property
    def n_samples(self) -> int | None:
        """Samples the cfg announces (None when the rate table is empty)."""
        return self.sample_rates[-1][1] if self.sample_rates else None

    @property
    def pre_trigger_s(self) -> float:
        """Trigger time minus the time of the first sample, from the two cfg time stamps."""
        return (self.trigger_time - self.start_time).total_seconds()


@dataclass(frozen=True)
class ComtradeRecord:
    config: ComtradeConfig
    sample_number: np.ndarray                      # as written in the dat
    time_s: np.ndarray                             # from the first sample (0 at start_time)
    analog: dict[str, np.ndarray]                  # channel id -> engineering values, NaN = missing
    digital: dict[str, np.ndarray]                 # channel id -> bool per sample

    @property
    def sample_rate_hz(self) -> float | None:
        """The single sample rate, or None when the record has several or none."""
        rates = {rate for rate, _ in self.config.sample_rates if rate > 0}
        return rates.pop() if len(rates) == 1 else None

    @property
    def duration_s(self) -> float:
        """From the first sample to one sample period after the last (the span the record covers)."""
        if self.time_s.size == 0:
            return 0.0
        period_s = 1.0 / self.sample_rate_hz if self.sample_rate_hz else 0.0
        return float(self.time_s[-1] - self.time_s[0]) + period_s


# ------------------------------------------------------------------ cfg

def _fields(line: str) -> list[str]:
    return [field.strip() for field in line.split(",")]


def _number(text: str, what: str, line_no: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ComtradeError(f"cfg line {line_no}: {what} {text!r} is not a number") from None


def _optional_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


_TIMESTAMP = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2,4}),(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?$")


def parse_timestamp(text: str, rev_year: int, line_no: int = 0) -> dt.datetime:
    """'dd/mm/yyyy,hh:mm:ss.ffffff' (1999, 2013) or 'mm/dd/yy,...' (1991)."""
    match = _TIMESTAMP.match(text.replace(" ", ""))
    if not match:
        raise ComtradeError(f"cfg line {line_no}: time stamp {text!r} is not dd/mm/yyyy,hh:mm:ss.ssssss")
    first, second, year, hour, minute, second_s, fraction = match.groups()
    day, month = (int(second), int(first)) if rev_year == 1991 else (int(first), int(second))
    year_i = int(year)
    if len(year) == 2:
        year_i += 1900 if year_i >= 70 else 2000
    microseconds = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return dt.datetime(year_i, month, day, int(hour), int(minute), int(second_s), microseconds)
    except ValueError as exc:
        raise ComtradeError(f"cfg line {line_no}: time stamp {text!r}: {exc}") from None


def parse_cfg(text: str) -> ComtradeConfig:
    """The configuration of a record from its `.cfg` text."""
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    position = 0

    def next_line(what: str) -> tuple[list[str], int]:
        nonlocal position
        if position >= len(lines):
            raise ComtradeError(f"cfg ends after {len(lines)} lines; expected {what}")
        position += 1
        return _fields(lines[position - 1]), position

    head, _ = next_line("station name, device id, revision year")
    rev_year = int(head[2]) if len(head) > 2 and head[2].isdigit() else 1991
    if rev_year not in (1991, 1999, 2013):
        raise ComtradeError(f"cfg line 1: revision year {rev_year} is not 1991, 1999 or 2013")
    totals, line_no = next_line("channel totals TT,##A,##D")
    try:
        total = int(totals[0])
        n_analog = int(totals[1].rstrip("Aa"))
        n_digital = int(totals[2].rstrip("Dd"))
    except (IndexError, ValueError):
        raise ComtradeError(f"cfg line {line_no}: channel totals {','.join(totals)!r} are not TT,##A,##D") from None
    if total != n_analog + n_digital:
        raise ComtradeError(f"cfg line {line_no}: {total} channels announced, but {n_analog}A + {n_digital}D")

    analogs = []
    for _ in range(n_analog):
        f, line_no = next_line("an analog channel line")
        if len(f) < 10:
            raise ComtradeError(f"cfg line {line_no}: analog channel has {len(f)} fields, at least 10 needed")
        analogs.append(AnalogChannelInfo(
            index=int(_number(f[0], "channel number", line_no)), name=f[1], phase=f[2], circuit=f[3],
            unit=f[4], a=_number(f[5], "multiplier a", line_no), b=_number(f[6], "offset b", line_no),
            skew_us=_optional_number(f[7]) or 0.0, raw_min=_number(f[8], "min", line_no),
            raw_max=_number(f[9], "max", line_no),
            primary=_optional_number(f[10]) if len(f) > 10 else None,
            secondary=_optional_number(f[11]) if len(f) > 11 else None,
            primary_or_secondary=f[12].upper() if len(f) > 12 and f[12] else None))
    digitals = []
    for _ in range(n_digital):
        f, line_no = next_line("a digital channel line")
        if len(f) >= 5:
            index, name, phase, circuit, normal = f[0], f[1], f[2], f[3], f[4]
        elif len(f) >= 3:                        # 1991: n, id, normal state
            index, name, phase, circuit, normal = f[0], f[1], "", "", f[2]
        else:
            raise ComtradeError(f"cfg line {line_no}: digital channel has {len(f)} fields, at least 3 needed")
        digitals.append(DigitalChannelInfo(int(_number(index, "channel number", line_no)), name, phase,
                                           circuit, int(_optional_number(normal) or 0)))

    f, line_no = next_line("the line frequency")
    line_frequency_hz = _number(f[0], "line frequency", line_no)
    f, line_no = next_line("the number of sample rates")
    n_rates = int(_number(f[0], "number of sample rates", line_no))
    rates = []
    for _ in range(max(n_rates, 1)):             # nrates = 0 still has one line "0,last"
        f, line_no = next_line("a sample rate line")
        if len(f) < 2:
            raise ComtradeError(f"cfg line {line_no}: sample rate line needs rate,last_sample")
        rates.append((_number(f[0], "sample rate", line_no), int(_number(f[1], "last sample", line_no))))
    if n_rates == 0:
        rates = [(0.0, rates[0][1])]
    f, line_no = next_line("the start time stamp")
    start_time = parse_timestamp(",".join(f[:2]), rev_year, line_no)
    f, line_no = next_line("the trigger time stamp")
    trigger_time = parse_timestamp(",".join(f[:2]), rev_year, line_no)
    f, line_no = next_line("the file type")
    file_type = f[0].upper()
    if file_type not in FILE_TYPES:
        raise ComtradeError(f"cfg line {line_no}: file type {f[0]!r} is not one of {', '.join(FILE_TYPES)}")
    time_multiplier = 1.0
    time_code = local_code = tmq_code = leap_second = None
    if position < len(lines):
        f, line_no = next_line("the time multiplier")
        time_multiplier = _number(f[0], "time multiplier", line_no) if f[0] else 1.0
    if rev_year >= 2013 and position < len(lines):
        f, _ = next_line("time_code,local_code")
        time_code, local_code = f[0], f[1] if len(f) > 1 else None
    if rev_year >= 2013 and position < len(lines):
        f, _ = next_line("tmq_code,leapsec")
        tmq_code, leap_second = f[0], f[1] if len(f) > 1 else None
    return ComtradeConfig(head[0], head[1] if len(head) > 1 else "", rev_year, tuple(analogs), tuple(digitals),
                          line_frequency_hz, tuple(rates), start_time, trigger_time, file_type,
                          time_multiplier, time_code, local_code, tmq_code, leap_second)


# ------------------------------------------------------------------ dat

def _binary_rows(config: ComtradeConfig, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    analog_type, missing = _BINARY_ANALOG[config.file_type]
    n_a, n_d = len(config.analogs), len(config.digitals)
    n_words = math.ceil(n_d / _BITS_PER_STATUS_WORD)
    row = np.dtype([("sample", "<u4"), ("time", "<u4"), ("analog", analog_type, (n_a,)),
                    ("status", "<u2", (n_words,))])
    if len(data) % row.itemsize:
        raise ComtradeError(f"dat holds {len(data)} bytes, not a whole number of {row.itemsize}-byte samples "
                            f"({n_a} analog, {n_d} digital channels, {config.file_type})")
    rows = np.frombuffer(data, dtype=row)
    raw = rows["analog"].astype(np.float64).reshape(len(rows), n_a)
    if missing is not None:
        raw[rows["analog"].reshape(len(rows), n_a) == missing] = np.nan
    bits = np.zeros((len(rows), n_d), dtype=bool)
    for i in range(n_d):
        word, bit = divmod(i, _BITS_PER_STATUS_WORD)
        bits[:, i] = (rows["status"].reshape(len(rows), n_words)[:, word] >> bit) & 1
    return rows["sample"].astype(np.int64), rows["time"].astype(np.float64), raw, bits


def _ascii_rows(config: ComtradeConfig, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_a, n_d = len(config.analogs), len(config.digitals)
    lines = [line for line in data.decode("ascii", errors="replace").splitlines() if line.strip()
             and line.strip() != "\x1a"]      # 0x1A: the end-of-file mark old writers add
    samples, times = np.zeros(len(lines), np.int64), np.zeros(len(lines))
    raw, bits = np.full((len(lines), n_a), np.nan), np.zeros((len(lines), n_d), dtype=bool)
    for row, line in enumerate(lines):
        f = _fields(line)
        if len(f) < 2 + n_a + n_d:
            raise ComtradeError(f"dat line {row + 1}: {len(f)} fields, {2 + n_a + n_d} expected")
        samples[row] = int(f[0])
        times[row] = float(f[1]) if f[1] else np.nan
        for i in range(n_a):
            text = f[2 + i]
            if text and text != "99999":      # 1991's missing-data code, an empty field since 1999
                raw[row, i] = float(text)
        for i in range(n_d):
            bits[row, i] = f[2 + n_a + i] == "1"
    return samples, times, raw, bits


def _time_axis_s(config: ComtradeConfig, samples: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Seconds from the first sample: from the rate table, or from the time stamps without one."""
    if not config.sample_rates or any(rate <= 0 for rate, _ in config.sample_rates):
        return (timestamps - timestamps[0]) * config.time_multiplier * 1e-6 if timestamps.size else timestamps
    times = np.empty(samples.size)
    t0_s, first = 0.0, 1
    position = np.arange(1, samples.size + 1)   # the n-th sample of the file
    for rate_hz, last in config.sample_rates:
        segment = (position >= first) & (position <= last)
        times[segment] = t0_s + (position[segment] - first) / rate_hz
        t0_s += (last - first + 1) / rate_hz
        first = last + 1
    beyond = position >= first
    if beyond.any():
        raise ComtradeError(f"dat holds {samples.size} samples; the cfg's rate table ends at sample {first - 1}")
    return times


def parse_dat(config: ComtradeConfig, data: bytes) -> ComtradeRecord:
    """The samples of a record, scaled to engineering values, on a time axis from the first sample."""
    if config.file_type == "ASCII":
        samples, timestamps, raw, bits = _ascii_rows(config, data)
    else:
        samples, timestamps, raw, bits = _binary_rows(config, data)
    announced = config.n_samples
    if announced is not None and announced != samples.size:
        raise ComtradeError(f"the cfg announces {announced} samples, the dat holds {samples.size}")
    a = np.array([c.a for c in config.analogs])
    b = np.array([c.b for c in config.analogs])
    values = raw * a + b
    time_s = _time_axis_s(config, samples, timestamps)
    analog = {c.name: values[:, i] for i, c in enumerate(config.analogs)}
    digital = {c.name: bits[:, i] for i, c in enumerate(config.digitals)}
    return ComtradeRecord(config, samples, time_s, analog, digital)


def read_comtrade(cfg_text: str, dat_bytes: bytes) -> ComtradeRecord:
    """Parse a `.cfg` / `.dat` pair."""
    return parse_dat(parse_cfg(cfg_text), dat_bytes)
