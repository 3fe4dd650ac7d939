"""Two large block buffers kept for the life of the process, for the search's pass over the whole pool.

The nearest-row search of `gain` and `novelty` reads a pool of a million rows or more in 1 GiB blocks every
round (`ivf.py`). On these VMs memory given back to the system is taken back by the host within seconds, and
its next first touch costs ≈ 2 s/GiB (BENCHMARKS.md, "Clustering at scale"): fresh buffers cost 4.8 of a
1.5M round's seconds, every round; kept, they cost that once per run. So a process that has searched such a
pool holds 2 GiB more from then on. A second, concurrent search gets buffers of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_lock = threading.Lock()
_buffers: list[np.ndarray] = []


@contextmanager
def scratch(size: int, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Two (size, dim) float32 buffers, the same pair each call while the size stays the same."""
    if not _lock.acquire(blocking=False):
        yield np.empty((size, dim), dtype=np.float32), np.empty((size, dim), dtype=np.float32)
        return
    try:
        if not _buffers or _buffers[0].shape != (size, dim):
            _buffers[:] = []  # the old pair goes before the new one is made
            _buffers.extend(np.empty((size, dim), dtype=np.float32) for _ in range(2))
        yield _buffers[0], _buffers[1]
    finally:
        _lock.release()
