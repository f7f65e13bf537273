"""Waveform records as the scopes send them: plant samples → sample clock → integer codes → block.

Both oscilloscope twins need the same thing when a client asks for a record: the plant's
signals (recorded at the plant step, 20 kSa/s at 50 µs) placed on the scope's sample clock
(linear interpolation), scaled to the instrument's integer codes, clipped at the end codes,
and sent as one IEEE 488.2 definite-length block. A 10 M-point, 16-bit record is 20 MB:
this module builds it in one pass per chunk, in float32, straight into the buffer that is
sent, so the socket rather than the encoding sets the download rate. Encoded blocks are
kept (`BlockCache`) because clients read the same record more than once (a warm-up read,
a benchmark, several plans looking at one capture).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable

import numpy as np

# points encoded per pass: small enough that the float32 scratch stays in cache-friendly,
# already-mapped memory (fresh 40 MB arrays cost more in page faults than the arithmetic)
CHUNK_POINTS = 1 << 20
# interpolation by an integer factor uses one vector operation per phase of the factor;
# beyond this many phases the general interpolation is cheaper
MAX_INTEGER_UPSAMPLING = 1000


@dataclass(frozen=True)
class CodeScale:
    """code = volts * codes_per_volt + code_at_zero_volts, clipped to code_min..code_max."""

    codes_per_volt: float
    code_at_zero_volts: float
    code_min: int
    code_max: int


@dataclass(frozen=True)
class SampleClock:
    """Where the record's points fall on the plant's sample grid."""

    plant_t0_s: float  # time of samples[0]
    plant_dt_s: float
    first_point_t_s: float  # time of record point 0
    point_interval_s: float  # time between transferred points


def encode_block(samples_v: np.ndarray, clock: SampleClock, n_points: int, scale: CodeScale,
                 dtype: np.dtype, prefix: bytes = b"") -> bytearray:
    """`prefix` + `#<n><len>` + n_points codes of `dtype` (byte order included).

    The returned buffer is never written again once returned, so a cache may hand it to
    the transport any number of times.
    """
    dtype = np.dtype(dtype)
    payload_len = n_points * dtype.itemsize
    length_text = str(payload_len).encode()
    header = prefix + b"#" + str(len(length_text)).encode() + length_text
    block = bytearray(len(header) + payload_len)
    block[: len(header)] = header
    codes_out = np.frombuffer(block, dtype=dtype, count=n_points, offset=len(header))

    # scale on the plant grid (thousands of samples, not millions; interpolation is linear,
    # so scaling first is exact); clipping waits until the points are on the sample clock,
    # as the ADC clips the signal it samples
    plant_codes = (samples_v * scale.codes_per_volt + scale.code_at_zero_volts).astype(np.float32)
    # two copies of the last sample: interpolation may touch one sample past the end
    plant_codes = np.concatenate((plant_codes, plant_codes[-1:], plant_codes[-1:]))
    steps = np.diff(plant_codes)

    position0 = (clock.first_point_t_s - clock.plant_t0_s) / clock.plant_dt_s  # fractional index
    plant_samples_per_point = clock.point_interval_s / clock.plant_dt_s
    upsampling = 1.0 / plant_samples_per_point
    integer_factor = round(upsampling)
    use_integer_path = (1 <= integer_factor <= MAX_INTEGER_UPSAMPLING
                        and abs(upsampling - integer_factor) < 1e-9 * integer_factor)
    chunk = CHUNK_POINTS - CHUNK_POINTS % integer_factor if use_integer_path else CHUNK_POINTS
    scratch = np.empty(chunk, dtype=np.float32)
    last_index = plant_codes.size - 2
    for start in range(0, n_points, chunk):
        count = min(chunk, n_points - start)
        work = scratch[:count]
        if use_integer_path:
            _upsample_by_integer(plant_codes, steps, position0 + start / integer_factor, integer_factor,
                                 count, work, last_index)
        else:
            positions = position0 + np.arange(start, start + count, dtype=np.float64) * plant_samples_per_point
            np.clip(positions, 0.0, last_index, out=positions)
            work[:] = np.interp(positions, np.arange(plant_codes.size, dtype=np.float64), plant_codes)
        np.clip(work, scale.code_min, scale.code_max, out=work)
        np.rint(work, out=work)
        np.copyto(codes_out[start:start + count], work, casting="unsafe")
    return block


def _upsample_by_integer(plant_codes: np.ndarray, steps: np.ndarray, position0: float, factor: int,
                         count: int, out: np.ndarray, last_index: int) -> None:
    """Points at position0 + k/factor (k = 0..count-1): one strided column per phase j,
    rows m = whole plant samples, so point m*factor + j sits at position0 + m + j/factor."""
    rows = math.ceil(count / factor)
    padded = np.empty(rows * factor, dtype=np.float32) if rows * factor != count else out
    grid = padded.reshape(rows, factor)
    for phase in range(factor):
        position = position0 + phase / factor
        base = math.floor(position + 1e-9)
        fraction = np.float32(max(0.0, position - base))
        first = min(max(base, 0), last_index)
        rows_here = min(rows, max(0, last_index + 1 - first))
        column = grid[:, phase]
        column[:rows_here] = plant_codes[first:first + rows_here] + fraction * steps[first:first + rows_here]
        column[rows_here:] = plant_codes[last_index]  # beyond the recorded span: hold the last value
    if padded is not out:
        out[:] = padded[:count]


class BlockCache:
    """The last few encoded blocks, keyed by everything that shaped them."""

    def __init__(self, max_entries: int = 2) -> None:
        self.max_entries = max_entries
        self._blocks: OrderedDict[Hashable, bytearray] = OrderedDict()

    def get(self, key: Hashable) -> bytearray | None:
        block = self._blocks.get(key)
        if block is not None:
            self._blocks.move_to_end(key)
        return block

    def put(self, key: Hashable, block: bytearray) -> None:
        self._blocks[key] = block
        self._blocks.move_to_end(key)
        while len(self._blocks) > self.max_entries:
            self._blocks.popitem(last=False)

    def clear(self) -> None:
        self._blocks.clear()
