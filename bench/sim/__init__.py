"""The virtual bench: plant model, simulated instruments and PCS, launcher.

The numba kernels are cached on disk. numba keys a cached function on its own file's time
stamp only, so an edit to a kernel module that another kernel calls would keep running old
machine code. The cache therefore lives in a folder named after a hash of every kernel
source: any edit gets a fresh cache, and an unchanged tree reuses it across processes (each
qualification run starts a simulator process). BESSBENCH_NUMBA_CACHE_DIR moves the folder.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path


def _kernel_cache_dir() -> Path:
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("kernel_*.py")):
        digest.update(source.read_bytes())
    base = os.environ.get("BESSBENCH_NUMBA_CACHE_DIR") or Path.home() / ".cache" / "bessbench" / "numba"
    return Path(base) / digest.hexdigest()[:16]


os.environ["NUMBA_CACHE_DIR"] = str(_kernel_cache_dir())
if "numba" in sys.modules:  # imported before us: its configuration has already been read
    sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
