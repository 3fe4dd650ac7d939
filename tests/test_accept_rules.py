"""The loop's acceptance rules (README "Acceptance rules") on constructed features, without a model: the gain
math against brute-force G-Vendi recomputation, and each rule's decision on copies of pool rows and on rows
far from the pool, both as pure functions (`diversity/gain.py`, `diversity/novelty.py`) and as the run's
strategy (`loop/strategy.py`) over a real run directory's feature store."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from prism_agent.diversity.gain import greedy_gain_keep, marginal_gains, unit_rows
from prism_agent.diversity.novelty import nearest, novelty_keep, pool_threshold
from prism_agent.diversity.vendi import vendi
from prism_agent.loop.context import RunContext
from prism_agent.loop.strategy import get_strategy
from tests.support.loop_nodes import DIM, cfg_for


def _g(rows: np.ndarray) -> float:
    return vendi(unit_rows(rows)).q1


def _gram(pool: np.ndarray) -> np.ndarray:
    x = unit_rows(pool)
    return x.T @ x


def _far(pool: np.ndarray, seed: int) -> np.ndarray:
    """A unit row orthogonal to every pool row (the pool spans fewer than d directions)."""
    x = np.random.default_rng(seed).normal(size=pool.shape[1])
    q, _ = np.linalg.qr(unit_rows(pool).T)
    x -= q @ (q.T @ x)
    return x / np.linalg.norm(x)


def _pools() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    d = 48
    centre = rng.normal(size=(1, d))
    a, b = rng.normal(size=d), rng.normal(size=d)
    return {
        "spread": rng.normal(size=(30, d)),
        "clustered": centre * 3 + rng.normal(size=(30, d)),
        # one rare row among copies of another: re-adding the rare row *raises* G-Vendi here
        "skewed": np.stack([b] * 6 + [a]),
    }


def test_marginal_gains_equal_brute_force_recomputation():
    rng = np.random.default_rng(1)
    for pool in _pools().values():
        cands = np.concatenate([rng.normal(size=(4, pool.shape[1])), pool[:2], _far(pool, 3)[None]])
        want = [_g(np.vstack([pool, c])) - _g(pool) for c in cands]
        assert marginal_gains(_gram(pool), len(pool), cands) == pytest.approx(want, abs=1e-9)


def test_greedy_gain_equals_brute_force_greedy():
    """Each step takes the candidate whose addition gives the highest recomputed G-Vendi; the recorded gains
    and the final G-Vendi are the recomputed ones."""
    rng = np.random.default_rng(2)
    pool = rng.normal(size=(20, 32)) + 2 * rng.normal(size=(1, 32))
    cands = np.concatenate([rng.normal(size=(5, 32)) + 2 * rng.normal(size=(1, 32)), pool[[4]]])
    _, where = nearest(pool, cands)
    picks = greedy_gain_keep(_gram(pool), len(pool), cands, pool[where])
    assert picks.before == pytest.approx(_g(pool), abs=1e-9)
    current = pool
    for step, (i, gain) in enumerate(zip(picks.order, picks.gains, strict=True)):
        left = [j for j in range(len(cands)) if j not in picks.order[:step]]
        scores = {j: _g(np.vstack([current, cands[j]])) for j in left}
        eligible = {j: s for j, s in scores.items() if j in picks.order[step:]}
        assert i == max(eligible, key=eligible.get)  # the best of those the rule keeps, at each step
        assert gain == pytest.approx(scores[i] - _g(current), abs=1e-9)
        current = np.vstack([current, cands[i]])
    assert picks.after == pytest.approx(_g(current), abs=1e-9)
    assert 5 not in picks.order  # the copy of pool row 4


@pytest.mark.parametrize("name", ["spread", "clustered", "skewed"])
def test_gain_never_keeps_a_copy_of_a_pool_row_and_always_keeps_a_far_row(name):
    pool = _pools()[name]
    for k in range(len(pool)):
        cands = np.stack([pool[k], _far(pool, k)])
        _, where = nearest(pool, cands)
        picks = greedy_gain_keep(_gram(pool), len(pool), cands, pool[where])
        assert picks.order == [1], (name, k)
    if name == "skewed":  # the copy of the rare row would raise G-Vendi: the floor, not the sign, rejects it
        assert marginal_gains(_gram(pool), len(pool), pool[[6]])[0] > 0


def test_gain_keeps_one_of_two_copies_in_a_batch():
    pool = _pools()["spread"]
    far = _far(pool, 9)
    cands = np.stack([far, far])
    _, where = nearest(pool, cands)
    assert len(greedy_gain_keep(_gram(pool), len(pool), cands, pool[where]).order) == 1


@pytest.mark.parametrize("name", ["spread", "clustered", "skewed"])
def test_novelty_never_keeps_a_copy_of_a_pool_row_and_always_keeps_a_far_row(name):
    pool = _pools()[name]
    threshold = pool_threshold(pool)
    for k in range(len(pool)):
        picks = novelty_keep(pool, np.stack([pool[k], _far(pool, k)]), threshold)
        assert picks.kept == [1], (name, k)
        assert picks.cosines[0] == pytest.approx(1.0, abs=1e-6)


def test_novelty_threshold_is_the_median_nearest_neighbour_cosine_and_copies_in_a_batch_count():
    pool = _pools()["clustered"]
    x = unit_rows(pool)
    k = x @ x.T
    np.fill_diagonal(k, -np.inf)
    assert pool_threshold(pool) == pytest.approx(float(np.median(k.max(axis=1))), abs=1e-5)
    far = _far(pool, 1)
    assert novelty_keep(pool, np.stack([far, far]), pool_threshold(pool)).kept == [0]


# ---- as the run's strategy, over a run directory's feature store ------------------------------------------------


def _ctx(tmp_path, graph: str) -> tuple[RunContext, np.ndarray]:
    ctx = RunContext.open(tmp_path / "run", cfg_for(tmp_path / "bench.jsonl", graph=graph))
    ctx.__dict__["proxy"] = SimpleNamespace(name="stub-proxy")  # the feature store names its proxy; no model here
    rng = np.random.default_rng(0)
    pool = (rng.normal(size=(16, DIM)) + 2 * rng.normal(size=(1, DIM))).astype(np.float32)
    ctx.feature_store().append([f"seed:{i}" for i in range(16)], pool)
    return ctx, pool


@pytest.mark.parametrize("graph", ["novelty", "gain", "generate-only"])
def test_strategy_keeps_far_rows_and_drops_copies(tmp_path, graph):
    ctx, pool = _ctx(tmp_path, graph)
    strategy = get_strategy(graph)
    assert strategy.graph == "prismatic"  # the rules share prismatic's topology and few-shot choice
    far = _far(pool, 5).astype(np.float32)
    feats = np.stack([pool[3], far * 7.0, pool[11]])
    rows = [{"id": f"c{i}", "prompt": f"p{i}"} for i in range(3)]
    kept, kept_feats = strategy.keep(ctx, 1, rows, feats)
    if graph == "generate-only":
        assert [r["id"] for r in kept] == ["c0", "c1", "c2"]
        return
    assert [r["id"] for r in kept] == ["c1"]
    assert np.array_equal(kept_feats[0], feats[1])  # the row as featurized, not normalised
    notes = {"novelty": {"nn_cosine", "threshold"}, "gain": {"gain", "floor"}}[graph]
    assert notes <= set(kept[0])
    assert strategy.keep(ctx, 1, [], np.zeros((0, DIM), np.float32)) == ([], [])
