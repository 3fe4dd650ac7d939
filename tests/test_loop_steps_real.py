"""Node-level tests of the loop with the real SmolLM2-135M proxy and generator. They share one prepared run
(16 real SNLI seeds featurized, ≈20 s) that each test copies; the copies reuse the loaded proxy and
featurizer (`share`) so the model loads once per module. The model-free node tests are in
tests/test_loop_nodes.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from prism_agent.loop import steps
from prism_agent.loop.context import RunContext
from tests.support.loop_nodes import DIM, HEAVY, SHOTS, cfg_for, rt, seed_rows, share, snapshot, write_round

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
    cfg = cfg_for(bench)
    ctx = RunContext.open(root, cfg)
    info = steps.prepare(ctx)
    return SimpleNamespace(root=root, cfg=cfg, ctx=ctx, info=info, files=snapshot(root))


def _copy(prepared, dest: Path, **over) -> RunContext:
    """A fresh RunContext (as in a new process) on a copy of the prepared run."""
    shutil.copytree(prepared.root, dest)
    cfg = prepared.cfg if not over else prepared.cfg.model_copy(update=over)
    return share(RunContext.open(dest, cfg, allow_config_change=bool(over)), prepared.ctx)


@pytest.mark.slow
def test_prepare_writes_seeds_and_features_once(prepared, tmp_path, monkeypatch):
    ctx = prepared.ctx
    seeds = seed_rows(ctx)
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
    assert snapshot(tmp_path / "run") == prepared.files  # same files, same bytes
    assert steps.prepare(ctx) == prepared.info and snapshot(prepared.root) == prepared.files


@pytest.mark.slow
def test_seed_chunks_drop_rows_too_long_for_the_proxy_and_keep_pool_and_features_aligned(prepared, bench, tmp_path):
    """Seeds in chunks of 4 with a proxy context that about half of them do not fit: each chunk drops its
    too-long rows from seeds.jsonl before its shard lands, so pool position i is feature row i throughout,
    each shard records the seed rows it covers, and one `seed_features` event reports each chunk."""
    import dataclasses

    from prism_agent.gradients.render import encode

    cfg = cfg_for(bench, featurizer={"rank_in": 16, "rank_out": 16, "seed_chunk": 4})
    ctx = RunContext.open(tmp_path / "run", cfg)
    heads = [encode(prepared.ctx.proxy.tokenizer, s["prompt"], s.get("response", ""), 10**6).response_start
             for s in seed_rows(prepared.ctx)]
    limit = sorted(heads)[len(heads) // 2]  # a row fits when its prompt leaves room for one response token
    share(ctx, prepared.ctx).__dict__["proxy"] = dataclasses.replace(prepared.ctx.proxy, max_length=limit)
    info = steps.prepare(ctx)
    fits = [s["id"] for s, h in zip(seed_rows(prepared.ctx), heads, strict=True) if h + 1 <= limit]
    assert 0 < len(fits) < 16 and info == {"seeds": len(fits), "pool": len(fits)}
    store = ctx.feature_store()
    assert [s["id"] for s in seed_rows(ctx)] == fits == store.ids()  # the same rows, in the same order
    infos = [s.info() for s in store.shards]
    starts = np.cumsum([0] + [s.rows for s in store.shards])
    assert [i["seed_rows"] for i in infos] == [[starts[k], starts[k + 1]] for k in range(len(infos))]
    assert sum(i["dropped"] for i in infos) == 16 - len(fits)
    chunks = ctx.events.of_kind("seed_features")
    assert [e["shard"] for e in chunks] == list(range(len(store.shards))) and chunks[-1]["rows"] == len(fits)
    assert steps.prepare(ctx) == info and len(ctx.events.of_kind("seed_features")) == len(chunks)  # done once


@pytest.mark.slow
def test_reconcile_cuts_feature_rows_past_the_last_commit(prepared, tmp_path):
    ctx = _copy(prepared, tmp_path / "run")
    store = ctx.feature_store()
    store.append(["r00001-00000-0", "r00001-00000-1"], np.ones((2, DIM), np.float32), info={"kind": "accepted"})
    assert len(ctx.feature_store()) == 18  # a commit killed between the feature append and its sample record
    steps.reconcile(ctx)
    store = ctx.feature_store()
    assert len(store) == 16 and store.ids() == [s["id"] for s in seed_rows(ctx)]
    assert snapshot(tmp_path / "run") == prepared.files  # back to exactly what prepare left
    steps.reconcile(ctx)
    assert len(ctx.feature_store()) == 16


@pytest.mark.slow
def test_graph_nodes_prepare_measure_route_cluster(prepared, tmp_path):
    from prism_agent.graphs import prismatic

    root = tmp_path / "run"
    ctx = _copy(prepared, root)
    state: dict = {"run_dir": str(root)}
    state |= prismatic.prepare(state, rt(ctx))
    assert {k: state[k] for k in ("target", "accepted", "pool", "round", "idle_rounds")} == {
        "target": 2, "accepted": 0, "pool": 16, "round": 0, "idle_rounds": 0}
    state |= prismatic.measure(state, rt(ctx))
    assert 1.0 <= state["g_vendi"] <= 16.0 and state["g_vendi_history"] == [state["g_vendi"]]
    assert state["pool"] == 16
    assert prismatic.route(state, rt(ctx)) == "next"
    state |= prismatic.cluster(state, rt(ctx))
    assert state["round"] == 1 and state["last"]["cluster"]["k"] == 4 and state["last"]["cluster"]["pool"] == 16
    assert 1 <= state["last"]["cluster"]["sparse"] < 4
    assert (ctx.paths.clusters / "round-0001" / "round.json").is_file()
    kinds = [e["kind"] for e in ctx.events]
    assert kinds == ["seed_features", "prepare", "measure", "cluster"]  # one seed chunk (16 rows < seed_chunk)
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
    write_round(ctx, 1, "reject", cands, {"sparse": 4})
    np.save(ctx.paths.round_dir(1) / "reject.npy", feats)
    clean = [{**cands[k], "decontam": {"judge": "no"}} for k in (2, 0, 3)]  # decontam dropped #1, other order
    write_round(ctx, 1, "decontam", clean, {"kept": 3})

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

    files = snapshot(root)
    assert steps.commit(ctx, 1) == {"accepted": 0, "total": 2, "already": True}
    fresh = share(RunContext.open(root, prepared.cfg), prepared.ctx)  # and in a new process
    assert steps.commit(fresh, 1) == {"accepted": 0, "total": 2, "already": True}
    assert snapshot(root) == files

    # reconcile after a commit keeps the committed rows and cuts a later uncommitted shard
    fresh.feature_store().append(["r00002-00000-0"], feats[:1], info={"kind": "accepted", "round": 2})
    steps.reconcile(fresh)
    assert len(fresh.feature_store()) == 18 and snapshot(root) == files

    # the commit node: a committed round is not idle; a round that accepted nothing is
    state = {"run_dir": str(root), "round": 1, "idle_rounds": 1, "last": {"round": 1}}
    assert prismatic.commit(state, rt(fresh))["idle_rounds"] == 0
    write_round(fresh, 2, "reject", [], {"sparse": 0})
    np.save(fresh.paths.round_dir(2) / "reject.npy", np.zeros((0, DIM), np.float32))
    write_round(fresh, 2, "decontam", [], {"kept": 0})
    out = prismatic.commit({**state, "round": 2}, rt(fresh))
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
    seeds = seed_rows(ctx)[:3]
    cands = _as_candidates(seeds, 1)
    too_long = {**cands[0], "id": "r00001-00009-0", "prompt": "Premise: " + "word " * 9000 + "\nHypothesis: x y z"}
    write_round(ctx, 1, "vote", [cands[0], too_long, *cands[1:]], {"voted": 4})

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
    seeds = seed_rows(ctx)
    sparse = [i for i in range(16) if round_.sparse.mask[round_.labels[i]]]
    dense = [i for i in range(16) if not round_.sparse.mask[round_.labels[i]]]
    assert sparse and dense
    cands = _as_candidates([seeds[i] for i in (sparse[:2] + dense[:2])], 1)
    write_round(ctx, 1, "vote", cands, {"voted": len(cands)})

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
    seed_ids = {s["id"] for s in seed_rows(ctx)}
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
    write_round(ctx, 1, "reject", cands, {"sparse": 2})
    np.save(ctx.paths.round_dir(1) / "reject.npy", feats)
    write_round(ctx, 1, "decontam", cands, {"kept": 2})
    # what the killed commit left: its shard, no sample record
    ctx.feature_store().append([x["id"] for x in cands], feats, info={"kind": "accepted", "round": 1})

    resumed = share(RunContext.open(root, prepared.cfg), prepared.ctx)
    assert steps.commit(resumed, 1) == {"accepted": 2, "total": 2}
    [record] = resumed.pool.accepted.commits()
    store = FeatureStore.load(ctx.paths.features)  # a later process reopens the store
    assert len(store) == 18 and store.ids()[16:] == [x["id"] for x in cands]
    assert record.features == 18
    assert sorted(p.name for p in ctx.paths.features.glob("shard-*.npy")) == ["shard-000000.npy", "shard-000001.npy"]


