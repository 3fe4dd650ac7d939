from __future__ import annotations

import math

import numpy as np
import pytest
from vendi_score import vendi as ref

from prism_agent.diversity.vendi import CovarianceAccumulator, vendi


@pytest.mark.parametrize("n,d", [(50, 16), (300, 64), (20, 128)])
def test_matches_vendi_score_package(n, d):
    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) + rng.normal(size=(1, d))  # correlated rows, not isotropic
    ours = vendi(x)
    assert ours.q1 == pytest.approx(ref.score_dual(x, q=1), rel=1e-6)
    assert ours.q2 == pytest.approx(ref.score_dual(x, q=2), rel=1e-6)
    assert ours.n == n


def test_streaming_equals_one_block_and_qinf():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 32)).astype(np.float32)
    whole = vendi(x)
    streamed = vendi((x[i : i + 77] for i in range(0, 1000, 77)), dim=32)
    assert streamed.q1 == pytest.approx(whole.q1, rel=1e-12)
    x64 = x.astype(np.float64)
    xn = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(xn.T @ xn / 1000)
    assert whole.qinf == pytest.approx(1 / lam.max(), rel=1e-9)
    assert whole.qinf <= whole.q2 <= whole.q1  # Vendi orders decrease with q


def test_bounds_identical_and_orthogonal():
    assert vendi(np.tile([[1.0, 2.0, 3.0]], (10, 1))).q1 == pytest.approx(1.0)
    assert vendi(np.eye(8)).q1 == pytest.approx(8.0)
    assert vendi(np.eye(8)).qinf == pytest.approx(8.0)


def test_zero_rows_are_counted_not_scored():
    acc = CovarianceAccumulator(3)
    acc.add(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert acc.n == 2 and acc.zero_rows == 1
    assert math.isclose(vendi(np.array([[1.0, 0, 0], [0, 1.0, 0]])).q1, 2.0)
