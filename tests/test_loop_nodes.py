"""Node-level tests of the loop: the steps of `prism_agent/loop/steps.py` and the nodes of
`graphs/prismatic.py` over a real run directory, one step at a time.

Fast tests use a run directory with no model at all (the step under test must not need one: routing, a
finished step's summary, few-shot picks). Slow tests share one prepared run (16 real SNLI seeds featurized
by the real SmolLM2-135M proxy, ≈20 s) that each test copies; the copies reuse the loaded proxy and
featurizer (`_share`) so the model loads once per module.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from prism_agent.config.run import build_run_config
from prism_agent.loop import steps
from prism_agent.loop.context import RunContext

HEAVY = ("roles", "replay", "proxy", "featurizer", "decontaminator")  # RunContext's lazily built parts
SHOTS = 5  # GeneratorSampling.shots default
DIM = 1024


def _cfg(bench: str | Path, **over):
    base = {"task": "nli", "target": 2, "seed_sample": 16, "per_round": 2, "patience": 3,
            "benchmarks": [f"snli200={bench}"], "cluster": {"k_min": 4},
            "featurizer": {"rank_in": 16, "rank_out": 16}}
    return build_run_config(None, {**base, **over})


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rt(ctx: RunContext):
    """What the graph hands its nodes when the runner streams it with `context=ctx`."""
    from langgraph.runtime import Runtime

    return Runtime(context=ctx)


def _share(ctx: RunContext, base: RunContext) -> RunContext:
    """Hand `base`'s loaded proxy and featurizer to `ctx` (same settings): what `ctx` would build itself."""
    ctx.__dict__["proxy"] = base.proxy
    ctx.__dict__["featurizer"] = base.featurizer
    return ctx


def _write_round(ctx: RunContext, r: int, step: str, rows: list[dict], summary: dict | None = None) -> None:
    folder = ctx.paths.round_dir(r)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{step}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    if summary is not None:
        (folder / f"{step}.json").write_text(json.dumps(summary))


def _seed_rows(ctx: RunContext) -> list[dict]:
    return list(ctx.pool.iter_seeds())


# ---- fast: no model ------------------------------------------------------------------------------------------


def test_route_done_stuck_next_and_finish(tmp_path):
    from prism_agent.graphs import prismatic

    root = tmp_path / "run"
    ctx = RunContext.open(root, _cfg(tmp_path / "bench.jsonl", target=3, patience=2))
    state = {"run_dir": str(root), "idle_rounds": 0}
    assert prismatic.route(state, _rt(ctx)) == "next"
    assert prismatic.route({**state, "idle_rounds": 1}, _rt(ctx)) == "next"
    assert prismatic.route({**state, "idle_rounds": 2}, _rt(ctx)) == "stuck"  # idle_rounds ≥ patience
    assert prismatic.route({**state, "idle_rounds": 7}, _rt(ctx)) == "stuck"
    assert prismatic.route({"run_dir": str(root)}, _rt(ctx)) == "next"  # no idle count yet: 0

    ctx.pool.accepted.append([{"id": "a", "prompt": "p", "response": "neutral"}] * 2, round_index=1, features=2)
    assert prismatic.route(state, _rt(ctx)) == "next"  # 2 < 3
    ctx.pool.accepted.append([{"id": "b", "prompt": "p", "response": "neutral"}], round_index=2, features=3)
    assert prismatic.route(state, _rt(ctx)) == "done"  # accepted ≥ target
    assert prismatic.route({**state, "idle_rounds": 9}, _rt(ctx)) == "done"  # the target wins over patience
    assert prismatic.finish(state, _rt(ctx)) == {"stop_reason": "target reached"}

    # a larger target on the same directory (extend): routing continues; a fresh process sees the commits
    ctx = RunContext.open(root, _cfg(tmp_path / "bench.jsonl", target=5, patience=2))
    assert ctx.pool.accepted.count == 3 and ctx.target == 5
    assert prismatic.route(state, _rt(ctx)) == "next"
    assert prismatic.route({**state, "idle_rounds": 2}, _rt(ctx)) == "stuck"
    stuck = prismatic.finish({**state, "idle_rounds": 2}, _rt(ctx))
    assert stuck["stop_reason"] == "no sample accepted in 2 rounds in a row"
    stops = [e for e in ctx.events if e["kind"] == "stop"]
    assert [(e["reason"], e["accepted"], e["target"]) for e in stops] == [
        ("target reached", 3, 3), ("no sample accepted in 2 rounds in a row", 3, 5)]


@pytest.mark.parametrize(("fn", "step"), [(steps.generate, "generate"), (steps.vote, "vote"),
                                          (steps.reject, "reject"), (steps.decontaminate, "decontam")])
def test_finished_step_returns_its_summary_without_building_anything(tmp_path, fn, step):
    root = tmp_path / "run"
    ctx = RunContext.open(root, _cfg(tmp_path / "bench.jsonl"))
    summary = {"made": "by hand", "count": 3, "seconds": 1.5}
    _write_round(ctx, 4, step, [{"id": "x", "prompt": "Premise: a b c\nHypothesis: d e f"}], summary)
    before = _snapshot(root)
    assert fn(ctx, 4) == summary
    assert not set(HEAVY) & set(ctx.__dict__), sorted(ctx.__dict__)
    assert _snapshot(root) == before  # nothing rewritten


def test_step_node_emits_the_finished_steps_summary(tmp_path):
    from prism_agent.graphs import prismatic

    root = tmp_path / "run"
    ctx = RunContext.open(root, _cfg(tmp_path / "bench.jsonl"))
    _write_round(ctx, 2, "vote", [], {"candidates": 4, "voted": 1, "seconds": 0.5})
    node = prismatic.step_node("vote", steps.vote)
    out = node({"run_dir": str(root), "round": 2, "last": {"round": 2, "cluster": {"k": 4}}}, _rt(ctx))
    assert out == {"last": {"round": 2, "cluster": {"k": 4}, "vote": {"candidates": 4, "voted": 1, "seconds": 0.5}}}
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
    ctx = RunContext.open(root, _cfg(tmp_path / "bench.jsonl", per_round=4))
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
    ctx = RunContext.open(root, _cfg(tmp_path / "bench.jsonl", per_round=4))
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
    cfg = _cfg(tmp_path / "bench.jsonl", graph="vanilla", per_round=3, seed=7)
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


# ---- slow: the real proxy and generator ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    from prism_agent.data.pull import ensure as ensure_data

    path = tmp_path_factory.mktemp("bench") / "snli-test-200.jsonl"
    with ensure_data("snli-test").open() as src, path.open("w") as dst:
        for _, line in zip(range(200), src, strict=False):
            dst.write(line)
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, bench):
    """A run directory after `prepare`: 16 real seeds and their real features (target 2, per_round 2)."""
    root = tmp_path_factory.mktemp("prepared") / "run"
    cfg = _cfg(bench)
    ctx = RunContext.open(root, cfg)
    info = steps.prepare(ctx)
    return SimpleNamespace(root=root, cfg=cfg, ctx=ctx, info=info, files=_snapshot(root))


def _copy(prepared, dest: Path, **over) -> RunContext:
    """A fresh RunContext (as in a new process) on a copy of the prepared run."""
    shutil.copytree(prepared.root, dest)
    cfg = prepared.cfg if not over else prepared.cfg.model_copy(update=over)
    return _share(RunContext.open(dest, cfg, allow_config_change=bool(over)), prepared.ctx)


@pytest.mark.slow
def test_prepare_writes_seeds_and_features_once(prepared, tmp_path, monkeypatch):
    ctx = prepared.ctx
    seeds = _seed_rows(ctx)
    assert prepared.info == {"seeds": 16, "pool": 16}
    assert len(seeds) == 16 and len({s["id"] for s in seeds}) == 16
    assert all(s["id"].startswith("seed:") and s["prompt"].startswith("Premise: ") for s in seeds)
    store = ctx.feature_store()
    assert len(store) == 16 and store.ids() == [s["id"] for s in seeds]  # pool order = feature order
    assert [s.info()["kind"] for s in store.shards] == ["seeds"]
    assert np.isfinite(store.take(range(16))).all()

    def featurize_again(*_):
        raise AssertionError("prepare featurized the seeds again")

    monkeypatch.setattr(steps, "_featurize", featurize_again)
    again = _copy(prepared, tmp_path / "run")  # a new process on the same directory
    assert steps.prepare(again) == prepared.info
    assert _snapshot(tmp_path / "run") == prepared.files  # same files, same bytes
    assert steps.prepare(ctx) == prepared.info and _snapshot(prepared.root) == prepared.files


@pytest.mark.slow
def test_reconcile_cuts_feature_rows_past_the_last_commit(prepared, tmp_path):
    ctx = _copy(prepared, tmp_path / "run")
    store = ctx.feature_store()
    store.append(["r00001-00000-0", "r00001-00000-1"], np.ones((2, DIM), np.float32), info={"kind": "accepted"})
    assert len(ctx.feature_store()) == 18  # a commit killed between the feature append and its sample record
    steps.reconcile(ctx)
    store = ctx.feature_store()
    assert len(store) == 16 and store.ids() == [s["id"] for s in _seed_rows(ctx)]
    assert _snapshot(tmp_path / "run") == prepared.files  # back to exactly what prepare left
    steps.reconcile(ctx)
    assert len(ctx.feature_store()) == 16


@pytest.mark.slow
def test_graph_nodes_prepare_measure_route_cluster(prepared, tmp_path):
    from prism_agent.graphs import prismatic

    root = tmp_path / "run"
    ctx = _copy(prepared, root)
    state: dict = {"run_dir": str(root)}
    state |= prismatic.prepare(state, _rt(ctx))
    assert {k: state[k] for k in ("target", "accepted", "pool", "round", "idle_rounds")} == {
        "target": 2, "accepted": 0, "pool": 16, "round": 0, "idle_rounds": 0}
    state |= prismatic.measure(state, _rt(ctx))
    assert 1.0 <= state["g_vendi"] <= 16.0 and state["g_vendi_history"] == [state["g_vendi"]]
    assert state["pool"] == 16
    assert prismatic.route(state, _rt(ctx)) == "next"
    state |= prismatic.cluster(state, _rt(ctx))
    assert state["round"] == 1 and state["last"]["cluster"]["k"] == 4 and state["last"]["cluster"]["pool"] == 16
    assert 1 <= state["last"]["cluster"]["sparse"] < 4
    assert (ctx.paths.clusters / "round-0001" / "round.json").is_file()
    kinds = [e["kind"] for e in ctx.events]
    assert kinds == ["prepare", "measure", "cluster"]
    # the one text backend needed so far: the local solver, scored on the seeds' labels to calibrate it
    cal = json.loads(ctx.paths.calibration.read_text())
    assert cal["rows"] == 16 and len(cal["offsets"]) == 3 and sum(cal["gold"].values()) == 16


def _round_candidates(n: int, r: int = 1) -> list[dict]:
    return [{"id": f"r{r:05d}-{k // 2:05d}-{k % 2}", "prompt": f"Premise: A cat sleeps {k}.\nHypothesis: An animal "
             "rests.", "round": r, "request": k // 2, "cluster": 0, "fewshot": ["seed:1"], "response": "neutral",
             "answer": "neutral"} for k in range(n)]


@pytest.mark.slow
def test_commit_appends_caps_at_target_and_is_idempotent(prepared, tmp_path):
    from prism_agent.graphs import prismatic

    root = tmp_path / "run"
    ctx = _copy(prepared, root)  # target 2
    cands = _round_candidates(4)
    feats = np.random.default_rng(1).normal(size=(4, DIM)).astype(np.float32)
    _write_round(ctx, 1, "reject", cands, {"sparse": 4})
    np.save(ctx.paths.round_dir(1) / "reject.npy", feats)
    clean = [{**cands[k], "decontam": {"judge": "no"}} for k in (2, 0, 3)]  # decontam dropped #1, other order
    _write_round(ctx, 1, "decontam", clean, {"kept": 3})

    assert steps.commit(ctx, 1) == {"accepted": 2, "total": 2}  # 3 clean, capped at the target
    rows = list(ctx.pool.accepted)
    assert [x["id"] for x in rows] == [cands[2]["id"], cands[0]["id"]]
    assert all(x["decontam"] == {"judge": "no"} and x["round"] == 1 for x in rows)
    assert set(rows[0]["models"]) == {"generator", "solver", "judge"}
    assert all(m.startswith("local/") for m in rows[0]["models"].values())
    store = ctx.feature_store()
    assert len(store) == 18 and store.ids()[16:] == [cands[2]["id"], cands[0]["id"]]
    np.testing.assert_array_equal(store.take([16, 17]), feats[[2, 0]])  # features follow ids, not positions
    [record] = ctx.pool.accepted.commits()
    assert (record.round, record.count, record.features) == (1, 2, 18)

    files = _snapshot(root)
    assert steps.commit(ctx, 1) == {"accepted": 0, "total": 2, "already": True}
    fresh = _share(RunContext.open(root, prepared.cfg), prepared.ctx)  # and in a new process
    assert steps.commit(fresh, 1) == {"accepted": 0, "total": 2, "already": True}
    assert _snapshot(root) == files

    # reconcile after a commit keeps the committed rows and cuts a later uncommitted shard
    fresh.feature_store().append(["r00002-00000-0"], feats[:1], info={"kind": "accepted", "round": 2})
    steps.reconcile(fresh)
    assert len(fresh.feature_store()) == 18 and _snapshot(root) == files

    # the commit node: a committed round is not idle; a round that accepted nothing is
    state = {"run_dir": str(root), "round": 1, "idle_rounds": 1, "last": {"round": 1}}
    assert prismatic.commit(state, _rt(fresh))["idle_rounds"] == 0
    _write_round(fresh, 2, "reject", [], {"sparse": 0})
    np.save(fresh.paths.round_dir(2) / "reject.npy", np.zeros((0, DIM), np.float32))
    _write_round(fresh, 2, "decontam", [], {"kept": 0})
    out = prismatic.commit({**state, "round": 2}, _rt(fresh))
    assert out["idle_rounds"] == 2 and out["accepted"] == 2 and out["last"]["commit"] == {"accepted": 0, "total": 2}
    [event] = [e for e in fresh.events if e["kind"] == "round" and e["round"] == 2]
    assert event["accepted"] == 2 and event["target"] == 2


def _as_candidates(seeds: list[dict], r: int) -> list[dict]:
    """Seed rows dressed as voted candidates of round r (new ids; the text, hence the gradient, is the seed's)."""
    return [{"id": f"r{r:05d}-{k:05d}-0", "prompt": s["prompt"], "response": s["response"], "round": r,
             "request": k, "cluster": None, "fewshot": [], "answer": s["response"], "source_seed": s["id"]}
            for k, s in enumerate(seeds)]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.mark.slow
def test_reject_vanilla_keeps_every_featurized_candidate(prepared, tmp_path):
    root = tmp_path / "run"
    ctx = _copy(prepared, root, graph="vanilla")
    seeds = _seed_rows(ctx)[:3]
    cands = _as_candidates(seeds, 1)
    too_long = {**cands[0], "id": "r00001-00009-0", "prompt": "Premise: " + "word " * 9000 + "\nHypothesis: x y z"}
    _write_round(ctx, 1, "vote", [cands[0], too_long, *cands[1:]], {"voted": 4})

    summary = steps.reject(ctx, 1)
    assert (summary["voted"], summary["featurized"], summary["sparse"]) == (4, 3, 3)
    kept = steps.read_rows(ctx, 1, "reject")
    assert kept == cands  # every featurized row, unchanged (no cluster fields), in order
    feats = np.load(ctx.paths.round_dir(1) / "reject.npy")
    assert feats.shape == (3, DIM) and feats.dtype == np.float32
    pool = ctx.feature_store().take([0, 1, 2])  # the same texts' features in the pool
    assert (_cosines(feats, pool) > 0.99).all()
    assert not (ctx.paths.clusters / "round-0001").exists()


@pytest.mark.slow
def test_reject_prismatic_keeps_candidates_nearest_a_sparse_centroid(prepared, tmp_path):
    from prism_agent.cluster.artifacts import load_round

    root = tmp_path / "run"
    ctx = _copy(prepared, root)
    steps.cluster(ctx, 1)
    round_ = load_round(ctx.paths.clusters, 1)
    seeds = _seed_rows(ctx)
    sparse = [i for i in range(16) if round_.sparse.mask[round_.labels[i]]]
    dense = [i for i in range(16) if not round_.sparse.mask[round_.labels[i]]]
    assert sparse and dense
    cands = _as_candidates([seeds[i] for i in (sparse[:2] + dense[:2])], 1)
    _write_round(ctx, 1, "vote", cands, {"voted": len(cands)})

    summary = steps.reject(ctx, 1)
    feats, idx = steps._featurize(ctx, cands)
    assert idx == list(range(len(cands)))
    decision = load_round(ctx.paths.clusters, 1).decide(feats)
    want = [k for k in range(len(cands)) if decision.accepted[k]]
    kept = steps.read_rows(ctx, 1, "reject")
    assert [x["id"] for x in kept] == [cands[k]["id"] for k in want]
    assert [x["nearest_cluster"] for x in kept] == [int(decision.labels[k]) for k in want]
    assert all(round_.sparse.mask[x["nearest_cluster"]] for x in kept)
    assert (summary["voted"], summary["featurized"], summary["sparse"]) == (len(cands), len(cands), len(want))
    saved = np.load(ctx.paths.round_dir(1) / "reject.npy")
    assert saved.shape == (len(want), DIM)
    np.testing.assert_allclose(saved, feats[want], rtol=1e-4, atol=1e-6)
    # a seed text lies nearest its own (sparse) cluster, so the rule keeps at least those
    assert len(want) >= 1 and want[0] == 0


@pytest.mark.slow
def test_generate_with_the_real_generator_then_replay(prepared, tmp_path):
    from prism_agent.cluster.artifacts import load_round

    root = tmp_path / "run"
    ctx = _copy(prepared, root)
    steps.cluster(ctx, 1)
    round_ = load_round(ctx.paths.clusters, 1)
    seed_ids = {s["id"] for s in _seed_rows(ctx)}
    picks = steps._fewshot_picks(ctx, 1)

    first = steps.generate(ctx, 1)
    rows = steps.read_rows(ctx, 1, "generate")
    assert first["requests"] == 2 and first["replayed"] == 0 and first["tokens"] > 0
    assert ctx.roles["generator"].backend_requests == 2
    assert first["parsed"] == len(rows) >= 1, first
    assert first["generated"] >= first["parsed"]
    assert len({x["id"] for x in rows}) == len(rows)
    for x in rows:
        j = x["request"]
        assert re.fullmatch(rf"r00001-{j:05d}-\d+", x["id"])
        assert x["round"] == 1 and j in (0, 1)
        assert x["cluster"] == picks[j].cluster and round_.sparse.mask[x["cluster"]]
        assert len(x["fewshot"]) == SHOTS and set(x["fewshot"]) <= seed_ids
        assert x["prompt"].startswith("Premise: ") and "\nHypothesis: " in x["prompt"]

    # killed before generate.json was written: a new process replays both calls from the call log
    (ctx.paths.round_dir(1) / "generate.json").unlink()
    (ctx.paths.round_dir(1) / "generate.jsonl").unlink()
    resumed = RunContext.open(root, prepared.cfg)
    second = steps.generate(resumed, 1)
    gen = resumed.roles["generator"]
    assert second["replayed"] == 2 and gen.backend_requests == 0 and gen.replayed == 2 and gen.tokens == 0
    assert steps.read_rows(resumed, 1, "generate") == rows
    assert {k: v for k, v in second.items() if k not in ("seconds", "replayed")} == {
        k: v for k, v in first.items() if k not in ("seconds", "replayed")}

    # and once the step is done, a new process returns its summary without building any backend
    third = RunContext.open(root, prepared.cfg)
    assert steps.generate(third, 1) == second
    assert not set(HEAVY) & set(third.__dict__)


@pytest.mark.slow
def test_commit_resumed_after_a_kill_between_its_feature_append_and_its_sample_record(prepared, tmp_path):
    """A kill inside `commit`, after the round's feature shard was written but before the commit record: the
    run resumes at the `commit` node, which must drop the orphan shard and append the round exactly once."""
    from prism_agent.gradients.store import FeatureStore

    root = tmp_path / "run"
    ctx = _copy(prepared, root)
    cands = _round_candidates(2)
    feats = np.random.default_rng(2).normal(size=(2, DIM)).astype(np.float32)
    _write_round(ctx, 1, "reject", cands, {"sparse": 2})
    np.save(ctx.paths.round_dir(1) / "reject.npy", feats)
    _write_round(ctx, 1, "decontam", cands, {"kept": 2})
    # what the killed commit left: its shard, no sample record
    ctx.feature_store().append([x["id"] for x in cands], feats, info={"kind": "accepted", "round": 1})

    resumed = _share(RunContext.open(root, prepared.cfg), prepared.ctx)
    assert steps.commit(resumed, 1) == {"accepted": 2, "total": 2}
    [record] = resumed.pool.accepted.commits()
    store = FeatureStore.load(ctx.paths.features)  # a later process reopens the store
    assert len(store) == 18 and store.ids()[16:] == [x["id"] for x in cands]
    assert record.features == 18
    assert sorted(p.name for p in ctx.paths.features.glob("shard-*.npy")) == ["shard-000000.npy", "shard-000001.npy"]


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
