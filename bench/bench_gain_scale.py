"""The `gain` and `novelty` acceptance rules at a 1.5M run's scale: one round's decision on 8,192 candidates,
before (every pool row loaded, brute-force nearest rows, exact greedy gains) and after (the round's clustering
as an inverted-file index, first-order gains), the nearest-row search's recall, and how the first-order
greedy's kept set agrees with the exact greedy where the exact one is affordable.

    python bench/bench_gain_scale.py --sizes 100k,300k --out DIR

One thread (BLAS and faiss), set before NumPy loads. For each size it writes synthetic clustered 1024-d
features (bench/bench_scale.py's `mixture`/`features`) into a real `FeatureStore`, clusters them with the
loop's code (`cluster_round` with k = 1 % of the pool, `init = "random"`, 10 Lloyd iterations on 32 rows per
centroid: a cheaper fit than a run's, so recall here is if anything pessimistic) and saves the round, warms
the pool's Gram cache (the measure step keeps it in a run), then times `Gain.decide` and `Novelty.decide` on
8,192 candidates drawn from the same mixture. The strategies get a stand-in for `RunContext` that carries only
the run's paths and its feature store (all they read). "Before" is today's code path, timed at sizes up to
`--before-max`: the pool loaded whole, brute-force nearest rows, and for `gain` the exact greedy's cost
modelled as 2·b·(kept + 1) eigenproblems of size d + 1 (it would take hours, so it is not run).

Recall: for `--recall-sample` candidates, the share whose nearest row found through the clusters has the
brute-force nearest cosine (within 1e-6), at several `nprobe`. Agreement: a pool of `--agree-pool` rows of
`--agree-dim` dims and `--agree-batch` candidates, exact greedy against first-order greedy: kept sets, their
overlap and G-Vendi after each. DIR/gain_scale.json holds everything; BENCHMARKS.md ("Acceptance rules at
scale") has the table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import features, mixture, parse_size  # noqa: E402

DIM = 1024


def timed(fn, *a, **kw):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    return out, {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}


def rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def build(root: Path, n: int):
    """Feature store of n mixture rows and round 1's clustering of it; the stand-in context."""
    from prism_agent.cluster.incremental import cluster_round
    from prism_agent.cluster.rows import StoreRows
    from prism_agent.config.cluster import ClusterConfig
    from prism_agent.gradients.store import FeatureStore

    store = FeatureStore.open(root / "features", dim=DIM, meta={"bench": "gain_scale"})
    centres, popularity = mixture(DIM)
    rng = np.random.default_rng(n)
    if len(store) != n:
        store.truncate(0)
        for lo in range(0, n, 65_536):
            m = min(65_536, n - lo)
            store.append([f"r{lo + i}" for i in range(m)], features(rng, centres, popularity, m))
    cfg = ClusterConfig(threads=1, init="random", iterations=10, train_points_per_centroid=32, device="cpu")
    clusters = root / "clusters"
    (round_, _), fit = timed(cluster_round, StoreRows(store), cfg, clusters, 1)
    ctx = SimpleNamespace(paths=SimpleNamespace(features=store.root, clusters=clusters),
                          feature_store=lambda: store)
    return ctx, store, {"k": round_.k, "cluster": fit}


def before_gain_novelty(ctx, cands: np.ndarray, kept_after: int) -> dict:
    """Today's path: the pool loaded, brute-force nearest rows, the old one-by-one novelty loop."""
    from prism_agent.diversity.gain import unit_rows
    from prism_agent.diversity.novelty import COPY, nearest, pool_threshold
    from prism_agent.gradients.store import FeatureStore

    out = {}
    store = FeatureStore.load(ctx.paths.features)
    pool, out["load"] = timed(lambda: np.concatenate(list(store.iter_blocks())))
    (cos, _), out["nearest"] = timed(nearest, pool, cands)
    threshold, out["threshold"] = timed(pool_threshold, pool)

    def old_keep():
        x, c, kept = unit_rows(cands), cos.astype(np.float64), []
        for i in range(x.shape[0]):
            if kept:
                c[i] = max(c[i], float((x[kept] @ x[i]).max()))
            if c[i] < min(threshold, COPY):
                kept.append(i)
        return kept

    _, out["novelty_keep"] = timed(old_keep)
    g = np.random.default_rng(0).standard_normal((DIM + 1, DIM + 1))
    _, eig = timed(np.linalg.eigvalsh, g @ g.T)
    out["exact_greedy_modelled_cpu_s"] = round(2 * cands.shape[0] * (kept_after + 1) * eig["cpu_s"], 1)
    out["peak_rss_gib"] = rss_gib()
    return out


def recall(store, cands: np.ndarray, probes: list[int]) -> dict:
    from prism_agent.cluster.artifacts import load_round
    from prism_agent.cluster.ivf import brute_nearest, ivf_nearest
    from prism_agent.cluster.members import ClusterMembers
    from prism_agent.cluster.rows import StoreRows

    rows = StoreRows(store)
    round_ = load_round(store.root.parent / "clusters", 1, mmap=True)
    members = ClusterMembers(np.asarray(round_.labels), round_.k)
    truth, brute_t = timed(brute_nearest, rows, cands)
    out = {"sample": int(cands.shape[0]), "brute": brute_t, "k": round_.k}
    for nprobe in probes:
        found, t = timed(ivf_nearest, rows, round_.centroids, members, cands, nprobe=nprobe)
        hit = found.cosines >= truth.cosines - 1e-6
        out[f"nprobe_{nprobe}"] = {"recall": round(float(hit.mean()), 4), **t,
                                   "mean_cos_gap": float(np.mean(truth.cosines - found.cosines))}
    return out


def real_recall(path: Path, probes: list[int]) -> dict:
    """Recall on real gradient features (a feature store of the real proxy's rows): the last quarter of its rows
    are the queries, the rest the pool, clustered at 5 % (≈ 20 rows a cluster)."""
    from prism_agent.cluster.ivf import brute_nearest, ivf_nearest
    from prism_agent.cluster.members import ClusterMembers
    from prism_agent.cluster.round import build_round
    from prism_agent.cluster.rows import ArrayRows
    from prism_agent.config.cluster import ClusterConfig
    from prism_agent.gradients.store import FeatureStore

    rows = np.concatenate(list(FeatureStore.load(path).iter_blocks()))
    cut = len(rows) * 3 // 4
    pool, queries = ArrayRows(rows[:cut]), rows[cut:]
    round_ = build_round(pool, ClusterConfig(k_ratio=0.05, device="cpu", threads=1))
    members = ClusterMembers(np.asarray(round_.labels), round_.k)
    truth = brute_nearest(pool, queries)
    out = {"pool": cut, "queries": len(queries), "k": round_.k}
    for nprobe in probes:
        found = ivf_nearest(pool, round_.centroids, members, queries, nprobe=nprobe)
        out[f"nprobe_{nprobe}"] = round(float((found.cosines >= truth.cosines - 1e-6).mean()), 4)
    return out


def one_size(root: Path, n: int, args) -> dict:
    from prism_agent.diversity.gram import pool_gram
    from prism_agent.loop.strategy import get_strategy

    (ctx, store, fit), build_t = timed(build, root, n)
    out = {"n": n, "build": build_t, **fit}
    _, out["gram_warm"] = timed(pool_gram, ctx)
    centres, popularity = mixture(DIM)
    cands = features(np.random.default_rng(7), centres, popularity, args.candidates)
    for name in ("gain", "novelty"):
        (kept, _), t = timed(get_strategy(name).decide, ctx, 1, cands)
        out[name] = {**t, "kept": len(kept)}
        print(n, name, out[name], flush=True)
    out["after_peak_rss_gib"] = rss_gib()
    out["recall"] = recall(store, cands[: args.recall_sample], [1, 2, 4, 8, 16])
    print(n, "recall", out["recall"], flush=True)
    if n <= args.before_max:
        out["before"] = before_gain_novelty(ctx, cands, out["gain"]["kept"])
        print(n, "before", out["before"], flush=True)
    return out


def agreement(args) -> dict:
    from prism_agent.diversity.gain import greedy_gain_keep, unit_rows
    from prism_agent.diversity.gain_fast import first_order_keep
    from prism_agent.diversity.novelty import nearest

    d = args.agree_dim
    centres, popularity = mixture(d)
    rng = np.random.default_rng(11)
    pool = features(rng, centres, popularity, args.agree_pool)
    cands = features(rng, centres, popularity, args.agree_batch)
    x = unit_rows(pool)
    gram = x.T @ x
    _, where = nearest(pool, cands)
    exact, te = timed(greedy_gain_keep, gram, len(pool), cands, pool[where])
    fast, tf = timed(first_order_keep, gram, len(pool), cands, pool[where])
    a, b = set(exact.order), set(fast.order)
    return {"pool": args.agree_pool, "dim": d, "batch": args.agree_batch, "before": exact.before,
            "exact": {"kept": len(a), "after": exact.after, **te},
            "first_order": {"kept": len(b), "after": fast.after, **tf},
            "both": len(a & b), "jaccard": round(len(a & b) / max(1, len(a | b)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,300k")
    ap.add_argument("--candidates", type=int, default=8192)
    ap.add_argument("--before-max", default="100k")
    ap.add_argument("--recall-sample", type=int, default=2048)
    ap.add_argument("--agree-pool", type=int, default=20_000)
    ap.add_argument("--agree-dim", type=int, default=256)
    ap.add_argument("--agree-batch", type=int, default=256)
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--real-store", type=Path, default=None, help="a feature store of real gradient features")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.before_max = parse_size(args.before_max)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"threads": 1, "candidates": args.candidates, "sizes": {}}
    if args.real_store is not None:
        result["real_recall"] = real_recall(args.real_store, [1, 2, 4, 8, 16])
        print("real recall", result["real_recall"], flush=True)
    if not args.skip_agreement:
        result["agreement"] = agreement(args)
        print("agreement", result["agreement"], flush=True)
    for size in filter(None, args.sizes.split(",")):
        n = parse_size(size)
        result["sizes"][str(n)] = one_size(args.out / f"pool-{n}", n, args)
        (args.out / "gain_scale.json").write_text(json.dumps(result, indent=2))
    (args.out / "gain_scale.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
