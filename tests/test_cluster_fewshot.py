from __future__ import annotations

import numpy as np
import pytest

from prism_agent.cluster.fewshot import candidate_clusters, pick_fewshot
from prism_agent.cluster.members import ClusterMembers
from prism_agent.cluster.sparse import sparse_clusters


def labels_with_sizes(sizes: list[int], seed: int = 0) -> np.ndarray:
    labels = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(seed).shuffle(labels)
    return labels


SIZES = [12, 3, 40, 0, 7, 25, 2, 30, 18, 9, 50, 11, 0, 33, 6, 21, 14, 8, 27, 16]  # 20 clusters, 2 empty


@pytest.fixture
def members() -> ClusterMembers:
    return ClusterMembers(labels_with_sizes(SIZES), len(SIZES))


def test_members_index(members):
    assert members.sizes.tolist() == SIZES
    labels = labels_with_sizes(SIZES)
    for c in (0, 3, 10):
        assert members.of(c).tolist() == np.flatnonzero(labels == c).tolist()
    assert members.smallest(3).tolist() == [6, 1, 14]  # sizes 2, 3, 6; empty clusters skipped
    assert members.smallest(2, nonempty=False).tolist() == [3, 12]
    with pytest.raises(IndexError):
        members.of(20)


def test_same_seed_same_pick(members):
    sparse = sparse_clusters(members.sizes, 0.5)
    for mode in ("smallest", "sparse", "pool"):
        for seed in (0, 1, (3, 17)):
            a = pick_fewshot(members, sparse, seed=seed, mode=mode)
            b = pick_fewshot(members, sparse, seed=seed, mode=mode)
            assert a.cluster == b.cluster and a.positions.tolist() == b.positions.tolist()


def test_seeds_vary_the_pick(members):
    sparse = sparse_clusters(members.sizes, 0.5)
    picks = {tuple(pick_fewshot(members, sparse, seed=s, mode="sparse").positions) for s in range(20)}
    assert len(picks) > 10
    clusters = {pick_fewshot(members, sparse, seed=s, mode="sparse").cluster for s in range(50)}
    assert len(clusters) > 3


def test_smallest_mode_draws_from_the_smallest_tenth(members):
    sparse = sparse_clusters(members.sizes, 0.5)
    # 18 non-empty clusters: ⌊0.1·18⌋ = 1 cluster, ⌊0.2·18⌋ = 3 clusters
    assert candidate_clusters(members, sparse, "smallest", 0.10).tolist() == [6]
    assert candidate_clusters(members, sparse, "smallest", 0.20).tolist() == [6, 1, 14]
    seen = {pick_fewshot(members, sparse, seed=s, smallest_fraction=0.2).cluster for s in range(60)}
    assert seen == {6, 1, 14}
    pick = pick_fewshot(members, sparse, seed=0)
    assert pick.cluster == 6 and sorted(pick.positions.tolist()) == members.of(6).tolist()  # size 2 < 5 shots


def test_sparse_mode_uses_nonempty_sparse_clusters_only(members):
    sparse = sparse_clusters(members.sizes, 0.5)
    allowed = set(np.flatnonzero(sparse.mask & (members.sizes > 0)).tolist())
    assert 3 not in allowed and 12 not in allowed
    seen = {pick_fewshot(members, sparse, seed=s, mode="sparse").cluster for s in range(200)}
    assert seen == allowed


def test_picks_are_shuffled_members_without_repeats(members):
    sparse = sparse_clusters(members.sizes, 0.5)
    orders = []
    for s in range(30):
        pick = pick_fewshot(members, sparse, seed=s, mode="sparse", shots=5)
        expected = min(5, members.sizes[pick.cluster])
        assert len(pick.positions) == expected == len(set(pick.positions.tolist()))
        assert set(pick.positions.tolist()) <= set(members.of(pick.cluster).tolist())
        orders.append(pick.positions.tolist() == sorted(pick.positions.tolist()))
    assert not all(orders)  # not handed out in pool order


def test_pool_mode_ignores_clusters(members):
    pick = pick_fewshot(members, None, seed=4, mode="pool", shots=5)
    assert pick.cluster is None and len(set(pick.positions.tolist())) == 5
    assert pick.positions.max() < members.n
    tiny = ClusterMembers(np.array([0, 0, 1]), 2)
    assert len(pick_fewshot(tiny, None, seed=0, mode="pool").positions) == 3


def test_all_sparse_clusters_empty_falls_back_to_nonempty():
    members = ClusterMembers(labels_with_sizes([5, 0, 5, 0]), 4)
    sparse = sparse_clusters(members.sizes, 0.5)
    assert sparse.ids.tolist() == [1, 3]  # only the empty ones are sparse
    assert {pick_fewshot(members, sparse, seed=s, mode="sparse").cluster for s in range(20)} == {0, 2}
