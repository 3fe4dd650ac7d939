"""Byte offsets of a JSONL file's rows, so a row is read by one seek instead of parsing every line before it.

An index is a file of little-endian int64 offsets, one per row (the byte where the row starts), derived
from the JSONL file it indexes and never the truth about anything: whoever owns the JSONL file checks the
index against it when opening (`SampleLog` against its commit records, `Pool` against the seed file) and
cuts, extends or rebuilds it, so a kill at any point (a torn entry, entries for rows never committed, rows
committed without their entries) costs at most a rescan of the rows it lacks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from prism_agent.atomic import write_atomic

ENTRY = np.dtype("<i8")


def scan_offsets(path: Path, start: int, stop: int) -> np.ndarray:
    """Offsets of the lines that start in [start, stop) of `path`; `start` must be a line start."""
    out: list[int] = []
    pos = start
    with Path(path).open("rb") as fh:
        fh.seek(start)
        while pos < stop:
            line = fh.readline()
            if not line:
                break
            out.append(pos)
            pos += len(line)
    return np.asarray(out, dtype=ENTRY)


def line_offsets(lines: Iterable[bytes], start: int) -> np.ndarray:
    """Offsets of `lines` (each ending in a newline) written one after another from byte `start`."""
    lengths = np.fromiter((len(x) for x in lines), dtype=ENTRY)
    return start + np.concatenate([np.zeros(1, ENTRY), np.cumsum(lengths)[:-1]]) if len(lengths) else lengths


def read_rows(path: Path, offsets: np.ndarray, indexes: Iterable[int]) -> dict[int, dict]:
    """Rows `indexes` of the JSONL file `path`, by seek (in file order, so the reads only move forward)."""
    found: dict[int, dict] = {}
    wanted = sorted(set(int(i) for i in indexes))
    if not wanted:  # the file may not exist yet (no commit so far)
        return found
    with Path(path).open("rb") as fh:
        for i in wanted:
            fh.seek(int(offsets[i]))
            found[i] = json.loads(fh.readline())
    return found


def prefix_end(path: Path, offsets: np.ndarray, limit: int) -> int | None:
    """Where the row after the last one in `offsets` starts, when `offsets` can be the first row starts of
    `path` (increasing from 0, the last one a line start whose whole line ends at or before `limit`);
    None when they cannot. Interior entries are checked only for order: entries are written once per row,
    in order, so what a kill or a stale file leaves shows at the ends."""
    if len(offsets) == 0:
        return 0
    if offsets[0] != 0 or (len(offsets) > 1 and not bool(np.all(np.diff(offsets) > 0))) or offsets[-1] >= limit:
        return None
    last = int(offsets[-1])
    with Path(path).open("rb") as fh:
        if last > 0:
            fh.seek(last - 1)
            if fh.read(1) != b"\n":
                return None
        fh.seek(last)
        line = fh.readline()
    end = last + len(line)
    return end if line.endswith(b"\n") and end <= limit else None


def reconcile(path: Path, found: np.ndarray, rows: int, end: int) -> tuple[np.ndarray, int]:
    """The offsets of the first `rows` rows of `path` (which end at byte `end`), reusing the longest plausible
    prefix of `found` and scanning the rest. Also returns how many entries of `found` were kept."""
    kept = found[:rows]
    after = prefix_end(path, kept, end) if len(kept) else 0
    if after is None or (len(kept) == rows and after != end):
        kept, after = found[:0], 0
    offsets = np.concatenate([kept, scan_offsets(path, after, end)]) if len(kept) < rows else kept
    if len(offsets) != rows:
        raise RuntimeError(f"{path} holds {len(offsets)} rows where {rows} were committed: the run directory "
                           "was damaged")
    return offsets, len(kept)


class OffsetFile:
    """The index file itself: read, cut, append, replace. An entry torn by a kill (a size that is not a
    multiple of 8 bytes) is not an entry."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> np.ndarray:
        if not self.path.is_file():
            return np.zeros(0, ENTRY)
        data = self.path.read_bytes()
        return np.frombuffer(data[: len(data) - len(data) % ENTRY.itemsize], dtype=ENTRY).copy()

    def cut(self, entries: int) -> None:
        if not self.path.exists():
            return
        with self.path.open("r+b") as fh:
            fh.truncate(entries * ENTRY.itemsize)

    def save(self, offsets: np.ndarray, kept: int) -> None:
        """Make the file hold exactly `offsets`, of which the first `kept` entries are already in place."""
        if kept == 0:
            data = np.asarray(offsets, dtype=ENTRY).tobytes()
            write_atomic(self.path, lambda fh: fh.write(data))
            return
        self.cut(kept)
        self.append(offsets[kept:])

    def append(self, offsets: np.ndarray) -> None:
        """Append entries. Not fsynced: the owner checks the index on open, so a lost tail is rebuilt."""
        with self.path.open("ab") as fh:
            fh.write(np.asarray(offsets, dtype=ENTRY).tobytes())
