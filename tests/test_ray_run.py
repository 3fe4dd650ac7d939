"""`prism-agent run --ray ADDRESS` and `measure --ray ADDRESS` end to end on a real local Ray cluster of three
1-CPU nodes, with the real embedded model and real SNLI rows (README "Running on a Ray cluster"): a tiny run
killed with SIGKILL mid seed featurization resumes with the same command and finishes with every pool row
featurized exactly once, and `measure --ray` scores what the local `measure` scores. Slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.support.limits import hang_limit
from tests.support.tiny import benchmark_head

pytestmark = pytest.mark.slow
pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from tests.support.ray_cluster import start_cluster

    c = start_cluster(workers=2)
    yield c
    c.shutdown()


def _cli(*args, timeout=hang_limit(900)):
    return subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout)


def _events(run_dir):
    path = run_dir / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_tiny_run_on_ray_killed_and_resumed(cluster, tmp_path):
    bench = benchmark_head(tmp_path, "snli-test")
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'seed_sample = 16\nper_round = 6\npatience = 10\nbenchmarks = ["snli200={bench}"]\n'
                   "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"  # as tests/test_loop_run.py: about mechanics
                   "[featurizer]\nrank_in = 16\nrank_out = 16\nseed_chunk = 4\n"
                   "[ray]\nactors = 2\nbatch_size = 2\n")
    run_dir = tmp_path / "run"
    args = ["run", "--task", "nli", "--target", "2", "--config", str(cfg), "--run-dir", str(run_dir), "--plain",
            "--ray", cluster.address]
    proc = subprocess.Popen([sys.executable, "-m", "prism_agent.cli.app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + hang_limit(300)
    while time.monotonic() < deadline and proc.poll() is None:
        if any(e["kind"] == "seed_features" for e in _events(run_dir)):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)  # the driver, mid seed featurization: 1 of 4 chunks committed
    proc.wait()
    first = [e for e in _events(run_dir) if e["kind"] == "seed_features"]
    assert first and first[-1]["rows"] < 16

    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr and "stopped: target reached" in resumed.stdout
    status = json.loads(_cli("status", str(run_dir), "--json").stdout)
    assert status["complete"] and status["accepted"] == 2 and status["seeds"] == 16

    from prism_agent.gradients.store import FeatureStore

    store = FeatureStore.load(run_dir / "features")
    ids = store.ids()
    seeds = [json.loads(x)["id"] for x in (run_dir / "pool" / "seeds.jsonl").read_text().splitlines()]
    accepted = [json.loads(x)["id"] for x in (run_dir / "pool" / "accepted.jsonl").read_text().splitlines()]
    assert ids == seeds + accepted  # every pool row featurized exactly once, in pool order
    feats = np.concatenate(list(store.iter_blocks()))
    assert feats.shape == (18, 1024) and np.isfinite(feats).all() and (np.abs(feats).sum(1) > 0).all()
    chunks = [e for e in _events(run_dir) if e["kind"] == "seed_features"]
    assert [e["rows"] for e in chunks][-1] == 16 and len({e["shard"] for e in chunks}) == len(chunks)


def test_measure_on_ray_matches_local(cluster, tmp_path):
    from prism_agent.data.pull import ensure

    data = tmp_path / "snli24.jsonl"
    with ensure("snli-train").open() as src:
        data.write_text("".join(line for _, line in zip(range(24), src, strict=False)))
    common = ["measure", str(data), "--json", "--rank", "16"]
    on_ray = _cli(*common, "--features-dir", str(tmp_path / "ray"), "--ray", cluster.address, "--ray-batch-size", "6")
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    local = _cli(*common, "--features-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr[-3000:]
    a, b = json.loads(on_ray.stdout), json.loads(local.stdout)
    assert a["n"] == b["n"] == 24 and a["computed"] == 24 and a["dtype"] == b["dtype"]
    assert abs(a["g_vendi"] - b["g_vendi"]) / b["g_vendi"] < 0.01, (a["g_vendi"], b["g_vendi"])
