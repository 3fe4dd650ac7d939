"""torch's intra-op thread count for one piece of work, restored afterwards.

torch's setting is process-wide, and several users share a process: the featurizer (its own `threads`),
the embedded generator's roles (every usable core by default) and the clustering's bf16 products
(`[cluster] threads`). Each sets its count around its own calls, in the thread that computes (a worker
thread need not share the main thread's OpenMP setting).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch threads (None: as they are), then restore them. A no-op where torch
    is not loaded: nothing in the block computes with it."""
    torch = sys.modules.get("torch")
    if threads is None or torch is None:
        yield
        return
    before = torch.get_num_threads()
    if int(threads) != before:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
