"""Greedy k-means++ seeding on a small sample: the default initialisation of the spherical k-means.

Why not faiss' default (k random rows): on pools whose "templates" have a long-tailed popularity — the
very situation Prismatic Synthesis targets — random seeds over-sample popular regions and merge the rare
ones, and 20 Lloyd iterations do not undo that. On the 100K × 1024 benchmark random seeding ends 2.9 %
above scikit-learn's k-means++ in spherical inertia, while greedy k-means++ on just 8 rows per centroid
ends below it (see BENCHMARKS.md). Greedy means: each step draws 2 + ⌊ln k⌋ D²-weighted candidates and
keeps the one that lowers the potential most (Arthur & Vassilvitskii; the variant scikit-learn uses).

Cost: k sequential passes over the seeding sample, O(k · m · d) with m = rows per centroid × k, so it
grows with k², which is why it runs on a sample far smaller than the training sample (12 min of a 55 min
single-thread fit at 1M × 1024, k = 10,000). Each step is memory-bound on the CPU; where a CUDA GPU is
present the same loop runs in torch on it, so that seeding does not become the bottleneck next to
faiss-gpu. Both paths draw their random numbers from the same NumPy generator, so they pick the same
seeds up to floating-point ties. Rows are unit vectors, so squared Euclidean distance is 2 − 2·cos.
"""

from __future__ import annotations

import math

import numpy as np


def greedy_kmeanspp(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    trials: int | None = None,
    *,
    torch_device: str | None = None,
) -> np.ndarray:
    """Indices of k seed rows of `x` (unit float32 rows), chosen by greedy k-means++.

    `torch_device` (e.g. "cuda") runs the loop in torch on that device instead of NumPy.
    """
    m = x.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k must be in [1, {m}], got {k}")
    trials = trials or 2 + int(math.log(k))
    if torch_device is not None:
        return _greedy_torch(x, k, rng, trials, torch_device)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(m)
    closest = np.maximum(2.0 - 2.0 * (x @ x[chosen[0]]), 0.0).astype(np.float32)
    for i in range(1, k):
        cumulative = np.cumsum(closest, dtype=np.float64)
        if cumulative[-1] <= 0:  # every row coincides with a seed already: any unused row will do
            unused = np.setdiff1d(np.arange(m), chosen[:i], assume_unique=False)
            chosen[i:] = unused[: k - i]
            break
        candidates = np.searchsorted(cumulative, rng.uniform(size=trials) * cumulative[-1], side="right")
        candidates = np.minimum(candidates, m - 1)
        dist = x @ x[candidates].T  # (m, trials) cosines …
        dist *= -2.0
        dist += 2.0  # … turned into squared distances in place
        np.maximum(dist, 0.0, out=dist)
        np.minimum(dist, closest[:, None], out=dist)
        best = int(np.argmin(dist.sum(axis=0, dtype=np.float64)))
        chosen[i] = candidates[best]
        closest = np.ascontiguousarray(dist[:, best])
    return chosen


def _greedy_torch(x: np.ndarray, k: int, rng: np.random.Generator, trials: int, device: str) -> np.ndarray:
    import torch

    m = x.shape[0]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(m)
    closest = (2.0 - 2.0 * (xt @ xt[int(chosen[0])])).clamp_(min=0.0)
    for i in range(1, k):
        cumulative = torch.cumsum(closest, 0, dtype=torch.float64)
        total = float(cumulative[-1])
        if total <= 0:
            unused = np.setdiff1d(np.arange(m), chosen[:i], assume_unique=False)
            chosen[i:] = unused[: k - i]
            break
        targets = torch.from_numpy(rng.uniform(size=trials) * total).to(device)
        candidates = torch.searchsorted(cumulative, targets, right=True).clamp_(max=m - 1)
        dist = (2.0 - 2.0 * (xt @ xt[candidates].T)).clamp_(min=0.0)
        torch.minimum(dist, closest[:, None], out=dist)
        best = int(torch.argmin(dist.sum(0, dtype=torch.float64)))
        chosen[i] = int(candidates[best])
        closest = dist[:, best].contiguous()
    return chosen
