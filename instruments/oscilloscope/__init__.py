"""Role: the oscilloscope that captures transients (triggered by the grid simulator's trigger output)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from instruments.scpi import ScpiInstrument


@dataclass(frozen=True, eq=False)
class RawWaveform:
    """One channel's record in volts at the probe tip's instrument scale (no calibration applied).

    ``t_s`` is relative to the trigger (t = 0 at the trigger point); ``trigger_index`` is the
    sample nearest the trigger and may lie outside the record when the trigger was off-record.
    """

    t_s: np.ndarray
    volts: np.ndarray
    sample_rate_hz: float
    trigger_index: int

    def __len__(self) -> int:
        return int(self.volts.shape[0])


class Oscilloscope(ScpiInstrument, ABC):
    """Role interface: a multi-channel digitizing oscilloscope, single-shot captures."""

    ROLE = "oscilloscope"

    @abstractmethod
    def configure_channel(self, channel: int, volts_per_div: float, offset_v: float = 0.0) -> None: ...

    @abstractmethod
    def configure_acquisition(self, sample_rate_hz: float, record_length: int,
                              pretrigger_fraction: float) -> None: ...

    @abstractmethod
    def trigger_external(self, level_v: float = 1.0, slope: str = "rise") -> None:
        """Trigger on the auxiliary (external) input, where the grid simulator's trigger output arrives."""

    @abstractmethod
    def trigger_edge(self, channel: int, level_v: float, slope: str) -> None: ...

    @abstractmethod
    def arm_single(self) -> None: ...

    @abstractmethod
    def is_acquisition_complete(self) -> bool: ...

    @abstractmethod
    def read_waveform(self, channel: int) -> RawWaveform: ...


__all__ = ["Oscilloscope", "RawWaveform"]
