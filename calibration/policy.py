"""Which instruments a qualification run may use, judged from their calibration records.

Every instrument is matched to its record by the serial its *IDN? reports (and the model,
so a reused serial of another product does not match). A qualification run refuses an
instrument that has no record or is past due, unless the user allows uncalibrated
instruments — then the whole run is marked "not valid for qualification".
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from calibration.records import CalibrationRecord

NOT_VALID = "NOT VALID FOR QUALIFICATION"


@dataclass(frozen=True)
class CalibrationStatus:
    role: str
    model: str
    serial: str
    record: CalibrationRecord | None
    state: str            # "valid" | "due_soon" | "expired" | "no_record" | "not_required"
    detail: str

    @property
    def acceptable(self) -> bool:
        return self.state in ("valid", "due_soon", "not_required")

    def row(self) -> dict:
        return {"role": self.role, "model": self.model, "serial": self.serial, "state": self.state,
                "detail": self.detail,
                "certificate": self.record.certificate if self.record else "",
                "calibrated_on": str(self.record.calibrated_on) if self.record else "",
                "due_on": str(self.record.due_on) if self.record else ""}


def find_record(records: list[CalibrationRecord], model: str, serial: str) -> CalibrationRecord | None:
    for record in records:
        if record.serial.strip().upper() == serial.strip().upper() and \
                record.model.strip().upper() == model.strip().upper():
            return record
    return None


# Roles whose instruments are not measuring instruments of the qualification, so no calibration
# record is asked of them. A genset controller and a load bank are the bench's source and load:
# plans command them and keep their own meters' readings as evidence, but judge every figure on
# the calibrated oscilloscope (and power analyzer), never on these readings.
CALIBRATION_NOT_REQUIRED: dict[str, str] = {
    "genset": "a genset controller is a source the bench commands; its readings are evidence, not judged",
    "load_bank": "a load bank is a load the bench switches; its meter's readings are evidence, not judged",
}


def calibration_status(role: str, model: str, serial: str, records: list[CalibrationRecord],
                       today: dt.date, due_soon_days: int = 30) -> CalibrationStatus:
    if role in CALIBRATION_NOT_REQUIRED:
        return CalibrationStatus(role, model, serial, None, "not_required", CALIBRATION_NOT_REQUIRED[role])
    record = find_record(records, model, serial)
    if record is None:
        return CalibrationStatus(role, model, serial, None, "no_record",
                                 f"no calibration record for {model} serial {serial}")
    days_left = (record.due_on - today).days
    if days_left < 0:
        return CalibrationStatus(role, model, serial, record, "expired",
                                 f"calibration expired on {record.due_on} ({-days_left} days ago, "
                                 f"certificate {record.certificate})")
    if days_left <= due_soon_days:
        return CalibrationStatus(role, model, serial, record, "due_soon",
                                 f"due on {record.due_on} (in {days_left} days)")
    return CalibrationStatus(role, model, serial, record, "valid", f"valid until {record.due_on}")


class CalibrationRefused(Exception):
    pass


def enforce(statuses: list[CalibrationStatus], allow_uncalibrated: bool) -> bool:
    """True when the run is valid for qualification; raise when it may not run at all."""
    bad = [s for s in statuses if not s.acceptable]
    if bad and not allow_uncalibrated:
        lines = "; ".join(f"{s.role}: {s.detail}" for s in bad)
        raise CalibrationRefused(f"instrument calibration: {lines}. Calibrate them, or run with "
                                 f"--allow-uncalibrated (the report is then marked {NOT_VALID.lower()})")
    return not bad
