"""The nearby-centroid refit (`cluster/nearby.py`): Lloyd's steps exactly when every centroid is listed; on
well-separated clusters as good as a full warm refit while comparing each training row with a few centroids;
and whatever the training, every row labelled with its nearest centroid of all k."""

from __future__ import annotations

import numpy as np

from prism_agent.cluster.assign import assign_nearest
from prism_agent.cluster.incremental import cluster_round
from prism_agent.cluster.nearby import fit_nearby, neighbour_lists
from prism_agent.cluster.reference import reference_spherical_kmeans
from prism_agent.cluster.round import build_round
from prism_agent.cluster.rows import as_rows
from prism_agent.config.cluster import ClusterConfig
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


def test_labels_are_nearest_centroids_on_noise_dominated_rows(tmp_path):
    """Rows barely nearer their own centre than any other: a restricted search would often miss a row's
    nearest centroid; the refit's labels are still each row's nearest of all k (the search relies on it)."""
    store = FeatureStore.open(tmp_path / "f", dim=DIM, meta={})
    store.append([f"a{i}" for i in range(3000)], separated(3000, 60, 0, noise=2.0))
    cfg = ClusterConfig(k_min=60, k_max=60, refit_growth=0.10, refit_every_round_below=0, threads=1,
                        refit_neighbours=4, seed=2)
    cluster_round(FeatureStore.load(tmp_path / "f"), cfg, tmp_path / "c", 1)
    store.append([f"b{i}" for i in range(400)], separated(400, 60, 1, noise=2.0))
    pool = FeatureStore.load(tmp_path / "f")
    refit, plan = cluster_round(pool, cfg, tmp_path / "c", 2)
    assert plan.kind == "warm" and refit.fit.init == "warm, 4 nearby"
    exact = assign_nearest(pool, refit.centroids, threads=1, device="cpu")
    np.testing.assert_array_equal(refit.labels, exact.labels)
