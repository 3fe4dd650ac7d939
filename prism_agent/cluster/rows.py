"""A uniform, streaming view of feature rows, whether they sit in RAM or in a `FeatureStore`.

Clustering a 1.5M × 1024 pool must never hold it twice (6 GiB each), so everything here reads blocks or
gathers a chosen subset, and normalises copies of those only. The rows of a store are not unit length
(the store keeps the projection's raw output); cosine geometry is applied here, at the point of use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from prism_agent.errors import BadInputError
from prism_agent.gradients.store import FeatureStore


class Rows(Protocol):
    """What the clustering code needs from a feature source."""

    @property
    def n(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def iter_blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(global start position, raw float32 block) in pool order."""
        ...

    def take(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """A new float32 array with the raw rows at these global positions."""
        ...


class ArrayRows:
    """Rows of an in-memory (or memmapped) 2-D array."""

    def __init__(self, array: np.ndarray):
        if array.ndim != 2:
            raise BadInputError(f"features must be a 2-D array, got shape {array.shape}")
        self._a = array

    @property
    def n(self) -> int:
        return int(self._a.shape[0])

    @property
    def dim(self) -> int:
        return int(self._a.shape[1])

    def iter_blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, rows):
            yield start, self._a[start : start + rows]

    def take(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.array(self._a[np.asarray(positions, dtype=np.int64)], dtype=np.float32)


class StoreRows:
    """Rows of a `FeatureStore`, read shard by shard through its memmaps."""

    def __init__(self, store: FeatureStore):
        self.store = store
        self._n = len(store)

    @property
    def n(self) -> int:
        return self._n

    @property
    def dim(self) -> int:
        return self.store.dim

    def iter_blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for block in self.store.iter_blocks(rows):
            yield start, block
            start += block.shape[0]

    def take(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.store.take(positions)


def blocks_from(rows: Rows, first: int, size: int = 16_384) -> Iterator[tuple[int, np.ndarray]]:
    """The pool's blocks of up to `size` rows from position `first` on, as (start, rows)."""
    for start, block in rows.iter_blocks(size):
        stop = start + block.shape[0]
        if stop > first:
            skip = max(0, first - start)
            yield start + skip, block[skip:]


def joined_blocks(rows: Rows, first: int, stop: int, buffer: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """The pool's rows [first, stop) in consecutive blocks of up to `len(buffer)` rows, each copied into
    `buffer` (one allocation for the whole pass: on these VMs the first touch of fresh memory costs more than
    the copy). A run's store has one shard per round (≈ 1,000 rows), so shards are joined: the passes over
    the pool that group a block's rows by cluster (`ivf.py`'s sweep) loop over the block's clusters in
    Python, and few large blocks keep that count near (pool / len(buffer)) · k."""
    held, at = 0, first
    for start, block in blocks_from(rows, first):
        if start >= stop:
            break
        block = block[: stop - start]
        while block.shape[0]:
            take = min(block.shape[0], buffer.shape[0] - held)
            buffer[held : held + take] = block[:take]
            held, block = held + take, block[take:]
            if held == buffer.shape[0]:
                yield at, buffer
                at, held = at + held, 0
    if held:
        yield at, buffer[:held]


def as_rows(source: Rows | FeatureStore | np.ndarray) -> Rows:
    """Accept what callers naturally hold: an array, a store, or something already `Rows`-shaped."""
    if isinstance(source, FeatureStore):
        return StoreRows(source)
    if isinstance(source, np.ndarray):
        return ArrayRows(source)
    return source


def normalized(block: np.ndarray, *, start: int = 0, copy: bool = True, chunk: int = 16_384) -> np.ndarray:
    """Unit-length float32 rows of `block` (a copy, or `block` itself when `copy=False` and it is already
    a writable float32 array); all-zero rows stay zero, i.e. cosine 0 to everything.

    Works in row chunks so the only large allocation is the result itself: normalising a 640K × 1024
    training sample must not briefly need two more copies for temporaries.

    Non-finite rows are refused rather than propagated: one NaN row would poison a centroid for every
    later iteration, and the user can fix the features, so it is their error to see.
    """
    if copy or block.dtype != np.float32 or not block.flags.writeable or not block.flags.c_contiguous:
        out = np.array(block, dtype=np.float32, order="C", copy=True)
    else:
        out = block
    for lo in range(0, out.shape[0], chunk):
        part = out[lo : lo + chunk]
        finite = np.isfinite(part).all(axis=1)
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0]) + lo + start
            raise BadInputError(f"features contain NaN or infinite values (first at row {first})")
        norms = np.sqrt(np.einsum("ij,ij->i", part, part, dtype=np.float64)).astype(np.float32)
        norms[norms == 0] = 1.0
        part /= norms[:, None]
    return out
