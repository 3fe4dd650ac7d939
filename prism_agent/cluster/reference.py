"""A small, obviously-correct NumPy spherical k-means: the oracle the faiss path is tested against.

It follows the paper's clustering literally (unit rows, argmax-cosine assignment, centroid = re-normalised
member sum, a fixed number of Lloyd iterations) and holds everything in RAM, so use it only on test-sized data.
One deliberate difference from faiss: an empty cluster keeps its previous centroid here, whereas faiss
splits a large cluster to refill it; on well-separated data neither ever happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism_agent.cluster.rows import normalized
from prism_agent.config.cluster import InitMethod


@dataclass(frozen=True)
class ReferenceFit:
    centroids: np.ndarray  # (k, dim) float64, unit rows
    labels: np.ndarray  # (n,) int64, assignment to the final centroids
    cosines: np.ndarray  # (n,) float64


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Plain D² seeding on the sphere (squared Euclidean distance of unit vectors = 2 − 2 cos)."""
    chosen = [int(rng.integers(x.shape[0]))]
    d2 = np.maximum(2.0 - 2.0 * (x @ x[chosen[0]]), 0.0)
    for _ in range(1, k):
        total = d2.sum()
        nxt = int(rng.choice(x.shape[0], p=d2 / total)) if total > 0 else int(rng.integers(x.shape[0]))
        chosen.append(nxt)
        d2 = np.minimum(d2, np.maximum(2.0 - 2.0 * (x @ x[nxt]), 0.0))
    return x[chosen].copy()


def reference_spherical_kmeans(
    features: np.ndarray,
    k: int,
    *,
    iterations: int = 20,
    init: InitMethod = "first-k",
    seed: int = 0,
    init_centroids: np.ndarray | None = None,
) -> ReferenceFit:
    x = normalized(features).astype(np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    rng = np.random.default_rng(seed)
    if init_centroids is not None:
        c = normalized(init_centroids).astype(np.float64)
    elif init == "first-k":
        c = x[:k].copy()
    elif init == "random":
        c = x[rng.choice(n, size=k, replace=False)].copy()
    else:
        c = _kmeanspp(x, k, rng)
    for _ in range(iterations):
        labels = np.argmax(x @ c.T, axis=1)
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        norms = np.linalg.norm(sums, axis=1)
        filled = norms > 0
        c[filled] = sums[filled] / norms[filled, None]
    sims = x @ c.T
    labels = np.argmax(sims, axis=1)
    return ReferenceFit(centroids=c, labels=labels, cosines=sims[np.arange(n), labels])
