"""The run folder: everything a reviewer needs to trust (or re-judge) a run.

reports/<run-id>/ keeps the bench file used, each instrument's *IDN?, the PCS identity,
software version and git revision, every capture (Parquet with units and metadata, written
before it is analysed), the plots, the measurements table (CSV) and the HTML report.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from bench.comtrade_writer import AnalogChannel, ComtradeRecord, write_comtrade
from bench.measurements import Measurement


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    return now.strftime("%Y%m%d-%H%M%S-%f")[:-3]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def software_version() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    info = {"python": platform.python_version()}
    for package in ("bessbench", "pyvisa", "pyvisa-py", "pymodbus", "numpy", "numba"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    try:
        repo = Path(__file__).resolve().parent.parent
        rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                               text=True, timeout=5)
        info["git_revision"] = rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") or "unknown"
    except (OSError, subprocess.SubprocessError):
        info["git_revision"] = "unknown"
    return info


class RunFolder:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.captures_dir = self.root / "captures"
        self.plots_dir = self.root / "plots"
        self.captures_dir.mkdir(exist_ok=True)
        self.plots_dir.mkdir(exist_ok=True)
        self.measurements: list[Measurement] = []
        self._write_csv()

    def write_json(self, name: str, data: Any) -> Path:
        path = self.root / name
        path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def save_capture(self, test_name: str, capture_name: str, frame: pd.DataFrame) -> Path:
        """Write a capture (frame.attrs carry units and metadata) as Parquet, before analysis,
        and, when it is a waveform record, as COMTRADE next to it for protection engineers."""
        folder = self.captures_dir / safe_name(test_name)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{safe_name(capture_name)}.parquet"
        frame.to_parquet(path)
        if "sample_rate_hz" in frame.attrs and len(frame):
            files = write_comtrade(capture_as_comtrade(frame, f"{test_name} {capture_name}"))
            path.with_suffix(".cfg").write_bytes(files.cfg)
            path.with_suffix(".dat").write_bytes(files.dat)
        return path

    def plot_path(self, test_name: str, plot_name: str) -> Path:
        folder = self.plots_dir / safe_name(test_name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{safe_name(plot_name)}.png"

    def add_measurements(self, measurements: list[Measurement]) -> None:
        self.measurements.extend(measurements)
        self._write_csv()

    def _write_csv(self) -> None:
        fields = list(Measurement.__dataclass_fields__)
        with open(self.root / "measurements.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for m in self.measurements:
                writer.writerow(m.row())


def capture_as_comtrade(frame: pd.DataFrame, device_id: str,
                        trigger_time: dt.datetime | None = None) -> ComtradeRecord:
    """A waveform capture (index t_s relative to the trigger) as a COMTRADE record.

    The bench's clock is relative; the absolute trigger time is the wall-clock time of saving
    unless given, which is what a reviewer needs to find the run, not a synchronised stamp.
    """
    trigger = trigger_time or dt.datetime.now().replace(microsecond=0)
    t_s = frame.index.to_numpy(dtype=float)
    units = frame.attrs.get("units", {})
    analogs = [AnalogChannel(name=str(name), unit=units.get(name, ""),
                             values=frame[name].to_numpy(dtype=float),
                             phase=str(name)[-1].upper() if str(name)[-2:-1] == "_" else "")
               for name in frame.columns]
    return ComtradeRecord(station_name="bessbench", device_id=device_id,
                          line_frequency_hz=float(frame.attrs.get("line_frequency_hz", 60.0)),
                          sample_rate_hz=float(frame.attrs["sample_rate_hz"]),
                          start_time=trigger + dt.timedelta(seconds=float(t_s[0])),
                          trigger_time=trigger, analogs=analogs)
