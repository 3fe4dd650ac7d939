"""Wall-clock limits of the tests that wait on a real model: hang guards, not speed checks.

Each limit is the time the wait took on the machine it was sized on, times `SLOWDOWN` (default 4, or
PRISM_AGENT_TEST_SLOWDOWN): the suite must hold on a machine several times slower than the one it was
written on (an AVX2-only CPU computing in fp32, a busy CI host), while a real hang still fails in bounded
time. Speed itself is measured in bench/ (BENCHMARKS.md), never asserted here.
"""

from __future__ import annotations

import os

SLOWDOWN = float(os.environ.get("PRISM_AGENT_TEST_SLOWDOWN", "4"))


def hang_limit(seconds_measured: float) -> float:
    """A wait's limit in seconds, from what it took where it was sized."""
    return seconds_measured * SLOWDOWN
