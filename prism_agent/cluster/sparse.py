"""The sparse set: which clusters are under-populated enough to steer generation toward (README, "Gradient clusters").

Rule, exactly as the released code applies it: sort the K cluster sizes ascending, read the size at
position ⌊K · ratio⌋ (0-based), and call sparse every cluster *strictly* smaller than that size. Ties at
the threshold are therefore not sparse, which can make the set smaller than K · ratio, or empty (all
clusters the same size); when nothing qualifies, every cluster counts as sparse so the loop never stalls.
Empty clusters (possible when centroids are trained on a sample) have size 0 and are sparse whenever
anything is: a candidate landing there is in a region the pool does not cover at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class SparseSet:
    mask: np.ndarray  # (K,) bool: cluster is sparse
    ratio: float
    position: int  # ⌊K · ratio⌋, index into the ascending sizes
    threshold: int  # size at that position; sparse means size < threshold
    fallback: bool  # no cluster was strictly below the threshold, so all are sparse

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    @property
    def ids(self) -> np.ndarray:
        return np.flatnonzero(self.mask)


def threshold_position(k: int, ratio: float) -> int:
    """⌊K · ratio⌋ computed on the decimal value of `ratio`, so e.g. K = 100, ratio = 0.29 gives 29."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"sparse ratio must be in (0, 1), got {ratio}")
    return math.floor(Fraction(repr(ratio)) * k)


def sparse_clusters(sizes: np.ndarray, ratio: float = 0.5) -> SparseSet:
    sizes = np.asarray(sizes)
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError("need the sizes of at least one cluster")
    if (sizes < 0).any():
        raise ValueError("cluster sizes cannot be negative")
    position = threshold_position(sizes.size, ratio)
    threshold = int(np.sort(sizes)[position])
    mask = sizes < threshold
    fallback = not mask.any()
    if fallback:
        mask = np.ones(sizes.size, dtype=bool)
    return SparseSet(mask=mask, ratio=ratio, position=position, threshold=threshold, fallback=fallback)
