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
    centroids: np.ndarray | NearestClusters | None = None,
    min_clusters: int = 1,
) -> FewShotPick:
    """One prompt's few-shot pick (module docstring). `centroids`: to fill a small cluster's prompt from its
    neighbours; pass one `NearestClusters` for all of a round's prompts (`ClusterRound.pick_fewshot` does)."""
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
        if isinstance(centroids, NearestClusters):  # shared by a round's prompts: rank what they may draw too
            nearest, batch = centroids, clusters[members.sizes[clusters] < shots]
        else:  # a single pick: rank this cluster's neighbours only
            nearest, batch = NearestClusters(centroids, members, sparse), clusters[:0]
        fill = _neighbours(members, nearest, cluster, shots - take, batch, rng)
        positions = np.concatenate([positions, fill])
        positions = positions[rng.permutation(positions.size)]
    return FewShotPick(mode=mode, cluster=cluster, positions=positions.astype(np.int64))


class NearestClusters:
    """The clusters nearest each cluster by centroid cosine, sparse ones first: where a prompt whose cluster
    has fewer than `shots` members is filled from. A round asks for it for hundreds of small clusters (one
    per such prompt); one pass over the k × d centroids per prompt cost 18 CPU s a round at k = 15,000, so
    the cosines of every small cluster a round may draw are computed together in one matrix product, on
    first use, and only each one's first few neighbours are kept."""

    _CHUNK = 256  # clusters per matrix product (their cosines to all k: 30 MB at k = 15,000)
    _LENGTH = 8  # neighbours kept per cluster (a prompt needs at most shots − 1)

    def __init__(self, centroids: np.ndarray, members: ClusterMembers, sparse: SparseSet | None):
        self._centroids = centroids
        self._members = members
        self._sparse = sparse.mask if sparse is not None else np.zeros(members.k, dtype=bool)
        self._c64: np.ndarray | None = None
        self._first: dict[int, tuple[int, np.ndarray]] = {}  # cluster → (how many asked, its first neighbours)

    def first(self, cluster: int, count: int, batch: np.ndarray) -> np.ndarray:
        """The `count` non-empty clusters nearest `cluster` (sparse ones first, then by decreasing cosine,
        ties by id); `batch`: the other clusters likely to be asked for, computed along with it."""
        asked, known = self._first.get(cluster, (0, None))
        if known is None or count > asked:
            if self._c64 is None:
                self._c64 = np.asarray(self._centroids, dtype=np.float64)
            length = max(count, self._LENGTH)
            todo = [cluster] + [int(c) for c in batch if int(c) not in self._first and c != cluster]
            for lo in range(0, len(todo), self._CHUNK):
                part = todo[lo : lo + self._CHUNK]
                cos = self._c64[part] @ self._c64.T
                for row, c in zip(cos, part, strict=True):
                    self._first[c] = (length, self._rank(row, c, length))
            known = self._first[cluster][1]
        return known[:count]

    def _rank(self, cos: np.ndarray, cluster: int, count: int) -> np.ndarray:
        eligible = self._members.sizes > 0
        eligible[cluster] = False
        out: list[np.ndarray] = []
        for group in (eligible & self._sparse, eligible & ~self._sparse):
            ids = np.flatnonzero(group)
            if ids.size > count:
                ids = ids[np.argpartition(-cos[ids], count - 1)[:count]]
            out.append(ids[np.lexsort((ids, -cos[ids]))])
        return np.concatenate(out)[:count]


def _neighbours(members: ClusterMembers, nearest: NearestClusters, cluster: int, need: int, batch: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """`need` members of the clusters nearest `cluster` (`NearestClusters`), drawn cluster by cluster."""
    taken: list[np.ndarray] = []
    for other in nearest.first(cluster, need, batch):  # each has a member: `need` clusters are enough
        if need <= 0:
            break
        pool = members.of(int(other))
        picked = pool[rng.choice(pool.size, size=min(need, pool.size), replace=False)]
        taken.append(picked)
        need -= picked.size
    return np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)
