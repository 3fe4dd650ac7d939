"""Pick the N rows of a dataset that maximise G-Vendi: the metric turned into a data-pruning tool.

`gain` is greedy on the marginal gain of G-Vendi (q = 1). Evaluating the exact gain of every candidate at
every step costs an eigendecomposition per candidate, so each step ranks all candidates by the q = 2 order
first, which has a closed-form update: with unit rows ĝ and S the selection (m rows),
Σλ² = (1/m²) Σ_{i,j∈S} (ĝᵢ·ĝⱼ)², and adding x adds 2 Σ_{i∈S} (ĝᵢ·x)² + 1 to the double sum. One
matrix-vector product a step keeps Σ_{i∈S} (ĝᵢ·x)² for every x. The `shortlist` best by q = 2 then get their
exact q = 1 G-Vendi (eigenvalues of the (m+1)×(m+1) cosine kernel, which shares its non-zero eigenvalues
with the d×d covariance), and the best of those is taken. Once the selection reaches d rows the kernel is
larger than the covariance and the q = 2 order alone decides (each step's exact evaluation would cost
shortlist·d³).

`sparse` is the paper's notion of under-represented: spherical k-means on the features, then one row per
cluster, smallest clusters first, round-robin (each cluster's rows nearest its centroid first). `random`
is the baseline every selection is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from prism_agent.diversity.vendi import vendi, vendi_from_eigenvalues
from prism_agent.errors import BadInputError

Method = Literal["gain", "sparse", "random"]
METHODS: tuple[str, ...] = ("gain", "sparse", "random")


@dataclass(frozen=True)
class Selection:
    positions: np.ndarray  # (N,) int64 row positions in the input, in the order picked
    gains: np.ndarray  # (N,) float64: G-Vendi after this pick minus before (first pick: 1.0); NaN if unknown
    g_vendi: float  # of the selection
    method: str


def _unit(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise BadInputError("a feature row is all zeros (no gradient direction); drop it before selecting")
    return x / norms


def _kernel_g_vendi(k: np.ndarray) -> float:
    """G-Vendi of rows whose cosine kernel is `k` (m×m): its eigenvalues / m are the covariance's."""
    lam = np.clip(np.linalg.eigvalsh(k / k.shape[0]), 0.0, None)
    return vendi_from_eigenvalues(lam, 1.0)


def greedy_gain(features: np.ndarray, size: int, *, shortlist: int = 16, seed: int = 0) -> Selection:
    x = _unit(features)
    n, d = x.shape
    size = _check_size(size, n)
    rng = np.random.default_rng(seed)
    ref = x[rng.choice(n, size=min(n, 1024), replace=False)]
    # first pick: the row least aligned with the data (smallest mean squared cosine to a reference sample)
    first = int(np.argmin(((x @ ref.T) ** 2).sum(axis=1)))
    chosen = [first]
    taken = np.zeros(n, dtype=bool)
    taken[first] = True
    sq = (x @ x[first]) ** 2  # Σ_{i∈S} (ĝᵢ·x)² for every x
    kernel = np.ones((1, 1))
    gains = [1.0]
    current = 1.0
    for _ in range(1, size):
        m = len(chosen)
        score = np.where(taken, np.inf, sq)
        if m < d:
            short = np.argpartition(score, min(shortlist, n - m) - 1)[: min(shortlist, n - m)]
            cross = x[chosen] @ x[short].T  # (m, shortlist) cosines to the selection
            best, best_g = -1, -math.inf
            for j, cand in enumerate(short):
                k = np.empty((m + 1, m + 1))
                k[:m, :m], k[:m, m], k[m, :m], k[m, m] = kernel, cross[:, j], cross[:, j], 1.0
                g = _kernel_g_vendi(k)
                if g > best_g:
                    best, best_g = int(cand), g
            kernel = np.block([[kernel, (x[chosen] @ x[best])[:, None]],
                               [(x[chosen] @ x[best])[None, :], np.ones((1, 1))]])
            gains.append(best_g - current)
            current = best_g
        else:
            best = int(np.argmin(score))
            gains.append(math.nan)
        chosen.append(best)
        taken[best] = True
        sq += (x @ x[best]) ** 2
    positions = np.asarray(chosen, dtype=np.int64)
    return Selection(positions, np.asarray(gains), vendi(x[positions]).q1, "gain")


def sparse_first(features: np.ndarray, size: int, *, seed: int = 0) -> Selection:
    from prism_agent.cluster.round import build_round
    from prism_agent.config.cluster import ClusterConfig

    n = features.shape[0]
    size = _check_size(size, n)
    rnd = build_round(np.asarray(features, dtype=np.float32), ClusterConfig(seed=seed))
    queues = []
    for c in np.argsort(rnd.sizes, kind="stable"):  # smallest clusters first
        members = np.flatnonzero(rnd.labels == c)
        queues.append(list(members[np.argsort(-rnd.cosines[members], kind="stable")]))
    chosen: list[int] = []
    while len(chosen) < size:
        for q in queues:
            if q and len(chosen) < size:
                chosen.append(int(q.pop(0)))
    positions = np.asarray(chosen, dtype=np.int64)
    return Selection(positions, np.full(size, math.nan), vendi(_unit(features)[positions]).q1, "sparse")


def random_subset(features: np.ndarray, size: int, *, seed: int = 0) -> Selection:
    n = features.shape[0]
    size = _check_size(size, n)
    positions = np.random.default_rng(seed).choice(n, size=size, replace=False).astype(np.int64)
    return Selection(positions, np.full(size, math.nan), vendi(_unit(features)[positions]).q1, "random")


def select(features: np.ndarray, size: int, method: str = "gain", *, seed: int = 0) -> Selection:
    if method == "gain":
        return greedy_gain(features, size, seed=seed)
    if method == "sparse":
        return sparse_first(features, size, seed=seed)
    if method == "random":
        return random_subset(features, size, seed=seed)
    raise BadInputError(f"--method {method!r}: expected one of {', '.join(METHODS)}")


def _check_size(size: int, n: int) -> int:
    if size < 1:
        raise BadInputError("--size must be at least 1")
    if size > n:
        raise BadInputError(f"--size {size} is larger than the dataset's {n} usable rows")
    return size
