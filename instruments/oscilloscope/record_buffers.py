"""Output arrays for large record downloads, handed out again once the caller has let go.

Why: a 10 M-point record in float32 is 40 MB. glibc serves a block that large (above its mmap
threshold, at most 32 MB) with a fresh mapping on every allocation, and the kernel clears
every page of it on first write. On the 2-CPU virtual machine of ``bessbench io-benchmark``,
``clear_page`` was 44 % of the driver's CPU time (perf), more than receiving the block; a
plain socket read does not pay it, because its 20 MB buffer is under the threshold and glibc
recycles it. The capture path reads channel after channel and converts each record to
physical units (a copy) before asking for the next, so earlier records are free by then.

An array is handed out again only when nothing outside this pool refers to it: no variable,
no view or slice (a view keeps its base alive), no buffer export, no weak reference. CPython's
reference count tells that exactly; anything in doubt gets a new array. The memory kept is at
most ``keep`` arrays, until :meth:`clear` (the driver's ``close()``).
"""

from __future__ import annotations

import sys
import weakref

import numpy as np


class RecordBuffers:
    """A few one-dimensional output arrays, reused when unreferenced and of the right size."""

    def __init__(self, keep: int = 2) -> None:
        # two: a caller that still holds the previous record while fetching the next one
        # (``raw = scope.read_waveform(ch)`` in a loop) alternates between them
        self.keep = int(keep)
        self._arrays: list[np.ndarray] = []

    def take(self, n_points: int, dtype: np.dtype | type) -> np.ndarray:
        """An array of ``n_points`` × ``dtype`` whose contents are undefined (to be overwritten)."""
        wanted = np.dtype(dtype)
        for index in range(len(self._arrays)):
            if self._fits(index, n_points, wanted) and self._unreferenced(index):
                self._arrays.append(self._arrays.pop(index))     # most recently used last
                return self._arrays[-1]
        array = np.empty(n_points, dtype=wanted)
        if self.keep > 0:
            self._arrays.append(array)
            del self._arrays[:-self.keep]   # forget the least recently used (holders keep theirs)
        return array

    def clear(self) -> None:
        self._arrays.clear()

    def __len__(self) -> int:
        return len(self._arrays)

    def _fits(self, index: int, n_points: int, dtype: np.dtype) -> bool:
        array = self._arrays[index]
        return array.shape == (n_points,) and array.dtype == dtype

    def _unreferenced(self, index: int) -> bool:
        # exactly two references: this list's slot and getrefcount's own argument
        return (sys.getrefcount(self._arrays[index]) == 2
                and weakref.getweakrefcount(self._arrays[index]) == 0)
