"""Role: the oscilloscope that captures transients (triggered by the grid simulator's trigger output)."""

from __future__ import annotations

from abc import ABC, abstractmethod
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from instruments.oscilloscope.record_buffers import RecordBuffers
from instruments.scpi import ScpiInstrument


class RawWaveform:
    """One channel's record in volts at the probe tip's instrument scale (no calibration applied).

    ``t_s`` is relative to the trigger (t = 0 at the trigger point); ``trigger_index`` is the
    sample nearest the trigger and may lie outside the record when the trigger was off-record.

    Drivers build it with :meth:`uniform`: the time axis of a uniformly sampled record is
    fully given by its interval and origin, and is computed on first access of ``t_s``.
    Building 80 MB of float64 times for a 10 M-point record eagerly cost more than receiving
    the record itself (io benchmark), and consumers that need only ``sample_rate_hz`` and
    ``trigger_index`` never pay it.
    """

    __slots__ = ("volts", "sample_rate_hz", "trigger_index", "_t_s", "_axis")

    def __init__(self, t_s: np.ndarray | None, volts: np.ndarray, sample_rate_hz: float,
                 trigger_index: int) -> None:
        self.volts = volts
        self.sample_rate_hz = float(sample_rate_hz)
        self.trigger_index = int(trigger_index)
        self._t_s = t_s
        self._axis: tuple[float, float, float] | None = None

    @classmethod
    def uniform(cls, volts: np.ndarray, *, interval_s: float, reference_index: float,
                reference_time_s: float, trigger_index: int) -> "RawWaveform":
        """t[i] = (i − reference_index) · interval_s + reference_time_s, computed when first read."""
        wave = cls(None, volts, 1.0 / interval_s, trigger_index)
        wave._axis = (reference_index, interval_s, reference_time_s)
        return wave

    @property
    def t_s(self) -> np.ndarray:
        if self._t_s is None:
            assert self._axis is not None
            reference_index, interval_s, reference_time_s = self._axis
            self._t_s = sample_times_s(len(self.volts), reference_index, interval_s,
                                       reference_time_s)
        return self._t_s

    def __len__(self) -> int:
        return int(self.volts.shape[0])

    def __repr__(self) -> str:
        return (f"RawWaveform({len(self)} points at {self.sample_rate_hz:g} Sa/s, "
                f"trigger at index {self.trigger_index})")


@dataclass(frozen=True)
class ReadTiming:
    """Where the last ``read_waveform`` spent its time (seconds; diagnostics, never judged).

    ``first_byte_wait_s`` is the instrument preparing the record (the same on any client).
    The record is converted piece by piece while the rest is still arriving, so
    ``convert_s`` is the part of ``receive_s`` spent converting, not an addition to it.
    """

    setup_s: float              # source/format settings and preamble, until the data query is sent
    first_byte_wait_s: float    # then waiting for the block header
    receive_s: float            # header → last byte received and converted
    convert_s: float            # codes → volts, inside receive_s
    total_s: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# Volts are float32: a 16-bit ADC code times the vertical scale needs 16 significant bits and
# float32 carries 24. Half the bytes of float64 is what brings a 10 M-point download within
# reach of the plain-socket rate (io benchmark: the float64 output array — its allocation,
# page faults and writes — cost more than receiving the block).
VOLTS_DTYPE = np.float32

#: block bytes received and converted per step of a record download: the piece is converted
#: while still in the CPU cache, and the instrument keeps sending into the socket's receive
#: buffer meanwhile (io benchmark: 256 KiB … 1 MiB all do; smaller pieces cost more Python
#: per byte, larger ones fall out of the cache)
RECORD_CHUNK_BYTES = 1 << 19


def codes_to_volts(codes: np.ndarray, code_offset: float, volts_per_code: float,
                   volts_offset: float, out: np.ndarray | None = None) -> np.ndarray:
    """V = (code − code_offset) · volts_per_code + volts_offset, in place, in ``out``'s dtype.

    One cast, then in-place passes in that order (a subtraction or addition of 0 is skipped:
    it changes nothing), no temporaries. (The cast inside a ufunc —
    ``np.subtract(codes, offset, dtype=float32)`` — goes through numpy's buffered casting
    and costs as much as three plain passes.)
    """
    volts = np.empty(codes.shape, dtype=VOLTS_DTYPE) if out is None else out
    np.copyto(volts, codes)   # int16 → float is exact
    if code_offset != 0.0:
        volts -= volts.dtype.type(code_offset)
    volts *= volts.dtype.type(volts_per_code)
    if volts_offset != 0.0:
        volts += volts.dtype.type(volts_offset)
    return volts


def sample_times_s(n_points: int, reference_index: float, interval_s: float,
                   reference_time_s: float) -> np.ndarray:
    """t = (i − reference_index) · interval_s + reference_time_s for i = 0 … n−1, in place."""
    t_s = np.arange(n_points, dtype=np.float64)
    t_s -= reference_index
    t_s *= interval_s
    t_s += reference_time_s
    return t_s


class _WordsToVolts:
    """Block sink: converts each piece of 16-bit little-endian codes into its slice of ``volts``."""

    def __init__(self, volts: np.ndarray, code_offset: float, volts_per_code: float,
                 volts_offset: float) -> None:
        self.volts = volts
        self.scaling = (code_offset, volts_per_code, volts_offset)
        self.seconds = 0.0

    def __call__(self, offset_bytes: int, data: memoryview) -> None:
        started = time.perf_counter()
        codes = np.frombuffer(data, dtype="<i2")
        first = offset_bytes // 2
        codes_to_volts(codes, *self.scaling, out=self.volts[first:first + codes.size])
        self.seconds += time.perf_counter() - started


class Oscilloscope(ScpiInstrument, ABC):
    """Role interface: a multi-channel digitizing oscilloscope, single-shot captures.

    Option ``record_buffers`` (default 2): how many record output arrays the driver keeps to
    hand out again once the caller has let go of them (see ``record_buffers.py``); 0 makes
    every record a new array.
    """

    ROLE = "oscilloscope"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        keep = self.options.get("record_buffers", 2)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            super().close()   # the registry gets no driver to close
            raise self.error(f"option record_buffers = {keep!r} must be a whole number ≥ 0 "
                             "(record output arrays kept for reuse; 0: none)")
        self._record_buffers = RecordBuffers(keep=keep)

    def close(self) -> None:
        self._record_buffers.clear()
        super().close()

    def _download_word_record(self, query: str, n_points: int, *, code_offset: float, volts_per_code: float,
                              volts_offset: float, started_s: float, expectation: str) -> np.ndarray:
        """Send the data query, read its 16-bit little-endian block and return volts (float32),
        recording where the time went in ``last_read_timing``. Shared by the scope families:
        only their data query and preamble differ.

        The block is converted piece by piece as it arrives (:meth:`read_block_chunks`): no
        buffer of the whole block, each piece converted while in the CPU cache, while the
        instrument keeps sending into the socket's receive buffer. The output array comes
        from the driver's recycled record buffers when one is free; the time axis is left to
        RawWaveform.uniform (computed only if someone reads it).
        """
        volts = self._record_buffers.take(n_points, VOLTS_DTYPE)
        converter = _WordsToVolts(volts, code_offset, volts_per_code, volts_offset)
        self.write(query)
        queried = time.perf_counter()
        self.read_block_chunks(query, converter, chunk_bytes=RECORD_CHUNK_BYTES,
                               expected_bytes=2 * n_points, expectation=expectation)
        finished = time.perf_counter()
        transfer = self.last_block_transfer
        wait_s = transfer.first_byte_wait_s if transfer else 0.0
        self.last_read_timing = ReadTiming(
            setup_s=queried - started_s, first_byte_wait_s=wait_s,
            receive_s=(finished - queried) - wait_s, convert_s=converter.seconds,
            total_s=finished - started_s)
        return volts

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


__all__ = ["Oscilloscope", "RawWaveform", "ReadTiming", "codes_to_volts", "sample_times_s"]
