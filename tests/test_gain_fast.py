"""The acceptance rules at scale (BENCHMARKS.md "Acceptance rules at scale"): first-order G-Vendi gains against
the exact ones (`diversity/gain_fast.py`), the first-order greedy's guarantees on copies and far rows, which
path `keep_by_gain` takes, and the nearest-pool-row search through a clustering (`cluster/ivf.py`), on
constructed features and through a run directory's feature store and saved clustering."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from prism_agent.cluster.ivf import PoolSearch, brute_nearest, ivf_nearest
from prism_agent.cluster.members import ClusterMembers
from prism_agent.cluster.rows import ArrayRows
from prism_agent.diversity.gain import exact_affordable, greedy_gain_keep, keep_by_gain, marginal_gains, unit_rows
from prism_agent.diversity.gain_fast import first_order_gain, first_order_keep
from prism_agent.diversity.novelty import nearest


def _pool(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(0.3, 2.0, d)


def _gram(pool: np.ndarray) -> np.ndarray:
    x = unit_rows(pool)
    return x.T @ x


@pytest.mark.parametrize(("n", "tol"), [(2_000, 2e-2), (20_000, 2e-3)])
def test_first_order_gain_matches_the_exact_gain_when_n_is_much_larger_than_d(n, tol):
    """Measured: max |first-order − exact| / max |exact| = 1.1e-2 at n = 2,000 and 1.2e-3 at n = 20,000
    (d = 16): the error falls like ε = 1/(n + 1)."""
    pool = _pool(n, 16)
    cands = np.concatenate([np.random.default_rng(1).normal(size=(20, 16)), pool[:5]])
    exact = marginal_gains(_gram(pool), n, cands)
    fast = first_order_gain(_gram(pool), n, cands)
    assert np.max(np.abs(fast - exact)) <= tol * np.max(np.abs(exact))
    assert np.array_equal(np.argsort(fast[:20])[-5:], np.argsort(exact[:20])[-5:])  # the same best five


def test_first_order_gain_of_a_row_outside_a_rank_deficient_pool_is_finite_and_first_order_exact():
    n = 5_000
    pool = np.concatenate([np.random.default_rng(2).normal(size=(n, 8)), np.zeros((n, 8))], axis=1)
    far = np.zeros((1, 16))
    far[0, 11] = 1.0
    exact, fast = marginal_gains(_gram(pool), n, far)[0], first_order_gain(_gram(pool), n, far)[0]
    assert math.isfinite(fast)
    assert fast == pytest.approx(exact, rel=2e-3)  # measured 7e-4


def _far_rows(pool: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Rows orthogonal to a pool that spans fewer than d directions."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(unit_rows(pool).T)
    x = rng.normal(size=(count, pool.shape[1]))
    x -= (x @ q) @ q.T
    return unit_rows(x)


def test_first_order_greedy_never_keeps_copies_and_always_keeps_far_rows():
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(24, 64))
    pool = rng.normal(size=(6_000, 24)) @ basis  # rank 24 of 64
    far = _far_rows(pool, 3, 4)
    copies = pool[[5, 77, 4000]]
    rounded = pool[[9]].astype(np.float32).astype(np.float64) * 3.0  # a float32 copy, scaled
    cands = np.concatenate([copies, far, rounded, far[[0]], far[[1]] * 2.0])
    _, where = nearest(pool, cands)
    picks = first_order_keep(_gram(pool), len(pool), cands, pool[where])
    kept = set(picks.order)  # the far rows, once each (3 or its copy 7, 4 or its copy 8): no copy of a pool row
    assert len(kept) == 3 and 5 in kept and len(kept & {3, 7}) == 1 and len(kept & {4, 8}) == 1
    assert picks.after > picks.before
    assert all(g > f for g, f in zip(picks.gains, picks.floors, strict=True))


def test_first_order_greedy_keeps_one_of_near_copies_in_a_full_rank_batch():
    pool = _pool(20_000, 16)
    far = np.zeros(16)
    far[0] = 1.0  # along the pool's least-loaded direction: a high gain
    noise = np.random.default_rng(5).normal(size=(4, 16)) * 1e-4
    cands = far + noise
    _, where = nearest(pool, cands)
    picks = first_order_keep(_gram(pool), len(pool), cands, pool[where], shift=1.0)  # one block: deferral
    assert len(picks.order) == 1


def test_keep_by_gain_is_the_exact_greedy_on_small_batches():
    pool = _pool(40, 24)
    cands = np.concatenate([np.random.default_rng(6).normal(size=(6, 24)), pool[[3]]])
    _, where = nearest(pool, cands)
    assert exact_affordable(len(cands), len(pool), 24)
    assert keep_by_gain(_gram(pool), len(pool), cands, pool[where]) == greedy_gain_keep(
        _gram(pool), len(pool), cands, pool[where])
    assert not exact_affordable(8192, 1_500_000, 1024)
    assert not exact_affordable(64, 1_500_000, 1024) and exact_affordable(16, 1_500_000, 1024)


# ---- nearest pool row through a clustering ----------------------------------------------------------------------


def _clustered(k: int = 20, per: int = 50, d: int = 32, seed: int = 0):
    """Well-separated clusters (orthogonal-ish centres, small spread) and each row's true cluster."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(k, d)))
    labels = np.repeat(np.arange(k), per)
    rows = centres[labels] + 0.05 * rng.normal(size=(k * per, d))
    return rows.astype(np.float32), unit_rows(centres).astype(np.float32), labels.astype(np.int32)


def test_clustered_search_finds_the_true_nearest_row_on_separated_clusters():
    pool, centres, labels = _clustered()
    rng = np.random.default_rng(9)
    queries = np.concatenate([pool[rng.choice(len(pool), 40)] + 0.02 * rng.normal(size=(40, 32)), pool[[0, 999]]])
    truth = brute_nearest(ArrayRows(pool), queries)
    found = ivf_nearest(ArrayRows(pool), centres, ClusterMembers(labels, len(centres)), queries, nprobe=1)
    assert np.array_equal(found.positions, truth.positions)
    assert found.cosines[-2:] == pytest.approx(1.0, abs=1e-6)  # copies of pool rows: found exactly
    _, pos = nearest(pool, queries)
    assert np.array_equal(truth.positions, pos)  # brute force over Rows agrees with novelty.nearest


def test_clustered_search_excludes_a_row_itself_and_searches_rows_past_the_clustering():
    pool, centres, labels = _clustered()
    extra = pool[[10]] * 1.0001  # a row committed after the clustering, nearest to row 10
    grown = np.concatenate([pool, extra]).astype(np.float32)
    search = PoolSearch(ArrayRows(grown), centres, labels, nprobe=2, brute_pairs=0)
    found = search.nearest(pool[[10]], exclude=np.array([10]))
    assert found.positions[0] == len(pool)
    again = search.nearest(grown[[3]], exclude=np.array([3]))
    assert again.positions[0] != 3 and labels[again.positions[0]] == labels[3]


@pytest.mark.parametrize("sweep_rows", [64, 10_000])
def test_reading_the_pool_in_order_finds_what_gathering_members_finds(tmp_path, monkeypatch, sweep_rows):
    """The two ways `ivf_nearest` reads members (gather by position when few clusters are probed, one ordered
    pass when most are) give the same rows, through a store of several shards and blocks that cut clusters."""
    import prism_agent.cluster.ivf as ivf
    from prism_agent.cluster.rows import StoreRows
    from prism_agent.gradients.store import FeatureStore

    pool, centres, labels = _clustered(k=20, per=50, d=32, seed=3)
    pool[7] = 0.0  # an all-zero row: cosine 0 to everything in both paths
    store = FeatureStore.open(tmp_path / "features", dim=32, meta={})
    for lo in range(0, len(pool), 300):
        store.append([f"r{i}" for i in range(lo, min(lo + 300, len(pool)))], pool[lo : lo + 300])
    rows = StoreRows(FeatureStore.load(tmp_path / "features"))
    rng = np.random.default_rng(4)
    queries = pool[rng.choice(len(pool), 60)] + 0.3 * rng.normal(size=(60, 32)).astype(np.float32)
    exclude = np.where(np.arange(60) % 3 == 0, rng.choice(len(pool), 60), -1)
    members = ClusterMembers(labels, len(centres))
    monkeypatch.setattr(ivf, "_SWEEP_ROWS", sweep_rows)
    monkeypatch.setattr(ivf, "SWEEP_MIN_ROWS", 0)
    found = {}
    for mode, fraction in (("gather", 2.0), ("sweep", 0.0)):
        monkeypatch.setattr(ivf, "SWEEP_FRACTION", fraction)
        found[mode] = ivf_nearest(rows, centres, members, queries, nprobe=3, exclude=exclude)
    assert np.array_equal(found["sweep"].positions, found["gather"].positions)
    assert np.allclose(found["sweep"].cosines, found["gather"].cosines, atol=1e-6)
    assert not np.any(found["sweep"].positions == exclude)


def test_pool_search_threshold_equals_the_brute_force_threshold_on_separated_clusters():
    from prism_agent.diversity.novelty import pool_threshold

    pool, centres, labels = _clustered()
    search = PoolSearch(ArrayRows(pool), centres, labels, nprobe=2, brute_pairs=0)
    assert search.threshold(50.0, 300) == pytest.approx(pool_threshold(pool, sample=300), abs=1e-5)


def test_gain_and_novelty_strategies_use_a_saved_clustering(tmp_path, monkeypatch):
    """Through a run's feature store and round 1's saved clustering, with the search forced through the
    clusters: copies of pool rows are dropped and far rows kept, as with brute force."""
    from prism_agent.cluster import ivf
    from prism_agent.cluster.artifacts import save_round
    from prism_agent.cluster.round import build_round
    from prism_agent.config.cluster import ClusterConfig
    from prism_agent.gradients.store import FeatureStore
    from prism_agent.loop.strategy import get_strategy

    monkeypatch.setattr(ivf, "BRUTE_PAIRS", 0)
    pool, _, _ = _clustered(k=10, per=30, d=48)
    pool = pool[:, :40]
    pool = np.concatenate([pool, np.zeros((len(pool), 8), np.float32)], axis=1)  # rank ≤ 40 of 48
    store = FeatureStore.open(tmp_path / "features", dim=48, meta={"test": True})
    store.append([f"p{i}" for i in range(len(pool))], pool)
    clusters = tmp_path / "clusters"
    save_round(clusters, 1, build_round(store, ClusterConfig(k_min=10, device="cpu", threads=1)))
    ctx = SimpleNamespace(paths=SimpleNamespace(features=store.root, clusters=clusters),
                          feature_store=lambda: store)
    far = np.zeros((2, 48), np.float32)
    far[0, 41], far[1, 45] = 3.0, 1.0
    feats = np.concatenate([pool[[4, 200]], far])
    for name in ("gain", "novelty"):
        kept, _ = get_strategy(name).decide(ctx, 1, feats)
        assert sorted(kept) == [2, 3], name


def test_nearest_rows_looked_up_only_for_candidates_that_can_be_kept_give_the_same_decisions():
    """A lookup instead of every candidate's nearest row: asked only for candidates with a positive gain
    (score above the entropy), in a few batches, and the picks are exactly those with every row up front."""
    pool = _pool(20_000, 16)
    cands = np.concatenate([_pool(600, 16, seed=8), pool[:40]])  # typical rows, some copies of pool rows
    _, where = nearest(pool, cands)
    refs = pool[where]
    asked: list[np.ndarray] = []

    def lookup(idx: np.ndarray) -> np.ndarray:
        asked.append(idx.copy())
        return refs[idx]

    up_front = first_order_keep(_gram(pool), len(pool), cands, refs, shift=0.002)
    lazy = first_order_keep(_gram(pool), len(pool), cands, lookup, shift=0.002)
    assert lazy == up_front and len(up_front.order) > 0
    looked_up = np.concatenate(asked)
    assert looked_up.size == np.unique(looked_up).size  # each candidate at most once
    assert set(up_front.order) <= set(looked_up.tolist())
    assert looked_up.size < 0.8 * len(cands)  # the rest never needed a search
    few = cands[:30]  # the exact greedy (affordable for a few candidates) asks for every row at once
    assert keep_by_gain(_gram(pool), len(pool), few, lambda idx: refs[idx]) == keep_by_gain(
        _gram(pool), len(pool), few, refs[:30])
