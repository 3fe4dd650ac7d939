"""Shared by the loop's node tests (tests/test_loop_nodes.py, tests/test_loop_steps_real.py): a small run
config, a run-directory snapshot, the runtime a node gets from the runner, and round files written by hand."""

from __future__ import annotations

import json
from pathlib import Path

from prism_agent.config_files import build_run_config
from prism_agent.loop.context import RunContext

HEAVY = ("roles", "replay", "proxy", "featurizer", "decontaminator")  # RunContext's lazily built parts
SHOTS = 5  # GeneratorSampling.shots default
DIM = 1024


def cfg_for(bench: str | Path, **over):
    # The node tests check the steps as the paper's rule runs them (sparse counts, nearest_cluster); the default
    # rule, gain, has its own tests (test_accept_rules.py, test_gain_fast.py).
    base = {"task": "nli", "graph": "prismatic", "target": 2, "seed_sample": 16, "per_round": 2, "patience": 3,
            "benchmarks": [f"snli200={bench}"], "cluster": {"k_min": 4},
            "featurizer": {"rank_in": 16, "rank_out": 16}}
    return build_run_config(None, {**base, **over})


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def rt(ctx: RunContext):
    """What the graph hands its nodes when the runner streams it with `context=ctx`."""
    from langgraph.runtime import Runtime

    return Runtime(context=ctx)


def share(ctx: RunContext, base: RunContext) -> RunContext:
    """Hand `base`'s loaded proxy and featurizer to `ctx` (same settings): what `ctx` would build itself."""
    ctx.__dict__["proxy"] = base.proxy
    ctx.__dict__["featurizer"] = base.featurizer
    return ctx


def write_round(ctx: RunContext, r: int, step: str, rows: list[dict], summary: dict | None = None) -> None:
    folder = ctx.paths.round_dir(r)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{step}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    if summary is not None:
        (folder / f"{step}.json").write_text(json.dumps(summary))


def seed_rows(ctx: RunContext) -> list[dict]:
    return list(ctx.pool.iter_seeds())


