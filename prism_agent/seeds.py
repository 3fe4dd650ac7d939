"""Seed derivation: every seed the project sends to a model or a sampler comes from here.

A derived seed is a pure function of its parts, stable across processes, machines and Python versions
(sha256, not Python's salted `hash`). The replay log keys each call on its request, seed included, so a
resumed or repeated run asks the same question with the same seed and finds its answer there instead of
paying for it again: changing this function re-bills every recorded call (tests/test_seeds.py pins it).
"""

from __future__ import annotations

import hashlib
import os


def derive_seed(*parts: object) -> int:
    """A non-negative 63-bit seed from `parts` joined as "a:b:c" (so (0, "s1") and the old "0:s1" agree)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def row_seed(seed: int | None, index: int) -> int:
    """Seed of completion `index` of a request seeded `seed`; an unseeded request (`None`) gets fresh
    randomness, as it asked for."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    return derive_seed(seed, index)
