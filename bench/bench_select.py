"""`prism-agent select` on real rows: G-Vendi of the selection against random subsets of the same size.

Featurizes the first `--rows` SNLI training rows (cached like `prism-agent measure`), then selects `--size`
rows with each method and draws `--randoms` random subsets; reports each G-Vendi, the selection's time, and
the gain method's margin over the best and the mean random subset.

    PYTHONPATH=. python bench/bench_select.py --out bench/out/select --rows 2000 --size 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/out/select")
    ap.add_argument("--data", default="snli-train")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--randoms", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.diversity.select import random_subset, select
    from prism_agent.diversity.vendi import vendi
    from prism_agent.measure_dataset import featurize

    t = time.perf_counter()
    store, stats = featurize(args.data, config=FeaturizerConfig(threads=args.threads), limit=args.rows)
    featurize_s = time.perf_counter() - t
    x = np.concatenate(list(store.iter_blocks()))
    report: dict = {"data": args.data, "rows": int(x.shape[0]), "size": args.size, "dtype": stats.dtype,
                    "featurize_seconds": featurize_s, "g_vendi_all": vendi(x).q1, "methods": {}}
    for method in ("gain", "sparse"):
        t = time.perf_counter()
        sel = select(x, args.size, method)
        report["methods"][method] = {"g_vendi": sel.g_vendi, "seconds": time.perf_counter() - t}
        print(json.dumps({method: report["methods"][method]}), flush=True)
    randoms = [random_subset(x, args.size, seed=s).g_vendi for s in range(args.randoms)]
    report["random"] = {"mean": float(np.mean(randoms)), "std": float(np.std(randoms)), "max": max(randoms),
                        "min": min(randoms), "draws": args.randoms}
    gain = report["methods"]["gain"]["g_vendi"]
    report["gain_over_random_mean"] = gain / report["random"]["mean"]
    report["gain_over_random_max"] = gain / report["random"]["max"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
