from __future__ import annotations

import numpy as np
import pytest
import torch

from prism_agent.gradients.projection import GAMMA, MIX1, MIX2, RademacherProjector, stream_key


def numpy_signs(key: int, rows: int, d: int) -> np.ndarray:
    """Independent reference: splitmix64 words in numpy uint64 arithmetic, bits LSB first."""
    words = -(-d // 64)
    with np.errstate(over="ignore"):
        c = (np.arange(rows, dtype=np.uint64)[:, None] * np.uint64(words)
             + np.arange(words, dtype=np.uint64)[None, :] + np.uint64(1))
        z = c * np.uint64(GAMMA) + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z = z ^ (z >> np.uint64(31))
    bits = np.unpackbits(z.view(np.uint8).reshape(rows, -1), axis=1, bitorder="little")[:, :d]
    return np.where(bits == 1, 1.0, -1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("d", [16, 100, 1024])
def test_signs_match_independent_reference(dtype, d):
    proj = RademacherProjector(300, d, seed=7, stream="x", dtype=dtype)
    ours = proj.dense().float().numpy()
    assert np.array_equal(ours, numpy_signs(stream_key(7, "x"), 300, d))


def test_independent_of_block_size_and_balanced():
    a = RademacherProjector(5000, 64, seed=0, block_rows=4096, dtype=torch.float32)
    b = RademacherProjector(5000, 64, seed=0, block_rows=333, dtype=torch.float32)
    x = torch.randn(3, 5000)
    assert torch.allclose(a.project(x), b.project(x), rtol=1e-5, atol=2e-4)  # fp32 summation order
    assert torch.equal(a.signs(1000, 50), b.signs(1000, 50))
    s = a.dense().float()
    assert abs(s.mean().item()) < 0.01  # ±1 balanced
    assert not torch.equal(s, RademacherProjector(5000, 64, seed=1).dense().float())


def test_project_equals_dense_matmul_and_preserves_norms():
    proj = RademacherProjector(2000, 512, seed=3, dtype=torch.float32, block_rows=700)
    x = torch.randn(4, 2000, dtype=torch.float64)
    dense = proj.dense().double() / np.sqrt(512)
    assert torch.allclose(proj.project(x.float()).double(), x @ dense, rtol=1e-4, atol=1e-4)
    ratio = proj.project(x.float()).norm(dim=1) / x.norm(dim=1).float()
    assert torch.all((ratio > 0.85) & (ratio < 1.15))  # Johnson–Lindenstrauss at d = 512
