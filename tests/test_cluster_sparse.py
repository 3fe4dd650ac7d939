from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from prism_agent.cluster.kchoice import choose_k
from prism_agent.cluster.sparse import sparse_clusters, threshold_position
from prism_agent.config.cluster import ClusterConfig
from prism_agent.errors import BadInputError

# ------------------------------------------------------------------ the sparse rule


def test_sparse_is_strictly_below_the_size_at_floor_k_ratio():
    s = sparse_clusters(np.array([5, 1, 3, 2, 4]), 0.5)  # sorted 1 2 [3] 4 5, position ⌊2.5⌋ = 2
    assert (s.position, s.threshold, s.fallback) == (2, 3, False)
    assert s.ids.tolist() == [1, 3]


def test_ties_at_the_threshold_are_not_sparse():
    s = sparse_clusters(np.array([2, 1, 2, 6, 2, 5]), 0.5)  # sorted 1 2 2 [2] 5 6
    assert s.threshold == 2
    assert s.ids.tolist() == [1]  # only the size-1 cluster, fewer than K·ratio = 3


def test_all_clusters_equal_size_falls_back_to_all():
    s = sparse_clusters(np.full(8, 7), 0.5)
    assert s.fallback and s.count == 8 and s.mask.all()


def test_one_cluster_falls_back_to_it():
    s = sparse_clusters(np.array([42]), 0.5)
    assert (s.position, s.threshold, s.fallback, s.count) == (0, 42, True, 1)


def test_empty_clusters_are_sparse():
    s = sparse_clusters(np.array([5, 0, 5, 0]), 0.5)  # sorted 0 0 [5] 5
    assert not s.fallback
    assert s.ids.tolist() == [1, 3]


def test_empty_clusters_up_to_the_threshold_position_trigger_fallback():
    s = sparse_clusters(np.array([0, 3, 0, 0]), 0.5)  # sorted 0 0 [0] 3: nothing is < 0
    assert s.threshold == 0 and s.fallback and s.count == 4


def test_other_ratios():
    sizes = np.arange(1, 11)  # 1..10
    assert sparse_clusters(sizes, 0.2).ids.tolist() == [0, 1]  # < size at position 2 (= 3)
    assert sparse_clusters(sizes, 0.9).count == 9
    assert sparse_clusters(sizes, 0.05).fallback  # position 0: nothing below the minimum


def test_position_uses_the_decimal_ratio():
    assert 0.29 * 100 < 29  # the float product would floor to 28
    assert threshold_position(100, 0.29) == 29
    assert threshold_position(7, 0.5) == 3


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_must_lie_strictly_between_0_and_1(ratio):
    with pytest.raises(ValueError):
        sparse_clusters(np.array([1, 2, 3]), ratio)


def test_no_clusters_or_negative_sizes_are_refused():
    with pytest.raises(ValueError):
        sparse_clusters(np.array([], dtype=np.int64), 0.5)
    with pytest.raises(ValueError):
        sparse_clusters(np.array([1, -1]), 0.5)


def test_random_sizes_obey_the_rule():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 40))
        sizes = rng.integers(0, 6, size=k)
        ratio = float(rng.uniform(0.01, 0.99))
        s = sparse_clusters(sizes, ratio)
        assert s.threshold == np.sort(sizes)[s.position]
        if s.fallback:
            assert s.mask.all() and not (sizes < s.threshold).any()
        else:
            assert (s.mask == (sizes < s.threshold)).all()
            assert s.count <= s.position  # every sparse size sorts strictly before the threshold position


# ------------------------------------------------------------------ k from the ratio


def test_k_from_ratio():
    c = choose_k(150_000, ClusterConfig())
    assert (c.k, c.decided_by, c.ratio_origin) == (1500, "ratio", "paper (1%)")
    c = choose_k(150_000, ClusterConfig(k_ratio=0.10))
    assert (c.k, c.ratio_origin) == (15_000, "released code (10%)")
    assert choose_k(100, ClusterConfig(k_ratio=0.29, k_min=1)).k == 29
    assert choose_k(1000, ClusterConfig(k_ratio=0.0123)).ratio_origin == "custom"


def test_k_bounds():
    c = choose_k(500, ClusterConfig())  # 1 % of 500 = 5 < k_min 10
    assert (c.k_from_ratio, c.k, c.decided_by) == (5, 10, "k_min")
    c = choose_k(3_000_000, ClusterConfig(k_ratio=0.10))  # 300K > k_max 200K
    assert (c.k, c.decided_by) == (200_000, "k_max")
    c = choose_k(4, ClusterConfig())  # never more clusters than rows
    assert (c.k, c.decided_by) == (4, "pool_size")
    c = choose_k(1_000_000, ClusterConfig(k_min=1, k_max=50))
    assert (c.k, c.decided_by) == (50, "k_max")


def test_k_needs_rows():
    with pytest.raises(BadInputError):
        choose_k(0, ClusterConfig())


def test_config_is_strict():
    with pytest.raises(ValidationError):
        ClusterConfig(k_min=100, k_max=10)
    with pytest.raises(ValidationError):
        ClusterConfig(k_ratio="0.1")
    with pytest.raises(ValidationError):
        ClusterConfig(kratio=0.1)
    with pytest.raises(ValidationError):
        ClusterConfig(sparse_ratio=1.0)
    with pytest.raises(ValidationError):
        ClusterConfig(init="kmeans")
    assert ClusterConfig().iterations == 20 and ClusterConfig().sparse_ratio == 0.5
