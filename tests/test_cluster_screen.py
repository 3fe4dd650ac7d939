"""The bf16 screen answers the exact fp32 nearest centroids: checked against fp64 brute force where bf16's own
argmax is wrong, on exact ties, on zero rows, and through `assign_nearest` and the pool search."""

from __future__ import annotations

import numpy as np
import pytest

from prism_agent.cluster.assign import assign_nearest
from prism_agent.cluster.backend import inner_product_index
from prism_agent.cluster.ivf import PoolSearch
from prism_agent.cluster.rows import ArrayRows, normalized
from prism_agent.cluster.screen import MIN_CENTROIDS, CentroidScreen, centroid_index, screen_available

TIE = 1e-6  # fp32 products of unit rows at d ≤ 1024 are good to ~1e-7: closer scores are ties


def unit(x: np.ndarray) -> np.ndarray:
    return normalized(np.asarray(x, dtype=np.float32))


def crowded(seed: int = 0, k: int = 300, n: int = 1500, d: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Centroids in tight groups of near-duplicates (cosine ≈ 0.9999 within a group), and noise-dominated rows
    near them: the two best centroids of a row are often closer than bf16 can tell apart."""
    rng = np.random.default_rng(seed)
    bases = rng.normal(size=(k // 4, d))
    centroids = unit(np.repeat(bases, 4, axis=0) + 0.01 * rng.normal(size=(k, d)))
    rows = unit(centroids[rng.integers(0, k, n)] + 0.6 * rng.normal(size=(n, d)) / np.sqrt(d) * 4)
    return centroids, rows


def check_nearest(rows: np.ndarray, centroids: np.ndarray, cosines: np.ndarray, ids: np.ndarray) -> None:
    """Each row's answers are its n best in fp64, best first, up to ties; cosines are the fp32 products."""
    truth = rows.astype(np.float64) @ centroids.astype(np.float64).T
    n = ids.shape[1]
    ranked = -np.sort(-truth, axis=1)
    got = np.take_along_axis(truth, ids, axis=1)
    assert (got >= ranked[:, :n] - TIE).all()  # the j-th answer scores as the true j-th, up to a tie
    assert (np.diff(got, axis=1) <= TIE).all()
    assert np.allclose(cosines, got, atol=2e-6)
    assert all(len(set(r)) == n for r in ids)


def test_the_bf16_argmax_is_often_wrong_here_so_the_certificate_matters():
    import torch

    centroids, rows = crowded()
    rough = (torch.from_numpy(rows).bfloat16() @ torch.from_numpy(centroids).bfloat16().T).float().numpy()
    truth = rows.astype(np.float64) @ centroids.astype(np.float64).T
    assert (rough.argmax(1) != truth.argmax(1)).mean() > 0.1


@pytest.mark.parametrize("n", [1, 2, 8, 32, 290, 300])
def test_screen_returns_the_exact_nearest(n):
    centroids, rows = crowded(seed=n)
    cosines, ids = CentroidScreen(centroids).search(rows, n)
    check_nearest(rows, centroids, cosines, ids)
    faiss_cos, faiss_ids = inner_product_index(centroids, gpu=False).search(rows, n)
    assert (ids[:, 0] == faiss_ids[:, 0]).mean() > 0.99  # the rest are fp32 ties, settled either way
    assert np.allclose(cosines, faiss_cos, atol=2e-6)


def test_a_window_wider_than_the_screen_keeps_falls_back_to_the_full_product():
    rng = np.random.default_rng(3)
    d = 128
    base = unit(rng.normal(size=(1, d)))
    clones = unit(np.repeat(base, 60, axis=0) + 1e-4 * rng.normal(size=(60, d)))  # 60 within bf16's blur
    centroids = np.concatenate([clones, unit(rng.normal(size=(300, d)))])
    rows = unit(np.repeat(base, 50, axis=0) + 0.05 * rng.normal(size=(50, d)))
    for n in (1, 4):
        cosines, ids = CentroidScreen(centroids).search(rows, n)
        check_nearest(rows, centroids, cosines, ids)
        assert (ids < 60).all()


def test_copies_of_centroids_and_zero_rows():
    centroids, _ = crowded(seed=5)
    rows = np.concatenate([centroids[[7, 100, 299]], np.zeros((2, centroids.shape[1]), np.float32)])
    cosines, ids = CentroidScreen(centroids).search(rows, 3)
    assert (ids[:3, 0] == [7, 100, 299]).all()
    assert np.allclose(cosines[:3, 0], 1.0, atol=1e-6)
    assert (ids[3:] == [0, 1, 2]).all() and (cosines[3:] == 0).all()  # all scores equal: the first centroids


def test_bad_requests_are_refused():
    centroids, rows = crowded()
    screen = CentroidScreen(centroids)
    with pytest.raises(ValueError):
        screen.search(rows, centroids.shape[0] + 1)
    with pytest.raises(ValueError):
        CentroidScreen(centroids[:10])
    with pytest.raises(ValueError):
        CentroidScreen(np.full_like(centroids, np.nan))


def test_the_screen_is_used_only_with_native_bf16_and_enough_centroids(monkeypatch):
    monkeypatch.setenv("PRISM_AGENT_NATIVE_BF16", "1")
    assert screen_available(MIN_CENTROIDS) and not screen_available(MIN_CENTROIDS - 1)
    centroids, _ = crowded()
    assert isinstance(centroid_index(centroids, gpu=False), CentroidScreen)
    monkeypatch.setenv("PRISM_AGENT_NATIVE_BF16", "0")
    assert not screen_available(10**6)
    assert not isinstance(centroid_index(centroids, gpu=False), CentroidScreen)


def test_assign_nearest_gives_the_same_labels_with_and_without_the_screen(monkeypatch):
    centroids, rows = crowded(seed=11, n=5000)
    monkeypatch.setenv("PRISM_AGENT_NATIVE_BF16", "0")
    plain = assign_nearest(rows, centroids, batch_size=1024, threads=1)
    monkeypatch.setenv("PRISM_AGENT_NATIVE_BF16", "1")
    screened = assign_nearest(rows, centroids, batch_size=1024, threads=1)
    truth = rows.astype(np.float64) @ centroids.astype(np.float64).T
    picked = truth[np.arange(len(rows)), screened.labels]
    assert (picked >= truth.max(1) - TIE).all()
    differ = screened.labels != plain.labels
    assert differ.mean() < 0.01  # fp32 ties only
    assert np.allclose(screened.cosines, plain.cosines, atol=2e-6)


def test_the_pool_search_finds_copies_through_a_screened_probe(monkeypatch):
    monkeypatch.setenv("PRISM_AGENT_NATIVE_BF16", "1")
    centroids, pool = crowded(seed=13, n=4000)
    labels = assign_nearest(pool, centroids, threads=1).labels
    search = PoolSearch(ArrayRows(pool), centroids, labels, brute_pairs=0)
    assert search.indexed
    picked = np.random.default_rng(0).choice(len(pool), 300, replace=False)
    found = search.nearest(pool[picked])
    assert np.allclose(found.cosines, 1.0, atol=1e-5)
    assert (pool[found.positions] == pool[picked]).all()


def test_screens_of_different_sizes_share_the_kept_buffers_without_mixing_answers():
    small, rows = crowded(seed=17, k=300, n=5000)
    large, _ = crowded(seed=18, k=1200)
    first = CentroidScreen(small).search(rows, 4)
    CentroidScreen(large).search(rows[:777], 2)  # another shape in the same kept buffers in between
    again = CentroidScreen(small).search(rows, 4)
    assert (first[1] == again[1]).all() and (first[0] == again[0]).all()
    check_nearest(rows, small, *again)
