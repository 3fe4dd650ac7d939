from __future__ import annotations

import json

import numpy as np
import pytest

from prism_agent.cluster.artifacts import (
    committed_rounds,
    load_or_build_round,
    load_round,
    round_dir,
    save_round,
)
from prism_agent.cluster.round import build_round
from prism_agent.config.cluster import ClusterConfig
from prism_agent.errors import BadInputError
from prism_agent.gradients.store import FeatureStore


def make_store(root, n=1200, dim=16, k=12, seed=0) -> FeatureStore:
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.2, k) + 0.05
    labels = rng.choice(k, size=n, p=weights / weights.sum())
    x = rng.standard_normal((k, dim))[labels] + 0.5 * rng.standard_normal((n, dim))
    store = FeatureStore.open(root, dim=dim, meta={"seed": seed})
    for start in range(0, n, 500):
        stop = min(start + 500, n)
        store.append([f"s{i}" for i in range(start, stop)], x[start:stop].astype(np.float32))
    return store


CFG = ClusterConfig(k_ratio=0.01, k_min=20, seed=1)


def test_round_is_consistent(tmp_path):
    store = make_store(tmp_path / "f")
    r = build_round(store, CFG)
    assert (r.k, r.n, r.dim) == (20, 1200, 16)
    assert r.k_choice.decided_by == "k_min"
    assert r.sizes.sum() == 1200
    assert (r.sparse.mask == sparse_mask_by_hand(r.sizes)).all()
    assert r.inertia == pytest.approx(float(np.sum(1 - r.cosines.astype(np.float64))))
    pick = r.pick_fewshot(seed=(2, 5))
    assert r.sparse.mask[pick.cluster] and (r.labels[pick.positions] == pick.cluster).all()
    # Candidates identical to pool rows land in those rows' clusters.
    rows = store.take([0, 1, 2, 3])
    d = r.decide(rows)
    assert d.labels.tolist() == r.labels[:4].tolist()
    assert d.accepted.tolist() == r.sparse.mask[r.labels[:4]].tolist()


def sparse_mask_by_hand(sizes):
    threshold = sorted(sizes.tolist())[len(sizes) // 2]
    mask = sizes < threshold
    return mask if mask.any() else np.ones_like(mask)


def test_save_load_round_trip(tmp_path):
    store = make_store(tmp_path / "f")
    r = build_round(store, CFG)
    path = save_round(tmp_path / "clusters", 3, r, fingerprint="abc")
    assert path == round_dir(tmp_path / "clusters", 3)
    assert committed_rounds(tmp_path / "clusters") == [3]
    for mmap in (False, True):
        back = load_round(tmp_path / "clusters", 3, mmap=mmap)
        assert back.config == r.config and back.k_choice == r.k_choice and back.fit == r.fit
        assert np.array_equal(back.centroids, r.centroids)
        assert np.array_equal(back.labels, r.labels) and np.array_equal(back.cosines, r.cosines)
        assert (back.sparse.mask == r.sparse.mask).all() and back.sparse.threshold == r.sparse.threshold
        probe = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
        assert (back.decide(probe).accepted == r.decide(probe).accepted).all()
    record = json.loads((path / "round.json").read_text())
    assert record["k_choice"]["ratio_origin"] == "paper (1%)" and record["sparse"]["count"] == r.sparse.count
    assert not list(path.glob("*.tmp"))


def test_an_uncommitted_round_is_ignored_and_redone(tmp_path):
    store = make_store(tmp_path / "f")
    root = tmp_path / "clusters"
    first, resumed = load_or_build_round(store, CFG, root, 0)
    assert not resumed
    (round_dir(root, 0) / "round.json").unlink()  # as if killed before the commit marker
    assert committed_rounds(root) == []
    with pytest.raises(BadInputError):
        load_round(root, 0)
    again, resumed = load_or_build_round(store, CFG, root, 0)
    assert not resumed and np.array_equal(again.labels, first.labels)


def test_resume_loads_instead_of_refitting(tmp_path, monkeypatch):
    store = make_store(tmp_path / "f")
    root = tmp_path / "clusters"
    first, resumed = load_or_build_round(store, CFG, root, 1)
    assert not resumed

    def no_refit(*args, **kwargs):
        raise AssertionError("refit on resume")

    monkeypatch.setattr("prism_agent.cluster.artifacts.build_round", no_refit)
    again, resumed = load_or_build_round(store, CFG, root, 1)
    assert resumed and np.array_equal(again.labels, first.labels)
    assert np.array_equal(again.centroids, first.centroids)


def test_resume_refuses_other_settings_or_another_pool(tmp_path):
    store = make_store(tmp_path / "f")
    root = tmp_path / "clusters"
    load_or_build_round(store, CFG, root, 0)
    with pytest.raises(BadInputError, match="other settings"):
        load_or_build_round(store, CFG.model_copy(update={"sparse_ratio": 0.3}), root, 0)
    store.append(["extra"], np.ones((1, 16), np.float32))  # the pool grew since the round was saved
    with pytest.raises(BadInputError, match="another pool"):
        load_or_build_round(store, CFG, root, 0)


def test_damaged_round_is_reported(tmp_path):
    store = make_store(tmp_path / "f")
    path = save_round(tmp_path / "c", 0, build_round(store, CFG))
    np.save(path / "labels.npy", np.zeros(5, dtype=np.int32))
    with pytest.raises(BadInputError, match="damaged"):
        load_round(tmp_path / "c", 0)
