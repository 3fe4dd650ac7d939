"""Each candidate's nearest pool row by cosine, without reading the whole pool: the round's clustering as an
inverted-file index.

The `gain` and `novelty` rules compare every candidate with its nearest pool row (README "Acceptance rules").
Brute force costs O(n·b·d): ≈150 s for 8,192 candidates against 1.5M rows on one thread, and it reads the
whole pool. These rules run on the prismatic graph, so every round already holds a clustering of the pool
(centroids and every pool row's label, `cluster/round.py`). A candidate's nearest row almost always lies in
one of its few nearest clusters, so the search looks at each candidate's `nprobe` nearest centroids and
compares it with those clusters' member rows only. The cost is O(b·nprobe·(k·d + members·d)). Members are
read one of two ways (never the whole pool in RAM at once): gathered by position from the feature store's
memmaps, a chunk of clusters at a time, when the probed clusters hold a small share of the pool; or, when
they hold most of it (a round's 8,192 candidates × 8 probes touch nearly every cluster of a 1.5M pool), by
reading the pool once in order in large blocks and comparing each block's rows with the candidates that
probe their clusters, which costs one sequential read instead of a page fault per gathered row, plus two
1 GiB block buffers (kept for the process's life, `scratch.py`): it pays from about a million rows on. At
that size the rows of the clustering's fit are also kept in cluster order, unit length, in one file
(`ordered.py`): then each probed cluster is one contiguous read and one product, and only the rows
committed since the fit are gathered from the store.

It is approximate: a row just across a cluster boundary can be missed. Its recall against brute force on
clustered data is measured in `bench/bench_gain_scale.py` (BENCHMARKS.md, "Acceptance rules at scale").
A copy of a pool row is always found: its nearest centroid is its original's (every label is its row's nearest
centroid of all k, found by the same search; `nearby.py` says why a refit keeps it so), and that cluster is
probed first. Small searches (n·b under `BRUTE_PAIRS` on pools of
at most `BRUTE_MAX_ROWS`), and pools without a clustering, are answered exactly by brute force.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism_agent.cluster.members import ClusterMembers
from prism_agent.cluster.ordered import OrderedPool
from prism_agent.cluster.rows import Rows, blocks_from, joined_blocks, normalized
from prism_agent.cluster.scratch import scratch
from prism_agent.cluster.screen import centroid_index

NPROBE = 8  # clusters searched per candidate: recall measured in BENCHMARKS.md "Acceptance rules at scale"
BRUTE_PAIRS = 2 * 10**8  # n·b up to this: brute force (≈ 3 s on one thread at d = 1024), exact,
BRUTE_MAX_ROWS = 262_144  # on pools up to this (brute force reads the whole pool, 1 GiB here at d = 1024:
# `gain` looks up a few candidates at a time, which on a 1.5M pool would read 6 GB for each lookup)
_BLOCK = 16_384  # pool rows per brute-force block
_CHUNK_ROWS = 32_768  # member rows gathered per chunk of clusters (128 MiB at d = 1024)
SWEEP_FRACTION = 0.25  # probed clusters holding more than this share of the pool: read it in order instead,
SWEEP_MIN_ROWS = 1_000_000  # on pools this large (measured: BENCHMARKS.md "Acceptance rules at scale")
_SWEEP_ROWS = 262_144  # pool rows per sequential block of a sweep (1 GiB at d = 1024)
_SPAN_GAP = 64  # rows of unprobed clusters read rather than starting a new read of the ordered copy


@dataclass(frozen=True)
class Nearest:
    cosines: np.ndarray  # (b,) float64: cosine to the nearest row found (−inf when none was searched)
    positions: np.ndarray  # (b,) int64: that row's pool position (−1 when none)


def _unit32(x: np.ndarray) -> np.ndarray:
    return normalized(np.asarray(x, dtype=np.float32))


def _merge(best: Nearest, sims: np.ndarray, queries: np.ndarray, positions: np.ndarray) -> None:
    """Fold (rows × queries) similarities into `best` (strictly better only: the earlier row wins ties)."""
    arg = sims.argmax(axis=0)
    top = sims[arg, np.arange(sims.shape[1])].astype(np.float64)
    better = top > best.cosines[queries]
    best.cosines[queries[better]] = top[better]
    best.positions[queries[better]] = positions[arg[better]]


def brute_nearest(rows: Rows, x: np.ndarray, *, exclude: np.ndarray | None = None, first: int = 0,
                  best: Nearest | None = None) -> Nearest:
    """Exact nearest pool row of each row of `x` among pool positions ≥ `first`; `exclude[i]` is a position
    row i may not match (itself, for a pool row's nearest other row; −1: none)."""
    q = _unit32(x)
    b = q.shape[0]
    best = best or Nearest(np.full(b, -np.inf), np.full(b, -1, dtype=np.int64))
    queries = np.arange(b)
    for start, block in blocks_from(rows, first, _BLOCK):
        sims = normalized(block, start=start) @ q.T  # (block, b) float32
        if exclude is not None:
            own = (exclude >= start) & (exclude < start + sims.shape[0])
            sims[exclude[own] - start, np.flatnonzero(own)] = -np.inf
        _merge(best, sims, queries, np.arange(start, start + sims.shape[0]))
    return best


def ivf_nearest(rows: Rows, centroids: np.ndarray, members: ClusterMembers, x: np.ndarray, *,
                nprobe: int = NPROBE, exclude: np.ndarray | None = None,
                ordered: OrderedPool | None = None, index=None) -> Nearest:
    """Nearest pool row among the members of each row's `nprobe` nearest clusters (module docstring).
    `ordered`: the clustering's first rows in cluster order (`ordered.py`), read instead of the store for them;
    `index`: the centroids' inner-product index, when the caller keeps one.
    Rows past the clustering (`members.n`) are searched by brute force."""
    q = _unit32(x)
    b = q.shape[0]
    best = Nearest(np.full(b, -np.inf), np.full(b, -1, dtype=np.int64))
    if b == 0:
        return best
    index = index if index is not None else centroid_index(normalized(centroids), gpu=False)
    _, probes = index.search(q, min(nprobe, centroids.shape[0]))  # the same search that assigned the pool
    pair_cluster, pair_query = probes.ravel(), np.repeat(np.arange(b), probes.shape[1])
    keep = pair_cluster >= 0
    order = np.argsort(pair_cluster[keep], kind="stable")
    pair_cluster, pair_query = pair_cluster[keep][order], pair_query[keep][order]
    clusters, starts = np.unique(pair_cluster, return_index=True)
    bounds = np.append(starts, pair_cluster.size)
    if ordered is not None and ordered.k == members.k and ordered.n <= members.n:
        _from_ordered(ordered, q, clusters, bounds, pair_query, best, exclude)
        if ordered.n < members.n:  # rows committed since the fit: gathered from the store
            tail = ClusterMembers(np.asarray(members.labels[ordered.n :]), members.k)
            _gather(rows, tail, q, clusters, bounds, pair_query, best, exclude, first=ordered.n)
    elif members.n >= SWEEP_MIN_ROWS and members.sizes[clusters].sum() > SWEEP_FRACTION * members.n:
        _sweep(rows, members, q, clusters, bounds, pair_query, best, exclude)
    else:
        _gather(rows, members, q, clusters, bounds, pair_query, best, exclude)
    if members.n < rows.n:  # rows committed after this clustering was made
        brute_nearest(rows, x, exclude=exclude, first=members.n, best=best)
    return best


def _from_ordered(ordered: OrderedPool, q: np.ndarray, clusters: np.ndarray, bounds: np.ndarray,
                  pair_query: np.ndarray, best: Nearest, exclude: np.ndarray | None) -> None:
    """Each probed cluster's rows are one slice of the cluster-ordered copy, already unit length. Probed
    clusters close together in the file (ascending ids) are read in one span into a kept buffer."""
    offsets = ordered.offsets
    with scratch(min(_SWEEP_ROWS, max(1, ordered.n)), q.shape[1]) as (buffer, _), \
            open(ordered.path, "rb", buffering=0) as fh:
        cap = buffer.shape[0]
        j = 0
        while j < clusters.size:
            start, stop = int(offsets[clusters[j]]), int(offsets[clusters[j] + 1])
            last = j + 1  # the span: probed clusters j..last-1, nearly adjacent, within the buffer
            while last < clusters.size:
                a, e = int(offsets[clusters[last]]), int(offsets[clusters[last] + 1])
                if e - start > cap or a - stop > _SPAN_GAP:
                    break
                stop, last = e, last + 1
            for lo in range(start, stop, cap):  # one cluster larger than the buffer: in pieces (none if empty)
                hi = min(stop, lo + cap)
                rows = ordered.read_into(fh, lo, hi, buffer)
                for jj in range(j, last):
                    c = clusters[jj]
                    a, e = max(int(offsets[c]), lo), min(int(offsets[c + 1]), hi)
                    if a >= e:
                        continue
                    queries = pair_query[bounds[jj] : bounds[jj + 1]]
                    sims = rows[a - lo : e - lo] @ q[queries].T
                    positions = np.asarray(ordered.positions[a:e])
                    if exclude is not None:
                        sims[positions[:, None] == exclude[queries][None, :]] = -np.inf
                    _merge(best, sims, queries, positions)
            j = last


def _gather(rows: Rows, members: ClusterMembers, q: np.ndarray, clusters: np.ndarray, bounds: np.ndarray,
            pair_query: np.ndarray, best: Nearest, exclude: np.ndarray | None, first: int = 0) -> None:
    """Few clusters probed: gather their members by position, a chunk of clusters at a time (`members` may
    cover the pool from position `first` on)."""
    sizes = members.sizes[clusters]
    at = 0
    while at < clusters.size:  # a chunk of clusters whose members fit _CHUNK_ROWS (one big cluster alone)
        end = at + 1
        total = int(sizes[at])
        while end < clusters.size and total + sizes[end] <= _CHUNK_ROWS:
            total += int(sizes[end])
            end += 1
        parts = [members.of(int(c)) + first for c in clusters[at:end]]
        positions = np.concatenate(parts)
        if positions.size:
            feats = normalized(rows.take(positions), copy=False)
            offset = 0
            for j, part in zip(range(at, end), parts, strict=True):
                queries = pair_query[bounds[j] : bounds[j + 1]]
                if part.size:
                    sims = feats[offset : offset + part.size] @ q[queries].T
                    if exclude is not None:
                        hit = part[:, None] == exclude[queries][None, :]
                        sims[hit] = -np.inf
                    _merge(best, sims, queries, part)
                offset += part.size
        at = end


def _sweep(rows: Rows, members: ClusterMembers, q: np.ndarray, clusters: np.ndarray, bounds: np.ndarray,
           pair_query: np.ndarray, best: Nearest, exclude: np.ndarray | None) -> None:
    """Most of the pool probed: read it once in order (one sequential pass instead of a page fault per
    gathered row; BENCHMARKS.md "Acceptance rules at scale") and compare each block's rows with the candidates
    that probe their cluster."""
    slot = np.full(members.k, -1, dtype=np.int64)
    slot[clusters] = np.arange(clusters.size)
    probing = q[pair_query]  # each cluster's probing candidates, contiguous: a view per cluster below
    with scratch(min(_SWEEP_ROWS, max(1, members.n)), q.shape[1]) as (buffer, grouped):
        _sweep_with(rows, members, slot, probing, bounds, pair_query, best, exclude, buffer, grouped)


def _sweep_with(rows: Rows, members: ClusterMembers, slot: np.ndarray, probing: np.ndarray,
                bounds: np.ndarray, pair_query: np.ndarray, best: Nearest, exclude: np.ndarray | None,
                buffer: np.ndarray, grouped: np.ndarray) -> None:
    """`_sweep`'s pass over the pool, in `buffer` (the block read) and `grouped` (its probed rows, cluster by
    cluster)."""
    labels = members.labels
    for start, block in joined_blocks(rows, 0, members.n, buffer):
        lab = np.asarray(labels[start : start + block.shape[0]])
        inside = np.flatnonzero(slot[lab] >= 0)
        if inside.size == 0:
            continue
        order = inside[np.argsort(lab[inside], kind="stable")]
        present, firsts = np.unique(lab[order], return_index=True)
        ends = np.append(firsts[1:], order.size)
        sorted_rows = grouped[: order.size]
        np.take(block, order, axis=0, out=sorted_rows, mode="clip")  # "clip": unbuffered (order is in range)
        # float32 sums (relative error ~1e-7 at d = 1024): a float64 einsum converts every element, 6× slower
        norms = np.sqrt(np.einsum("ij,ij->i", sorted_rows, sorted_rows))
        if not np.isfinite(norms).all():
            from prism_agent.errors import BadInputError

            bad = start + int(order[np.flatnonzero(~np.isfinite(norms))[0]])
            raise BadInputError(f"features contain NaN or infinite values (first at row {bad})")
        norms[norms == 0] = 1.0  # an all-zero row stays zero: cosine 0
        inverse = (1.0 / norms)[:, None]  # applied to the few products, not to the rows
        positions = start + order
        for c, a, e in zip(present, firsts, ends, strict=True):
            j = slot[c]
            lo, hi = bounds[j], bounds[j + 1]
            queries = pair_query[lo:hi]
            sims = sorted_rows[a:e] @ probing[lo:hi].T
            sims *= inverse[a:e]
            if exclude is not None:
                sims[positions[a:e, None] == exclude[queries][None, :]] = -np.inf
            _merge(best, sims, queries, positions[a:e])


class PoolSearch:
    """Nearest pool rows of a feature source, through a clustering when one is given and brute force would
    cost more than `BRUTE_PAIRS` pair products or read a pool of more than `BRUTE_MAX_ROWS` rows."""

    def __init__(self, rows: Rows, centroids: np.ndarray | None = None, labels: np.ndarray | None = None,
                 *, nprobe: int = NPROBE, brute_pairs: int | None = None, ordered: OrderedPool | None = None):
        self.rows = rows
        self.ordered = ordered
        self.nprobe = int(nprobe)
        self.brute_pairs = BRUTE_PAIRS if brute_pairs is None else int(brute_pairs)
        self.centroids = None if centroids is None else np.asarray(centroids, dtype=np.float32)
        self._labels = labels
        self._members: ClusterMembers | None = None
        self._index = None

    @property
    def indexed(self) -> bool:
        return self.centroids is not None and self._labels is not None and len(self._labels) <= self.rows.n

    def members(self) -> ClusterMembers:
        if self._members is None:
            self._members = ClusterMembers(np.asarray(self._labels), self.centroids.shape[0])
        return self._members

    def nearest(self, x: np.ndarray, *, exclude: np.ndarray | None = None) -> Nearest:
        x = np.atleast_2d(x)
        if not self.indexed or (self.rows.n * x.shape[0] <= self.brute_pairs and self.rows.n <= BRUTE_MAX_ROWS):
            return brute_nearest(self.rows, x, exclude=exclude)
        return ivf_nearest(self.rows, self.centroids, self.members(), x, nprobe=self.nprobe, exclude=exclude,
                           ordered=self.ordered, index=self._centroid_index())

    def _centroid_index(self):
        """Built once per search object: `gain` asks for nearest rows in a few batches."""
        if self._index is None:
            self._index = centroid_index(normalized(self.centroids), gpu=False)
        return self._index

    def threshold(self, percentile: float, sample: int, seed: int = 0) -> float:
        """The `percentile` of sampled pool rows' cosine to their nearest other pool row (`novelty.py`)."""
        n = self.rows.n
        if n < 2:
            return 1.0  # one row has no neighbour: only a copy of it is not novel
        picked = np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False))
        found = self.nearest(self.rows.take(picked), exclude=picked)
        return float(np.percentile(found.cosines, percentile))
