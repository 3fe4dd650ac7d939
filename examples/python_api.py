"""Grow a small gradient-diverse NLI set from Python, export it and measure it.

    python examples/python_api.py [RUN_DIR]

Runs as is on a CPU with the embedded default (SmolLM2-135M-Instruct as generator, solver, judge and proxy;
the first use pulls it and the seed data). The same run directory works with the CLI: run this again, or
`prism-agent run --task nli --target 4 --run-dir RUN_DIR`, to resume it (the CLI takes the run's other settings
from `--config`; examples/run-nli.toml shows the file), and
`prism-agent status RUN_DIR` to look at it. Ctrl-C stops after the current step.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prism_agent import Run, measure


def main() -> None:
    run_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/python-api")
    # A few small rounds. The 135M default rarely writes a candidate that lands in a sparse cluster of a large
    # pool, so this starts from 16 seeds in 4+ clusters and counts 90 % of them as sparse (as the tests do):
    # samples are accepted within minutes. Drop these settings for a real run.
    run = Run(task="nli", target=4, run_dir=run_dir, per_round=6, max_rounds=4, seed_sample=16,
              cluster={"k_min": 4, "sparse_ratio": 0.9})
    for update in run.stream():
        if update.step == "measure":
            print(f"G-Vendi {update.data['g_vendi']:.3f} over {update.data['pool']} pool rows")
        elif update.step == "commit":
            print(f"round {update.data['last']['round']}: {update.data['accepted']} accepted so far")
    result = run.result
    if result is None or not result.finished:
        print(f"stopped; run this again to resume {run_dir}")
        return
    print(f"{result.stop_reason}: {result.accepted}/{result.target} accepted in {result.seconds:.0f} s")

    status = run.status()
    print(f"status: {status['rounds']} rounds, pool {status['pool']}, G-Vendi history {status['g_vendi_history']}")
    out = run_dir.with_name(f"{run_dir.name}.jsonl")
    if run.export(out):
        scores = measure(out)  # the same numbers as `prism-agent measure OUT --json`
        print(f"exported {scores['n']} samples to {out}: G-Vendi {scores['g_vendi']:.3f}")
    else:
        print("no sample accepted within the round budget: raise max_rounds (free to change) and run again")


if __name__ == "__main__":
    main()
