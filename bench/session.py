"""A bench session: the opened instruments, the PCS, the clock, and the way back to safety.

Opening identifies every instrument (*IDN?) and the PCS and records them in the run folder.
`safe_state()` always runs in the same order — PCS stop, loads off, genset breaker open and
engine stop, AC source output off, DC source output off — and goes on through every step even
when one fails (a dead link must not stop the DC source from being switched off).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from calibration.policy import CalibrationStatus, calibration_status, enforce
from calibration.records import RECORDS_DIR, ChannelCorrection, load_records

from bench.clock import BenchClock, LockstepClock, WallClock
from bench.config import BenchConfig
from bench.evidence import RunFolder
from bench.power_capture import analyzer_input_ratios

log = logging.getLogger("bessbench.session")

# The PCS stops first (it must not feed a bus being switched off), then the loads drop the bus
# (AC load, then the load bank's steps), then the sources open (the genset's breaker and engine,
# the grid simulator, the DC source); every step runs even when an earlier one failed. The power
# analyzer has no output: its step sends nothing and is listed so the report shows it.
SAFE_STATE_ORDER = ("pcs", "ac_load", "load_bank", "genset", "grid_simulator", "dc_source", "power_analyzer")


@dataclass
class SafeStateReport:
    steps: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step["outcome"].startswith("done") or step["outcome"] == "not open"
                   for step in self.steps)


class BenchSession:
    def __init__(self, config: BenchConfig, run: RunFolder, *, allow_control: bool,
                 control_address: str | None = None, allow_uncalibrated: bool = False,
                 today: dt.date | None = None):
        self.config = config
        self.run = run
        self.allow_control = allow_control
        self.control_address = control_address
        self.allow_uncalibrated = allow_uncalibrated
        self.today = today or dt.date.today()
        self.calibration: list[CalibrationStatus] = []
        self.valid_for_qualification = True
        self.clock: BenchClock | None = None
        self.instruments: dict[str, Any] = {}
        self.identities: dict[str, Any] = {}
        self.pcs = None
        self.safe_state_reports: list[SafeStateReport] = []

    # ------------------------------------------------------------------ open
    def open(self) -> "BenchSession":
        from instruments.registry import open_instrument

        self.clock = LockstepClock(self.control_address) if self.control_address else WallClock()
        for role, inst in self.config.instruments.items():
            driver = open_instrument(role, inst.driver, inst.resource, expected_model=inst.expected_model,
                                     limits=self.config.safety.as_driver_limits(),
                                     options=inst.options, timeout_s=inst.timeout_s)
            self.instruments[role] = driver
            self.identities[role] = {"resource": inst.resource, "driver": inst.driver,
                                     **asdict(driver.identify())}
        self.run.write_json("instruments.json", self.identities)
        self._check_calibration()
        self.pcs = self._open_pcs()
        return self

    def _check_calibration(self) -> None:
        """Match every instrument to its record by *IDN? serial; refuse or mark the run."""
        records = load_records(self.config.calibration_dir or RECORDS_DIR)
        for role, ident in self.identities.items():
            status = calibration_status(role, ident["model"], ident["serial"], records, self.today)
            status = self._check_probe_ratios(role, status)
            self.calibration.append(status)
        self.run.write_json("calibration.json", [s.row() for s in self.calibration])
        self.valid_for_qualification = enforce(self.calibration, self.allow_uncalibrated)

    def _check_probe_ratios(self, role: str, status: CalibrationStatus) -> CalibrationStatus:
        """A probe other than the one the certificate covers voids the channel's calibration."""
        if status.record is None:
            return status
        inputs = [(c.channel, c.ratio, c.name) for c in self.config.instruments[role].channels]
        inputs += analyzer_input_ratios(role, self.config.instruments[role].options)   # its CTs / VTs
        for number, ratio, name in inputs:
            certified = status.record.channel(number).probe_ratio
            if certified is not None and abs(certified - ratio) > 1e-9 * certified:
                return dataclasses.replace(
                    status, state="probe_mismatch",
                    detail=f"channel {number} ({name}) uses ratio {ratio:g} in the "
                           f"bench file, the certificate {status.record.certificate} covers {certified:g}")
        return status

    def channel_corrections(self, role: str) -> dict[int, ChannelCorrection]:
        for status in self.calibration:
            if status.role == role and status.record is not None:
                if role.startswith("power_analyzer"):   # its inputs (bench/power_capture.py numbering)
                    return {c.channel: c for c in status.record.channels}
                return {c.channel: status.record.channel(c.channel)
                        for c in self.config.instruments[role].channels}
        return {}

    def _open_pcs(self):
        from dut.pcs import PcsIdentity
        from dut.sunspec_pcs import connect_pcs

        ident = self.config.pcs.identity
        expected = PcsIdentity(manufacturer=ident.manufacturer, model=ident.model,
                               serial=ident.serial, version=None)
        pcs = connect_pcs(self.config.pcs.connection, expected_identity=expected,
                          allow_control=self.allow_control, clock_now=self.clock.now_s)
        actual = pcs.identity()
        self.identities["pcs"] = {"connection": self.config.pcs.connection, **asdict(actual)}
        self.run.write_json("instruments.json", self.identities)
        # Never command a PCS that is not the one the bench file names.
        pcs.verify_identity(expected)
        return pcs

    def instrument(self, role: str):
        if role not in self.instruments:
            raise KeyError(f"this bench has no {role} (roles: {', '.join(self.instruments)})")
        return self.instruments[role]

    # ------------------------------------------------------------------ safety
    def safe_state(self) -> SafeStateReport:
        report = SafeStateReport()
        for role in SAFE_STATE_ORDER:
            if role != "pcs" and role not in self.config.instruments:
                continue                       # not on this bench
            target = self.pcs if role == "pcs" else self.instruments.get(role)
            if target is None:
                report.steps.append({"role": role, "outcome": "not open"})
                continue
            if role == "pcs" and not self.allow_control:
                report.steps.append({"role": role, "outcome": "done (read-only: never commanded)"})
                continue
            if getattr(target, "control_allowed", True) is False:
                # a genset or load bank the bench file does not let us command was never commanded
                report.steps.append({"role": role, "outcome": "done (read-only: never commanded)"})
                continue
            report.steps.append({"role": role, "outcome": self._make_safe(role, target)})
        self.safe_state_reports.append(report)
        self.run.write_json("safe_state.json", [r.steps for r in self.safe_state_reports])
        return report

    @staticmethod
    def _make_safe(role: str, target) -> str:
        """One safe-state step, tried twice: an interrupted exchange (Ctrl-C in the middle of a
        read) can leave one stale reply on the link that spoils only the first attempt."""
        error: Exception | None = None
        for _attempt in range(2):
            try:
                if role == "pcs":
                    target.stop()
                elif target.safe_state() is False:
                    # drivers never raise from safe_state: False means a command did not go out
                    raise RuntimeError(f"{role}: a safe-state command did not reach the instrument "
                                       f"(see the log); check its output by hand")
                return "done"
            except Exception as exc:  # keep going: the next output must still go off
                error = exc
                log.error("safe state: %s failed: %s", role, exc)
        return f"FAILED: {error}"

    def close(self) -> SafeStateReport:
        report = self.safe_state()
        for driver in self.instruments.values():
            try:
                driver.close()
            except Exception:  # closing a dead link is not worth failing for
                pass
        if self.pcs is not None:
            try:
                self.pcs.close()
            except Exception:
                pass
        if self.clock is not None:
            self.clock.close()
        return report
