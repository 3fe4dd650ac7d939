"""The long kill -9 chaos run (RELIABILITY.md; the suite's version is tests/test_reliability_kill.py: one kill
inside each node).

Runs a tiny real NLI run (the embedded 135M model in every role) and SIGKILLs it --kills times, restarting it
each time, then lets it finish and checks exactly-once (tests/support/chaos.py). The first kill lands inside
`prepare` (seed featurization), the others cycle through measure, cluster, generate, vote, reject,
decontaminate and commit, each before the node's n-th durable write, n drawn from --seed (the test hook
`PRISM_AGENT_TEST_KILL_AT`, `prism_agent/killpoint.py`); where each landed is asserted, not just recorded.
Prints one JSON report; RELIABILITY.md quotes it with this command:

    python bench/chaos_kill.py --out bench/out/chaos --kills 24 --target 6 --seed 11
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives with the tests

from tests.support.chaos import NODES, check_run, run_with_kills
from tests.test_reliability_kill import tiny_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--target", type=int, default=6)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    run_dir = args.out / "run"
    cmd = ["run", "--task", "nli", "--target", str(args.target), "--config", tiny_config(args.out),
           "--run-dir", str(run_dir), "--plain"]
    rng = random.Random(args.seed)
    # about how many durable writes each node makes in one round of this run (a larger n lands in the same
    # node of a later round: the hook counts over the process's life)
    writes = {"prepare": 16, "measure": 1, "cluster": 4, "generate": 6, "vote": 6, "reject": 3,
              "decontaminate": 3, "commit": 6}
    # prepare runs once per run: only the first kill goes there, the rest cycle through the round's nodes
    nodes = [NODES[0], *(NODES[1 + i % (len(NODES) - 1)] for i in range(args.kills - 1))]
    plan = [f"{node}:{rng.randint(1, writes[node])}" for node in nodes]
    report = run_with_kills(cmd, plan)
    check_run(run_dir, report.target, report)
    data = dataclasses.asdict(report) | {"ok": report.ok, "command": " ".join(sys.argv)}
    (args.out / "report.json").write_text(json.dumps(data, indent=1))
    print(json.dumps({k: v for k, v in data.items() if k != "final_stderr"}, indent=1))
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
