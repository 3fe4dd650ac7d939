"""The pool's running Gram matrix (diversity/gram.py) against a full recompute, across commits, truncations,
a kill between a round's feature append and its commit record, and a damaged cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prism_agent.diversity import gram
from prism_agent.diversity.vendi import vendi
from prism_agent.gradients.store import FeatureStore
from prism_agent.measure_dataset import g_vendi_of_store
from prism_agent.run.samples import SampleLog

DIM = 24


def _rows(rng, n: int) -> np.ndarray:
    # a few dominant directions so the eigenvalues spread, plus some all-zero rows (which count for nothing)
    x = rng.normal(size=(n, 4)) @ rng.normal(size=(4, DIM)) + 0.3 * rng.normal(size=(n, DIM))
    x[rng.random(n) < 0.05] = 0.0
    return x.astype(np.float32)


def _append(store: FeatureStore, rng, n: int, tag: str) -> None:
    store.append([f"{tag}-{i}" for i in range(n)], _rows(rng, n))


def _assert_matches_full(store: FeatureStore) -> None:
    g, _ = gram.refresh(store)
    full = gram.full_gram(store)
    assert g.n == full.n and g.rows == len(store)
    assert np.abs(g.gram - full.gram).max() <= 1e-9 * np.abs(full.gram).max()
    want = g_vendi_of_store(store)
    got = gram.g_vendi(*gram.pool_gram(store))
    for q in ("q1", "q2", "qinf"):
        assert getattr(got, q) == pytest.approx(getattr(want, q), rel=1e-9, abs=0)
    assert got.n == want.n


def test_streaming_equals_full_over_commits_and_truncations(tmp_path):
    rng = np.random.default_rng(0)
    store = FeatureStore.open(tmp_path / "features", dim=DIM, meta={"test": 1})
    _append(store, rng, 300, "seed")
    assert gram.refresh(store)[1] == "recomputed"
    _assert_matches_full(store)
    for r in range(1, 6):
        _append(store, rng, 17 + r, f"r{r}")
        assert gram.refresh(store)[1] == "updated"
        _assert_matches_full(store)
    assert gram.refresh(store)[1] == "cached"

    # the last shard dropped: the generation before it is still in the cache (a downdate without its rows)
    store.truncate(len(store) - store.shards[-1].rows)
    assert gram.refresh(store)[1] == "cached"
    _assert_matches_full(store)
    # two more dropped: no generation fits any more, so the sum is recomputed
    store.truncate(len(store) - store.shards[-1].rows - store.shards[-2].rows)
    assert gram.refresh(store)[1] == "recomputed"
    _assert_matches_full(store)
    # and the pool grows again from there, with rows the cache never saw at those shard numbers
    for r in range(6, 9):
        _append(store, rng, 40, f"r{r}")
        _assert_matches_full(store)


def test_the_result_equals_vendi_of_the_rows(tmp_path):
    rng = np.random.default_rng(1)
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    rows = _rows(rng, 500)
    store.append([str(i) for i in range(300)], rows[:300])
    store.append([str(i) for i in range(300, 500)], rows[300:])
    res, info = gram.measure_store(store)
    assert info == {"gram": "recomputed"}
    assert res == g_vendi_of_store(store)  # the same summation order as a full recompute: bit for bit here
    assert res.q1 == pytest.approx(vendi(rows).q1, rel=1e-12)  # one block instead of two: rounding only


class _HasStore:
    """Stands for a RunContext: pool_gram takes anything with `feature_store()`."""

    def __init__(self, store: FeatureStore):
        self.store = store

    def feature_store(self) -> FeatureStore:
        return self.store


def test_pool_gram_of_a_context_and_a_candidate_batch(tmp_path):
    rng = np.random.default_rng(2)
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    _append(store, rng, 200, "seed")
    G, n = gram.pool_gram(_HasStore(store))
    batch = _rows(rng, 30)
    batch = batch[np.linalg.norm(batch, axis=1) > 0]
    unit = batch / np.linalg.norm(batch.astype(np.float64), axis=1, keepdims=True)
    with_batch = gram.g_vendi(G + unit.T.astype(np.float64) @ unit.astype(np.float64), n + len(unit))
    store.append([f"c{i}" for i in range(len(batch))], batch)
    assert with_batch.q1 == pytest.approx(g_vendi_of_store(store).q1, rel=1e-9)
    G[:] = 0  # the caller's copy: the cache is untouched
    _assert_matches_full(store)


def test_cache_recovers_from_a_kill_between_feature_append_and_commit_record(tmp_path):
    """The loop's commit appends the round's feature shard, then the sample log's commit record. A kill in
    between leaves a shard the pool does not have; resume (`steps.reconcile`) cuts the store back to the last
    commit record, and the round is committed again, here with other rows (a lowered target)."""
    rng = np.random.default_rng(3)
    store = FeatureStore.open(tmp_path / "features", dim=DIM, meta={})
    log = SampleLog(tmp_path / "pool" / "accepted.jsonl", tmp_path / "pool" / "commits.jsonl")
    _append(store, rng, 120, "seed")
    for r in (1, 2):
        _append(store, rng, 10, f"r{r}")
        log.append([{"id": f"r{r}-{i}"} for i in range(10)], round_index=r, features=len(store))
        gram.refresh(store)
    # round 3: features appended, the cache brought up to date over them (any reader in that window)...
    _append(store, rng, 10, "r3")
    gram.refresh(store)
    # ... and killed before the commit record. Resume: reopen, cut the store back, commit round 3 again.
    log = SampleLog(log.data, log.commits_path)
    store = FeatureStore.open(tmp_path / "features", dim=DIM, meta={})
    store.truncate(log.last.features)
    assert len(store) == 140
    _assert_matches_full(store)
    _append(store, rng, 6, "r3")
    log.append([{"id": f"r3-{i}"} for i in range(6)], round_index=3, features=len(store))
    _assert_matches_full(store)

    # a kill after the commit record but before any refresh: the cache lacks a shard and gets it added
    _append(store, rng, 8, "r4")
    log.append([{"id": f"r4-{i}"} for i in range(8)], round_index=4, features=len(store))
    store = FeatureStore.open(tmp_path / "features", dim=DIM, meta={})
    assert gram.refresh(store)[1] == "updated"
    _assert_matches_full(store)


def test_a_shard_rewritten_with_the_same_count_is_not_taken_for_the_old_one(tmp_path):
    rng = np.random.default_rng(4)
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    _append(store, rng, 50, "seed")
    _append(store, rng, 10, "a")
    gram.refresh(store)
    store.truncate(50)
    _append(store, rng, 10, "b")  # same row count, other rows
    assert gram.refresh(store)[1] == "updated"
    _assert_matches_full(store)


def test_audit_repairs_a_cache_that_disagrees(tmp_path):
    rng = np.random.default_rng(5)
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    _append(store, rng, 80, "seed")
    _append(store, rng, 9, "r1")
    gram.refresh(store)
    right = g_vendi_of_store(store)
    # damage the cached sum but keep its bookkeeping, so only a recompute can tell
    path = store.root / gram.GRAM_FILE
    with np.load(path) as z:
        meta, arrays = str(z["meta"]), {k: z[k] for k in z.files if k != "meta"}
    arrays["gram0"] = arrays["gram0"] * (1 + 1e-6)
    np.savez(path, meta=np.array(meta), **arrays)

    res, info = gram.measure_store(store, audit_now=True)
    assert info["gram"] == "cached" and info["audit"]["repaired"] is True and info["audit"]["rel_err"] > 1e-7
    assert res.q1 == pytest.approx(right.q1, rel=1e-12)  # the audited value is the recomputed one
    res, info = gram.measure_store(store, audit_now=True)
    assert info["audit"] == {"rel_err": 0.0, "rows": len(store), "repaired": False}
    _assert_matches_full(store)


def test_an_unreadable_or_foreign_cache_is_recomputed(tmp_path):
    rng = np.random.default_rng(6)
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    _append(store, rng, 40, "seed")
    (store.root / gram.GRAM_FILE).write_bytes(b"PK\x03\x04 torn")
    assert gram.refresh(store)[1] == "recomputed"
    np.savez(store.root / gram.GRAM_FILE, meta=np.array(json.dumps([{"n": 1, "zero_rows": 0, "rows": 40,
             "shards": 1, "stamp": "x"}])), gram0=np.eye(DIM + 1))  # another width
    assert gram.refresh(store)[1] == "recomputed"
    _assert_matches_full(store)


def test_an_empty_store_has_no_g_vendi(tmp_path):
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    with pytest.raises(ValueError, match="no rows"):
        gram.measure_store(store)


def test_the_measure_node_streams_audits_on_its_cadence_and_survives_reconcile(tmp_path):
    """The loop's own `measure` node and `steps.reconcile` over a real run directory (no model: the feature
    store only needs the proxy's name)."""
    from types import SimpleNamespace

    from prism_agent.graphs import prismatic

    from prism_agent.loop import steps
    from prism_agent.loop.context import RunContext
    from tests.support.loop_nodes import cfg_for, rt

    def open_ctx() -> RunContext:
        ctx = RunContext.open(tmp_path / "run", cfg_for(tmp_path / "bench.jsonl", measure={"audit_every": 2},
                                                     featurizer={"rank_in": 16, "rank_out": 16, "dim": DIM}))
        ctx.__dict__["proxy"] = SimpleNamespace(name="stub-proxy")
        return ctx

    rng = np.random.default_rng(7)
    ctx = open_ctx()
    store = ctx.feature_store()
    dim = store.dim
    ctx.pool.write_seeds([{"id": f"seed:{i}", "prompt": "p", "response": "neutral"} for i in range(64)])
    store.append([f"seed:{i}" for i in range(64)], rng.normal(size=(64, dim)).astype(np.float32))

    def measured(r: int) -> dict:
        prismatic.measure({"round": r}, rt(ctx))
        return [e for e in ctx.events if e["kind"] == "measure"][-1]

    first = measured(0)
    assert first["gram"] == "recomputed" and "audit" not in first  # built from scratch: that was the audit
    for r in (1, 2, 3):
        feats = rng.normal(size=(5, dim)).astype(np.float32)
        store.append([f"r{r}-{i}" for i in range(5)], feats)
        ctx.pool.accepted.append([{"id": f"r{r}-{i}", "prompt": "q", "response": "neutral"} for i in range(5)],
                                 round_index=r, features=len(store))
        event = measured(r)
        assert event["gram"] == "updated" and event["pool"] == 64 + 5 * r
        assert ("audit" in event) == (r % 2 == 0)
        assert event["g_vendi"] == pytest.approx(g_vendi_of_store(store).q1, rel=1e-9)
    assert event_audit(ctx) == [{"rel_err": 0.0, "rows": 74, "repaired": False}]

    # round 4 killed between its feature append and its commit record, with the cache already over its rows
    store.append([f"r4-{i}" for i in range(5)], rng.normal(size=(5, dim)).astype(np.float32))
    gram.refresh(store)
    ctx = open_ctx()
    steps.reconcile(ctx)
    assert len(ctx.feature_store()) == 79
    event = measured(3)
    assert event["gram"] == "cached" and event["g_vendi"] == pytest.approx(
        g_vendi_of_store(ctx.feature_store()).q1, rel=1e-9)


def event_audit(ctx) -> list[dict]:
    return [e["audit"] for e in ctx.events if e["kind"] == "measure" and "audit" in e]


def test_audit_every_is_a_setting_free_to_change_on_resume(tmp_path):
    from prism_agent.config_files import build_run_config
    from prism_agent.errors import BadInputError
    from prism_agent.run.manifest import open_manifest
    from prism_agent.run.paths import RunPaths

    toml = tmp_path / "run.toml"
    toml.write_text('task = "nli"\ntarget = 10\n[measure]\naudit_every = 0\n')
    cfg = build_run_config(toml, {})
    assert cfg.measure.audit_every == 0
    assert build_run_config(None, {"task": "nli", "target": 10}).measure.audit_every == 100
    paths = RunPaths(tmp_path / "run")
    open_manifest(paths, cfg)
    assert open_manifest(paths, build_run_config(None, {"task": "nli", "target": 10})).config["measure"] == {
        "audit_every": 100}
    toml.write_text('task = "nli"\ntarget = 10\n[measure]\naudit_every = -1\n')
    with pytest.raises(BadInputError, match=r"measure\.audit_every"):
        build_run_config(toml, {})
