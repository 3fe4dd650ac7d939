"""Featurization on a real local Ray cluster of three 1-CPU nodes (README "Running on a Ray cluster"): the Ray
path gives the local path's features on the same real SNLI rows, whatever worker made them; the run's actor pool
is started once and reused by later calls, and ended on close; a worker node removed mid-featurization still
yields every row exactly once, with the run's pool and with Ray Data (`measure`). Slow: real Ray, the real 135M
proxy."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from tests.support.limits import hang_limit

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from tests.support.ray_cluster import start_cluster

    c = start_cluster(workers=2)
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def snli_rows():
    from prism_agent.data.pull import ensure

    with ensure("snli-train").open() as fh:
        return [json.loads(line) for _, line in zip(range(24), fh, strict=False)]


@pytest.fixture(scope="module")
def resolved():
    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.gradients.base import resolve_featurizer

    return resolve_featurizer(FeaturizerConfig(rank_in=16, rank_out=16))[0]


def _session(cluster, **kw):
    from prism_agent.config.distributed import RayConfig
    from prism_agent.distributed.session import RaySession

    rc = RayConfig(address=cluster.address, **kw)
    return rc, RaySession.open(rc)


def _alive() -> list[dict]:
    """The live featurizer actors of the cluster, from the GCS (no dashboard here)."""
    table = ray._private.state.state.actor_table(None)
    return [a for a in table.values() if a.get("State") == "ALIVE" and "FeaturizeActor" in a.get("ActorClassName", "")]


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def test_ray_features_equal_local(cluster, snli_rows, resolved):
    import torch

    from prism_agent.distributed.featurize import RayFeaturizer
    from prism_agent.gradients.base import make_featurizer
    from prism_agent.gradients.proxy import load_proxy
    from prism_agent.gradients.render import encode

    torch.set_num_threads(1)  # as each 1-CPU actor
    proxy = load_proxy(None, dtype=torch.float32)
    featurizer = make_featurizer(proxy, resolved)
    encoded = [encode(proxy.tokenizer, r["prompt"], r["response"], proxy.max_length) for r in snli_rows]
    whole = featurizer.featurize(encoded)  # the run's path: one call, its own batch plan
    same_batches = np.concatenate([featurizer.featurize(encoded[i:i + 6]) for i in range(0, 24, 6)])
    featurizer.close()
    rc, session = _session(cluster, actors=2, batch_size=6)  # 4 batches of 6 rows, spread over 2 actors
    f = RayFeaturizer(rc, resolved)  # the run's engine: a pool kept across calls
    try:
        feats, kept = f.featurize_rows(snli_rows)
        actors = list(f.pool().actors)
        again, kept_again = f.featurize_rows(snli_rows[:12])  # a later round: the same actors, nothing restarted
        assert f.pool().actors == actors and len(_alive()) == 2
        assert all(a["NumRestarts"] == 0 for a in _alive())
        f.close()
        assert _alive() == []  # closing the run's context ends its actors
    finally:
        f.close()
        session.close()
    assert kept == list(range(len(snli_rows))) and kept_again == list(range(12))
    assert _rel(again, same_batches[:12]).max() < 1e-5  # 2 batches of 6: the same batches as above
    # the same batches on another process and node: the same features, to fp32 rounding
    assert _rel(feats, same_batches).max() < 1e-5
    # against the local run's own batch plan: equal to the compute dtype's precision. bf16 keeps 8 significant
    # bits (step 2^-8); a row's features then move with its batch's padding (measured ≤ 1.8 % on these rows)
    eps = 2.0 ** -8 if resolved.dtype == "bfloat16" else 2.0 ** -20
    assert _rel(feats, whole).max() < 16 * eps, (resolved.dtype, _rel(feats, whole).max())
    assert _rel(same_batches, whole).max() < 16 * eps  # the local path differs from itself as much


def test_an_actor_that_cannot_load_is_one_error_line(cluster, resolved):
    from prism_agent.distributed.featurize import RayFeaturizer
    from prism_agent.errors import PrismError

    rc, session = _session(cluster, actors=2, batch_size=2)
    f = RayFeaturizer(rc, resolved, proxy="/nonexistent/model-dir")
    try:
        with pytest.raises(PrismError) as err:
            f.featurize_rows([{"prompt": "p", "response": "r"}] * 4)
    finally:
        f.close()
        session.close()
    message = str(err.value)
    assert message.startswith("featurization on Ray failed") and "\n" not in message, message


def test_pool_uses_the_actors_the_cluster_can_place(cluster):
    """Four actors asked for on three 1-CPU nodes: the three that start take every batch (the fourth, never
    placed, holds none), and 2 CPUs per actor, which no node has, is one error line instead of a wait."""
    from prism_agent.config.distributed import RayConfig
    from prism_agent.distributed.featurize import NoOpActor, ordered
    from prism_agent.distributed.pool import FeaturizerPool
    from prism_agent.errors import PrismError

    rc, session = _session(cluster, actors=4, batch_size=2)
    pool = FeaturizerPool(rc, NoOpActor, {"dim": 4})
    try:
        chunks = list(ordered(pool.batches([("p", "r")] * 40), 40, 10))
        assert [c.start for c in chunks] == [0, 10, 20, 30]
        assert len(pool._loaded) <= 3 and len(pool._loading) >= 1  # the fourth never started, and was not waited on
        pool.close()
        wide = FeaturizerPool(RayConfig(address=cluster.address, cpus_per_actor=2), NoOpActor, {"dim": 4})
        with pytest.raises(PrismError, match="no node of the Ray cluster can hold a featurizer actor"):
            list(wide.batches([("p", "r")]))
    finally:
        pool.close()
        session.close()


@pytest.mark.parametrize("engine", ["pool", "data"])
def test_worker_node_removed_mid_featurization(cluster, snli_rows, resolved, engine):
    from prism_agent.distributed.featurize import RayFeaturizer, ordered
    from tests.support.ray_cluster import actor_nodes

    rows = snli_rows * 2  # 48 rows in 12 batches of 4: most still to do when the node goes
    rc, session = _session(cluster, actors=2, batch_size=4)
    removed = []

    def remove_a_node_after_the_first_batch(batches):
        for i, batch in enumerate(batches):
            if i == 0:
                busy = set(actor_nodes())
                victims = [n for n in cluster.worker_nodes if n.node_id in busy]
                assert victims, "no worker node hosts a featurizer actor"
                cluster.remove_node(victims[0], allow_graceful=False)
                removed.append(victims[0].node_id)
            yield batch

    result: dict = {}

    def work():
        try:
            f = result["featurizer"] = RayFeaturizer(rc, resolved, engine=engine)
            pairs = [(r["prompt"], r["response"]) for r in rows]
            result["chunks"] = list(ordered(remove_a_node_after_the_first_batch(f.batches(pairs)), len(rows), 8))
        except BaseException as exc:
            result["error"] = exc

    try:
        t = threading.Thread(target=work, daemon=True)
        t.start()
        t.join(hang_limit(240))
        assert not t.is_alive(), "featurization did not finish after a node was removed"
    finally:
        if "featurizer" in result:
            result["featurizer"].close()
        session.close()
    assert removed and "error" not in result, result.get("error")
    chunks = result["chunks"]
    assert [c.start for c in chunks] == list(range(0, 48, 8))
    feats = np.concatenate([c.feats for c in chunks])
    assert feats.shape == (48, resolved.dim) and (np.concatenate([c.status for c in chunks]) == 0).all()
    # every row exactly once, and the repeated rows (row i and i + 24 are the same sample) agree
    assert np.abs(feats).sum(1).min() > 0
    rel = np.linalg.norm(feats[:24] - feats[24:], axis=1) / np.linalg.norm(feats[:24], axis=1)
    assert rel.max() < 0.05
    cluster.add_node(num_cpus=1, object_store_memory=90 * 1024 * 1024)  # back to three nodes for later tests
    cluster.wait_for_nodes()
