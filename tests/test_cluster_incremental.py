"""The refit policy (cluster/incremental.py): when it refits, what an update equals, what a resume loads and
what pruning keeps. No timings here: costs are in bench/bench_scale.py and BENCHMARKS.md."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from prism_agent.cluster.artifacts import MARKER, committed_rounds, load_round, read_record, round_dir
from prism_agent.cluster.assign import assign_nearest
from prism_agent.cluster.incremental import cluster_round, plan_round, prune
from prism_agent.cluster.rows import as_rows
from prism_agent.cluster.sparse import sparse_clusters
from prism_agent.config.cluster import ClusterConfig
from prism_agent.gradients.store import FeatureStore

DIM, K = 16, 12
# refit_every_round_below = 0: the growth rule from the first round (these pools are far under the default)
CFG = ClusterConfig(k_ratio=0.01, k_min=20, seed=1, refit_growth=0.10, refit_every_round_below=0, threads=1)


def rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((K, DIM))
    weights = np.random.default_rng(98).pareto(1.2, K) + 0.05
    labels = rng.choice(K, size=n, p=weights / weights.sum())
    return (centres[labels] + 0.5 * rng.standard_normal((n, DIM))).astype(np.float32)


def grow(root, n: int, seed: int) -> FeatureStore:
    """Append n rows as one shard, as a commit does, and reopen the store."""
    store = FeatureStore.open(root, dim=DIM, meta={})
    store.append([f"x{seed}-{i}" for i in range(n)], rows(n, seed))
    return FeatureStore.load(root)


def test_refits_when_and_only_when_the_pool_has_grown_enough(tmp_path):
    feats, clusters = tmp_path / "f", tmp_path / "c"
    store = grow(feats, 1000, 0)
    kinds = []
    for r, add in enumerate([60, 39, 2, 50, 0, 30], start=1):  # growth since the fit: 6 %, 9.9 %, 10.1 % …
        _, plan = cluster_round(store, CFG, clusters, r)
        kinds.append(plan.kind)
        if add:
            store = grow(feats, add, r)
    # r1 first fit (1000); r2 1060: 6 %; r3 1099: 9.9 %; r4 1101: 10.1 % → refit; r5 1151: 4.5 %;
    # r6: nothing committed after r5 → cold fit with r6's own seed (no stall on an unchanged sparse set)
    assert kinds == ["cold", "update", "update", "warm", "update", "cold"]
    assert read_record(clusters, 4)["fit"]["init"] == "warm"
    assert read_record(clusters, 4)["fit"]["iterations"] == CFG.refit_iterations
    assert read_record(clusters, 1)["fit"]["iterations"] == CFG.iterations


def test_small_pools_refit_every_round_and_the_growth_rule_starts_at_the_threshold(tmp_path):
    feats, clusters = tmp_path / "f", tmp_path / "c"
    store = grow(feats, 1000, 0)
    cfg = CFG.model_copy(update={"refit_every_round_below": 1100})
    kinds = []
    for r, add in enumerate([60, 39, 2, 50], start=1):
        _, plan = cluster_round(store, cfg, clusters, r)
        kinds.append(plan.kind)
        store = grow(feats, add, r)
    # 1000, 1060, 1099 rows: under 1100, a cold fit each round; 1101: the growth rule (1.7 % since r3's fit)
    assert kinds == ["cold", "cold", "cold", "update"]


def test_growth_zero_refits_every_round_and_settings_change_refits(tmp_path):
    feats, clusters = tmp_path / "f", tmp_path / "c"
    store = grow(feats, 1000, 0)
    every = CFG.model_copy(update={"refit_growth": 0.0})
    cluster_round(store, every, clusters, 1)
    store = grow(feats, 5, 1)
    assert plan_round(as_rows(store), every, clusters, 2).kind == "cold"
    assert plan_round(as_rows(store), CFG, clusters, 2).kind == "update"
    assert plan_round(as_rows(store), CFG.model_copy(update={"seed": 7}), clusters, 2).kind == "update"
    assert plan_round(as_rows(store), CFG.model_copy(update={"iterations": 3}), clusters, 2).kind == "update"
    assert plan_round(as_rows(store), CFG.model_copy(update={"k_min": 25}), clusters, 2).kind == "cold"
    assert plan_round(as_rows(store), CFG.model_copy(update={"sparse_ratio": 0.3}), clusters, 2).kind == "cold"


def test_update_equals_direct_assignment_and_sparse_set_follows(tmp_path):
    feats, clusters = tmp_path / "f", tmp_path / "c"
    store = grow(feats, 1000, 0)
    first, _ = cluster_round(store, CFG, clusters, 1)
    store = grow(feats, 40, 1)
    store = grow(feats, 25, 2)  # two shards since the fit: the update spans shard boundaries
    _, plan = cluster_round(store, CFG, clusters, 2)
    store = grow(feats, 20, 3)
    third, plan3 = cluster_round(store, CFG, clusters, 3)
    assert (plan.kind, plan3.kind) == ("update", "update")
    direct = assign_nearest(store, first.centroids, threads=1)
    assert np.array_equal(third.centroids, first.centroids)
    assert np.array_equal(third.labels, direct.labels)
    assert np.allclose(third.cosines, direct.cosines, atol=1e-6)
    sizes = np.bincount(direct.labels, minlength=first.k)
    assert np.array_equal(third.sizes, sizes)
    expected = sparse_clusters(sizes, CFG.sparse_ratio)
    assert np.array_equal(third.sparse.mask, expected.mask) and third.sparse.threshold == expected.threshold
    # the saved update holds only the rows added since its base fit, and loads back to the same clustering
    record = read_record(clusters, 3)
    assert (record["base"], record["base_n"], record["n"]) == (1, 1000, 1085)
    assert np.load(round_dir(clusters, 3) / "labels.npy").shape == (85,)
    back = load_round(clusters, 3, mmap=True)
    assert np.array_equal(back.labels, third.labels) and np.array_equal(back.sparse.mask, third.sparse.mask)
    # a candidate identical to a committed row gets that row's decision
    d = back.decide(store.take([1050]))
    assert int(d.labels[0]) == int(direct.labels[1050]) and bool(d.accepted[0]) == bool(expected.mask[d.labels[0]])


def test_pruning_keeps_every_fit_and_the_last_update(tmp_path):
    feats, clusters = tmp_path / "f", tmp_path / "c"
    store = grow(feats, 1000, 0)
    for r, add in enumerate([30, 30, 50, 30, 30], start=1):
        cluster_round(store, CFG, clusters, r)
        store = grow(feats, add, r)
    cluster_round(store, CFG, clusters, 6)
    # 1 cold (1000), 2-3 updates, 4 warm (1110), 5 update, 6 update: kept 1, 4 and the last (6)
    assert committed_rounds(clusters) == [1, 4, 6]
    assert "base" not in read_record(clusters, 4) and read_record(clusters, 6)["base"] == 4
    # a save cut short by a kill (arrays without a marker) counts as absent and is removed later
    partial = round_dir(clusters, 5)
    partial.mkdir()
    (partial / "labels.npy").write_bytes(b"torn")
    assert prune(clusters, keep=6) == [5] and not partial.exists()


@pytest.mark.parametrize("kind_adds", [[1000, 200], [1000, 30]], ids=["refit", "update"])
def test_resume_after_kill_between_clustering_and_commit_uses_the_same_clustering(tmp_path, kind_adds):
    """Round 2's clustering is saved, then the process dies before the round commits: the restarted round
    must load that clustering (not plan again), so its few-shot picks and keep decisions are the same."""
    feats, clusters = tmp_path / "f", tmp_path / "c"
    store = grow(feats, kind_adds[0], 0)
    cluster_round(store, CFG, clusters, 1)
    store = grow(feats, kind_adds[1], 1)
    made, plan = cluster_round(store, CFG, clusters, 2)  # the artifact is written; then "kill -9"
    saved = {p.name: p.read_bytes() for p in round_dir(clusters, 2).iterdir()}
    again, resumed = cluster_round(FeatureStore.load(feats), CFG, clusters, 2)
    assert plan.kind == ("warm" if kind_adds[1] == 200 else "update") and resumed.kind == "resumed"
    assert {p.name: p.read_bytes() for p in round_dir(clusters, 2).iterdir()} == saved
    assert np.array_equal(again.centroids, made.centroids) and np.array_equal(again.labels, made.labels)
    assert np.array_equal(again.sparse.mask, made.sparse.mask)
    cands = rows(50, 77)
    assert np.array_equal(again.decide(cands).accepted, made.decide(cands).accepted)
    assert again.pick_fewshot((2, 0)).positions.tolist() == made.pick_fewshot((2, 0)).positions.tolist()
    # killed mid-save instead (no marker): the round is planned and built again from the same inputs
    (round_dir(clusters, 2) / MARKER).unlink()
    _, plan2 = cluster_round(FeatureStore.load(feats), CFG, clusters, 2)
    assert plan2.kind == plan.kind and 2 in committed_rounds(clusters)


def test_an_update_whose_base_pool_changed_refits_cold(tmp_path):
    feats, clusters = tmp_path / "f", tmp_path / "c"
    cluster_round(grow(feats, 1000, 0), CFG, clusters, 1)
    shutil.rmtree(feats)
    store = grow(feats, 1010, 5)  # another pool of about the same size
    assert plan_round(as_rows(store), CFG, clusters, 2).kind == "cold"


def test_warm_seeds_from_recorded_cosines_equal_a_fresh_search():
    """A warm refit reads the previous clustering's recorded cosines instead of searching the training sample
    again; the new seeds, hence the centroids, must be those the search would have given."""
    from prism_agent.cluster.kmeans import fit_spherical_kmeans
    from prism_agent.cluster.round import build_round
    from prism_agent.cluster.rows import ArrayRows

    x = rows(3000, 5)
    cfg = CFG.model_copy(update={"k_min": 25, "refit_points_per_centroid": 16})
    previous = build_round(x[:2000], cfg.model_copy(update={"k_min": 20}))
    assert previous.k == 20  # the refit adds 5 clusters, so new seeds are drawn
    plain = fit_spherical_kmeans(ArrayRows(x), 25, cfg, warm=previous.centroids)
    recorded = fit_spherical_kmeans(ArrayRows(x), 25, cfg, warm=previous.centroids,
                                    warm_cosines=np.asarray(previous.cosines))
    assert plain.train_size == 25 * 16
    np.testing.assert_allclose(recorded.centroids, plain.centroids, atol=1e-6)


def test_a_round_saved_with_other_refit_settings_resumes(tmp_path):
    """How later refits are computed may change on resume (a free field of the run config): a saved round
    is loaded as it was, not refused."""
    from prism_agent.config.run import is_free

    assert is_free("cluster.refit_iterations") and is_free("cluster.refit_points_per_centroid")
    assert not is_free("cluster.k_ratio")
    feats, clusters = tmp_path / "f", tmp_path / "c"
    store = grow(feats, 1000, 0)
    first, _ = cluster_round(store, CFG, clusters, 1)
    again, plan = cluster_round(store, CFG.model_copy(update={"refit_iterations": 7,
                                                              "refit_points_per_centroid": 9}), clusters, 1)
    assert plan.kind == "resumed"
    np.testing.assert_array_equal(np.asarray(again.labels), np.asarray(first.labels))
    with pytest.raises(Exception, match="other settings"):
        cluster_round(store, CFG.model_copy(update={"sparse_ratio": 0.3}), clusters, 1)
