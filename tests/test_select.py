"""`prism-agent select`: greedy G-Vendi selection, checked against brute force and the metric itself."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from prism_agent.diversity.select import greedy_gain, random_subset, select, sparse_first
from prism_agent.diversity.vendi import vendi
from prism_agent.errors import BadInputError
from tests.conftest import ROOT


def _clustered(n_big: int = 300, n_small: int = 10, k_small: int = 12, dim: int = 32, seed: int = 0):
    """One big tight cluster and k_small small ones: a random subset is mostly the big cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k_small + 1, dim))
    rows = [centres[0] + 0.1 * rng.normal(size=(n_big, dim))]
    rows += [centres[c] + 0.1 * rng.normal(size=(n_small, dim)) for c in range(1, k_small + 1)]
    return np.concatenate(rows).astype(np.float32)


def test_gains_add_up_to_the_selections_g_vendi():
    x = _clustered()
    sel = greedy_gain(x, 20)
    assert len(set(sel.positions.tolist())) == 20
    for k in (1, 2, 5, 20):  # the running sum of gains is the G-Vendi of each prefix of the pick order
        assert np.sum(sel.gains[:k]) == pytest.approx(vendi(x[sel.positions[:k]]).q1, rel=1e-9)
    assert sel.g_vendi == pytest.approx(np.sum(sel.gains), rel=1e-9)


def test_each_step_takes_the_best_candidate_when_the_shortlist_holds_them_all():
    x = np.random.default_rng(1).normal(size=(9, 6))
    sel = greedy_gain(x, 4, shortlist=9)
    for step in range(1, 4):
        before = list(sel.positions[:step])
        best = max((c for c in range(9) if c not in before), key=lambda c: vendi(x[[*before, c]]).q1)
        assert vendi(x[[*before, best]]).q1 == pytest.approx(vendi(x[sel.positions[: step + 1]]).q1, rel=1e-12)


def test_gain_beats_random_and_sparse_covers_the_small_clusters():
    x = _clustered()
    size = 26
    gain = select(x, size, "gain")
    randoms = [random_subset(x, size, seed=s).g_vendi for s in range(10)]
    assert gain.g_vendi > max(randoms)
    sparse = sparse_first(x, size)
    assert sparse.g_vendi > np.mean(randoms)
    brute = max(vendi(x[list(c)]).q1 for c in itertools.combinations(range(300, 306), 3))
    assert greedy_gain(x[300:306], 3, shortlist=6).g_vendi == pytest.approx(brute, rel=0.05)


def test_bad_sizes_and_zero_rows_are_refused():
    x = _clustered(n_big=5, n_small=1, k_small=1)
    with pytest.raises(BadInputError, match="larger than"):
        select(x, 7)
    with pytest.raises(BadInputError, match="method"):
        select(x, 2, "best")
    x[0] = 0
    with pytest.raises(BadInputError, match="all zeros"):
        select(x, 2)


@pytest.mark.parametrize("method", ["gain", "sparse", "random"])
def test_cli_writes_the_selection_in_pick_order(tmp_path, tiny_llama_dir, method):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "prompt": f"Question {i}: what is {i} + {i}?",
                                        "response": f"{i} + {i} = {2 * i}." * (1 + i % 3), "source": "t"}) + "\n"
                            for i in range(16)))
    out = tmp_path / f"sel-{method}.jsonl"
    cmd = [sys.executable, str(ROOT / "cli.py"), "select", str(data), "--size", "5", "--out", str(out),
           "--method", method, "--proxy", str(tiny_llama_dir), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["select_rank"] for row in rows] == [1, 2, 3, 4, 5]
    assert len({row["id"] for row in rows}) == 5 and all(row["source"] == "t" for row in rows)
    assert summary["size"] == 5 and summary["rows"] == 16 and 1.0 <= summary["g_vendi"] <= 5.0
    if method == "gain":
        assert sum(row["select_gain"] for row in rows) == pytest.approx(summary["g_vendi"], rel=1e-6)
    bad = subprocess.run([*cmd[:-1], "--size", "99"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
