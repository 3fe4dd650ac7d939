"""Does refitting rarely change what the loop keeps? Incremental clustering against every-round refitting.

Three real runs on the embedded default (same seed sample and budget, `--max-rounds` rounds of
`--per-round` requests): every-round refitting (`refit_growth = 0`) with run seed A, the incremental
policy (`refit_growth` default) with seed A, and every-round refitting with seed B (run-to-run noise).
Then a replay on identical candidates: for each round of the every-round run, its voted candidates are
featurized again and decided by (1) that round's saved clustering, (2) the incremental policy replayed over
the same sequence of pools, and (3) a cold refit of the same pool with another k-means seed (how much two
every-round refits disagree by themselves). Each is decided twice: by the paper's sparse-cluster rule (the
clustering decides alone) and by the `gain` rule (the default), whose only use of the clustering is the
nearest-pool-row search; a small pool is searched exactly whatever the clustering, so the replay forces the
inverted-file search through each clustering, as at 1.5M rows (`cluster/ivf.py`). G-Vendi curves of the
three runs are compared too.

    nice -n 10 python bench/refit_agreement.py --out bench/out/refit --rounds 20 --per-round 8

(each run is CPU-heavy: about 8 minutes alone on 2 cores; `--jobs` runs go at once.)

The results and this command are in BENCHMARKS.md ("Clustering at scale").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# refit_every_round_below = 0: the growth rule from the first round (these pools are far smaller than the
# default threshold, under which every round refits anyway)
CONFIG = ("seed = {seed}\nseed_sample = {seeds}\npatience = 1000\n[cluster]\nrefit_growth = {growth}\n"
          "refit_every_round_below = 0\n")


def start(out: Path, name: str, seed: int, growth: float, args) -> subprocess.Popen | None:
    run_dir = out / name
    if (run_dir / "done.json").exists():
        return None
    cfg = out / f"{name}.toml"
    cfg.write_text(CONFIG.format(seed=seed, seeds=args.seeds, growth=growth))
    cmd = [sys.executable, "-m", "prism_agent.cli.app", "run", "--task", "nli", "--target",
           "1M", "--max-rounds", str(args.rounds), "--per-round", str(args.per_round), "--config", str(cfg),
           "--run-dir", str(run_dir), "--plain"]
    return subprocess.Popen(cmd, stdout=(out / f"{name}.log").open("w"), stderr=subprocess.STDOUT)


def status(run_dir: Path) -> dict:
    return json.loads(subprocess.run([sys.executable, "-m", "prism_agent.cli.app", "status", str(run_dir), "--json"],
                                     capture_output=True, text=True, check=True).stdout)


def run_all(out: Path, args) -> dict[str, dict]:
    from prism_agent.config.cluster import ClusterConfig

    runs = [("every-a", args.seed_a, 0.0), ("incremental-a", args.seed_a, ClusterConfig().refit_growth),
            ("every-b", args.seed_b, 0.0)]
    pending = list(runs)
    active: list[tuple[str, subprocess.Popen]] = []
    while pending or active:
        while pending and len(active) < args.jobs:
            name, seed, growth = pending.pop(0)
            proc = start(out, name, seed, growth, args)
            if proc is not None:
                active.append((name, proc))
        if not active:  # every run was finished by an earlier call
            break
        name, proc = active.pop(0)
        if proc.wait() != 0:
            raise SystemExit(f"{name} failed; see {out / (name + '.log')}")
        (out / name / "done.json").write_text("{}")
    return {name: status(out / name) for name, _, _ in runs}


def gain_decision(pool, made, feats: np.ndarray) -> np.ndarray:
    """The `gain` rule's keep mask for `feats` on `pool` (the first rows of the store), its nearest rows
    searched through the clustering `made` by the inverted file even where brute force would be chosen."""
    from prism_agent.cluster.ivf import PoolSearch
    from prism_agent.diversity.gain import keep_by_gain, unit_rows

    x = unit_rows(pool.take(np.arange(pool.n)))
    search = PoolSearch(pool, made.centroids, made.labels, brute_pairs=0)
    where = search.nearest(feats).positions
    refs = np.zeros_like(feats, dtype=np.float32)
    refs[where >= 0] = pool.take(where[where >= 0])
    mask = np.zeros(feats.shape[0], dtype=bool)
    mask[keep_by_gain(x.T @ x, pool.n, feats, refs).order] = True
    return mask


def replay(run_dir: Path, growths: list[float]) -> dict:
    """Decide the every-round run's voted candidates with its own clusterings and with the policy replayed
    over the same sequence of pools, for each refit growth in `growths`."""
    from prism_agent.cluster.artifacts import committed_rounds, load_round
    from prism_agent.cluster.incremental import PrefixRows, cluster_round
    from prism_agent.cluster.round import build_round
    from prism_agent.cluster.rows import StoreRows
    from prism_agent.config.run import RunConfig
    from prism_agent.gradients.store import FeatureStore
    from prism_agent.loop import steps
    from prism_agent.loop.context import RunContext
    from prism_agent.run.manifest import read_manifest
    from prism_agent.run.paths import RunPaths

    cfg = RunConfig.model_validate_json(json.dumps(read_manifest(RunPaths(run_dir)).config))  # strict: JSON mode
    ctx = RunContext.open(run_dir, cfg)
    rows = StoreRows(FeatureStore.load(ctx.paths.features))
    sims = {g: Path(tempfile.mkdtemp(prefix=f"refit-replay-{g}-")) for g in growths}
    out = {g: {"rounds": [], "plans": {}, "candidates": 0, "agree": 0, "agree_gain": 0} for g in growths}
    other_agree = other_gain = same_every = total = 0
    for r in committed_rounds(ctx.paths.clusters):
        saved = load_round(ctx.paths.clusters, r)
        pool = PrefixRows(rows, saved.n)
        voted = steps.read_rows(ctx, r, "vote")
        feats, kept = steps._featurize(ctx, voted) if voted else (None, [])
        if kept:
            a = saved.decide(feats).accepted
            a_gain = gain_decision(pool, saved, feats)
            other = build_round(pool, saved.config.model_copy(update={"seed": saved.config.seed + 1}))
            logged = {x["id"] for x in steps.read_rows(ctx, r, "reject")}
            run_rule = a if ctx.cfg.graph == "prismatic" else a_gain
            same_every += int((np.array([voted[i]["id"] in logged for i in kept]) == run_rule).sum())
            other_agree += int((a == other.decide(feats).accepted).sum())
            other_gain += int((a_gain == gain_decision(pool, other, feats)).sum())
            total += len(kept)
        for g in growths:
            inc, plan = cluster_round(pool, saved.config.model_copy(update={"refit_growth": g,
                                                                            "refit_every_round_below": 0}), sims[g], r)
            o = out[g]
            o["plans"][plan.kind] = o["plans"].get(plan.kind, 0) + 1
            if kept:
                b = inc.decide(feats).accepted
                b_gain = gain_decision(pool, inc, feats)
                o["rounds"].append({"round": r, "pool": saved.n, "k": saved.k, "fit": plan.kind,
                                    "candidates": len(kept), "agree": int((a == b).sum()),
                                    "agree_gain": int((a_gain == b_gain).sum()),
                                    "accepted_every": int(a.sum()), "accepted_policy": int(b.sum()),
                                    "gain_accepted_every": int(a_gain.sum()),
                                    "gain_accepted_policy": int(b_gain.sum())})
                o["candidates"] += len(kept)
                o["agree"] += int((a == b).sum())
                o["agree_gain"] += int((a_gain == b_gain).sum())
    n = max(1, total)
    for o in out.values():
        o["agreement"] = o["agree"] / max(1, o["candidates"])
        o["agreement_gain"] = o["agree_gain"] / max(1, o["candidates"])
    return {"candidates": total, "run_rule": ctx.cfg.graph, "every_round_decisions_reproduced": same_every / n,
            "agreement_other_seed": other_agree / n, "agreement_other_seed_gain": other_gain / n,
            "by_refit_growth": {str(g): o for g, o in out.items()}}


def simulate(features: Path, growths: list[float], seeds: int, rounds: int, per_round: int) -> dict:
    """The same comparison without generation, on real gradient features: the first `seeds` rows of a
    feature store are the pool, each round decides the next `per_round` rows as candidates, and the pool
    grows by what every-round refitting accepts; every policy decides those identical candidates against
    its own clustering of that identical pool. The store's .npy shards are only read (memmapped)."""
    from prism_agent.cluster.incremental import cluster_round
    from prism_agent.config.cluster import ClusterConfig
    from prism_agent.seeds import derive_seed

    shards = sorted(features.glob("shard-*.npy"))
    x = np.concatenate([np.load(p, mmap_mode="r") for p in shards]).astype(np.float32)
    need = seeds + rounds * per_round
    if x.shape[0] < need:
        raise SystemExit(f"error: {features} has {x.shape[0]} rows, {need} needed")
    base = ClusterConfig(threads=1, refit_every_round_below=0)
    policies = {"every-other-seed": (0.0, 1), **{f"growth {g}": (g, 0) for g in growths}}
    roots = {name: Path(tempfile.mkdtemp(prefix="refit-sim-")) for name in ("every", *policies)}
    pool = list(range(seeds))
    stats = {name: {"agree": 0, "plans": {}} for name in policies}
    total, accepted = 0, 0
    for r in range(1, rounds + 1):
        rows = x[pool]
        cands = x[seeds + (r - 1) * per_round : seeds + r * per_round]

        def decide(name: str, growth: float, shift: int, r: int = r, rows: np.ndarray = rows,
                   cands: np.ndarray = cands) -> np.ndarray:
            cfg = base.model_copy(update={"refit_growth": growth,
                                          "seed": derive_seed(base.seed + shift, "cluster", r) % 2**31})
            made, plan = cluster_round(rows, cfg, roots[name], r)
            if name in stats:
                stats[name]["plans"][plan.kind] = stats[name]["plans"].get(plan.kind, 0) + 1
            return made.decide(cands).accepted

        every = decide("every", 0.0, 0)
        for name, (growth, shift) in policies.items():
            stats[name]["agree"] += int((decide(name, growth, shift) == every).sum())
        total += per_round
        accepted += int(every.sum())
        pool += [seeds + (r - 1) * per_round + i for i in np.flatnonzero(every)]
    return {"features": str(features), "seeds": seeds, "rounds": rounds, "per_round": per_round,
            "candidates": total, "accepted_every_round": accepted, "final_pool": len(pool),
            "agreement": {name: s["agree"] / total for name, s in stats.items()},
            "plans": {name: s["plans"] for name, s in stats.items()}}


def curves(found: dict[str, dict]) -> dict:
    h = {name: np.array(s["g_vendi_history"], dtype=float) for name, s in found.items()}
    m = min(len(v) for v in h.values())
    return {"history": {k: [round(float(x), 4) for x in v] for k, v in h.items()},
            "max_abs_incremental_vs_every": float(np.abs(h["incremental-a"][:m] - h["every-a"][:m]).max()),
            "max_abs_seed_a_vs_seed_b": float(np.abs(h["every-b"][:m] - h["every-a"][:m]).max()),
            "final": {k: float(v[-1]) for k, v in h.items()}}


def main() -> None:
    from prism_agent.config.cluster import ClusterConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=128, help="seed rows")
    ap.add_argument("--seed-a", type=int, default=0)
    ap.add_argument("--seed-b", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="runs at once")
    ap.add_argument("--growths", default="0.05,0.1,0.25,0.5", help="refit growths to replay")
    ap.add_argument("--simulate", type=Path, default=None, help="a feature store: replay on its rows instead "
                    "of running the loop (no generation)")
    ap.add_argument("--sim-seeds", type=int, default=1000)
    ap.add_argument("--sim-candidates", type=int, default=40, help="candidates per simulated round")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    growths = sorted({ClusterConfig().refit_growth, *(float(g) for g in args.growths.split(","))})
    if args.simulate is not None:
        result = simulate(args.simulate, growths, args.sim_seeds, args.rounds, args.sim_candidates)
        (args.out / "simulated.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result))
        return
    found = run_all(args.out, args)
    result = {"replay": replay(args.out / "every-a", growths), "g_vendi": curves(found),
              "runs": {k: {x: v[x] for x in ("accepted", "rounds", "g_vendi")} for k, v in found.items()}}
    (args.out / "agreement.json").write_text(json.dumps(result, indent=1))
    rep = result["replay"]
    by = ", ".join(f"growth {g}: {o['agreement']:.1%} / {o['agreement_gain']:.1%}"
                   for g, o in rep["by_refit_growth"].items())
    print(f"decision agreement on {rep['candidates']} candidates (sparse-cluster rule / gain): {by}; another "
          f"refit seed {rep['agreement_other_seed']:.1%} / {rep['agreement_other_seed_gain']:.1%}; the run's "
          f"logged decisions reproduced {rep['every_round_decisions_reproduced']:.1%}; "
          f"G-Vendi max |Δ| incremental vs every-round "
          f"{result['g_vendi']['max_abs_incremental_vs_every']:.4f}, seed A vs B "
          f"{result['g_vendi']['max_abs_seed_a_vs_seed_b']:.4f}")


if __name__ == "__main__":
    main()
