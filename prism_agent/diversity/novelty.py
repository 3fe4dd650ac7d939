"""Novelty of candidate rows against a pool in gradient space: the loop's `novelty` acceptance rule.

A candidate is novel when its cosine to its nearest pool row is below the median of the pool rows' own
nearest-neighbour cosines (each row against the rest of the pool; a sample of at most `SAMPLE` rows on a large
pool): it sits further from the pool than a typical pool sample sits from its closest other sample. The
threshold follows the pool's own density, so it needs no tuning per task, featurizer or pool size.

Nearest pool rows rather than nearest centroids: a copy of a pool row has cosine 1 to the pool and is never
novel, whereas its cosine to its centroid is the copied row's own, which is below a centroid-based threshold
for every outlying row (exactly the rows a centroid rule calls novel). Candidates are taken in order and each
one kept joins the reference set, so two near-copies in one batch are not both kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism_agent.diversity.gain import unit_rows

PERCENTILE = 50.0
SAMPLE = 2048  # pool rows whose nearest-neighbour cosine sets the threshold
_BLOCK = 8192
_CHUNK = 256  # candidates per product with the kept set
COPY = 1.0 - 1e-5  # a cosine this close to 1 is a copy (float32 rounding), never novel, even when the pool's
# threshold is 1 itself (most pool rows copies of each other)


def nearest(pool: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row: its largest cosine to a pool row and that row's position (pool rows need not be unit)."""
    x = unit_rows(rows).astype(np.float32)
    best = np.full(x.shape[0], -np.inf, dtype=np.float64)
    where = np.zeros(x.shape[0], dtype=np.int64)
    for start in range(0, pool.shape[0], _BLOCK):
        sims = unit_rows(pool[start : start + _BLOCK]).astype(np.float32) @ x.T  # (block, b)
        arg = sims.argmax(axis=0)
        top = sims[arg, np.arange(x.shape[0])]
        better = top > best
        best[better], where[better] = top[better], start + arg[better]
    return best, where


def pool_threshold(pool: np.ndarray, percentile: float = PERCENTILE, sample: int = SAMPLE, seed: int = 0) -> float:
    """The `percentile` of the pool rows' cosine to their nearest other pool row."""
    n = pool.shape[0]
    if n < 2:
        return 1.0  # one row has no neighbour: only a copy of it is not novel
    picked = np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False))
    x = unit_rows(pool[picked]).astype(np.float32)
    best = np.full(len(picked), -np.inf, dtype=np.float64)
    for start in range(0, n, _BLOCK):
        sims = (unit_rows(pool[start : start + _BLOCK]).astype(np.float32) @ x.T).astype(np.float64)
        own = (picked >= start) & (picked < start + sims.shape[0])
        sims[picked[own] - start, np.flatnonzero(own)] = -np.inf  # not the row itself
        best = np.maximum(best, sims.max(axis=0))
    return float(np.percentile(best, percentile))


@dataclass(frozen=True)
class NoveltyPicks:
    kept: list[int]  # candidate indices kept, in batch order
    cosines: np.ndarray  # (b,) each candidate's cosine to its nearest pool row or earlier kept candidate
    threshold: float


def novelty_keep(pool: np.ndarray, rows: np.ndarray, threshold: float) -> NoveltyPicks:
    """Keep candidates whose cosine to the pool (and to the candidates kept before them) is below `threshold`."""
    x = unit_rows(rows)
    cos, _ = nearest(pool, x) if pool.shape[0] else (np.full(x.shape[0], -np.inf), None)
    return keep_novel(x, cos, threshold)


def keep_novel(rows: np.ndarray, pool_cos: np.ndarray, threshold: float) -> NoveltyPicks:
    """`novelty_keep` given each candidate's cosine to its nearest pool row (found any way: `cluster/ivf.py`).
    Candidates are compared with those kept before them a chunk at a time (one matrix product with the kept
    set per chunk, then within the chunk), not one by one: a round of 8,192 keeps thousands."""
    x = unit_rows(rows)
    cos = np.array(pool_cos, dtype=np.float64)
    limit = min(threshold, COPY)
    kept: list[int] = []
    for lo in range(0, x.shape[0], _CHUNK):
        chunk = x[lo : lo + _CHUNK]
        if kept:
            cos[lo : lo + chunk.shape[0]] = np.maximum(cos[lo : lo + chunk.shape[0]], (chunk @ x[kept].T).max(axis=1))
        within = chunk @ chunk.T
        local: list[int] = []
        for j in range(chunk.shape[0]):
            if local:
                cos[lo + j] = max(cos[lo + j], float(within[j, local].max()))
            if cos[lo + j] < limit:
                kept.append(lo + j)
                local.append(j)
    return NoveltyPicks(kept, cos, threshold)
