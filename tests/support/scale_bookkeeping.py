"""The round bookkeeping of a run at 1.5M pool entries, with fake features (dim 16): committing rounds,
recovering from a killed commit, looking rows up by pool position, streaming G-Vendi, status and export.
Prints one JSON line with timings and this process's peak RSS. Run by tests/test_loop_scale.py."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from prism_agent.config_files import build_run_config
from prism_agent.gradients.store import FeatureStore
from prism_agent.measure_dataset import g_vendi_of_store
from prism_agent.run.export import export
from prism_agent.run.manifest import open_manifest
from prism_agent.run.paths import RunPaths
from prism_agent.run.pool import Pool
from prism_agent.run.samples import SampleLog


def peak_rss_mb() -> float:
    """This program's peak RSS. Not `ru_maxrss`: Linux carries it over from the parent through fork and exec,
    so under a pytest process that had loaded a model it reported the parent's 3.2 GB. `VmHWM` belongs to
    the address space that exec created."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def main(root: Path, total: int, per_commit: int, dim: int = 16) -> None:
    paths = RunPaths(root)
    open_manifest(paths, build_run_config(None, {"task": "nli", "target": total}))
    t0 = time.perf_counter()
    store = FeatureStore.open(paths.features, dim=dim, meta={"fake": True})
    pool = Pool(paths)
    pool.write_seeds([{"id": f"seed:{i}", "prompt": f"seed problem {i}", "response": "1"} for i in range(1000)])
    rng = np.random.default_rng(0)
    store.append([f"seed:{i}" for i in range(1000)], rng.normal(size=(1000, dim)).astype(np.float32))
    r = 0
    while pool.accepted.count < total:
        r += 1
        n = min(per_commit, total - pool.accepted.count)
        rows = [{"id": f"r{r}-{i}", "prompt": f"Premise: a sample {r}/{i}.\nHypothesis: it is.", "response":
                 "neutral", "round": r, "fewshot": ["seed:1", "seed:2"]} for i in range(n)]
        store.append([x["id"] for x in rows], rng.normal(size=(n, dim)).astype(np.float32))
        pool.accepted.append(rows, round_index=r, features=len(store))
    commit_s = time.perf_counter() - t0
    # a round killed between its feature append and its commit record, plus a torn sample tail
    store.append(["ghost"], np.ones((1, dim), np.float32))
    with paths.samples.open("ab") as fh:
        fh.write(b'{"id": "ghost", "pro')
    t1 = time.perf_counter()
    log = SampleLog(paths.samples, paths.commits)
    store = FeatureStore.open(paths.features, dim=dim, meta={"fake": True})
    store.truncate(log.last.features)
    recover_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    positions = sorted(rng.choice(1000 + total, size=100, replace=False).tolist())
    found = Pool(paths).rows_at(positions)
    lookup_s = time.perf_counter() - t2
    t3 = time.perf_counter()
    gv = g_vendi_of_store(store).q1
    vendi_s = time.perf_counter() - t3
    t4 = time.perf_counter()
    exported = export(root, "parquet", root / "export.parquet")
    export_s = time.perf_counter() - t4
    print(json.dumps({
        "accepted": log.count, "features": len(store), "commits": len(log.commits()), "found": len(found),
        "last_id": found[positions[-1]]["id"], "g_vendi": gv, "exported": exported,
        "commit_s": commit_s, "recover_s": recover_s, "lookup_s": lookup_s, "vendi_s": vendi_s,
        "export_s": export_s, "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
