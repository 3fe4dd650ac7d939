"""A warm refit that compares each row with the centroids near its previous cluster's, not with all k.

A warm refit starts from the previous centroids, and after a few Lloyd steps from there a row's new cluster is
almost always one of the clusters around its old one. Searching all k centroids for every row costs n·k·d
(at 1.5M rows and k = 15,000: 760 s on one thread, BENCHMARKS.md "Clustering at scale"); searching the
`refit_neighbours` centroids nearest its previous centroid costs n·m·d, k/m times less. Both the Lloyd steps
on the training sample and the final assignment of every pool row work this way: rows are grouped by their
previous label, and each group is compared with its own short list of centroids in one matrix product.

It is approximate: a row whose best centroid is not among the m nearest its old one gets the best of those m.
How often that happens (recall against a full search) and what it does to decisions are measured in
`bench/refit_cost.py` (BENCHMARKS.md). Rows without a previous label (committed after the previous
clustering) are searched against all k, as are all rows when m ≥ k. Empty clusters keep their seed.
"""

from __future__ import annotations

import time

import numpy as np

from prism_agent.cluster.assign import Assignment, assign_nearest
from prism_agent.cluster.backend import faiss_threads, inner_product_index
from prism_agent.cluster.kmeans import KMeansFit, train_positions, train_sample_size, warm_centroids
from prism_agent.cluster.rows import Rows, joined_blocks, normalized
from prism_agent.config.cluster import ClusterConfig
from prism_agent.errors import BadInputError

# Pool rows per block of the final assignment: about `_ROWS_PER_CLUSTER` rows of each cluster, so the per-group
# loop runs ≈ n / 16 times in all (a block holds a few rows of nearly every cluster), within [64K, 256K] rows
# (0.25–1 GiB at d = 1024, two buffers, whose first touch costs ≈ 2 s/GiB on these VMs).
_ROWS_PER_CLUSTER = 16
_ASSIGN_MIN_ROWS, _ASSIGN_ROWS = 65_536, 262_144
_FULL_ROWS = 65_536  # rows searched among all k per call
_MARGIN = 1e-3  # radians kept off the bound: float32 cosines near 1 lose angle precision


def neighbour_lists(previous: np.ndarray, centroids: np.ndarray, m: int) -> np.ndarray:
    """(k_previous, m) indices of the `m` centroids nearest each previous centroid, nearest first."""
    index = inner_product_index(normalized(centroids), gpu=False)
    _, lists = index.search(normalized(np.asarray(previous, dtype=np.float32)), min(m, centroids.shape[0]))
    return lists.astype(np.int64)


def _groups(old: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For labels sorted ascending: each distinct label and its [start, end) run."""
    present, starts = np.unique(old, return_index=True)
    return present, starts, np.append(starts[1:], old.size)


def assign_sorted(x: np.ndarray, old: np.ndarray, lists: np.ndarray,
                  centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and cosines of unit rows `x`, sorted by their previous label `old`, each searched among
    `lists[old]` only."""
    labels = np.empty(x.shape[0], dtype=np.int64)
    cosines = np.empty(x.shape[0], dtype=np.float32)
    for g, a, e in zip(*_groups(old), strict=True):
        near = lists[g]
        sims = x[a:e] @ centroids[near].T
        best = sims.argmax(axis=1)
        labels[a:e] = near[best]
        cosines[a:e] = sims[np.arange(e - a), best]
    return labels, cosines


def _centroid_sums(x: np.ndarray, old: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Σ of the rows of each new cluster, summed group by group (each previous group's rows go to a few
    clusters only, so no sort of the whole sample is needed)."""
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    for _, a, e in zip(*_groups(old), strict=True):
        lab = labels[a:e]
        order = np.argsort(lab, kind="stable")
        targets, firsts = np.unique(lab[order], return_index=True)
        sums[targets] += np.add.reduceat(x[a:e][order], firsts, axis=0)
    return sums


def _previous_labels(rows: Rows, positions: np.ndarray, labels: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Each position's previous label; positions past the previous clustering are searched against it."""
    old = np.empty(positions.size, dtype=np.int64)
    inside = positions < labels.shape[0]
    old[inside] = np.asarray(labels)[positions[inside]]
    if not inside.all():
        found = assign_nearest(rows.take(positions[~inside]), previous, threads=None, device="cpu")
        old[~inside] = found.labels
    return old


def fit_nearby(rows: Rows, k: int, config: ClusterConfig, *, previous: np.ndarray, labels: np.ndarray,
               cosines: np.ndarray | None = None) -> KMeansFit:
    """A warm refit's Lloyd steps on a training sample of `rows`, into k clusters, starting from `previous`
    centroids whose labels (and cosines) for the first rows are `labels` (`cosines`), each sample row
    searched among the `config.refit_neighbours` centroids nearest its previous one (approximate: these
    steps only train the centroids; `assign_nearby` then assigns every row exactly)."""
    started = time.perf_counter()
    m = config.refit_neighbours
    size = train_sample_size(rows.n, k, config, warm=True)
    positions = train_positions(rows.n, size, config.seed)
    previous = normalized(np.asarray(previous, dtype=np.float32))
    with faiss_threads(config.threads):
        old = _previous_labels(rows, positions, labels, previous)
        order = np.argsort(old, kind="stable")
        positions, old = positions[order], old[order]
        x = normalized(rows.take(positions), copy=False)
        known = None
        if cosines is not None:
            known = np.full(size, np.nan)
            inside = positions < len(cosines)
            known[inside] = np.asarray(cosines)[positions[inside]]
        init_started = time.perf_counter()
        centroids = warm_centroids(x, previous, k, config, known)
        lists = neighbour_lists(previous, centroids, m)
        init_seconds = time.perf_counter() - init_started
        objective = 0.0
        for _ in range(config.refit_iterations):
            assigned, cos = assign_sorted(x, old, lists, centroids)
            objective = float(cos.sum(dtype=np.float64))
            sums = _centroid_sums(x, old, assigned, k)
            norms = np.linalg.norm(sums, axis=1)
            filled = norms > 0
            centroids = centroids.copy()
            centroids[filled] = (sums[filled] / norms[filled, None]).astype(np.float32)
        del x
    return KMeansFit(centroids=normalized(centroids), train_size=size, train_mean_cosine=objective / size,
                     init=f"warm, {m} nearby", init_size=0, init_seconds=init_seconds,
                     iterations=config.refit_iterations, seconds=time.perf_counter() - started, gpu=False)


def assign_nearby(rows: Rows, labels: np.ndarray, centroids: np.ndarray, m: int,
                  stats: dict | None = None) -> Assignment:
    """Every row's nearest centroid of all k, exactly, searching most rows among `m` centroids only.

    A row whose previous label is g (`labels` covers the first rows; `centroids[g]` is that cluster after the
    refit, as a warm refit keeps the previous centroids' order) is compared with the m centroids nearest
    `centroids[g]`. Any other centroid c lies at least θ(g) from centroids[g] (the angle to its (m+1)-th
    nearest), so by the triangle inequality on the sphere it is at least θ(g) − angle(row, centroids[g]) from
    the row. When that is no less than the angle to the best of the m, the best is the nearest of all k
    (certified); other rows, and rows without a previous label, are searched among all k. Tight clusters
    certify nearly every row; on noise-dominated features few are, and the assignment costs what a full
    one does (BENCHMARKS.md, "Clustering at scale"). `stats`, if given, receives how many rows were
    certified and how many searched among all k."""
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    k = centroids.shape[0]
    counts = {"certified": 0, "searched": 0}
    if m >= k:  # nothing outside the lists: a full search
        found = assign_nearest(rows, centroids, threads=None, device="cpu")
        counts["searched"] = rows.n
        if stats is not None:
            stats.update(counts)
        return found
    lists = neighbour_lists(centroids, centroids, m + 1)
    # θ(g): the angle from centroids[g] to the nearest centroid outside its list, less a margin for float32
    outside = np.einsum("ij,ij->i", centroids, centroids[lists[:, m]], dtype=np.float64)
    theta = np.arccos(np.clip(outside, -1.0, 1.0)) - _MARGIN
    lists = lists[:, :m]
    index = inner_product_index(centroids, gpu=False)
    out_labels = np.empty(rows.n, dtype=np.int32)
    out_cosines = np.empty(rows.n, dtype=np.float32)
    size = min(max(1, rows.n), max(_ASSIGN_MIN_ROWS, min(_ASSIGN_ROWS, _ROWS_PER_CLUSTER * k)))
    buffer = np.empty((size, rows.dim), dtype=np.float32)  # one allocation each, for the whole pass
    grouped = np.empty_like(buffer)
    for start, block in joined_blocks(rows, 0, rows.n, buffer):
        stop = start + block.shape[0]
        old = np.full(stop - start, -1, dtype=np.int64)
        inside = min(stop, labels.shape[0]) - start
        if inside > 0:
            old[:inside] = np.asarray(labels[start : start + inside])
        old[old >= k] = -1  # a cluster the refit dropped: no anchor
        order = np.argsort(old, kind="stable")
        try:
            x = normalized(np.take(block, order, axis=0, out=grouped[: order.size], mode="clip"), copy=False)
        except BadInputError:
            normalized(block, start=start)  # raises again, naming the row by its pool position
            raise
        anchored = int(np.searchsorted(old[order], 0))  # rows before this have no previous label
        found = np.full(order.size, -1, dtype=np.int64)
        cos = np.zeros(order.size, dtype=np.float32)
        if anchored < order.size:
            a_sorted = old[order][anchored:]
            found[anchored:], cos[anchored:] = assign_sorted(x[anchored:], a_sorted, lists, centroids)
            to_anchor = np.einsum("ij,ij->i", x[anchored:], centroids[a_sorted], dtype=np.float64)
            sure = np.arccos(np.clip(to_anchor, -1.0, 1.0)) + \
                np.arccos(np.clip(cos[anchored:].astype(np.float64), -1.0, 1.0)) <= theta[a_sorted]
            found[anchored:][~sure] = -1
        unsure = np.flatnonzero(found < 0)
        counts["certified"] += order.size - unsure.size
        counts["searched"] += unsure.size
        for lo in range(0, unsure.size, _FULL_ROWS):  # searched among all k
            part = unsure[lo : lo + _FULL_ROWS]
            sims, ids = index.search(np.ascontiguousarray(x[part]), 1)
            found[part], cos[part] = ids[:, 0], sims[:, 0]
        out_labels[start + order] = found
        out_cosines[start + order] = cos
    if stats is not None:
        stats.update(counts)
    return Assignment(labels=out_labels, cosines=out_cosines)
