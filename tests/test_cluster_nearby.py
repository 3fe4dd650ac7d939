"""The nearby-centroid refit (`cluster/nearby.py`): exact when it may search every centroid, and on
well-separated clusters as good as a full search while comparing each row with a few centroids only."""

from __future__ import annotations

import numpy as np
import pytest

from prism_agent.cluster.assign import assign_nearest
from prism_agent.cluster.incremental import cluster_round
from prism_agent.cluster.nearby import assign_nearby, fit_nearby, neighbour_lists
from prism_agent.cluster.reference import reference_spherical_kmeans
from prism_agent.cluster.round import build_round
from prism_agent.cluster.rows import as_rows
from prism_agent.config.cluster import ClusterConfig
from prism_agent.errors import BadInputError
from prism_agent.gradients.store import FeatureStore

DIM = 24


def separated(n: int, clusters: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """Rows around `clusters` well-apart directions (the same directions for every seed)."""
    centres = np.random.default_rng(123).standard_normal((clusters, DIM))
    rng = np.random.default_rng(seed)
    labels = rng.integers(clusters, size=n)
    return (centres[labels] + noise * rng.standard_normal((n, DIM))).astype(np.float32)


def test_with_every_centroid_listed_the_fit_is_lloyd_from_the_previous_centroids():
    x = separated(600, 30, 0, noise=0.6)  # overlapping clusters: rows move between them
    k = 30
    previous = build_round(x[:500], ClusterConfig(k_min=k, k_max=k, threads=1, seed=3))
    cfg = ClusterConfig(k_min=k, k_max=k, threads=1, refit_neighbours=k, refit_iterations=3,
                        refit_points_per_centroid=1000)  # the sample is every row
    fit = fit_nearby(as_rows(x), k, cfg, previous=previous.centroids, labels=previous.labels)
    ref = reference_spherical_kmeans(x, k, iterations=3, init_centroids=previous.centroids)
    np.testing.assert_allclose(fit.centroids, ref.centroids, atol=2e-5)
    assert fit.init == f"warm, {k} nearby" and fit.iterations == 3


@pytest.mark.parametrize(("noise", "certified"), [(0.05, 0.9), (1.5, 0.0)])
def test_the_assignment_is_exact_whether_rows_are_certified_or_searched(noise, certified):
    """Tight clusters: nearly every row certified by the bound; noise-dominated rows: searched among all k.
    Either way each row gets its nearest of all k centroids, rows without a previous label included."""
    x = separated(3000, 60, 0, noise=noise)
    previous = build_round(x[:2500], ClusterConfig(k_min=60, k_max=60, threads=1, seed=3))
    moved = build_round(x, ClusterConfig(k_min=60, k_max=60, threads=1, seed=4, refit_neighbours=0),
                        warm=previous.centroids).centroids  # refit from them: cluster g is still g
    stats: dict = {}
    found = assign_nearby(as_rows(x), previous.labels, moved, 6, stats)
    exact = assign_nearest(x, moved, threads=1, device="cpu")
    np.testing.assert_array_equal(found.labels, exact.labels)
    np.testing.assert_allclose(found.cosines, exact.cosines, atol=1e-5)
    assert stats["certified"] + stats["searched"] == 3000 and stats["searched"] >= 500
    assert stats["certified"] >= certified * 2500
def test_neighbour_lists_start_with_the_centroid_itself():
    c = np.random.default_rng(5).standard_normal((50, DIM)).astype(np.float32)
    lists = neighbour_lists(c, c, 4)
    assert lists.shape == (50, 4)
    np.testing.assert_array_equal(lists[:, 0], np.arange(50))


def test_a_few_nearby_centroids_find_every_rows_nearest_on_separated_clusters(tmp_path):
    """k = 60 centroids, each row compared with 6: every row still gets its nearest of all 60."""
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    store.append([f"a{i}" for i in range(3000)], separated(3000, 60, 0))
    cfg = ClusterConfig(k_min=60, k_max=60, refit_growth=0.10, refit_every_round_below=0, threads=1,
                        refit_neighbours=6, seed=2)
    first, plan = cluster_round(FeatureStore.load(tmp_path / "f"), cfg, tmp_path / "c", 1)
    assert plan.kind == "cold"
    store.append([f"b{i}" for i in range(400)], separated(400, 60, 1))
    pool = FeatureStore.load(tmp_path / "f")
    refit, plan = cluster_round(pool, cfg, tmp_path / "c", 2)
    assert plan.kind == "warm" and refit.fit.init == "warm, 6 nearby"
    exact = assign_nearest(pool, refit.centroids, threads=1, device="cpu")
    np.testing.assert_array_equal(refit.labels, exact.labels)
    full = build_round(pool, cfg.model_copy(update={"refit_neighbours": 0}), warm=first.centroids,
                       warm_cosines=first.cosines, warm_labels=first.labels)
    assert full.fit.init == "warm"
    assert abs(refit.inertia - full.inertia) <= 1e-3 * full.inertia


def test_a_non_finite_row_is_named_by_its_pool_position():
    x = separated(400, 20, 0)
    previous = build_round(x, ClusterConfig(k_min=20, k_max=20, threads=1))
    x[137, 3] = np.nan
    with pytest.raises(BadInputError, match="row 137"):
        assign_nearby(as_rows(x), previous.labels, previous.centroids, 4)
