"""The cluster-ordered copy of a fit's rows (`cluster/ordered.py`): the nearest-row search reading it finds
what the search reading the feature store finds, and a copy for another fit, another pool or cut short by a
kill is never read."""

from __future__ import annotations

import json

import numpy as np
import pytest

import prism_agent.cluster.ivf as ivf
import prism_agent.cluster.ordered as ordered_mod
from prism_agent.cluster.incremental import cluster_round
from prism_agent.cluster.ivf import ivf_nearest
from prism_agent.cluster.ordered import DIRNAME, load_ordered, ordered_for_round, write_ordered
from prism_agent.cluster.rows import StoreRows
from prism_agent.config.cluster import ClusterConfig
from prism_agent.gradients.store import FeatureStore

DIM = 24
CFG = ClusterConfig(k_min=40, k_max=40, refit_growth=0.10, refit_every_round_below=0, threads=1, seed=4)


def features(n: int, seed: int) -> np.ndarray:
    centres = np.random.default_rng(7).standard_normal((40, DIM))
    rng = np.random.default_rng(seed)
    return (centres[rng.integers(40, size=n)] + 0.4 * rng.standard_normal((n, DIM))).astype(np.float32)


def grow(root, n: int, seed: int) -> StoreRows:
    store = FeatureStore.open(root, dim=DIM, meta={})
    for lo in range(0, n, 700):  # shards of a few hundred rows, as rounds commit them
        m = min(700, n - lo)
        store.append([f"s{seed}-{lo + i}" for i in range(m)], features(m, seed * 1000 + lo))
    return StoreRows(FeatureStore.load(root))


@pytest.fixture
def small_min_rows(monkeypatch):
    monkeypatch.setattr(ordered_mod, "MIN_ROWS", 1000)


@pytest.mark.parametrize("buffer_rows", [262_144, 50])  # 50: clusters larger than the read buffer, in pieces
def test_the_ordered_search_finds_what_the_store_search_finds(tmp_path, small_min_rows, monkeypatch, buffer_rows):
    monkeypatch.setattr(ivf, "_SWEEP_ROWS", buffer_rows)
    rows = grow(tmp_path / "f", 3000, 1)
    cluster_round(rows, CFG, tmp_path / "c", 1)
    rows = grow(tmp_path / "f", 200, 2)  # committed after the fit: the search reads them from the store
    update, plan = cluster_round(rows, CFG, tmp_path / "c", 2)
    assert plan.kind == "update" and update.n == 3200
    copy = ordered_for_round(tmp_path / "c", 2, rows, update.labels, update.k)
    assert copy is not None and copy.fit == 1 and copy.n == 3000
    np.testing.assert_allclose(np.linalg.norm(copy.read(0, copy.n), axis=1), 1.0, rtol=1e-5)
    queries = np.concatenate([features(300, 9), rows.take([5, 3100])])  # two copies of pool rows among them
    exclude = np.full(queries.shape[0], -1, dtype=np.int64)
    exclude[:50] = np.arange(50)  # some queries may not match a given row
    for ex in (None, exclude):
        plain = ivf_nearest(rows, update.centroids, update.members, queries, nprobe=3, exclude=ex)
        fast = ivf_nearest(rows, update.centroids, update.members, queries, nprobe=3, exclude=ex, ordered=copy)
        np.testing.assert_array_equal(fast.positions, plain.positions)
        np.testing.assert_allclose(fast.cosines, plain.cosines, atol=1e-5)
    assert list(plain.positions[-2:]) == [5, 3100]


def test_built_once_per_fit_and_replaced_by_a_later_fit(tmp_path, small_min_rows, monkeypatch):
    rows = grow(tmp_path / "f", 3000, 1)
    first, _ = cluster_round(rows, CFG, tmp_path / "c", 1)
    builds = []
    real = ordered_mod.write_ordered
    monkeypatch.setattr(ordered_mod, "write_ordered", lambda *a, **kw: builds.append(a[1]) or real(*a, **kw))
    assert ordered_for_round(tmp_path / "c", 1, rows, first.labels, first.k).fit == 1
    assert ordered_for_round(tmp_path / "c", 1, rows, first.labels, first.k).fit == 1
    assert builds == [1]
    rows = grow(tmp_path / "f", 400, 2)  # 13 % growth: round 2 is a refit
    refit, plan = cluster_round(rows, CFG, tmp_path / "c", 2)
    assert plan.kind == "warm"
    copy = ordered_for_round(tmp_path / "c", 2, rows, refit.labels, refit.k)
    assert builds == [1, 2] and copy.fit == 2 and copy.n == 3400
    assert json.loads((tmp_path / "c" / DIRNAME / "ordered.json").read_text())["fit"] == 2


def test_small_pools_have_no_copy(tmp_path):
    rows = grow(tmp_path / "f", 3000, 1)
    first, _ = cluster_round(rows, CFG, tmp_path / "c", 1)
    assert ordered_for_round(tmp_path / "c", 1, rows, first.labels, first.k) is None
    assert not (tmp_path / "c" / DIRNAME).exists()


def test_a_copy_cut_short_or_for_another_pool_is_never_read(tmp_path, small_min_rows):
    rows = grow(tmp_path / "f", 3000, 1)
    first, _ = cluster_round(rows, CFG, tmp_path / "c", 1)
    root = tmp_path / "c"
    copy = write_ordered(root, 1, rows, first.labels, first.k, "fingerprint-a")
    assert load_ordered(root, 1, 3000, first.k, "fingerprint-b") is None  # another pool
    assert load_ordered(root, 2, 3000, first.k, "fingerprint-a") is None  # another fit
    assert load_ordered(root, 1, 3000, first.k, "fingerprint-a").n == copy.n
    np.save(root / DIRNAME / "positions.npy", np.arange(10))  # damaged
    assert load_ordered(root, 1, 3000, first.k, "fingerprint-a") is None
    torn = root / ".ordered-999"  # a build killed half-way
    torn.mkdir()
    (torn / "rows.npy").write_bytes(b"partial")
    write_ordered(root, 1, rows, first.labels, first.k, "fingerprint-a")
    assert not torn.exists()
    assert load_ordered(root, 1, 3000, first.k, "fingerprint-a") is not None


def test_a_few_candidates_on_a_large_pool_go_through_the_index_not_a_read_of_the_whole_pool(tmp_path, monkeypatch):
    rows = grow(tmp_path / "f", 3000, 1)
    fit, _ = cluster_round(rows, CFG, tmp_path / "c", 1)
    searched = []
    real = ivf.ivf_nearest
    monkeypatch.setattr(ivf, "ivf_nearest", lambda *a, **kw: searched.append(1) or real(*a, **kw))
    search = ivf.PoolSearch(rows, fit.centroids, fit.labels)
    assert search.nearest(rows.take([7, 8])).positions.tolist() == [7, 8] and not searched  # brute: small pool
    monkeypatch.setattr(ivf, "BRUTE_MAX_ROWS", 1000)
    assert search.nearest(rows.take([7, 8])).positions.tolist() == [7, 8] and searched == [1]


def test_a_copy_that_cannot_be_written_leaves_nothing_and_the_search_reads_the_store(tmp_path, small_min_rows,
                                                                                    monkeypatch):
    rows = grow(tmp_path / "f", 3000, 1)
    first, _ = cluster_round(rows, CFG, tmp_path / "c", 1)

    def full_disk(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ordered_mod.np.lib.format, "write_array_header_1_0", full_disk)
    assert ordered_for_round(tmp_path / "c", 1, rows, first.labels, first.k) is None
    assert not list((tmp_path / "c").glob(".ordered-*")) and not (tmp_path / "c" / DIRNAME).exists()
