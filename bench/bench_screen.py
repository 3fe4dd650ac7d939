"""The bf16 screen (`cluster/screen.py`) against faiss' exact fp32 search, on a bench_scale run directory's
own clustering and feature rows: time, agreement, and how many centroids each row's window leaves to settle.

    python bench/bench_screen.py --run-dir DIR/run-1500000 --rows 65536 --probe 8192 --out DIR/screen.json

One thread, CPU seconds, the two side by side in one process (each timed twice, the second reported).
"Window" counts the centroids whose bf16 score lies within the proven error bound of the n-th best (those
the screen settles in fp32); "wide" rows have more than the screen keeps and take a full fp32 product.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=65_536, help="pool rows assigned (n = 1)")
    ap.add_argument("--probe", type=int, default=8_192, help="rows probed for their 8 nearest (the search's probe)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from prism_agent.cluster.artifacts import committed_rounds, load_round, round_dir
    from prism_agent.cluster.backend import inner_product_index
    from prism_agent.cluster.rows import normalized
    from prism_agent.cluster.screen import CentroidScreen
    from prism_agent.gradients.store import FeatureStore

    clusters = args.run_dir / "clusters"
    fits = [i for i in committed_rounds(clusters) if (round_dir(clusters, i) / "centroids.npy").is_file()]
    fit = load_round(clusters, fits[-1], mmap=True)  # the latest fit
    centroids = normalized(np.asarray(fit.centroids, dtype=np.float32))
    store = FeatureStore.load(args.run_dir / "features")
    picked = np.sort(np.random.default_rng(0).choice(len(store), size=args.rows + args.probe, replace=False))
    rows = normalized(store.take(picked))
    assign_rows, probe_rows = rows[: args.rows], rows[args.rows :]
    out: dict = {"run_dir": str(args.run_dir), "k": int(centroids.shape[0]), "dim": int(centroids.shape[1])}

    def timed(fn):
        fn()
        start = time.process_time()
        result = fn()
        return result, time.process_time() - start

    index = inner_product_index(centroids, gpu=False)
    screen = CentroidScreen(centroids)
    for name, x, n in (("assign", assign_rows, 1), ("probe", probe_rows, 8)):
        (f_cos, f_ids), f_s = timed(lambda x=x, n=n: index.search(x, n))
        (s_cos, s_ids), s_s = timed(lambda x=x, n=n: screen.search(x, n))
        shortfall = 0.0  # how far the screen's j-th answer falls below the fp64 j-th best (0 up to ties)
        for lo in range(0, x.shape[0], 4096):
            truth = x[lo : lo + 4096].astype(np.float64) @ centroids.astype(np.float64).T
            best = -np.sort(-np.partition(truth, truth.shape[1] - n, axis=1)[:, -n:], axis=1)
            got = np.take_along_axis(truth, s_ids[lo : lo + 4096], axis=1)
            shortfall = max(shortfall, float((best - got).max()))
        out[name] = {"rows": int(x.shape[0]), "n": n, "faiss_s": f_s, "screen_s": s_s, "speedup": f_s / s_s,
                     "rows_differing_from_faiss": int((s_ids != f_ids).any(axis=1).sum()),
                     "max_fp64_shortfall": shortfall,
                     "max_cosine_diff": float(np.abs(s_cos - f_cos).max())}
        # the window the bound leaves, measured the way `screen.py` computes it
        xt = torch.from_numpy(x[:4096])
        rough = xt.bfloat16()
        top = torch.topk(rough @ screen.rough.T, 200, dim=1).values.float()
        window = (top >= (top[:, n - 1] - screen.width(xt, rough, top[:, n - 1]))[:, None]).sum(dim=1).numpy()
        out[name]["window_mean"] = float(window.mean())
        out[name]["window_p50_p99_max"] = [float(np.percentile(window, 50)), float(np.percentile(window, 99)),
                                           int(window.max())]
        out[name]["wide_share"] = float((window >= 4 * n + 16).mean())
        print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out[name].items()}),
              flush=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
