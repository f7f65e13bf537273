"""Calibration records: one TOML file per real instrument.

A record names the instrument (manufacturer, model, serial as its *IDN? reports them), when
it was calibrated and when it is due, the certificate, and per-channel corrections: gain and
offset (corrected = gain × reading + offset, in the channel's physical units), the probe or CT
ratio the certificate covers, and the channel's deskew (s, positive = the channel shows an
event later than it happened).

    [instrument]
    manufacturer = "TEKTRONIX"
    model = "MSO58"
    serial = "C012345"
    [calibration]
    date = 2026-03-02
    due = 2027-03-02
    certificate = "CAL-2026-0412"
    laboratory = "Example Metrology Ltd"
    [[channels]]
    channel = 1
    gain = 1.0012
    offset = -0.15
    probe_ratio = 100.0
    deskew_s = 2.0e-9
"""
from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

RECORDS_DIR = Path(__file__).parent / "records"


class CalibrationRecordError(Exception):
    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"calibration record {path}: {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class ChannelCorrection:
    channel: int
    gain: float = 1.0
    offset: float = 0.0
    probe_ratio: float | None = None
    deskew_s: float = 0.0


@dataclass(frozen=True)
class CalibrationRecord:
    path: Path
    manufacturer: str
    model: str
    serial: str
    calibrated_on: dt.date
    due_on: dt.date
    certificate: str
    laboratory: str
    channels: tuple[ChannelCorrection, ...]

    def channel(self, number: int) -> ChannelCorrection:
        for correction in self.channels:
            if correction.channel == number:
                return correction
        return ChannelCorrection(number)  # not corrected: the certificate found it within spec


def _need(table: dict, key: str, kind, where: str, problems: list[str]):
    if key not in table:
        problems.append(f"{where}.{key}: missing")
        return None
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        problems.append(f"{where}.{key}: {value!r} is not a {kind.__name__}")
        return None
    return value


def load_record(path: Path) -> CalibrationRecord:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CalibrationRecordError(Path(path), [f"cannot be read: {exc}"]) from None
    problems: list[str] = []
    inst = doc.get("instrument", {})
    cal = doc.get("calibration", {})
    manufacturer = _need(inst, "manufacturer", str, "instrument", problems)
    model = _need(inst, "model", str, "instrument", problems)
    serial = _need(inst, "serial", str, "instrument", problems)
    calibrated_on = _need(cal, "date", dt.date, "calibration", problems)
    due_on = _need(cal, "due", dt.date, "calibration", problems)
    certificate = _need(cal, "certificate", str, "calibration", problems)
    laboratory = cal.get("laboratory", "")
    if calibrated_on and due_on and due_on <= calibrated_on:
        problems.append(f"calibration.due: {due_on} is not after the calibration date {calibrated_on}")
    channels = []
    for index, entry in enumerate(doc.get("channels", [])):
        where = f"channels[{index}]"
        number = _need(entry, "channel", int, where, problems)
        gain = entry.get("gain", 1.0)
        if not isinstance(gain, (int, float)) or not 0.5 < gain < 2.0:
            problems.append(f"{where}.gain: {gain!r} is not a plausible gain (0.5–2)")
            gain = 1.0
        offset = entry.get("offset", 0.0)
        if not isinstance(offset, (int, float)):
            problems.append(f"{where}.offset: {offset!r} is not a number")
            offset = 0.0
        ratio = entry.get("probe_ratio")
        if ratio is not None and (not isinstance(ratio, (int, float)) or ratio <= 0):
            problems.append(f"{where}.probe_ratio: {ratio!r} must be a positive number")
        deskew = entry.get("deskew_s", 0.0)
        if not isinstance(deskew, (int, float)) or abs(deskew) > 1e-3:
            problems.append(f"{where}.deskew_s: {deskew!r} must be a number within ±1 ms")
            deskew = 0.0
        if number is not None:
            channels.append(ChannelCorrection(number, float(gain), float(offset),
                                              None if ratio is None else float(ratio), float(deskew)))
    if problems:
        raise CalibrationRecordError(Path(path), problems)
    return CalibrationRecord(Path(path), manufacturer, model, serial, calibrated_on, due_on,
                             certificate, laboratory, tuple(channels))


def load_records(folder: Path = RECORDS_DIR) -> list[CalibrationRecord]:
    """Every record of a folder; a malformed record is an error, not silently skipped."""
    return [load_record(path) for path in sorted(Path(folder).glob("*.toml"))]
