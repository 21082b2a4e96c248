"""What the benchmark scripts share (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import os


def one_core() -> None:
    """Pin to one CPU and keep numpy's helpers single-threaded, so the figure is per core."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
