"""Accepted samples: an append-only JSONL file plus a commit log that says how much of it counts.

A round appends its rows, fsyncs, then appends one commit record (byte offset, row count, round) and
fsyncs that. The commit record is the commit point: on open, bytes past the last commit (a killed round)
are cut off, and a torn last commit line is ignored. So a killed run loses at most the round in flight,
whose LLM calls the replay log still has, and never doubles a row. Reading streams; nothing holds the
whole file in memory.

Rows are also read by position (few-shot examples) through an offset index next to the file
(`accepted.offsets.bin`, run/offsets.py), appended after each commit record. It is checked against the
last commit when first used and cut, extended or rebuilt to cover exactly the committed rows, so a kill
anywhere in a commit, or a run written before the index existed, costs a rescan and never a wrong row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prism_agent import killpoint
from prism_agent.atomic import fsync_dir, json_line
from prism_agent.jsonl import read_jsonl
from prism_agent.run.offsets import OffsetFile, line_offsets, read_rows, reconcile


@dataclass(frozen=True)
class Commit:
    seq: int
    round: int
    bytes: int
    count: int
    features: int  # rows in the feature store at this commit (seeds + accepted)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


class SampleLog:
    def __init__(self, data: Path, commits: Path, *, readonly: bool = False):
        """`readonly` (status, export) reads up to the last commit and cuts nothing: a live run may be
        between writing its rows and writing their commit record."""
        self.data = Path(data)
        self.commits_path = Path(commits)
        self.readonly = readonly
        if not readonly:
            self.data.parent.mkdir(parents=True, exist_ok=True)
        self.last = self._recover()
        self.index = OffsetFile(self.data.with_name(self.data.name.removesuffix(".jsonl") + ".offsets.bin"))
        self._offsets: np.ndarray | None = None  # the committed rows' offsets, once checked against the index

    def _recover(self) -> Commit:
        last = Commit(seq=0, round=0, bytes=0, count=0, features=0)
        good_bytes = 0
        if self.commits_path.exists():
            with self.commits_path.open("rb") as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        break  # torn write: not committed
                    try:
                        last = Commit(**json.loads(line))
                    except (ValueError, TypeError):
                        break
                    good_bytes += len(line)
            if self.readonly:
                return last
            if self.commits_path.stat().st_size != good_bytes:
                with self.commits_path.open("r+b") as fh:
                    fh.truncate(good_bytes)
        if not self.readonly and self.data.exists() and self.data.stat().st_size != last.bytes:
            if self.data.stat().st_size < last.bytes:
                raise RuntimeError(f"{self.data} is shorter than its last commit: the run directory was damaged")
            with self.data.open("r+b") as fh:
                fh.truncate(last.bytes)
                os.fsync(fh.fileno())
        return last

    @property
    def count(self) -> int:
        return self.last.count

    def append(self, rows: list[dict], *, round_index: int, features: int) -> Commit:
        """Append rows and commit them as one unit (all or nothing across a kill)."""
        if self.readonly:
            raise RuntimeError("this sample log was opened read-only")
        before = self.offsets()  # an index behind the last commit is brought up to it first
        lines = [json_line(r).encode("utf-8") for r in rows]
        payload = b"".join(lines)
        with self.data.open("ab") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        commit = Commit(seq=self.last.seq + 1, round=round_index, bytes=self.last.bytes + len(payload),
                        count=self.last.count + len(rows), features=features)
        # test-only (the kill -9 suite): rows appended, not yet committed
        killpoint.reached("commit record" if rows else "commit record (no rows)")
        with self.commits_path.open("ab") as fh:
            fh.write((commit.to_json() + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.data.parent)
        self.last = commit
        added = line_offsets(lines, commit.bytes - len(payload))
        self.index.append(added)  # after the commit record: the index never names an uncommitted row
        self._offsets = np.concatenate([before, added])
        return commit

    def offsets(self) -> np.ndarray:
        """Byte offsets of the committed rows, one per row. The first call checks the index against the last
        commit: entries past it (a kill after the rows but before their commit record cannot leave any, but
        a copied or damaged index can) are cut, missing ones (a kill after the commit record, or a run from
        before the index) are scanned and added, an implausible index is rebuilt. Read-only logs fix nothing
        on disk and work from memory."""
        if self._offsets is None:
            found = self.index.read()
            exists = self.index.path.exists()
            offsets, kept = reconcile(self.data, found, self.count, self.last.bytes) if self.count else (found[:0], 0)
            on_disk = exists and self.index.path.stat().st_size == len(found) * 8
            if not self.readonly and not (on_disk and len(found) == len(offsets) and kept == len(offsets)):
                self.index.save(offsets, kept)
            self._offsets = offsets
        return self._offsets

    def rows_at(self, indexes: list[int]) -> dict[int, dict]:
        """Committed rows by index (0-based), each read by one seek. An index past the committed rows is an
        IndexError: whatever the file holds there is not part of the pool."""
        offsets = self.offsets()
        bad = [i for i in indexes if not 0 <= i < self.count]
        if bad:
            raise IndexError(f"row {bad[0]} of {self.data.name} is not committed ({self.count} rows are)")
        return read_rows(self.data, offsets, indexes)

    def __iter__(self) -> Iterator[dict]:
        if not self.data.exists():
            return
        left = self.last.bytes
        with self.data.open("rb") as fh:
            for line in fh:
                if left <= 0:
                    break
                left -= len(line)
                yield json.loads(line)

    def commits(self) -> list[Commit]:
        """The commit records up to the first torn or unreadable one (a live run may be writing it)."""
        return [Commit(**c) for c in read_jsonl(self.commits_path, "prefix")]
