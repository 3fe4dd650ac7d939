"""Which pool samples become the few-shot examples of one generation prompt (README, "Gradient clusters").

Modes:
- "smallest" (default, the released helper): a random cluster among the smallest `smallest_fraction`
  of non-empty clusters (at least one cluster), restricted to sparse ones when any of those are sparse,
  so the examples sit where accepted candidates must land;
- "sparse": a random non-empty cluster of the sparse set;
- "pool": random samples of the whole pool, ignoring clusters (what the paper's released generation
  script did), useful as the no-targeting baseline.

Up to `shots` members are drawn without replacement and returned in random order. When the chosen cluster
has fewer than `shots` members (common on a small pool, where the smallest clusters are singletons) and the
centroids are given, the prompt is filled from the clusters nearest to it, sparse ones first: a one-example
prompt makes a small generator drift off format, and the neighbours keep the examples in the same region.
The choice depends on nothing but the inputs and `seed`, which may be a tuple such as (round, prompt index):
a resumed run rebuilds the identical prompt, so its cached LLM call is replayed rather than paid for again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from prism_agent.cluster.members import ClusterMembers
from prism_agent.cluster.sparse import SparseSet
from prism_agent.config.cluster import FewShotMode


@dataclass(frozen=True)
class FewShotPick:
    mode: FewShotMode
    cluster: int | None  # None for mode "pool"
    positions: np.ndarray  # pool positions (int64), in prompt order


def candidate_clusters(
    members: ClusterMembers,
    sparse: SparseSet | None,
    mode: FewShotMode,
    smallest_fraction: float = 0.10,
    min_clusters: int = 1,
) -> np.ndarray:
    """The clusters a "smallest"/"sparse" pick draws from (uniformly)."""
    nonempty = members.sizes > 0
    if mode == "sparse":
        if sparse is None:
            raise ValueError("mode 'sparse' needs the sparse set")
        ids = np.flatnonzero(sparse.mask & nonempty)
        return ids if ids.size else np.flatnonzero(nonempty)
    count = max(1, min_clusters, math.floor(Fraction(repr(smallest_fraction)) * int(nonempty.sum())))
    ids = members.smallest(count)
    if sparse is not None:
        in_sparse = ids[sparse.mask[ids]]
        if in_sparse.size:
            ids = in_sparse
    return ids


def pick_fewshot(
    members: ClusterMembers,
    sparse: SparseSet | None = None,
    *,
    seed: int | Sequence[int],
    shots: int = 5,
    mode: FewShotMode = "smallest",
    smallest_fraction: float = 0.10,
    centroids: np.ndarray | None = None,
    min_clusters: int = 1,
) -> FewShotPick:
    if shots < 1:
        raise ValueError("shots must be at least 1")
    if members.n == 0:
        raise ValueError("cannot pick few-shot examples from an empty pool")
    rng = np.random.default_rng(seed)
    if mode == "pool":
        take = min(shots, members.n)
        return FewShotPick(mode=mode, cluster=None, positions=rng.choice(members.n, size=take, replace=False))
    clusters = candidate_clusters(members, sparse, mode, smallest_fraction, min_clusters)
    cluster = int(clusters[rng.integers(clusters.size)])
    pool = members.of(cluster)
    take = min(shots, pool.size)
    positions = pool[rng.choice(pool.size, size=take, replace=False)]
    if take < shots and centroids is not None:
        positions = np.concatenate([positions, _neighbours(members, sparse, centroids, cluster, shots - take, rng)])
        positions = positions[rng.permutation(positions.size)]
    return FewShotPick(mode=mode, cluster=cluster, positions=positions.astype(np.int64))


def _neighbours(members: ClusterMembers, sparse: SparseSet | None, centroids: np.ndarray, cluster: int,
                need: int, rng: np.random.Generator) -> np.ndarray:
    """`need` members of the clusters nearest `cluster` (cosine of centroids), sparse clusters first."""
    cos = np.asarray(centroids, dtype=np.float64) @ np.asarray(centroids[cluster], dtype=np.float64)
    is_sparse = sparse.mask if sparse is not None else np.zeros(cos.size, dtype=bool)
    order = np.lexsort((-cos, ~is_sparse))  # sparse first, then by decreasing cosine
    taken: list[np.ndarray] = []
    for other in order:
        if need <= 0:
            break
        if other == cluster or members.sizes[other] == 0:
            continue
        pool = members.of(int(other))
        picked = pool[rng.choice(pool.size, size=min(need, pool.size), replace=False)]
        taken.append(picked)
        need -= picked.size
    return np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)
