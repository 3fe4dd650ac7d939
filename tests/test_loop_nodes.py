"""Node-level tests of the loop without a model: the steps of `prism_agent/loop/steps.py` and the nodes of
`graphs/prismatic.py` over a real run directory, one step at a time, where the step under test must not
need a model (routing, a finished step's summary, few-shot picks, strategies). The steps with the real
proxy and generator are in tests/test_loop_steps_real.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from prism_agent.loop import steps
from prism_agent.loop.context import RunContext
from prism_agent.run.rounds import SUMMARIES, Step
from tests.support.loop_nodes import DIM, HEAVY, SHOTS, cfg_for, rt, snapshot, write_round

# ---- fast: no model ------------------------------------------------------------------------------------------


def test_route_done_stuck_next_and_finish(tmp_path):
    from prism_agent.graphs import prismatic

    root = tmp_path / "run"
    ctx = RunContext.open(root, cfg_for(tmp_path / "bench.jsonl", target=3, patience=2))
    state = {"run_dir": str(root), "idle_rounds": 0}
    assert prismatic.route(state, rt(ctx)) == "next"
    assert prismatic.route({**state, "idle_rounds": 1}, rt(ctx)) == "next"
    assert prismatic.route({**state, "idle_rounds": 2}, rt(ctx)) == "stuck"  # idle_rounds ≥ patience
    assert prismatic.route({**state, "idle_rounds": 7}, rt(ctx)) == "stuck"
    assert prismatic.route({"run_dir": str(root)}, rt(ctx)) == "next"  # no idle count yet: 0

    ctx.pool.accepted.append([{"id": "a", "prompt": "p", "response": "neutral"}] * 2, round_index=1, features=2)
    assert prismatic.route(state, rt(ctx)) == "next"  # 2 < 3
    ctx.pool.accepted.append([{"id": "b", "prompt": "p", "response": "neutral"}], round_index=2, features=3)
    assert prismatic.route(state, rt(ctx)) == "done"  # accepted ≥ target
    assert prismatic.route({**state, "idle_rounds": 9}, rt(ctx)) == "done"  # the target wins over patience
    assert prismatic.finish(state, rt(ctx)) == {"stop_reason": "target reached"}

    # a larger target on the same directory (extend): routing continues; a fresh process sees the commits
    ctx = RunContext.open(root, cfg_for(tmp_path / "bench.jsonl", target=5, patience=2))
    assert ctx.pool.accepted.count == 3 and ctx.target == 5
    assert prismatic.route(state, rt(ctx)) == "next"
    assert prismatic.route({**state, "idle_rounds": 2}, rt(ctx)) == "stuck"
    stuck = prismatic.finish({**state, "idle_rounds": 2}, rt(ctx))
    assert stuck["stop_reason"] == "no sample accepted in 2 rounds in a row"
    stops = [e for e in ctx.events if e["kind"] == "stop"]
    assert [(e["reason"], e["accepted"], e["target"]) for e in stops] == [
        ("target reached", 3, 3), ("no sample accepted in 2 rounds in a row", 3, 5)]


@pytest.mark.parametrize(("fn", "step"), [(steps.generate, Step.GENERATE), (steps.vote, Step.VOTE),
                                          (steps.reject, Step.REJECT), (steps.decontaminate, Step.DECONTAMINATE)])
def test_finished_step_returns_its_summary_without_building_anything(tmp_path, fn, step):
    root = tmp_path / "run"
    ctx = RunContext.open(root, cfg_for(tmp_path / "bench.jsonl"))
    summary = SUMMARIES[step](seconds=1.5).as_json()
    # a field an earlier or later version wrote is read past; the step's typed summary comes back
    write_round(ctx, 4, step.file, [{"id": "x", "prompt": "Premise: a b c\nHypothesis: d e f"}],
                {**summary, "made": "by hand"})
    before = snapshot(root)
    assert fn(ctx, 4) == summary
    assert not set(HEAVY) & set(ctx.__dict__), sorted(ctx.__dict__)
    assert snapshot(root) == before  # nothing rewritten


def test_step_node_emits_the_finished_steps_summary(tmp_path):
    from prism_agent.graphs import prismatic

    root = tmp_path / "run"
    ctx = RunContext.open(root, cfg_for(tmp_path / "bench.jsonl"))
    write_round(ctx, 2, "vote", [], {"candidates": 4, "voted": 1, "seconds": 0.5})
    node = prismatic.step_node("vote", steps.vote)
    out = node({"run_dir": str(root), "round": 2, "last": {"round": 2, "cluster": {"k": 4}}}, rt(ctx))
    vote = {"candidates": 4, "voted": 1, "seconds": 0.5, "failed": 0}  # the typed summary: its defaults filled in
    assert out == {"last": {"round": 2, "cluster": {"k": 4}, "vote": vote}}
    [event] = [e for e in ctx.events if e["kind"] == "vote"]
    assert event["round"] == 2 and event["voted"] == 1
    assert not set(HEAVY) & set(ctx.__dict__)


def _engineered_round(sizes=(1, 1, 7, 7), seed=0):
    """Unit features in `len(sizes)` well separated directions, `sizes[c]` rows around direction c."""
    from prism_agent.cluster.round import build_round
    from prism_agent.config.cluster import ClusterConfig

    rng = np.random.default_rng(seed)
    rows = []
    for c, size in enumerate(sizes):
        for _ in range(size):
            v = rng.normal(scale=0.005, size=DIM)
            v[c * 8] += 1.0
            rows.append(v / np.linalg.norm(v))
    feats = np.asarray(rows, dtype=np.float32)[rng.permutation(sum(sizes))]
    return feats, build_round(feats, ClusterConfig(k_min=len(sizes)))


def test_prismatic_fewshot_picks_fill_a_singleton_sparse_cluster(tmp_path):
    from prism_agent.cluster.artifacts import save_round

    root = tmp_path / "run"
    ctx = RunContext.open(root, cfg_for(tmp_path / "bench.jsonl", per_round=4))
    _, round_ = _engineered_round()
    assert sorted(round_.sizes.tolist()) == [1, 1, 7, 7]  # the fixture: two singletons, both sparse
    assert round_.sparse.mask[round_.sizes == 1].all() and not round_.sparse.mask[round_.sizes == 7].any()
    save_round(ctx.paths.clusters, 3, round_)

    picks = steps._fewshot_picks(ctx, 3)
    assert len(picks) == 4  # one per request
    for pick in picks:
        assert pick.cluster is not None and round_.sizes[pick.cluster] == 1 and round_.sparse.mask[pick.cluster]
        positions = pick.positions.tolist()
        assert len(positions) == SHOTS and len(set(positions)) == SHOTS  # filled up to `shots`, no repeats
        assert all(0 <= p < round_.n for p in positions)
        [member] = np.flatnonzero(round_.labels == pick.cluster).tolist()
        assert member in positions  # the singleton itself is among the examples
    again = steps._fewshot_picks(ctx, 3)
    assert [p.positions.tolist() for p in again] == [p.positions.tolist() for p in picks]
    assert not set(HEAVY) & set(ctx.__dict__)


def test_each_round_clusters_with_its_own_seed_so_an_idle_round_does_not_repeat_the_clustering(tmp_path):
    from prism_agent.cluster.artifacts import load_or_build_round, save_round

    root = tmp_path / "run"
    ctx = RunContext.open(root, cfg_for(tmp_path / "bench.jsonl", per_round=4))
    base = ctx.cfg.cluster
    seeds = [steps.cluster_config(ctx, r).seed for r in (1, 2, 3, 1)]
    assert seeds[0] == seeds[3] and len(set(seeds[:3])) == 3 and base.seed not in seeds  # reproducible, distinct
    assert all(steps.cluster_config(ctx, r).model_copy(update={"seed": base.seed}) == base for r in (1, 2))
    # the same pool (a round that accepted nothing), two rounds: two different k-means starts
    feats, _ = _engineered_round(sizes=(5, 5, 5, 5, 5, 5, 5, 5), seed=3)
    feats = feats + np.random.default_rng(0).normal(scale=0.3, size=feats.shape).astype(np.float32)
    one, _ = load_or_build_round(feats, steps.cluster_config(ctx, 1), ctx.paths.clusters, 1)
    two, _ = load_or_build_round(feats, steps.cluster_config(ctx, 2), ctx.paths.clusters, 2)
    assert one.labels.tolist() != two.labels.tolist()
    # a round clustered before per-round seeds (with the run's own seed) is resumed as it was saved
    _, legacy = _engineered_round()
    save_round(ctx.paths.clusters, 5, legacy)
    assert steps.cluster_config(ctx, 5) == base


def test_vanilla_fewshot_picks_are_reproducible_random_pool_positions(tmp_path):
    from prism_agent.cluster.artifacts import committed_rounds

    root = tmp_path / "run"
    cfg = cfg_for(tmp_path / "bench.jsonl", graph="vanilla", per_round=3, seed=7)
    ctx = RunContext.open(root, cfg)
    ctx.__dict__["proxy"] = SimpleNamespace(name="stub-proxy")  # the feature store names its proxy; no model here
    store = ctx.feature_store()
    store.append([f"seed:{i}" for i in range(16)], np.random.default_rng(0).normal(size=(16, DIM)))

    picks = steps._fewshot_picks(ctx, 5)
    assert len(picks) == 3
    for j, pick in enumerate(picks):
        assert pick.mode == "pool" and pick.cluster is None
        want = np.random.default_rng([7, 5, j]).choice(16, size=SHOTS, replace=False)
        assert pick.positions.tolist() == want.tolist()
        assert len(set(pick.positions.tolist())) == SHOTS
    assert len({tuple(p.positions.tolist()) for p in picks}) > 1  # requests of a round differ

    ctx2 = RunContext.open(root, cfg)  # a resumed process rebuilds the same prompts
    ctx2.__dict__["proxy"] = SimpleNamespace(name="stub-proxy")
    assert [p.positions.tolist() for p in steps._fewshot_picks(ctx2, 5)] == [p.positions.tolist() for p in picks]
    assert [p.positions.tolist() for p in steps._fewshot_picks(ctx2, 6)] != [p.positions.tolist() for p in picks]
    assert committed_rounds(ctx.paths.clusters) == []  # vanilla builds no clustering



def test_every_graph_choice_of_the_config_has_a_registered_strategy_and_a_graph():
    import importlib
    from typing import get_args

    from prism_agent.config.run import RunConfig
    from prism_agent.loop.strategy import STRATEGIES, get_strategy

    choices = set(get_args(RunConfig.model_fields["graph"].annotation))
    assert choices == set(STRATEGIES)
    for name in choices:
        strategy = get_strategy(name)
        assert strategy.name == name
        assert importlib.import_module(f"prism_agent.graphs.{strategy.graph}").builder is not None
