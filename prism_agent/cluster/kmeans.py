"""Spherical k-means on gradient features with faiss, trained on a bounded sample of the pool.

Spherical (cosine) k-means: rows and centroids are unit length, assignment is by largest inner product,
and a centroid is its members' sum re-normalised. faiss does exactly this with
`spherical=True` over an inner-product index, with BLAS-blocked search, OpenMP and optional GPU; a pure
NumPy loop (see `reference.py`) is kept only as the oracle for tests.

For a 1.5M pool at k = 1 % a full 20-iteration fit over every row is 2·n·k·d·20 ≈ 1 PFLOP, so the
centroids are trained on a uniform sample (`train_points_per_centroid` rows per centroid, at most
`train_sample_max`), and the whole pool is then assigned in streamed blocks (`assign.py`). The sample is
the only normalised copy held in RAM.

Seeds: greedy k-means++ on a smaller subset of the sample by default (`seeding.py` says why), faiss' own
random rows, or the paper code's first k pool rows. faiss then runs the Lloyd iterations from them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np

from prism_agent.cluster.backend import faiss_threads, torch_cuda_device, use_gpu
from prism_agent.cluster.rows import Rows, normalized
from prism_agent.cluster.seeding import greedy_kmeanspp
from prism_agent.config.cluster import ClusterConfig, InitMethod
from prism_agent.errors import BadInputError


@dataclass(frozen=True)
class KMeansFit:
    centroids: np.ndarray  # (k, dim) float32, unit rows
    train_size: int  # rows the centroids were trained on
    train_mean_cosine: float  # faiss' objective at the last iteration / train_size
    init: InitMethod | str  # or "warm": started from the previous fit's centroids
    init_size: int  # rows the seeds were chosen from (k-means++), else 0
    init_seconds: float
    iterations: int
    seconds: float
    gpu: bool


def train_sample_size(n: int, k: int, config: ClusterConfig, *, warm: bool = False) -> int:
    """Rows to train on: enough per centroid (fewer for a warm refit), bounded in memory, never fewer than k."""
    per = config.refit_points_per_centroid if warm else config.train_points_per_centroid
    wanted = min(config.train_sample_max, k * per)
    return int(min(n, max(k, wanted)))


def train_positions(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted uniform sample of pool positions (sorted so store reads go forward through the shards)."""
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x5A3])
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def first_k_centroids(rows: Rows, k: int) -> np.ndarray:
    """The paper code's initialisation: the first k pool rows (in pool order), normalised."""
    return normalized(rows.take(np.arange(k, dtype=np.int64)), copy=False)


def kmeanspp_centroids(x: np.ndarray, k: int, config: ClusterConfig) -> tuple[np.ndarray, int]:
    """Greedy k-means++ seeds drawn from a random `init_points_per_centroid` × k subset of `x`."""
    rng = np.random.default_rng([config.seed, 0x99])
    m = int(min(x.shape[0], max(k, k * config.init_points_per_centroid)))
    subset = np.sort(rng.choice(x.shape[0], size=m, replace=False)) if m < x.shape[0] else None
    pool = x if subset is None else x[subset]
    seeds = greedy_kmeanspp(pool, k, rng, torch_device=torch_cuda_device(config.device))
    return np.ascontiguousarray(pool[seeds]), m


def recorded_cosines(positions: np.ndarray, cosines: np.ndarray | None) -> np.ndarray | None:
    """The previous clustering's recorded cosine of each sampled position, NaN past the rows it covered (for
    `warm_centroids`); None without a record."""
    if cosines is None:
        return None
    known = np.full(positions.size, np.nan)
    inside = positions < len(cosines)
    known[inside] = np.asarray(cosines)[positions[inside]]
    return known


def warm_centroids(x: np.ndarray, previous: np.ndarray, k: int, config: ClusterConfig,
                   cosines: np.ndarray | None = None) -> np.ndarray:
    """Seeds of a warm refit: the previous unit centroids, plus (when the grown pool asks for more clusters)
    rows of `x` drawn with probability ∝ their squared distance to the nearest previous centroid, in one
    pass (one k-means++ step for all new seeds, not k sequential greedy ones): new centroids go where the
    previous ones cover the pool worst.

    `cosines`: each row's cosine to its nearest previous centroid where already known (the previous
    clustering recorded it), NaN where not; only the unknown rows are searched, instead of the whole sample."""
    previous = normalized(np.asarray(previous, dtype=np.float32))[:k]
    extra = k - previous.shape[0]
    if extra <= 0:
        return previous
    sims = np.full(x.shape[0], np.nan) if cosines is None else np.array(cosines, dtype=np.float64)
    unknown = np.flatnonzero(np.isnan(sims))
    if unknown.size:
        index = faiss.IndexFlatIP(previous.shape[1])
        index.add(previous)
        sims[unknown] = index.search(np.ascontiguousarray(x[unknown]), 1)[0][:, 0]
    weight = np.maximum(2.0 - 2.0 * sims, 0.0)
    rng = np.random.default_rng([config.seed, 0x77])
    if np.count_nonzero(weight) < extra:
        weight = weight + 1e-12  # fewer uncovered rows than new seeds: fall back to uniform for the rest
    picks = rng.choice(x.shape[0], size=extra, replace=False, p=weight / weight.sum())
    return np.ascontiguousarray(np.concatenate([previous, x[np.sort(picks)]]), dtype=np.float32)


def fit_spherical_kmeans(rows: Rows, k: int, config: ClusterConfig, *, warm: np.ndarray | None = None,
                         warm_cosines: np.ndarray | None = None) -> KMeansFit:
    """Train k unit centroids on a sample of `rows` (20 Lloyd iterations by default, seeded).

    `warm`: the previous fit's centroids; the refit starts from them (see `warm_centroids`), trains on
    `config.refit_points_per_centroid` rows per centroid and runs `config.refit_iterations` iterations
    instead of seeding from scratch. `warm_cosines`: the first rows' recorded cosines to those centroids.
    """
    n = rows.n
    if k < 1:
        raise BadInputError("k must be at least 1")
    if k > n:
        raise BadInputError(f"cannot make {k} clusters from {n} rows")
    started = time.perf_counter()
    size = train_sample_size(n, k, config, warm=warm is not None)
    positions = train_positions(n, size, config.seed)
    x = normalized(rows.take(positions), copy=False)  # take() made a copy
    gpu = use_gpu(config.device)
    iterations = config.iterations if warm is None else config.refit_iterations
    params = {
        "niter": iterations,
        "spherical": True,
        "seed": config.seed,
        "verbose": False,
        # The sample is already the size we chose: stop faiss from subsampling again or warning about it.
        "max_points_per_centroid": max(256, -(-size // k) + 1),
        "min_points_per_centroid": 1,
    }
    if gpu:
        params["gpu"] = True
    km = faiss.Kmeans(rows.dim, k, **params)
    with faiss_threads(config.threads):
        init_started = time.perf_counter()
        init_centroids, init_size = None, 0  # "random": faiss draws k distinct training rows itself
        if warm is not None:
            init_centroids = warm_centroids(x, warm, k, config, recorded_cosines(positions, warm_cosines))
        elif config.init == "first-k":
            init_centroids = first_k_centroids(rows, k)
        elif config.init == "kmeans++":
            init_centroids, init_size = kmeanspp_centroids(x, k, config)
        init_seconds = time.perf_counter() - init_started
        objective = km.train(x, init_centroids=init_centroids)
    del x
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    # faiss already normalises spherical centroids; repeat it so downstream cosines are exact.
    centroids = normalized(centroids)
    return KMeansFit(
        centroids=centroids,
        train_size=size,
        train_mean_cosine=float(objective) / size,
        init="warm" if warm is not None else config.init,
        init_size=init_size,
        init_seconds=init_seconds,
        iterations=iterations,
        seconds=time.perf_counter() - started,
        gpu=gpu,
    )
