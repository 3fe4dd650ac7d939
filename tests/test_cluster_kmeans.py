from __future__ import annotations

import numpy as np
import pytest

from prism_agent.cluster.assign import assign_nearest, decide_candidates
from prism_agent.cluster.kmeans import fit_spherical_kmeans, train_sample_size
from prism_agent.cluster.reference import reference_spherical_kmeans
from prism_agent.cluster.rows import ArrayRows, StoreRows
from prism_agent.config.cluster import ClusterConfig
from prism_agent.errors import BadInputError
from prism_agent.gradients.store import FeatureStore

ALL_ROWS = {"train_points_per_centroid": 10**6}  # train on every row, as the reference does


def blobs(n: int, k: int, dim: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows around k random directions, each scaled by a random positive factor (cosine ignores it)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, dim))
    labels = np.arange(n) % k
    rng.shuffle(labels)
    x = centers[labels] + noise * rng.standard_normal((n, dim))
    x *= rng.uniform(0.2, 5.0, size=(n, 1))
    return x.astype(np.float32), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to renaming the clusters."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("noise", [0.3, 1.5, 4.0])
def test_faiss_matches_the_reference_step_for_step(noise):
    # Same initial centroids (first k rows) → the same 20 Lloyd iterations, even on overlapping data.
    x, _ = blobs(1500, 6, 24, noise, seed=1)
    fit = fit_spherical_kmeans(ArrayRows(x), 6, ClusterConfig(init="first-k", **ALL_ROWS))
    ref = reference_spherical_kmeans(x, 6, init="first-k", iterations=20)
    np.testing.assert_allclose(fit.centroids, ref.centroids, atol=1e-5)
    found = assign_nearest(x, fit.centroids)
    assert (found.labels == ref.labels).all()
    np.testing.assert_allclose(found.cosines, ref.cosines, atol=1e-5)


def test_faiss_and_reference_recover_well_separated_clusters():
    # k-means++ seeding puts one seed per blob on well-separated data; both then find the true partition.
    x, truth = blobs(800, 8, 32, 0.15, seed=2)
    fit = fit_spherical_kmeans(ArrayRows(x), 8, ClusterConfig(init="kmeans++", seed=3, **ALL_ROWS))
    assert same_partition(assign_nearest(x, fit.centroids).labels, truth)
    ref = reference_spherical_kmeans(x, 8, init="kmeans++", seed=3)
    assert same_partition(ref.labels, truth)


@pytest.mark.parametrize("init", ["random", "kmeans++"])
def test_every_init_option_reaches_the_reference_fixed_point(init):
    # Whatever faiss' seeding picked, its centroids are a fixed point of the reference's Lloyd step.
    x, _ = blobs(600, 5, 16, 0.5, seed=9)
    fit = fit_spherical_kmeans(ArrayRows(x), 5, ClusterConfig(init=init, seed=1, iterations=50, **ALL_ROWS))
    ref = reference_spherical_kmeans(x, 5, iterations=5, init_centroids=fit.centroids)
    np.testing.assert_allclose(ref.centroids, fit.centroids, atol=1e-5)


def test_centroids_are_unit_and_seeded():
    x, _ = blobs(1000, 10, 16, 1.0, seed=4)
    a = fit_spherical_kmeans(ArrayRows(x), 10, ClusterConfig(seed=7))
    b = fit_spherical_kmeans(ArrayRows(x), 10, ClusterConfig(seed=7))
    c = fit_spherical_kmeans(ArrayRows(x), 10, ClusterConfig(seed=8))
    np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a.centroids, b.centroids)
    assert not np.array_equal(a.centroids, c.centroids)


def test_large_pools_train_on_a_bounded_sample_and_assign_every_row():
    cfg = ClusterConfig(init="kmeans++", train_points_per_centroid=40, train_sample_max=300)
    assert train_sample_size(1000, 5, cfg) == 200
    assert train_sample_size(1000, 10, cfg) == 300  # capped
    assert train_sample_size(150, 10, cfg) == 150  # small pool: all of it
    assert train_sample_size(1000, 500, cfg) == 500  # never fewer rows than clusters
    x, truth = blobs(1000, 5, 16, 0.1, seed=5)
    fit = fit_spherical_kmeans(ArrayRows(x), 5, cfg)
    assert fit.train_size == 200
    found = assign_nearest(x, fit.centroids)
    assert found.labels.shape == (1000,) and same_partition(found.labels, truth)


def test_bad_inputs():
    x, _ = blobs(50, 2, 8, 0.1)
    with pytest.raises(BadInputError):
        fit_spherical_kmeans(ArrayRows(x), 51, ClusterConfig())
    x[17, 3] = np.nan
    with pytest.raises(BadInputError, match="row 17"):
        fit_spherical_kmeans(ArrayRows(x), 2, ClusterConfig(**ALL_ROWS))
    with pytest.raises(BadInputError, match="dimension"):
        assign_nearest(np.zeros((3, 9), np.float32), np.eye(8, dtype=np.float32))


def test_assignment_streams_a_store_in_blocks(tmp_path):
    x, _ = blobs(1030, 7, 12, 1.0, seed=6)
    x[5] = 0.0  # an all-zero row is allowed: cosine 0 to every centroid
    store = FeatureStore.open(tmp_path / "f", dim=12, meta={"test": 1})
    for start in range(0, 1030, 400):  # uneven shards
        store.append([str(i) for i in range(start, min(start + 400, 1030))], x[start : start + 400])
    centroids = np.random.default_rng(0).standard_normal((9, 12)).astype(np.float32)
    found = assign_nearest(StoreRows(store), centroids, batch_size=64)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    sims = unit @ (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).T
    assert (found.labels == sims.argmax(1)).all()
    np.testing.assert_allclose(found.cosines, sims.max(1), atol=1e-5)
    assert found.cosines[5] == 0.0
    assert (assign_nearest(store, centroids, batch_size=1000).labels == found.labels).all()


def test_candidates_are_kept_only_in_sparse_clusters():
    centroids = np.eye(4, dtype=np.float32)
    sparse = np.array([False, True, False, True])
    candidates = np.array([[0, 2, 0.1, 0], [3, 0, 0, 0.2], [0, 0, 0, 0.5], [0.1, 0, 1, 0]], np.float32)
    d = decide_candidates(candidates, centroids, sparse)
    assert d.labels.tolist() == [1, 0, 3, 2]
    assert d.accepted.tolist() == [True, False, True, False]
    assert d.accepted_count == 2
    assert d.cosines[2] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        decide_candidates(candidates, centroids, sparse[:3])


def test_greedy_kmeanspp_puts_one_seed_in_every_blob():
    from prism_agent.cluster.seeding import greedy_kmeanspp

    # Very unequal blobs: random seeding would almost surely miss some of the small ones.
    rng = np.random.default_rng(11)
    sizes = [400, 200, 100, 50, 20, 10, 5, 3]
    truth = np.repeat(np.arange(8), sizes)
    x = rng.standard_normal((8, 32))[truth] + 0.05 * rng.standard_normal((truth.size, 32))
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    for seed in range(5):
        seeds = greedy_kmeanspp(unit, 8, np.random.default_rng(seed))
        assert sorted(truth[seeds].tolist()) == list(range(8))
    a = greedy_kmeanspp(unit, 8, np.random.default_rng(3))
    assert np.array_equal(a, greedy_kmeanspp(unit, 8, np.random.default_rng(3)))
    dup = np.repeat(unit[:2], 3, axis=0)  # 2 distinct rows, 4 seeds asked: distinct indices all the same
    assert len(set(greedy_kmeanspp(dup, 4, np.random.default_rng(0)).tolist())) == 4


def test_default_init_is_seeded_kmeanspp_on_a_subset():
    x, truth = blobs(2000, 10, 16, 0.1, seed=12)
    cfg = ClusterConfig(seed=2, init_points_per_centroid=20)
    fit = fit_spherical_kmeans(ArrayRows(x), 10, cfg)
    assert (fit.init, fit.init_size) == ("kmeans++", 200)
    assert same_partition(assign_nearest(x, fit.centroids).labels, truth)
    assert np.array_equal(fit.centroids, fit_spherical_kmeans(ArrayRows(x), 10, cfg).centroids)


def test_thread_setting_is_restored():
    import faiss

    before = faiss.omp_get_max_threads()
    x, _ = blobs(300, 3, 8, 0.1)
    fit_spherical_kmeans(ArrayRows(x), 3, ClusterConfig(threads=before + 1))
    assert faiss.omp_get_max_threads() == before


def test_torch_seeding_path_picks_the_same_seeds():
    # The CUDA path of greedy k-means++ is the same loop in torch; run it on the CPU to check it.
    from prism_agent.cluster.seeding import greedy_kmeanspp

    x, _ = blobs(600, 12, 16, 0.8, seed=13)
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    a = greedy_kmeanspp(unit, 25, np.random.default_rng(5))
    b = greedy_kmeanspp(unit, 25, np.random.default_rng(5), torch_device="cpu")
    assert a.tolist() == b.tolist()
