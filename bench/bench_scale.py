"""What one round costs outside generation at pool sizes up to a 1.5M run, and what a whole 100K → 1.5M run
costs: every-round refitting (before) against refitting on growth (after).

    python bench/bench_scale.py --sizes 100k,300k,1.5M --threads 1 --out DIR

For each size it builds a run directory (real SNLI rows cycled as the pool's text, synthetic clustered
1024-d features written through the run's own FeatureStore and sample log), then, in a fresh process with
`--threads` threads, runs the loop's real functions for one round: `steps.cluster` (an update between
refits) plus one warm refit of the same pool (`cluster_round`, what `steps.cluster` runs at a refit round),
`steps.measure`, the few-shot lookup (`steps._fewshot_picks` then `Pool.rows_at`), the reject decision
(`strategy.keep` on `--candidates` featurized candidates) and `steps.commit` of `--accept` rows. The refit
is amortized over the rounds between refits (`refit_growth` · n / accepted per round). "Before" is one cold
fit of the whole pool per round (measured where `--before-max` allows, else extrapolated). Setting up the
refit's previous clustering is not timed. Featurizing candidates is generation-side work and not counted.

DIR/scale.json holds per size each node's seconds, their sum `per_round_s`, run directory bytes and peak
RSS, and the modelled total of a 100K → 1.5M run before and after (each node's cost interpolated in n on a
log-log scale between measured sizes, extrapolated past the largest; sizes given with --model-only are
not built, only modelled). The table and this command are in BENCHMARKS.md ("Clustering at scale").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NODES = ("cluster", "measure", "fewshot", "reject", "commit")
ROUND = 3  # the timed round; rounds 1 and 2 hold the previous fit and the timed refit


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return round(float(text.rstrip("km")) * scale)


def run_config(n: int, args):
    from prism_agent.config_files import build_run_config

    return build_run_config(None, {"task": "nli", "target": 2 * n + 10_000_000, "per_round": args.requests,
                                   "seed_sample": 99_890, "cluster": {"threads": args.threads},
                                   "featurizer": {"threads": args.threads}})


def context(run_dir: Path, n: int, args):
    from prism_agent.loop.context import RunContext

    # A directory built by an earlier version of the code keeps its pool; the round is timed with today's
    # settings (e.g. new refit defaults), as a resumed run given --force-config would be.
    return RunContext.open(run_dir, run_config(n, args), allow_config_change=True)


def features(rng: np.random.Generator, centres: np.ndarray, popularity: np.ndarray, m: int) -> np.ndarray:
    """Clustered rows: a popular-template mixture with noise, as gradient features of a pool look."""
    labels = rng.choice(centres.shape[0], size=m, p=popularity)
    x = centres[labels] + 0.35 * rng.standard_normal((m, centres.shape[1]), dtype=np.float32)
    return x.astype(np.float32)


def mixture(dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    centres = rng.standard_normal((4000, dim), dtype=np.float32) / np.sqrt(dim)
    weights = rng.pareto(1.1, 4000) + 0.01
    return centres * 3.0, weights / weights.sum()


def build(run_dir: Path, n: int, args) -> None:
    """The pool: SNLI seed rows, then SNLI rows cycled as accepted samples, one commit per 65,536 rows."""
    from prism_agent.run.pool import count_rows, sample_seeds

    ctx = context(run_dir, n, args)
    sources = list(ctx.task.seeds)
    seeds = sample_seeds(sources, min(n, count_rows(sources)), 0)
    ctx.pool.write_seeds(seeds)
    store, log = ctx.feature_store(), ctx.pool.accepted
    centres, popularity = mixture(store.dim)
    rng = np.random.default_rng(n)
    store.truncate(0)
    for lo in range(0, len(seeds), 65_536):
        part = seeds[lo : lo + 65_536]
        store.append([r["id"] for r in part], features(rng, centres, popularity, len(part)), info={"kind": "seeds"})
    done, batch = len(seeds), 0
    while done < n:
        m = min(65_536, n - done)
        rows = [{**seeds[(done + i) % len(seeds)], "id": f"b{done + i:08d}", "round": batch} for i in range(m)]
        store.append([r["id"] for r in rows], features(rng, centres, popularity, m), info={"kind": "accepted"})
        log.append(rows, round_index=-1 - batch, features=len(store))
        done, batch = done + m, batch + 1
    print(f"built {run_dir}: {len(store)} rows", flush=True)


CLOCK = "cpu"  # which clock a node's seconds are read from; the other is kept under "wall"/"cpu" in the output
OTHER: dict[str, float] = {}


def timed(fn, *a, name: str, **kw):
    """Run fn, return (its result, seconds by CLOCK), and keep both clocks' readings under `name`.

    "cpu" is the process's CPU time: with one thread it is what the node costs that thread, whatever else the
    machine runs at the time (a shared machine otherwise inflates wall seconds several-fold); "wall" is the
    elapsed time, the same figure on an idle machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    OTHER[name] = {"wall": wall, "cpu": cpu}
    return out, (cpu if CLOCK == "cpu" else wall)


def one_round(run_dir: Path, n: int, args) -> dict:
    from prism_agent.atomic import write_atomic, write_jsonl_atomic
    from prism_agent.cluster.incremental import PrefixRows, cluster_round
    from prism_agent.cluster.round import build_round
    from prism_agent.cluster.rows import StoreRows
    from prism_agent.loop import steps

    ctx = context(run_dir, n, args)
    store = ctx.feature_store()
    rows, cfg, b = StoreRows(store), ctx.cfg.cluster, args.accept
    growth = cfg.refit_growth
    fit_n = int((n - b) / (1 + growth)) - 1
    steps.measure(ctx)  # a running loop keeps the Gram matrix current; building it is set-up, not timed
    setup = cfg.model_copy(update={"iterations": 1, "init": "random", "train_points_per_centroid": 8})
    _, setup_s = timed(cluster_round, PrefixRows(rows, fit_n), setup, ctx.paths.clusters, 1, name="setup_s")
    (refit, plan), refit_s = timed(cluster_round, PrefixRows(rows, n - b), steps.cluster_config(ctx, 2),
                                   ctx.paths.clusters, 2, name="refit_s")
    assert plan.kind == "warm", plan
    info, update_s = timed(steps.cluster, ctx, ROUND, name="update_s")
    assert info["fit"] == "update", info
    out = {"n": n, "k": refit.k, "setup_s": setup_s, "refit_s": refit_s, "update_s": update_s}
    picks, pick_s = timed(steps._fewshot_picks, ctx, ROUND, name="fewshot_pick_s")
    _, rows_at_s = timed(ctx.pool.rows_at, (p for pick in picks for p in pick.positions),
                            name="rows_at_s")
    out["fewshot"], out["fewshot_pick_s"], out["rows_at_s"] = pick_s + rows_at_s, pick_s, rows_at_s
    out["ordered_s"] = 0.0
    if ctx.strategy.name in ("gain", "novelty"):  # their search's cluster-ordered copy: built once per fit
        from prism_agent.cluster.ordered import ordered_for_round

        _, out["ordered_s"] = timed(ordered_for_round, ctx.paths.clusters, ROUND, rows, refit.labels, refit.k,
                                    name="ordered_s")
    centres, popularity = mixture(store.dim)
    rng = np.random.default_rng(7)
    cands = features(rng, centres, popularity, args.candidates)
    cand_rows = [{"id": f"c{i}", "prompt": "p", "response": "neutral"} for i in range(args.candidates)]
    (kept, _), out["reject"] = timed(ctx.strategy.keep, ctx, ROUND, cand_rows, cands, name="reject")
    out["reject_accepted"] = len(kept)
    seeds = list(ctx.pool.rows_at(range(b)).values())
    new = [{**seeds[i], "id": f"n{i:06d}", "round": ROUND} for i in range(b)]
    rd = ctx.paths.round_dir(ROUND)
    rd.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(rd / "reject.jsonl", new)
    write_jsonl_atomic(rd / "decontam.jsonl", new)
    feats = features(rng, centres, popularity, b)
    write_atomic(rd / "reject.npy", lambda fh: np.save(fh, feats))
    _, out["commit"] = timed(steps.commit, ctx, ROUND, name="commit")
    # After the commit, as in the loop: the running Gram matrix (kept since the pool was built, untimed
    # set-up) takes the round's rows, then G-Vendi is one d×d eigendecomposition.
    _, out["measure"] = timed(steps.measure, ctx, name="measure")
    if n <= args.before_max:
        pool = PrefixRows(rows, n)
        _, out["cold_fit_s"] = timed(build_round, pool, steps.cluster_config(ctx, ROUND + 1), name="cold_fit_s")
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["run_dir_bytes"] = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    out["clusters_bytes"] = sum(p.stat().st_size for p in ctx.paths.clusters.rglob("*") if p.is_file())
    out["rounds_between_refits"] = max(1.0, growth * n / b)
    out["cluster"] = update_s + (refit_s + out["ordered_s"]) / out["rounds_between_refits"]
    out["per_round_s"] = sum(out[x] for x in NODES)
    out["clock"], out["clocks"] = CLOCK, dict(OTHER)
    return out


def refit_again(run_dir: Path, n: int, args) -> dict:
    """The timed warm refit again, on a directory a round phase left (its round 1 is the previous fit), with
    today's refit settings and each `--neighbours` value (0: all k), nothing saved; and the share of 20,000
    sampled rows whose label is their nearest of all k centroids."""
    from prism_agent.cluster.artifacts import load_round
    from prism_agent.cluster.assign import assign_nearest
    from prism_agent.cluster.backend import faiss_threads, inner_product_index
    from prism_agent.cluster.incremental import PrefixRows
    from prism_agent.cluster.round import build_round
    from prism_agent.cluster.rows import StoreRows, normalized
    from prism_agent.loop import steps

    ctx = context(run_dir, n, args)
    rows = PrefixRows(StoreRows(ctx.feature_store()), n - args.accept)  # the pool the round's refit saw
    previous = load_round(ctx.paths.clusters, 1, mmap=True)
    out = {"n": n, "k_previous": previous.k, "clock": CLOCK}
    sample = np.sort(np.random.default_rng(0).choice(rows.n, size=20_000, replace=False))
    for m in (int(v) for v in args.neighbours.split(",")):
        cfg = steps.cluster_config(ctx, 2).model_copy(update={"refit_neighbours": m})
        result, out[f"refit_{m}_s"] = timed(build_round, rows, cfg, warm=previous.centroids,
                                            warm_cosines=previous.cosines, warm_labels=previous.labels,
                                            name=f"refit_{m}_s")
        exact = assign_nearest(rows.take(sample), result.centroids, threads=args.threads, device="cpu")
        out[f"refit_{m}_recall"] = float(np.mean(exact.labels == np.asarray(result.labels)[sample]))
        # the same sample through faiss' exact fp32 search: whether the bf16 screen (`cluster/screen.py`), where
        # it ran, gave the same labels (differences are fp32 ties)
        with faiss_threads(args.threads):
            _, ids = inner_product_index(normalized(result.centroids), gpu=False).search(
                normalized(rows.take(sample)), 1)
        out[f"refit_{m}_faiss_agree"] = float(np.mean(ids[:, 0] == exact.labels))
        out[f"refit_{m}_objective"] = float(np.mean(result.cosines))
        out[f"refit_{m}_fit"] = result.fit.to_dict()
        print(m, round(out[f"refit_{m}_s"], 1), out[f"refit_{m}_recall"], out[f"refit_{m}_objective"],
              out[f"refit_{m}_faiss_agree"], flush=True)
    out["clocks"] = dict(OTHER)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def rejects(run_dir: Path, n: int, args) -> dict:
    """Each rule's reject decision on `--candidates` candidates against the pool and clustering a round left."""
    from prism_agent.diversity.gram import pool_gram
    from prism_agent.loop.strategy import get_strategy

    ctx = context(run_dir, n, args)
    pool_gram(ctx)  # a running loop has the proxy loaded and the Gram matrix current: not the decision's cost
    centres, popularity = mixture(ctx.feature_store().dim)
    cands = features(np.random.default_rng(7), centres, popularity, args.candidates)
    cand_rows = [{"id": f"c{i}", "prompt": "p", "response": "neutral"} for i in range(args.candidates)]
    out = {"n": n, "candidates": args.candidates, "clock": CLOCK}
    for name in args.strategies.split(","):
        for rep in range(1, args.repeat + 1):  # a loop decides every round in one process: later calls are its
            # steady state (buffers kept, `cluster/scratch.py`); the first pays their first touch
            label = name if rep == args.repeat else f"{name}_call{rep}"
            (kept, _), out[label] = timed(get_strategy(name).keep, ctx, ROUND, cand_rows, cands, name=label)
            out[f"{label}_kept"] = len(kept)
            print(label, round(out[label], 2), len(kept), flush=True)
    if args.copies:  # copies of pool rows as candidates: is each one's original found, and does any rule keep one?
        from prism_agent.diversity.gain_fast import COPY
        from prism_agent.loop.strategy import _pool_search

        search = _pool_search(ctx, ROUND)
        picked = np.sort(np.random.default_rng(11).choice(search.rows.n, size=args.copies, replace=False))
        copies = search.rows.take(picked)
        found = search.nearest(copies)
        out["copies"] = args.copies
        out["copies_found"] = int(np.sum((found.positions == picked) | (found.cosines >= COPY)))
        copy_rows = [{"id": f"copy{i}", "prompt": "p", "response": "neutral"} for i in range(args.copies)]
        for name in args.strategies.split(","):
            kept, _ = get_strategy(name).keep(ctx, ROUND, copy_rows, copies)
            out[f"copies_kept_{name}"] = len(kept)
        print("copies found", out["copies_found"], "of", args.copies,
              {k: v for k, v in out.items() if k.startswith("copies_kept")}, flush=True)
    if args.read_modes:  # the nearest-row search alone, each way of reading members, alternating, twice
        import prism_agent.cluster.ivf as ivf
        from prism_agent.loop.strategy import _pool_search

        search = _pool_search(ctx, ROUND)
        default = ivf.SWEEP_FRACTION, ivf.SWEEP_MIN_ROWS
        for rep in (1, 2):
            for mode in args.read_modes.split(","):
                ivf.SWEEP_FRACTION, ivf.SWEEP_MIN_ROWS = {"sweep": (0.0, 0), "gather": (math.inf, 0),
                                                          "auto": default}[mode]
                found, out[f"nearest_{mode}_{rep}"] = timed(search.nearest, cands, name=f"nearest_{mode}_{rep}")
                out[f"nearest_{mode}_{rep}_checksum"] = int(found.positions.sum())
                print(f"nearest, {mode} read, pass {rep}: {out[f'nearest_{mode}_{rep}']:.2f}", flush=True)
        ivf.SWEEP_FRACTION, ivf.SWEEP_MIN_ROWS = default
    out["clocks"] = dict(OTHER)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


# How each cost grows with the pool n when only one size was measured (k = 1 % of n): an update assigns one
# round's rows to k centroids (b·k·d), a fit trains on 64 rows per centroid and assigns the pool (n·k·d
# each), measure and the pool read are O(n) today, the reject decision is m·k·d, a commit appends b rows.
EXPONENT = {"update_s": 1.0, "refit_s": 2.0, "cold_fit_s": 2.0, "measure": 1.0, "fewshot": 1.0, "reject": 1.0,
            "commit": 0.0, "run_dir_bytes": 1.0, "clusters_bytes": 1.0}


def loglog(points: dict[int, float], n: float, exponent: float = 1.0) -> float:
    """Cost at n, linear in log-log between measured sizes, extrapolated with the nearest segment's slope;
    from a single measured size, scaled as n**exponent."""
    xs = sorted(points)
    if len(xs) == 1:
        return points[xs[0]] * (n / xs[0]) ** exponent
    i = int(np.clip(np.searchsorted(xs, n) - 1, 0, len(xs) - 2))
    x0, x1 = xs[i], xs[i + 1]
    y0, y1 = max(points[x0], 1e-9), max(points[x1], 1e-9)
    slope = np.log(y1 / y0) / np.log(x1 / x0)
    return float(y0 * (n / x0) ** slope)


def model(sizes: dict[int, dict], start: int, stop: int, accept: int, growth: float) -> dict:
    cost = {node: {n: s[node] for n, s in sizes.items()} for node in ("update_s", "refit_s", "measure", "fewshot",
                                                                         "reject", "commit")}
    cold = {n: s["cold_fit_s"] for n, s in sizes.items() if "cold_fit_s" in s}
    before = after = before_cluster = after_cluster = 0.0
    last_fit = start
    for n in range(start, stop, accept):
        rest = sum(loglog(cost[x], n, EXPONENT[x]) for x in ("measure", "fewshot", "reject", "commit"))
        cluster = loglog(cost["update_s"], n, 1.0)
        if n >= last_fit * (1 + growth):
            cluster += loglog(cost["refit_s"], n, 2.0)
            last_fit = n
        refit_all = loglog(cold, n, 2.0) if cold else float("nan")
        after, after_cluster = after + rest + cluster, after_cluster + cluster
        before, before_cluster = before + rest + refit_all, before_cluster + refit_all
    return {"rounds": len(range(start, stop, accept)), "before_s": before, "after_s": after,
            "before_cluster_s": before_cluster, "after_cluster_s": after_cluster,
            "cold_fit_measured_at": sorted(cold)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,300k,1.5M")
    ap.add_argument("--model-only", default="", help="sizes to model, not build (e.g. 1.5M)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=4096, help="generator requests per round (few-shot picks)")
    ap.add_argument("--candidates", type=int, default=8192, help="voted candidates the reject step decides")
    ap.add_argument("--accept", type=int, default=1100, help="samples committed per round (≈13 %% of 8192)")
    ap.add_argument("--before-max", default="300k", help="measure a cold fit (before) up to this size")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="seconds of each node: CPU time of the one-thread process (default; robust on a shared "
                         "machine) or wall time (both are kept in round-N.json)")
    ap.add_argument("--phase", choices=("all", "build", "round", "reject", "refit"), default="all",
                    help="reject: after a size's round, time each --strategies rule's reject decision on its pool "
                         "(one process per size; writes DIR/reject-N.json)")
    ap.add_argument("--strategies", default="gain,prismatic,novelty", help="rules timed by --phase reject")
    ap.add_argument("--repeat", type=int, default=2, help="with --phase reject: calls of each rule in the one "
                    "process; the last is reported (the loop's steady state), earlier ones as NAME_callN")
    ap.add_argument("--read-modes", default="", help="with --phase reject: also time the nearest-row search "
                    "alone reading cluster members each way (e.g. sweep,gather), alternating, two passes")
    ap.add_argument("--copies", type=int, default=0, help="with --phase reject: also search this many copies of "
                    "pool rows, count those whose original is found, and how many each rule keeps")
    ap.add_argument("--neighbours", default="32", help="with --phase refit: the `refit_neighbours` values "
                    "timed (0: search all k), e.g. 32,0; writes DIR/refit-N.json")
    ap.add_argument("--size", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.before_max = parse_size(args.before_max)
    global CLOCK
    CLOCK = args.clock
    if args.phase != "all":
        n = parse_size(args.size)
        run_dir = args.out / f"run-{n}"
        if args.phase == "build":
            build(run_dir, n, args)
        elif args.phase == "reject":
            (args.out / f"reject-{n}.json").write_text(json.dumps(rejects(run_dir, n, args), indent=1))
        elif args.phase == "refit":
            (args.out / f"refit-{n}.json").write_text(json.dumps(refit_again(run_dir, n, args), indent=1))
        else:
            (args.out / f"round-{n}.json").write_text(json.dumps(one_round(run_dir, n, args), indent=1))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                            "OPENBLAS_NUM_THREADS")}}
    skip = {parse_size(s) for s in args.model_only.split(",") if s}
    measured = {}
    for n in sorted(parse_size(s) for s in args.sizes.split(",")):
        if n in skip:
            continue
        result = args.out / f"round-{n}.json"
        if not result.exists():
            common = [sys.executable, __file__, "--out", str(args.out), "--size", str(n), "--threads",
                      str(args.threads), "--requests", str(args.requests), "--candidates", str(args.candidates),
                      "--accept", str(args.accept), "--before-max", str(args.before_max),
                      "--clock", args.clock]
            if not (args.out / f"run-{n}" / "built").exists():
                subprocess.run([*common, "--phase", "build"], check=True, env=env)
                (args.out / f"run-{n}" / "built").write_text("")
            subprocess.run([*common, "--phase", "round"], check=True, env=env)
        measured[n] = json.loads(result.read_text())
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in measured[n].items()}), flush=True)
    from prism_agent.config.cluster import ClusterConfig

    growth = ClusterConfig().refit_growth
    modelled = {}
    for n in sorted(skip):
        row = {x: loglog({m: s[x] for m, s in measured.items()}, n, EXPONENT[x]) for x in
               ("update_s", "refit_s", "measure", "fewshot", "reject", "commit", "run_dir_bytes", "clusters_bytes")}
        row["rounds_between_refits"] = max(1.0, growth * n / args.accept)
        row["cluster"] = row["update_s"] + row["refit_s"] / row["rounds_between_refits"]
        row["per_round_s"] = sum(row[x] for x in NODES)
        cold = {m: s["cold_fit_s"] for m, s in measured.items() if "cold_fit_s" in s}
        if cold:
            row["cold_fit_s"] = loglog(cold, n, 2.0)
        row["before_per_round_s"] = row.get("cold_fit_s", float("nan")) + row["per_round_s"] - row["cluster"]
        modelled[n] = {"modelled": True, **row}
    total = model(measured, 100_000, 1_500_000, args.accept, growth)
    (args.out / "scale.json").write_text(json.dumps({
        "threads": args.threads, "accept_per_round": args.accept, "candidates": args.candidates,
        "requests": args.requests, "refit_growth": growth, "sizes": {**measured, **modelled},
        "total_100k_to_1.5M": total,
        "total_by_refit_growth": {str(g): model(measured, 100_000, 1_500_000, args.accept, g)["after_s"]
                                  for g in (0.05, 0.10, 0.25, 0.5)}}, indent=1))
    print(json.dumps(total))


if __name__ == "__main__":
    main()
