"""How the driver puts Ray's result batches back in row order before it commits (`distributed.featurize.ordered`):
chunks come out in order as soon as their rows are in, whatever order the batches arrive in, and a row that comes
back twice or never stops the job before anything after it is handed on. Fast: batches are plain dicts here (what
Ray Data's `iter_batches` yields), no cluster."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from prism_agent.distributed.featurize import OK, TOO_LONG, ordered
from prism_agent.errors import PrismError


def _batch(positions, dim=3):
    pos = np.asarray(positions, dtype=np.int64)
    return {"pos": pos, "status": np.where(pos == 4, TOO_LONG, OK).astype(np.int8),
            "feat": np.repeat(pos[:, None].astype(np.float32), dim, axis=1)}


def test_chunks_in_row_order_from_batches_in_any_order():
    handed = []

    def batches():
        for b in ([6, 7, 8], [0, 1, 2], [3, 4, 5], [9]):
            yield _batch(b)
            handed.append(b[0])

    seen_when = []
    for chunk in ordered(batches(), total=10, size=4):
        seen_when.append((chunk.start, list(handed)))
        assert (chunk.feats[:, 0] == np.arange(chunk.start, chunk.start + len(chunk.status))).all()
        if chunk.start == 4:
            assert chunk.kept == [1, 2, 3]  # row 4 was too long for the proxy
    assert [s for s, _ in seen_when] == [0, 4, 8]
    # chunk 0 went out as soon as rows 0–3 were in (after the third batch), before the last batch arrived
    assert seen_when[0][1] == [6, 0]


def test_a_row_back_twice_or_never_is_an_error():
    with pytest.raises(PrismError, match=r"rows \[2\] twice"):
        list(ordered(iter([_batch([0, 1, 2]), _batch([2, 3])]), total=4, size=2))
    got = []
    with pytest.raises(PrismError, match="3 of 4 rows"):
        for chunk in ordered(iter([_batch([0, 1]), _batch([3])]), total=4, size=2):
            got.append(chunk.start)
    assert got == [0]  # rows before the gap were handed on; nothing after it


def test_pool_batches_cover_every_row_once_and_spread_over_the_actors():
    from prism_agent.distributed.pool import batch_bounds

    assert batch_bounds(192, 96, 2) == [(0, 96), (96, 192)]
    assert batch_bounds(192, 64, 2) == [(0, 48), (48, 96), (96, 144), (144, 192)]  # 3 calls would idle an actor
    assert batch_bounds(5, 64, 2) == [(0, 3), (3, 5)]
    assert batch_bounds(1, 64, 4) == [(0, 1)] and batch_bounds(0, 64, 2) == []
    for n, size, actors in ((1000, 64, 3), (7, 2, 2), (100_003, 64, 8)):
        bounds = batch_bounds(n, size, actors)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        assert max(e - s for s, e in bounds) <= size and len(bounds) % actors == 0
