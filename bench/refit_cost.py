"""How small can a warm refit be? Its training sample and iterations against the clustering it produces.

A warm refit (`cluster/incremental.py`) starts from the previous fit's centroids, so it may need fewer
training rows per centroid and fewer Lloyd iterations than a cold fit. Past ≈ 300K rows the refit is most of
a round's non-generation cost (BENCHMARKS.md, "Clustering at scale"), and it scales with
(iterations · rows per centroid · k + n) · k · d. This script fits, on one thread:

- the previous clustering: a cold fit of the first n/(1 + refit_growth) rows (the default settings);
- warm refits of all n rows from it, for each `--variants` entry (training rows per centroid, iterations,
  and optionally the nearby centroids each row is searched among, `refit_neighbours`; without it, all k);
- two cold fits of all n rows with different k-means seeds (what a fresh fit would decide, and how much two
  fresh fits disagree by themselves);

and reports each one's CPU seconds, its objective (mean cosine of every pool row to its centroid), the share
of rows whose label is their nearest centroid of all k (1 for a full search), and how its keep/reject
decisions on `--candidates` new rows (the paper's rule: nearest centroid sparse) agree with the cold fit's.

    python bench/refit_cost.py --n 100k --noise 0.35 --out DIR

Features are the synthetic clustered rows of `bench_scale.py` (`--noise` sets how tight the clusters are:
0.35 is `bench_scale`'s, mostly noise; 0.1 gives clusters with a clear centre).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def features(rng, centres, popularity, m, noise):
    labels = rng.choice(centres.shape[0], size=m, p=popularity)
    return (centres[labels] + noise * rng.standard_normal((m, centres.shape[1]), dtype=np.float32)).astype(np.float32)


def cpu_timed(fn, *a, **kw):
    started = time.process_time()
    out = fn(*a, **kw)
    return out, time.process_time() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="100k")
    ap.add_argument("--noise", type=float, default=0.35)
    ap.add_argument("--candidates", type=int, default=8192)
    ap.add_argument("--variants", default="64:5,32:5,32:3,16:3,32:3:32",
                    help="rows per centroid:iterations[:nearby centroids searched], ...")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from bench_scale import mixture, parse_size

    from prism_agent.cluster.assign import assign_nearest
    from prism_agent.cluster.round import build_round
    from prism_agent.config.cluster import ClusterConfig

    n = parse_size(args.n)
    centres, popularity = mixture(1024)
    rng = np.random.default_rng(n)
    x = features(rng, centres, popularity, n, args.noise)
    cands = features(np.random.default_rng(7), centres, popularity, args.candidates, args.noise)
    base = ClusterConfig(threads=1)
    prev = build_round(x[: int(n / (1 + base.refit_growth))], base)

    def summary(name, result, seconds):
        decision = result.decide(cands)
        exact = assign_nearest(x, result.centroids, threads=1, device="cpu")
        return {"name": name, "cpu_s": round(seconds, 2), "k": result.k,
                "objective": round(float(np.mean(result.cosines)), 5),
                "recall": round(float(np.mean(exact.labels == result.labels)), 4),
                "accepted": int(decision.accepted.sum()), "_accept": decision.accepted}

    rows = []
    cold, s = cpu_timed(build_round, x, base)
    rows.append(summary("cold fit, seed 0", cold, s))
    other, s = cpu_timed(build_round, x, base.model_copy(update={"seed": 1}))
    rows.append(summary("cold fit, seed 1", other, s))
    for v in args.variants.split(","):
        pts, iters, near = ([int(t) for t in v.split(":")] + [0])[:3]
        cfg = base.model_copy(update={"refit_points_per_centroid": pts, "refit_iterations": iters,
                                      "refit_neighbours": near})
        labels = prev.labels if near else None
        warm, s = cpu_timed(build_round, x, cfg, warm=prev.centroids, warm_cosines=prev.cosines,
                            warm_labels=labels)
        where = f", {near} nearby centroids" if near else ""
        rows.append(summary(f"warm refit, {pts} rows/centroid, {iters} iterations{where}", warm, s))
    ref = rows[0]["_accept"]
    for row in rows:
        row["agrees_with_cold_seed0"] = round(float(np.mean(row.pop("_accept") == ref)), 4)
    args.out.mkdir(parents=True, exist_ok=True)
    out = {"n": n, "noise": args.noise, "candidates": args.candidates, "threads": 1,
           "omp": os.environ.get("OMP_NUM_THREADS"), "rows": rows}
    (args.out / f"refit-cost-{n}-{args.noise}.json").write_text(json.dumps(out, indent=1))
    print("| fit | CPU s | objective | nearest-centroid recall | accepted | agrees with cold fit seed 0 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        agree = r["agrees_with_cold_seed0"]
        print(f"| {r['name']} | {r['cpu_s']} | {r['objective']} | {r['recall']:.1%} | {r['accepted']} | {agree:.1%} |")


if __name__ == "__main__":
    main()
