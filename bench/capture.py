"""Waveform capture over any supported oscilloscope.

The bench file says which quantity each scope input sees and through which probe; a capture
turns scope volts into volts and amperes on a time axis relative to the trigger, writes the
frame to the run folder (Parquet, with units and metadata) and only then returns it.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import pandas as pd

from bench.clock import BenchClock
from calibration.corrections import correct_channel
from calibration.records import ChannelCorrection
from bench.config import ScopeChannel
from bench.evidence import RunFolder

# Divisions used for the expected full scale: 4 of the 5 above centre, so that an overshoot
# of 25 % still stays on screen instead of clipping.
FULL_SCALE_DIVISIONS = 4.0


class CaptureError(Exception):
    pass


@dataclass(frozen=True)
class CaptureSettings:
    sample_rate_hz: float
    duration_s: float
    pretrigger_s: float

    @property
    def record_length(self) -> int:
        return int(round(self.sample_rate_hz * self.duration_s))

    @property
    def pretrigger_fraction(self) -> float:
        return self.pretrigger_s / self.duration_s


class WaveformCapture:
    """Arms the oscilloscope around an external trigger and returns calibrated frames."""

    def __init__(self, scope, channels: tuple[ScopeChannel, ...], run: RunFolder, clock: BenchClock,
                 identity: dict | None = None,
                 corrections: dict[int, ChannelCorrection] | None = None,
                 valid_for_qualification: bool = True, line_frequency_hz: float = 60.0):
        self.scope = scope
        self.channels = {c.name: c for c in channels}
        self.corrections = corrections or {}
        self.valid_for_qualification = valid_for_qualification
        self.line_frequency_hz = line_frequency_hz
        self.run = run
        self.clock = clock
        self.identity = identity or {}
        self.settings: CaptureSettings | None = None

    def channel(self, name: str) -> ScopeChannel:
        if name not in self.channels:
            raise CaptureError(f"no oscilloscope channel named {name!r} in the bench file "
                               f"(channels: {', '.join(self.channels)})")
        return self.channels[name]

    def arm(self, settings: CaptureSettings, names: list[str]) -> None:
        """Set verticals, timebase and an external (grid simulator) trigger, then arm once."""
        if settings.pretrigger_s <= 0 or settings.pretrigger_s >= settings.duration_s:
            raise CaptureError(f"pre-trigger {settings.pretrigger_s} s must lie inside the "
                               f"record of {settings.duration_s} s")
        for name in names:
            ch = self.channel(name)
            self.scope.configure_channel(ch.channel, ch.full_scale / ch.ratio / FULL_SCALE_DIVISIONS)
        self.scope.configure_acquisition(settings.sample_rate_hz, settings.record_length,
                                         settings.pretrigger_fraction)
        self.scope.trigger_external()
        self.scope.arm_single()
        self.settings = settings

    def wait_complete(self, timeout_s: float, poll_s: float = 0.1) -> None:
        self.clock.wait_until(self.scope.is_acquisition_complete, timeout_s, poll_s,
                              "the oscilloscope to finish its acquisition")

    def fetch(self, test_name: str, capture_name: str, names: list[str],
              metadata: dict | None = None) -> pd.DataFrame:
        """Download the channels, scale to physical units, save to disk, return the frame."""
        if self.settings is None:
            raise CaptureError("fetch() before arm(): nothing was captured")
        columns: dict[str, np.ndarray] = {}
        t_s: np.ndarray | None = None
        for name in names:
            ch = self.channel(name)
            raw = self.scope.read_waveform(ch.channel)
            if t_s is None:
                t_s = raw.t_s
            elif len(raw.t_s) != len(t_s):
                raise CaptureError(f"channel {name} returned {len(raw.t_s)} points, others {len(t_s)}")
            values = np.asarray(raw.volts, dtype=np.float64) * ch.ratio
            if ch.channel in self.corrections:
                values = correct_channel(raw.t_s, values, self.corrections[ch.channel])
            columns[name] = values
        frame = pd.DataFrame(columns, index=pd.Index(t_s, name="t_s"))
        frame.attrs.update({
            "units": {name: self.channels[name].units for name in names},
            "probe_ratio": {name: self.channels[name].ratio for name in names},
            "scope_input": {name: self.channels[name].channel for name in names},
            "sample_rate_hz": self.settings.sample_rate_hz,
            "line_frequency_hz": self.line_frequency_hz,
            "pretrigger_s": self.settings.pretrigger_s,
            "time_reference": "t_s = 0 at the trigger (grid simulator transient start)",
            "instrument": self.identity,
            "calibration": {name: vars(self.corrections[self.channels[name].channel])
                            for name in names if self.channels[name].channel in self.corrections},
            "valid_for_qualification": self.valid_for_qualification,
            **(metadata or {}),
        })
        # Evidence first: the frame is on disk before anybody analyses it.
        self.run.save_capture(test_name, capture_name, frame)
        return frame
