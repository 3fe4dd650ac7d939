"""Exactly once under kill -9 (RELIABILITY.md): a real tiny NLI run (the embedded 135M model in every role, real
SNLI seeds and test items) is SIGKILLed once inside each node of the loop, in the order the nodes run, in one
run directory: prepare (mid seed featurization, its third chunk's shard half written), measure, cluster,
generate and vote (each after one call was recorded), reject, decontaminate, commit (rows and shard written,
commit record not). Each kill is the test hook `PRISM_AGENT_TEST_KILL_AT` (`prism_agent/killpoint.py`): the
process kills itself with SIGKILL just before that write, and where it landed is asserted from the hook's line
and from the run's own event log (tests/support/chaos.py). After each kill the same command resumes; then
the run finishes and must hold exactly the target, unique ids, valid JSON everywhere, intact provenance, a
feature store equal to the pool, and no LLM call paid twice. The seed chunks committed before the first kill
are not recomputed, and the seed features equal an uninterrupted run's.

bench/chaos_kill.py is the longer version (more kills, points drawn at random inside each node).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.support.chaos import NODES, check_run, run_with_kills
from tests.support.tiny import benchmark_head

pytestmark = pytest.mark.slow

SEED_CHUNK = 4  # 16 seeds in 4 chunks: the kill in prepare lands between chunks 2 and 3
TINY = ("seed_sample = 16\nper_round = 4\npatience = 30\n"
        # a 16-row pool in 4 clusters, all but the largest sparse: the 135M solver labels almost every candidate
        # "neutral", so candidates crowd into the big neutral clusters; this test is about bookkeeping
        "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"
        f"[featurizer]\nrank_in = 16\nrank_out = 16\nseed_chunk = {SEED_CHUNK}\n")

# One kill inside each node, in the order a run reaches them (`<node>:<n>` or `<node>:<write>:<n>`).
PLAN = [
    "prepare:shard-000002.npy:1",  # chunks 0 and 1 committed, chunk 2's ids written, its array not
    "measure:event measure:1",  # G-Vendi computed, not yet reported
    "cluster:1",  # before the round's first clustering file is in place
    "generate:call log:2",  # one generation call recorded, the others not
    "vote:call log:2",  # one solver call recorded
    "reject:reject.npy:1",  # candidates featurized, not written
    "decontaminate:1",  # verdicts made, not written
    "commit:commit record:1",  # the first commit with rows: its shard and rows written, its commit record not
]


def tiny_config(tmp) -> str:
    bench = benchmark_head(tmp, "snli-test")
    cfg = tmp / "run.toml"
    cfg.write_text(f'benchmarks = ["snli200={bench}"]\n' + TINY)
    return str(cfg)


def _shard_files(features: Path) -> dict[str, tuple[int, int]]:
    """Each feature-store file: (inode, mtime_ns), which a rewrite (rename onto it) would change."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(features.iterdir())}


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    run_dir = tmp / "run"
    config = tiny_config(tmp)
    args = ["run", "--task", "nli", "--target", "3", "--config", config, "--run-dir", str(run_dir), "--plain"]
    after: list[dict] = []

    def on_kill(kill, run_dir: Path) -> None:
        after.append({"features": _shard_files(run_dir / "features"),
                      "events": (run_dir / "events.jsonl").read_text().splitlines()})

    report = run_with_kills(args, PLAN, on_kill=on_kill)
    return {"run_dir": run_dir, "config": config, "report": report, "after": after}


def test_each_kill_landed_inside_its_node(killed):
    report = killed["report"]
    assert [k.rc for k in report.kills] == [-signal.SIGKILL] * len(PLAN), report
    assert report.landed == [p.split(":")[0] for p in PLAN] and set(report.landed) == set(NODES)
    named = [p.split(":")[1] for p in PLAN]
    assert [k.write for k, want in zip(report.kills, named, strict=True) if not want.isdigit()] == \
        [want for want in named if not want.isdigit()]
    assert not [p for p in report.problems if p.startswith("kill at")], report.problems  # the event-log check


def test_the_killed_run_finishes_with_nothing_lost_or_duplicated(killed):
    report = killed["report"]
    assert report.final_rc == 0, report.final_stderr
    check_run(killed["run_dir"], report.target, report)
    assert not report.problems, report.problems
    assert report.facts["accepted"] == report.target


def test_seed_featurization_resumes_after_the_last_complete_chunk(killed, tmp_path):
    """The kill in prepare left chunks 0 and 1 as shards and chunk 2 torn; the resumed run redid chunk 2 only
    from its first row and never rewrote chunks 0 and 1; each chunk was reported once; and the seed features
    equal those of an uninterrupted prepare (same config, new directory, this process)."""
    from prism_agent.config_files import build_run_config
    from prism_agent.gradients.store import FeatureStore
    from prism_agent.loop import steps
    from prism_agent.loop.context import RunContext

    run_dir, first = killed["run_dir"], killed["after"][0]
    shards = sorted(n for n in first["features"] if n.endswith(".npy"))
    assert shards == ["shard-000000.npy", "shard-000001.npy"]  # chunk 2's array never landed
    chunk_events = [json.loads(x) for x in first["events"] if '"seed_features"' in x]
    assert [(e["shard"], e["rows"]) for e in chunk_events] == [(0, 4), (1, 8)]

    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    chunks = [e for e in events if e["kind"] == "seed_features"]
    assert [(e["shard"], e["rows"], e["of"]) for e in chunks] == [(k, 4 * (k + 1), 16) for k in range(4)]
    final = _shard_files(run_dir / "features")
    for name in ("shard-000000.npy", "shard-000000.ids.jsonl", "shard-000001.npy", "shard-000001.ids.jsonl"):
        assert final[name] == first["features"][name], f"{name} was written again after the kill"
    store = FeatureStore.load(run_dir / "features")
    infos = [s.info() for s in store.shards[:4]]
    assert [i["seed_rows"] for i in infos] == [[0, 4], [4, 8], [8, 12], [12, 16]]

    clean = RunContext.open(tmp_path / "run", build_run_config(Path(killed["config"]), {"task": "nli", "target": 3}))
    steps.prepare(clean)
    want = clean.feature_store()
    assert want.ids() == store.ids()[:16]
    # same chunks, same batches: equal to the precision of the featurizer's dtype
    tol = 1e-5 if clean.cfg.featurizer.dtype == "float32" else 1e-2
    got, ref = store.take(range(16)), want.take(range(16))
    assert np.abs(got - ref).max() <= tol * np.abs(ref).max(), np.abs(got - ref).max()
