"""The long kill -9 chaos run (RELIABILITY.md; the suite's version is tests/test_reliability_kill.py: 10 kills).

Runs a tiny real NLI run (the embedded 135M model in every role), SIGKILLs it --kills times at random
moments, restarts it each time, lets it finish, and checks exactly-once (tests/support/chaos.py). Prints
one JSON report; RELIABILITY.md quotes it with this command:

    python bench/chaos_kill.py --out bench/out/chaos --kills 40 --target 6 --seed 11
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives with the tests

from tests.support.chaos import check_run, run_with_kills
from tests.test_reliability_kill import tiny_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--target", type=int, default=6)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--min-s", type=float, default=3.0)
    ap.add_argument("--max-s", type=float, default=30.0)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    run_dir = args.out / "run"
    cmd = ["run", "--task", "nli", "--target", str(args.target), "--config", tiny_config(args.out),
           "--run-dir", str(run_dir), "--plain"]
    report = run_with_kills(cmd, args.kills, seed=args.seed, min_s=args.min_s, max_s=args.max_s)
    check_run(run_dir, report.target, report)
    data = dataclasses.asdict(report) | {"ok": report.ok, "command": " ".join(sys.argv)}
    (args.out / "report.json").write_text(json.dumps(data, indent=1))
    print(json.dumps({k: v for k, v in data.items() if k != "final_stderr"}, indent=1))
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
