"""Benchmark gradient-space clustering (BENCHMARKS.md): fit, pool assignment, candidate assignment, sklearn.

Run by hand, e.g. (1 thread, as recorded in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 python bench/bench_cluster.py --n 100000 --threads 1 --sklearn
    OMP_NUM_THREADS=1 python bench/bench_cluster.py --n 1000000 --threads 1

Synthetic data: `--true-clusters` random directions (default: as many as k) with Zipf-like popularity,
rows = direction + Gaussian noise (cosine ≈ 0.6 to their direction), each row scaled by a random factor
(the store keeps raw, un-normalised features, like real projected gradients). The pool is written in
blocks into a `FeatureStore` (memmapped shards), so the 1M × 1024 case never sits in RAM as a whole;
only the training sample is copied into memory, as in real use.

Peak RSS is measured per phase (VmHWM, reset through /proc/self/clear_refs before each phase; falls back
to the process-wide ru_maxrss where that is not possible). It includes the store pages touched through
the memmaps while they are mapped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from prism_agent.cluster.assign import assign_nearest
from prism_agent.cluster.kchoice import choose_k
from prism_agent.cluster.round import build_round
from prism_agent.cluster.rows import StoreRows, normalized
from prism_agent.config.cluster import ClusterConfig
from prism_agent.gradients.store import FeatureStore

BLOCK = 50_000


# ---------------------------------------------------------------------------------------------- memory
def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phase:
    """Times a phase and records its own peak RSS."""

    def __init__(self, name: str, results: dict):
        self.name, self.results = name, results

    def __enter__(self):
        self.resettable = _reset_peak()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self.t0
        self.results[self.name] = {
            "seconds": round(seconds, 2),
            "peak_rss_mib": round(_peak_mib(), 1),
            "peak_is_per_phase": self.resettable,
            **self.results.get(self.name, {}),
        }
        print(f"  {self.name}: {seconds:.1f} s, peak RSS {_peak_mib():.0f} MiB", flush=True)
        return False


# ------------------------------------------------------------------------------------------ synthetic data
def _centers(true_k: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 1])
    centers = rng.standard_normal((true_k, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    popularity = 1.0 / np.arange(1, true_k + 1) ** 0.8  # Zipf-like: a long tail of rare "templates"
    rng.shuffle(popularity)
    return centers, popularity / popularity.sum()


def synthetic_block(centers, weights, rows: int, seed: int, block: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng([seed, 2, block])
    dim = centers.shape[1]
    labels = rng.choice(len(weights), size=rows, p=weights)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x *= noise / np.sqrt(dim)
    x += centers[labels]
    x *= rng.uniform(0.5, 2.0, size=(rows, 1)).astype(np.float32)
    return x


def make_store(root: Path, n: int, dim: int, true_k: int, seed: int, noise: float) -> FeatureStore:
    meta = {"synthetic": "bench_cluster", "n": n, "true_k": true_k, "seed": seed, "noise": noise}
    store = FeatureStore.open(root, dim=dim, meta=meta)
    if len(store) == n:
        print(f"  reusing {root} ({n:,} rows)", flush=True)
        return store
    centers, weights = _centers(true_k, dim, seed)
    for b in range(len(store.shards), -(-n // BLOCK)):
        rows = min(BLOCK, n - b * BLOCK)
        block = synthetic_block(centers, weights, rows, seed, b, noise)
        store.append([f"r{b * BLOCK + i}" for i in range(rows)], block)
    return store


# ---------------------------------------------------------------------------------------------- measures
def spherical_inertia(x_unit: np.ndarray, centroids: np.ndarray, threads: int | None) -> float:
    """Σ (1 − max cos) over the rows: the same yardstick for faiss' and sklearn's centroids."""
    found = assign_nearest(x_unit, normalized(np.asarray(centroids, dtype=np.float32)), threads=threads)
    return float(np.sum(1.0 - found.cosines.astype(np.float64)))


def compare_sklearn(store: FeatureStore, k: int, args, results: dict) -> None:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from prism_agent.cluster.kmeans import fit_spherical_kmeans
    from prism_agent.cluster.rows import ArrayRows

    x = normalized(store.take(np.arange(len(store))), copy=False)
    out: dict = {}
    results["sklearn_comparison"] = out
    everything = {"train_points_per_centroid": 10**9}
    runs = [
        ("faiss_default", {}),  # greedy k-means++ seeds on 8 rows/centroid, Lloyd on 64 rows/centroid
        ("faiss_default_all_rows", everything),
        ("faiss_random_init", {"init": "random"}),  # faiss' own default seeding
        ("faiss_first_k_init", {"init": "first-k"}),  # the paper code's seeding
    ]
    for name, extra in runs:
        cfg = ClusterConfig(seed=args.seed, threads=args.threads, **extra)
        t0 = time.perf_counter()
        fit = fit_spherical_kmeans(ArrayRows(x), k, cfg)
        seconds = time.perf_counter() - t0
        inertia = spherical_inertia(x, fit.centroids, args.threads)
        out[name] = {"seconds": round(seconds, 2), "init_seconds": round(fit.init_seconds, 2),
                     "train_rows": fit.train_size, "inertia": inertia}
        print(f"  {name}: {seconds:.1f} s on {fit.train_size:,} rows, inertia {inertia:.1f}", flush=True)
    for init in args.sklearn_init:
        km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=args.iterations, tol=0.0,
                    algorithm="lloyd", random_state=args.seed)
        with threadpool_limits(limits=args.threads):
            t0 = time.perf_counter()
            km.fit(x)
            seconds = time.perf_counter() - t0
        name = f"sklearn_{init}"
        inertia = spherical_inertia(x, km.cluster_centers_, args.threads)
        out[name] = {"seconds": round(seconds, 2), "train_rows": x.shape[0],
                     "iterations_run": int(km.n_iter_), "inertia": inertia}
        print(f"  {name}: {seconds:.1f} s ({km.n_iter_} iterations), inertia {inertia:.1f}", flush=True)
    base = out["faiss_default"]
    for row in out.values():
        row["seconds_vs_faiss_default"] = round(row["seconds"] / base["seconds"], 2)
        row["inertia_vs_faiss_default"] = round(row["inertia"] / base["inertia"], 5)


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="pool rows")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--k-ratio", type=float, default=0.01)
    p.add_argument("--true-clusters", type=int, default=None, help="synthetic directions (default: k)")
    p.add_argument("--noise", type=float, default=1.33, help="noise norm relative to the unit direction")
    p.add_argument("--candidates", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-points-per-centroid", type=int, default=None, help="override the library default")
    p.add_argument("--sklearn", action="store_true", help="also compare with scikit-learn KMeans (in RAM)")
    p.add_argument("--sklearn-init", nargs="+", default=["k-means++", "random"])
    p.add_argument("--workdir", type=Path, default=Path("bench/out/cluster"))
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    import faiss
    import sklearn

    overrides = {}
    if args.train_points_per_centroid:
        overrides["train_points_per_centroid"] = args.train_points_per_centroid
    config = ClusterConfig(k_ratio=args.k_ratio, iterations=args.iterations, seed=args.seed,
                           threads=args.threads, **overrides)
    k = choose_k(args.n, config).k
    true_k = args.true_clusters or k
    results: dict = {
        "args": {key: (str(v) if isinstance(v, Path) else v) for key, v in vars(args).items()},
        "k": k,
        "config": config.model_dump(mode="json"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    print(f"n={args.n:,} dim={args.dim} k={k:,} threads={args.threads}", flush=True)

    root = args.workdir / f"store-{args.n}x{args.dim}-{true_k}-{args.seed}"
    with Phase("make_store", results):
        store = make_store(root, args.n, args.dim, true_k, args.seed, args.noise)

    with Phase("fit_and_assign_pool", results):
        r = build_round(StoreRows(store), config)
    results["fit_and_assign_pool"].update({
        "fit_seconds": round(r.fit.fit_seconds, 2),
        "init_seconds": round(r.fit.init_seconds, 2),
        "init_rows": r.fit.init_size,
        "assign_pool_seconds": round(r.fit.assign_seconds, 2),
        "train_rows": r.fit.train_size,
        "pool_inertia": round(r.inertia, 1),
        "pool_mean_cosine": round(float(r.cosines.mean()), 4),
        "sparse_count": r.sparse.count,
        "sparse_threshold": r.sparse.threshold,
        "empty_clusters": int((r.sizes == 0).sum()),
        "size_min_median_max": [int(r.sizes.min()), float(np.median(r.sizes)), int(r.sizes.max())],
    })
    print(f"  fit {r.fit.fit_seconds:.1f} s on {r.fit.train_size:,} rows, "
          f"assign pool {r.fit.assign_seconds:.1f} s; sparse {r.sparse.count:,} of {k:,}", flush=True)

    if args.candidates:
        centers, weights = _centers(true_k, args.dim, args.seed)
        candidates = synthetic_block(centers, weights, args.candidates, args.seed + 1, 0, args.noise)
        del centers
        with Phase("assign_candidates", results):
            decision = r.decide(candidates)
        results["assign_candidates"].update({"rows": args.candidates, "accepted": decision.accepted_count})
        del candidates

    if args.sklearn:
        del r
        compare_sklearn(store, k, args, results)

    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
