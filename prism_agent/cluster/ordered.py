"""The pool's rows in cluster order, unit length, in one file: what the nearest-row search reads on large pools.

The `gain` and `novelty` rules search each candidate's nearest pool row among the members of its nearest
clusters (`ivf.py`). A round's 8,192 candidates probe nearly every cluster of a 1.5M pool, and read from the
feature store (pool order, one shard per round) that means reading every block, grouping its rows by
cluster and normalising them, with a Python step per cluster per block: the search took 6.6–8.3 CPU s a
round at 1.5M rows that way. Here the rows of one fit's clustering are stored once, normalised and sorted by
cluster, so each probed cluster is one contiguous slice and one matrix product: `gain`'s whole decision went
from 11.1 to 8.4 CPU s (BENCHMARKS.md, "Acceptance rules at scale"); building the copy costs ≈ 30 s once per
fit.

Layout, under the clusters directory::

    ordered/rows.npy       (n, dim) float32 unit rows, cluster 0's members first (each cluster in pool order)
    ordered/positions.npy  (n,) int64 pool position of each of those rows
    ordered/offsets.npy    (k + 1,) int64 where each cluster's rows start
    ordered/ordered.json   the fit it belongs to: its round, n, k and the pool fingerprint of its n rows

It is derived data, one copy per run (≈ the size of the features it covers: 6 GB at 1.5M × 1024), built for
the fit the current round's clustering rests on the first time a search needs it (pools of at least
`MIN_ROWS` rows; a refit every ~10 % of growth, so once per ~136 rounds at 1.5M) and replaced when a later
fit needs it. It is written under a temporary name, synced, then renamed; anything else found (a copy cut
short by a kill, one for another fit or pool) is never read: the search rebuilds it or reads the store.
Rows committed after the fit are searched in the feature store (`ivf.py`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from prism_agent.atomic import fsync_dir, write_atomic
from prism_agent.cluster.rows import Rows, normalized

DIRNAME = "ordered"
MIN_ROWS = 1_000_000  # below this the search gathers members from the store (`ivf.py`) at no such cost
_CHUNK = 65_536  # rows gathered, normalised and written at a time while building


@dataclass(frozen=True)
class OrderedPool:
    """A valid copy on disk. Its rows are read with plain reads into a caller's buffer, never memory-mapped
    whole: a mapping of 6 GB would count in the process's resident memory as it is read."""

    fit: int  # the round whose fit this copy follows
    path: Path  # rows.npy
    data_offset: int  # where its rows start in that file
    dim: int
    positions: np.ndarray  # (n,) int64
    offsets: np.ndarray  # (k + 1,) int64

    @property
    def n(self) -> int:
        return int(self.positions.shape[0])

    @property
    def k(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def read_into(self, fh: BinaryIO, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Rows [start, stop) into `out`'s first rows (an open `rows.npy` handle: `open(self.path, "rb")`)."""
        view = out[: stop - start]
        fh.seek(self.data_offset + start * self.dim * 4)
        if fh.readinto(memoryview(view).cast("B")) != view.nbytes:
            raise OSError(f"{self.path} ended early")
        return view

    def read(self, start: int, stop: int) -> np.ndarray:
        with open(self.path, "rb", buffering=0) as fh:
            return self.read_into(fh, start, stop, np.empty((stop - start, self.dim), dtype=np.float32))


def _data_offset(path: Path, n: int) -> tuple[int, int] | None:
    """(where the rows start, dim) of a float32 C-order (n, dim) .npy file of the right length, else None."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        start = fh.tell()
    if fortran or dtype != np.float32 or len(shape) != 2 or shape[0] != n:
        return None
    if path.stat().st_size != start + n * shape[1] * 4:
        return None
    return start, int(shape[1])


def load_ordered(root: str | Path, fit: int, n: int, k: int, fingerprint: str) -> OrderedPool | None:
    """The copy for fit round `fit` of the pool's first `n` rows (`fingerprint`) into k clusters, or None."""
    path = Path(root) / DIRNAME
    try:
        record = json.loads((path / "ordered.json").read_text(encoding="utf-8"))
        if (record.get("fit"), record.get("n"), record.get("k"), record.get("pool_fingerprint")) != \
                (fit, n, k, fingerprint):
            return None
        found = _data_offset(path / "rows.npy", n)
        positions = np.load(path / "positions.npy")
        offsets = np.load(path / "offsets.npy")
    except (OSError, ValueError):
        return None
    if found is None or positions.shape != (n,) or offsets.shape != (k + 1,) or offsets[-1] != n:
        return None
    return OrderedPool(fit=fit, path=path / "rows.npy", data_offset=found[0], dim=found[1], positions=positions,
                       offsets=offsets)


def write_ordered(root: str | Path, fit: int, rows: Rows, labels: np.ndarray, k: int,
                  fingerprint: str) -> OrderedPool:
    """Build and install the copy for fit round `fit`: `labels` are that fit's labels of `rows` (the pool's
    first len(labels) rows, whose fingerprint is `fingerprint`)."""
    root = Path(root)
    labels = np.asarray(labels)
    n = int(labels.shape[0])
    for stale in root.glob(".ordered-*"):  # left by a build cut short
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".ordered-{os.getpid()}"
    tmp.mkdir(parents=True)
    order = np.argsort(labels, kind="stable").astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=k))]).astype(np.int64)
    try:
        with open(tmp / "rows.npy", "wb") as fh:  # written, not memory-mapped (see `OrderedPool`)
            np.lib.format.write_array_header_1_0(
                fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                     "shape": (n, rows.dim)})
            for lo in range(0, n, _CHUNK):
                fh.write(memoryview(normalized(rows.take(order[lo : lo + _CHUNK]), copy=False)).cast("B"))
            fh.flush()
            os.fsync(fh.fileno())
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_atomic(tmp / "positions.npy", lambda fh: np.save(fh, order))
    write_atomic(tmp / "offsets.npy", lambda fh: np.save(fh, offsets))
    record = {"fit": fit, "n": n, "k": k, "dim": rows.dim, "pool_fingerprint": fingerprint}
    write_atomic(tmp / "ordered.json", lambda fh: fh.write(json.dumps(record, indent=2).encode("utf-8")))
    fsync_dir(tmp)
    final, old = root / DIRNAME, root / f".ordered-old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    fsync_dir(root)
    shutil.rmtree(old, ignore_errors=True)
    found = load_ordered(root, fit, n, k, fingerprint)
    assert found is not None
    return found


def ordered_for_round(root: str | Path, r: int, rows: Rows, labels: np.ndarray, k: int) -> OrderedPool | None:
    """The copy for the fit that round r's saved clustering (`labels`, k clusters) rests on, built if missing;
    None when that fit covers fewer than `MIN_ROWS` rows, or when it cannot be written (a full disk): it is
    only a faster way to read the pool, so its absence never stops a run."""
    from prism_agent.cluster.artifacts import pool_fingerprint, read_record
    from prism_agent.cluster.incremental import PrefixRows, base_n

    record = read_record(root, r)
    fit, n = int(record.get("base", r)), base_n(record)
    if n < MIN_ROWS or n > rows.n:
        return None
    prefix = PrefixRows(rows, n)
    fingerprint = pool_fingerprint(prefix)
    found = load_ordered(root, fit, n, k, fingerprint)
    if found is not None:
        return found
    try:
        return write_ordered(root, fit, prefix, np.asarray(labels[:n]), k, fingerprint)
    except OSError:  # e.g. no room for 6 GB more: the search reads the feature store instead, slower
        return None
