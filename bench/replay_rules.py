"""The acceptance rules alone, replayed on real gradient features without any model: what each keeps from the
same candidate stream and what that does to G-Vendi.

From a feature store of real rows (e.g. `prism-agent measure` of 2,000 SNLI train rows, cached as `measure`
caches them), each draw takes `--pool` rows as the seed pool and streams `--rounds` batches of `--batch`
other rows as one round's voted candidates; every rule decides on each batch with the loop's own code
(`diversity/gain.py`, `diversity/novelty.py`, the prismatic sparse-nearest rule of `cluster/`) and the kept
rows join the pool. The candidates are real rows, not generated ones, so this isolates the rejection rule
from what prompting does (that needs `bench/compare_rules.py`).

    python bench/replay_rules.py --features DIR --draws 3 --rounds 24 --batch 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from prism_agent.cluster.round import build_round
from prism_agent.config.cluster import ClusterConfig
from prism_agent.diversity.gain import greedy_gain_keep
from prism_agent.diversity.novelty import nearest, novelty_keep, pool_threshold
from prism_agent.diversity.vendi import CovarianceAccumulator, vendi
from prism_agent.gradients.store import FeatureStore

RULES = ("prismatic", "novelty", "gain", "all")


def decide(rule: str, pool: np.ndarray, cands: np.ndarray, r: int) -> list[int]:
    if rule == "all":
        return list(range(len(cands)))
    if rule == "novelty":
        return novelty_keep(pool, cands, pool_threshold(pool)).kept
    if rule == "gain":
        acc = CovarianceAccumulator(pool.shape[1])
        acc.add(pool)
        _, where = nearest(pool, cands)
        return greedy_gain_keep(acc.gram, acc.n, cands, pool[where]).order
    rnd = build_round(pool, ClusterConfig(seed=r))  # prismatic: nearest centroid sparse
    return np.flatnonzero(rnd.decide(cands).accepted).tolist()


def replay(feats: np.ndarray, rule: str, draw: int, args) -> dict:
    order = np.random.default_rng(draw).permutation(len(feats))
    pool = feats[order[: args.pool]]
    stream = order[args.pool :]
    curve = [(len(pool), vendi(pool).q1)]
    started = time.perf_counter()
    for r in range(args.rounds):
        cands = feats[stream[r * args.batch : (r + 1) * args.batch]]
        kept = decide(rule, pool, cands, r)
        pool = np.concatenate([pool, cands[kept]])
        curve.append((len(pool), vendi(pool).q1))
    return {"rule": rule, "draw": draw, "accepted": len(pool) - args.pool, "start": curve[0][1],
            "end": curve[-1][1], "curve": curve, "seconds": round(time.perf_counter() - started, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=Path, required=True, help="a feature store folder")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--pool", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--batch", type=int, default=5, help="voted candidates per round (the loop's nli runs: ≈ 5)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    store = FeatureStore.load(args.features)
    feats = np.concatenate(list(store.iter_blocks())).astype(np.float32)
    need = args.pool + args.rounds * args.batch
    if need > len(feats):
        raise SystemExit(f"error: {need} rows needed, the store has {len(feats)}")
    results = [replay(feats, rule, d, args) for d in range(args.draws) for rule in RULES]
    print(f"{len(feats)} rows; pool {args.pool}, {args.rounds} rounds × {args.batch} candidates, {args.draws} draws")
    print("| rule | accepted | final G-Vendi | per accepted sample | at equal pool | seconds |")
    print("|---|---|---|---|---|---|")
    for rule in RULES:
        rs = [r for r in results if r["rule"] == rule]
        equal = [min(max(p for p, _ in x["curve"]) for x in results if x["draw"] == r["draw"]) for r in rs]
        at = [float(np.interp(e, *zip(*r["curve"], strict=True))) for r, e in zip(rs, equal, strict=True)]
        per = [(r["end"] - r["start"]) / r["accepted"] if r["accepted"] else float("nan") for r in rs]

        def cell(v, fmt):
            return f"{format(float(np.mean(v)), fmt)} ({format(min(v), fmt)}–{format(max(v), fmt)})"

        print(f"| {rule} | {cell([r['accepted'] for r in rs], '.1f')} | {cell([r['end'] for r in rs], '.3f')} | "
              f"{cell(per, '+.4f')} | {cell(at, '.3f')} | {cell([r['seconds'] for r in rs], '.1f')} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
