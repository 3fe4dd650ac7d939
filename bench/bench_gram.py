"""One round's `measure` and few-shot lookup at large pools: full recompute against the running Gram matrix,
and streaming `rows_at` against the offset index (BENCHMARKS.md, "Streaming G-Vendi and pool lookups by offset").

For each pool size it writes synthetic unit-norm features (d = 1024, float32) through the real FeatureStore
(a seed shard, then shards of `--batch` rows as rounds commit them) and a pool of SNLI-sized text rows
through the real Pool and SampleLog (seed file, then one commit per batch), growing one run directory from
size to size. Then, with one BLAS thread:

* full: `measure.g_vendi_of_store` over every row (what `steps.measure` did before);
* streaming: one more batch committed, then `diversity.gram.measure_store` (adds the batch to the cached
  Gram matrix and takes the eigendecomposition), the work `steps.measure` now does in a round;
* rows_at for 8 × 4 random positions: the former streaming pass (every line parsed up to the last wanted
  position) against `Pool.rows_at` by offset, in a freshly opened pool (index read and checked) and in one
  already open (what the loop's long-lived pool pays), and the one-time index build of a run made before it.

    python bench/bench_gram.py --sizes 100k,300k --out DIR    (DIR/gram.json; a markdown table on stdout)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from prism_agent.config.run import parse_target  # noqa: E402
from prism_agent.diversity.gram import measure_store, refresh  # noqa: E402
from prism_agent.gradients.store import FeatureStore  # noqa: E402
from prism_agent.measure_dataset import g_vendi_of_store  # noqa: E402
from prism_agent.run.paths import RunPaths  # noqa: E402
from prism_agent.run.pool import Pool  # noqa: E402

DIM = 1024
SEEDS = 50_000


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def seed_row(i: int) -> dict:
    return {"id": f"seed:{i}", "prompt": f"Premise: A man in a blue shirt is standing on a ladder number {i}.\n"
            "Hypothesis: A person is outdoors.", "response": "entailment", "source": "snli"}


def accepted_row(r: int, i: int) -> dict:
    """An accepted row shaped like the loop's: candidate, vote record, decontamination and models."""
    return {"id": f"r{r:05d}-{i:05d}-0", "prompt": f"Premise: Two dogs run across a snowy field {r}/{i}.\n"
            "Hypothesis: The animals are asleep indoors.", "round": r, "request": i, "cluster": i % 97,
            "fewshot": [f"seed:{i + k}" for k in range(5)], "response": "contradiction", "answer": "contradiction",
            "vote": {"accepted": True, "majority": "contradiction", "agreement": 1.0, "votes": 4,
                     "answers": ["contradiction"] * 4},
            "decontam": {"judge": None, "nearest": None, "similarity": 0.41},
            "models": {"generator": "smollm2-135m", "solver": "smollm2-135m", "judge": "smollm2-135m"}}


def commit(store: FeatureStore, pool: Pool, rng, r: int, n: int) -> None:
    rows = [accepted_row(r, i) for i in range(n)]
    store.append([x["id"] for x in rows], unit_rows(rng, n), info={"kind": "accepted", "round": r})
    pool.accepted.append(rows, round_index=r, features=len(store))


def grow(root: Path, store: FeatureStore, rng, size: int, batch: int) -> None:
    pool = Pool(RunPaths(root))
    if not pool.has_seeds:
        pool.write_seeds([seed_row(i) for i in range(SEEDS)])
        store.append([f"seed:{i}" for i in range(SEEDS)], unit_rows(rng, SEEDS), info={"kind": "seeds"})
    r = pool.accepted.last.round
    while len(store) < size:
        r += 1
        commit(store, pool, rng, r, min(batch, size - len(store)))


def streaming_rows_at(pool: Pool, positions: list[int]) -> dict[int, dict]:
    """`Pool.rows_at` as it was before the offset index: one pass parsing every line up to the last wanted."""
    wanted, found, last = set(positions), {}, max(positions)
    for pos, row in enumerate(pool):
        if pos in wanted:
            found[pos] = row
        if pos >= last:
            break
    return found


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_size(root: Path, store: FeatureStore, rng, size: int, batch: int) -> dict:
    paths = RunPaths(root)
    full, full_s = timed(lambda: g_vendi_of_store(store))
    refresh(store)  # the cache as the previous round's measure left it
    commit(store, Pool(paths), rng, Pool(paths).accepted.last.round + 1, batch)
    (res, info), stream_s = timed(lambda: measure_store(store))
    assert info["gram"] == "updated"
    check = g_vendi_of_store(store).q1
    positions = sorted(rng.choice(len(store), size=32, replace=False).tolist())
    old, old_s = timed(lambda: streaming_rows_at(Pool(paths), positions))
    new, cold_s = timed(lambda: Pool(paths).rows_at(positions))
    open_pool = Pool(paths)
    open_pool.rows_at(positions[:1])
    _, warm_s = timed(lambda: open_pool.rows_at(positions))
    assert old == new
    for name in ("accepted.offsets.bin", "seeds.offsets.bin"):
        (paths.pool / name).unlink()
    _, build_s = timed(lambda: Pool(paths).rows_at(positions))
    return {"pool": len(store) - batch, "full_s": full_s, "full_g_vendi": full.q1, "stream_s": stream_s,
            "stream_g_vendi": res.q1, "stream_rel_err": abs(res.q1 - check) / check, "batch": batch,
            "rows_at_stream_s": old_s, "rows_at_index_cold_s": cold_s, "rows_at_index_warm_s": warm_s,
            "index_build_once_s": build_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,300k")
    ap.add_argument("--batch", type=int, default=1000, help="rows a round commits")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None, help="where the run directory grows (default: a temp dir)")
    args = ap.parse_args()
    sizes = [parse_target(s) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    results = []
    with tempfile.TemporaryDirectory(dir=args.work) as tmp, threadpool_limits(1):
        root = Path(tmp) / "run"
        store = FeatureStore.open(root / "features", dim=DIM, meta={"bench": "gram"})
        for size in sizes:
            grow(root, store, rng, size, args.batch)
            results.append(bench_size(root, store, rng, size, args.batch))
            print(json.dumps(results[-1]), flush=True)
    (args.out / "gram.json").write_text(json.dumps({"dim": DIM, "threads": 1, "results": results}, indent=1))
    print("| pool | measure: full recompute | measure: streaming (+1,000 rows, eigh) | rows_at ×32: streaming "
          "| rows_at: index (fresh pool) | rows_at: index (open pool) | index build, once |")
    print("|---|---|---|---|---|---|---|")
    for x in results:
        print(f"| {x['pool']:,} | {x['full_s']:.2f} s | {x['stream_s']:.2f} s | {x['rows_at_stream_s']:.2f} s | "
              f"{x['rows_at_index_cold_s'] * 1e3:.1f} ms | {x['rows_at_index_warm_s'] * 1e3:.2f} ms | "
              f"{x['index_build_once_s']:.2f} s |")


if __name__ == "__main__":
    main()
