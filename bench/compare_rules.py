"""Acceptance rules against vanilla at the same generation budget, over several run seeds, on the embedded default.

Every rule (`--graph` prismatic, novelty, gain, generate-only) and vanilla runs the same rounds × generator
requests from the same seed rows for each run seed (the run seed also draws the seed rows, so seeds differ
between run seeds, never between rules). Runs go `--jobs` at a time, each resumed if found unfinished; then
one `prism-agent report` over all runs and a table per rule (mean and min–max over run seeds): accepted
samples, final G-Vendi, G-Vendi added per accepted sample, G-Vendi at the pool size every run reached, and
wall time. Writes `summary.json` and `table.md` under `--out`.

    nice -n 10 python bench/compare_rules.py --out bench/out/rules --seeds 1 --rounds 24 --per-round 8

The results and the command are in EVIDENCE.md ("Acceptance rules at an equal budget").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

RULES = ("prismatic", "novelty", "gain", "generate-only", "vanilla")
CONFIG = "seed_sample = {rows}\npatience = 1000\nseed = {seed}\n"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "prism_agent.cli.app", *args]


def run(rule: str, seed: int, out: Path, args) -> dict:
    run_dir = out / f"{args.task}-{rule}-s{seed}"
    cfg = out / f"{args.task}-s{seed}.toml"
    cfg.write_text(CONFIG.format(rows=args.rows, seed=seed))
    timing = out / f"{run_dir.name}.time.json"  # the first call's wall time: a resumed call's is partial
    log = out / f"{run_dir.name}.log"  # a file, not a pipe: stopping this script must not kill the run (EPIPE)
    started = time.perf_counter()
    with log.open("a") as fh:
        done = subprocess.run(cli("run", "--task", args.task, "--graph", rule, "--target", "1M", "--max-rounds",
                                  str(args.rounds), "--per-round", str(args.per_round), "--config", str(cfg),
                                  "--run-dir", str(run_dir), "--plain"), stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{rule}/s{seed} failed; see {log}")
    if not timing.exists():
        timing.write_text(json.dumps({"seconds": round(seconds, 1)}))
    status = json.loads(subprocess.run(cli("status", str(run_dir), "--json"), capture_output=True, text=True,
                                       check=True).stdout)
    curve = [(e["pool"], e["g_vendi"]) for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())
             if e.get("kind") == "measure" and "pool" in e]
    print(f"{rule:13s} s{seed}: {status['accepted']} accepted, G-Vendi {status['g_vendi_history'][0]:.3f} → "
          f"{status['g_vendi']:.3f} ({seconds:.0f} s)", flush=True)
    return {"rule": rule, "seed": seed, "run_dir": str(run_dir), "accepted": status["accepted"],
            "rounds": status["rounds"], "start": status["g_vendi_history"][0], "end": status["g_vendi"],
            "curve": curve, "seconds": json.loads(timing.read_text())["seconds"]}


def at_pool(curve: list[tuple[int, float]], size: int) -> float:
    """G-Vendi at pool size `size`, linear between the run's measures (one per round)."""
    pools, values = zip(*sorted(set(curve)), strict=True)
    return float(np.interp(size, pools, values))


def table(results: list[dict]) -> str:
    equal = min(max(p for p, _ in r["curve"]) for r in results)
    by_seed_equal = {s: min(max(p for p, _ in r["curve"]) for r in results if r["seed"] == s)
                     for s in {r["seed"] for r in results}}
    lines = [f"G-Vendi at equal pool: at the largest pool every run of that seed reached "
             f"({', '.join(f's{s}: {v}' for s, v in sorted(by_seed_equal.items()))}; all seeds: {equal})", "",
             "| rule | seeds | accepted | final G-Vendi | per accepted sample | at equal pool | wall time (s) |",
             "|---|---|---|---|---|---|---|"]

    def cell(values: list[float], fmt: str) -> str:
        if len(values) == 1:
            return format(values[0], fmt)
        return f"{format(float(np.mean(values)), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"

    for rule in RULES:
        rs = [r for r in results if r["rule"] == rule]
        if not rs:
            continue
        per = [(r["end"] - r["start"]) / r["accepted"] if r["accepted"] else float("nan") for r in rs]
        eq = [at_pool(r["curve"], by_seed_equal[r["seed"]]) for r in rs]
        lines.append(f"| {rule} | {','.join(str(r['seed']) for r in rs)} | {cell([r['accepted'] for r in rs], '.0f')} "
                     f"| {cell([r['end'] for r in rs], '.3f')} | {cell(per, '+.4f')} | {cell(eq, '.3f')} "
                     f"| {cell([r['seconds'] for r in rs], '.0f')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--task", default="nli")
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--seeds", default="1,2,3", help="run seeds, comma-separated")
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--per-round", type=int, default=8)
    ap.add_argument("--rows", type=int, default=128, help="seed rows (the same sample for every rule of a seed)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [(rule, int(s)) for s in args.seeds.split(",") for rule in args.rules.split(",")]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run(*job, args.out, args), todo))
    subprocess.run(cli("report", *(r["run_dir"] for r in results), "--out", str(args.out / "report")), check=True)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))
    text = table(results)
    (args.out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
