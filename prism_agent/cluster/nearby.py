"""A warm refit's Lloyd steps, each training row compared with the centroids near its previous cluster's only.

A warm refit starts from the previous centroids, and in a few Lloyd steps from there a row mostly moves
between clusters around its old one. Each step of faiss' k-means compares every training row with all k
centroids (n_train·k·d: at 1.5M rows, k = 15,000, one thread, 469 of a refit's 1,060 wall seconds; 40 s
here, and the whole refit 760 → 433 CPU s, BENCHMARKS.md "Clustering at scale"); here a row is compared
with the `refit_neighbours` centroids nearest its previous centroid, k/m times less: the training rows are
grouped by their previous label, and each group is compared with its own short list in one matrix product.
Empty clusters keep their seed.

Only the training is approximate: every pool row is then assigned among all k (`round.build_round`), so
labels are each row's nearest centroid, as the nearest-row search (`ivf.py`) requires: it finds a copy of a
pool row by probing the copy's nearest clusters. (An assignment restricted the same way gave labels whose
cluster was outside a row's 8 nearest for 13 % of rows on the benchmark's noise-dominated features, and
`gain` then kept 161 of 2,048 copies of pool rows; a triangle-inequality certificate of the restricted
answer held for almost no row at d = 1024: BENCHMARKS.md.)
"""

from __future__ import annotations

import time

import numpy as np

from prism_agent.cluster.assign import assign_nearest
from prism_agent.cluster.backend import faiss_threads
from prism_agent.cluster.kmeans import (
    KMeansFit,
    recorded_cosines,
    train_positions,
    train_sample_size,
    warm_centroids,
)
from prism_agent.cluster.rows import Rows, normalized
from prism_agent.cluster.screen import centroid_index
from prism_agent.config.cluster import ClusterConfig


def neighbour_lists(previous: np.ndarray, centroids: np.ndarray, m: int) -> np.ndarray:
    """(k_previous, m) indices of the `m` centroids nearest each previous centroid, nearest first."""
    index = centroid_index(normalized(centroids), gpu=False)
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
        init_started = time.perf_counter()
        centroids = warm_centroids(x, previous, k, config, recorded_cosines(positions, cosines))
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
