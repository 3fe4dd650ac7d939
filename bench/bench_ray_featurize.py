"""Featurization throughput on Ray (2 one-thread CPU actors) vs the local path (one thread), same 192 real rows.

The rows: 192 SNLI training pairs drawn with seed 0 (as bench/bench_featurize.py draws its SNLI set), the run's
default featurizer (`fast`, the config's defaults, dtype resolved for this machine). Measured, in one process:

  local        the local path: `featurize` of the 192 rows in one call, 1 torch thread, the proxy already
               loaded and warmed up on 16 other rows (what a run's seed chunk or round pays);
  ray job      a Ray Data job over the same rows (`distributed/featurize.py`: map_batches over a fixed pool of 2
               actors, 1 CPU and 1 thread each, `--batch-size` rows per call), wall time from submitting to the
               last row back, including starting the actors and loading the proxy in each;
  ray steady   the same job without each actor's one-time start: wall time from the first batch any actor
               began to the last one it finished (the actors record their own times);
  no-op jobs   the same pool shape with a UDF that returns zeros, over the same rows in `--batch-size` and in
               4-row batches: the slope of the job's time over its number of batches is Ray's own cost per
               batch (scheduling, serialization, the object store), without the actors' start;
  pool start   the run's long-lived pool (`distributed/pool.py`: Ray Core actors, 1 CPU and 1 thread each):
               seconds from creating its actors to every actor having loaded the proxy (paid once per run);
  warm pool    that pool, each actor first warmed on the 16 other rows (as the local path is), then the same
               192 rows timed from submission to the last row back: what each later round pays;
  pool no-op   the pool's own cost per batch, as for the jobs (a started pool of no-op actors, the same rows in
               `--batch-size` and in 4-row batches).

A private local Ray of 2 CPUs is started (object store 200 MB, no dashboard) and stopped at the end.

    python bench/bench_ray_featurize.py --out bench/out/ray-featurize [--batch-size 32] [--rows 192]
    python bench/bench_ray_featurize.py --out /tmp/ray-tiny --rows 8 --batch-size 4   # the script works (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np


def snli_rows(n: int, seed: int = 0) -> list[dict]:
    from prism_agent.data.pull import ensure

    snli = [json.loads(line) for line in ensure("snli-train").open()][:20000]
    return random.Random(seed).sample(snli, n + 16)


def local(rows: list[dict], warm: list[dict], config) -> tuple[float, np.ndarray]:
    import torch

    from prism_agent.gradients.base import make_featurizer
    from prism_agent.gradients.proxy import load_proxy
    from prism_agent.gradients.render import encode

    torch.set_num_threads(1)
    proxy = load_proxy(None, dtype=torch.float32)
    featurizer = make_featurizer(proxy, config)
    enc = [encode(proxy.tokenizer, r["prompt"], r["response"], proxy.max_length) for r in rows]
    featurizer.featurize([encode(proxy.tokenizer, r["prompt"], r["response"], proxy.max_length) for r in warm])
    t0 = time.perf_counter()
    feats = featurizer.featurize(enc)
    seconds = time.perf_counter() - t0
    featurizer.close()
    return seconds, feats


def warm_pool(rc, config, ctor: dict, pairs: list, warm: list[dict], actor_cls) -> dict:
    """The run's pool: started once (timed), each actor warmed on `warm`, then `pairs` timed; and the pool's
    own cost per batch with no-op actors. Every pool is closed before returning."""
    import ray

    from prism_agent.distributed.featurize import NoOpActor, RayFeaturizer, ordered
    from prism_agent.distributed.pool import FeaturizerPool

    out: dict = {}
    f = RayFeaturizer(rc, config)  # engine="pool", as a run
    try:
        pool = f.pool(actor_cls, ctor)
        out["pool_start_s"] = pool.start()
        batch = {"pos": list(range(len(warm))), "prompt": [r["prompt"] for r in warm],
                 "response": [r["response"] for r in warm]}
        ray.get([a.featurize.remote(batch) for a in pool.actors])  # each actor warmed, as the local path is
        t0 = time.perf_counter()
        batches = list(f.batches(pairs))
        out["warm_pool_s"] = time.perf_counter() - t0
        out["warm_pool_batches_per_actor"] = sorted(np.unique([int(b["pid"][0]) for b in batches],
                                                              return_counts=True)[1].tolist())
        out["pool_feats"] = next(ordered(batches, len(pairs), len(pairs))).feats
    finally:
        f.close()
    noop = {}
    for size in (rc.batch_size, 4):
        p = FeaturizerPool(rc.model_copy(update={"batch_size": size}), NoOpActor, {"dim": config.dim})
        try:
            p.start()
            t0 = time.perf_counter()
            n = len(list(p.batches(pairs)))
            noop[size] = (n, time.perf_counter() - t0)
        finally:
            p.close()
    (n_big, t_big), (n_small, t_small) = noop[rc.batch_size], noop[4]
    out["pool_noop_s"] = {f"{n} batches": round(t, 3) for n, t in noop.values()}
    out["pool_noop_per_batch_s"] = (t_small - t_big) / (n_small - n_big) if n_small > n_big else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--skip-local", action="store_true", help="Ray only (a rerun with another batch size)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import ray

    from prism_agent.config.distributed import RayConfig
    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.distributed.featurize import FeaturizeActor, NoOpActor, RayFeaturizer, ordered
    from prism_agent.distributed.session import RaySession, runtime_env
    from prism_agent.gradients.base import resolve_featurizer

    config, dtype = resolve_featurizer(FeaturizerConfig())
    drawn = snli_rows(args.rows)
    rows, warm = drawn[: args.rows], drawn[args.rows:]
    report: dict = {"rows": len(rows), "batch_size": args.batch_size, "actors": args.actors, "dtype": dtype.name,
                    "load_avg_before": os.getloadavg()}
    if not args.skip_local:
        report["local_s"], local_feats = local(rows, warm, config)
        print(f"local: {report['local_s']:.1f} s, {len(rows) / report['local_s']:.2f} rows/s", flush=True)

    class TimedActor(FeaturizeActor):
        """FeaturizeActor that also returns when each call began and ended (wall clock, same machine)."""

        def __init__(self, **kw):
            t0 = time.time()
            super().__init__(**kw)
            self.init_s = time.time() - t0

        def __call__(self, batch):
            began = time.time()
            res = super().__call__(batch)
            n = len(res["pos"])
            return {**res, "began": np.full(n, began), "ended": np.full(n, time.time()),
                    "init_s": np.full(n, self.init_s), "pid": np.full(n, os.getpid())}

    ray.init(num_cpus=args.actors, object_store_memory=200 * 1024 * 1024, include_dashboard=False,
             runtime_env=runtime_env(), log_to_driver=False)
    rc = RayConfig(address="local", actors=args.actors, batch_size=args.batch_size)
    session = RaySession.open(rc)  # uses the Ray started above; quiets Ray Data
    try:
        from prism_agent.distributed.session import _quiet_data

        _quiet_data()
        f = RayFeaturizer(rc, config, engine="data")
        pairs = [(r["prompt"], r["response"]) for r in rows]
        ctor = {"proxy": None, "config": f.config.model_dump(), "max_length": None, "threads": 1}
        t0 = time.perf_counter()
        batches = list(f.batches(pairs, actor=TimedActor, constructor=ctor))
        report["ray_job_s"] = time.perf_counter() - t0
        began = min(float(b["began"][0]) for b in batches)
        ended = max(float(b["ended"][0]) for b in batches)
        report["ray_steady_s"] = ended - began
        report["actor_init_s"] = sorted({round(float(b["init_s"][0]), 2) for b in batches})
        report["batches"] = len(batches)
        report["batches_per_actor"] = sorted(np.unique([int(b["pid"][0]) for b in batches],
                                                       return_counts=True)[1].tolist())
        feats = next(ordered(batches, len(rows), len(rows))).feats
        if not args.skip_local:
            rel = np.linalg.norm(feats - local_feats, axis=1) / np.linalg.norm(local_feats, axis=1)
            report["rel_diff_vs_local"] = {"max": float(rel.max()), "median": float(np.median(rel))}
        noop = {}
        for size in (args.batch_size, 4):  # the slope over the number of batches: Ray's cost per batch
            g = RayFeaturizer(rc.model_copy(update={"batch_size": size}), config, engine="data")
            t0 = time.perf_counter()
            n = len(list(g.batches(pairs, actor=NoOpActor, constructor={"dim": config.dim})))
            noop[size] = (n, time.perf_counter() - t0)
        (n_big, t_big), (n_small, t_small) = noop[args.batch_size], noop[4]
        report["noop_job_s"] = {f"{n} batches": round(t, 3) for n, t in (noop[args.batch_size], noop[4])}
        report["noop_per_batch_s"] = (t_small - t_big) / (n_small - n_big) if n_small > n_big else None
        report.update(warm_pool(rc, config, ctor, pairs, warm, TimedActor))
        if not args.skip_local:
            rel = np.linalg.norm(report.pop("pool_feats") - local_feats, axis=1) / np.linalg.norm(local_feats, axis=1)
            report["pool_rel_diff_vs_local"] = {"max": float(rel.max()), "median": float(np.median(rel))}
        report.pop("pool_feats", None)
    finally:
        session.close()
        ray.shutdown()
    report["load_avg_after"] = os.getloadavg()
    if "local_s" in report:
        report["speedup_job"] = report["local_s"] / report["ray_job_s"]
        report["speedup_steady"] = report["local_s"] / report["ray_steady_s"]
        report["speedup_warm_pool"] = report["local_s"] / report["warm_pool_s"]
    print(json.dumps(report, indent=1))
    (out / f"report-b{args.batch_size}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
