"""The pool a run grows: the seed rows it started from, then every accepted sample, in one position space
(seeds first). Positions are what the feature store and the clustering speak; this turns them back into
rows by seeking through each file's offset index (run/offsets.py: `seeds.offsets.bin`, written with the
seed file; `accepted.offsets.bin`, kept by the sample log), so a lookup costs a few reads whatever the
pool's size and nothing holds the pool in memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from prism_agent.atomic import json_line, jsonl_bytes, write_atomic
from prism_agent.data.reader import Sample, iter_samples, scan
from prism_agent.errors import BadInputError
from prism_agent.jsonl import read_jsonl
from prism_agent.run.offsets import OffsetFile, line_offsets, prefix_end, read_rows, scan_offsets
from prism_agent.run.paths import RunPaths
from prism_agent.run.samples import SampleLog

SEEDS = "seeds.jsonl"
SEED_HINT = "fix those rows or remove them from the seed file"


def _resolve(name: str) -> Path:
    from prism_agent.data.pull import resolve_data

    path = resolve_data(name)
    if not path.exists():
        raise BadInputError(f"seed set {name!r}: no such file or built-in set (see `prism-agent data list`)")
    return path


def sample_seeds(sources: Sequence[str], rows: int, seed: int) -> list[dict]:
    """`rows` seed rows drawn uniformly (reservoir sampling, reproducible from `seed`) from all sources."""
    rng = random.Random(seed)
    reservoir: list[dict] = []
    seen = 0
    for name in sources:
        path = _resolve(name)
        scan(path, hint=SEED_HINT)  # bad seed files fail here with their row numbers
        for s in iter_samples(path):
            row = {"id": f"seed:{name}:{s.id}" if len(sources) > 1 else f"seed:{s.id}", "prompt": s.prompt,
                   "response": s.response, "source": name}
            if len(reservoir) < rows:
                reservoir.append(row)
            else:
                j = rng.randrange(seen + 1)
                if j < rows:
                    reservoir[j] = row
            seen += 1
    if not reservoir:
        raise BadInputError(f"seed sets {', '.join(sources)} have no usable rows")
    return reservoir


def count_rows(sources: Sequence[str]) -> int:
    return sum(scan(_resolve(name), hint=SEED_HINT).rows for name in sources)


class Pool:
    def __init__(self, paths: RunPaths, *, readonly: bool = False):
        self.paths = paths
        self.readonly = readonly
        self.accepted = SampleLog(paths.samples, paths.commits, readonly=readonly)
        self._seed_offsets: np.ndarray | None = None

    @property
    def seeds_path(self) -> Path:
        return self.paths.pool / SEEDS

    @property
    def has_seeds(self) -> bool:
        return self.seeds_path.is_file()

    @property
    def seed_index(self) -> OffsetFile:
        return OffsetFile(self.paths.pool / "seeds.offsets.bin")

    def write_seeds(self, rows: list[dict]) -> None:
        """Write (or rewrite) the seed rows and their offset index. The old index goes first: a kill before
        the new one is written leaves none, and the next lookup scans the seed file for it."""
        self.paths.pool.mkdir(parents=True, exist_ok=True)
        self.seed_index.path.unlink(missing_ok=True)
        self._seed_offsets = None
        payload = jsonl_bytes(rows)
        write_atomic(self.seeds_path, lambda fh: fh.write(payload))
        offsets = line_offsets((json_line(r).encode("utf-8") for r in rows), 0)
        self.seed_index.save(offsets, 0)
        self._seed_offsets = offsets

    def seed_offsets(self) -> np.ndarray:
        """Byte offsets of the seed rows, from the index when it fits the seed file (else scanned, and saved
        unless read-only)."""
        if self._seed_offsets is None:
            if not self.has_seeds:
                return np.zeros(0, np.int64)
            size = self.seeds_path.stat().st_size
            offsets = self.seed_index.read()
            if len(offsets) == 0 or prefix_end(self.seeds_path, offsets, size) != size:
                offsets = scan_offsets(self.seeds_path, 0, size)  # no index yet, or one of another seed file
                if not self.readonly:
                    self.seed_index.save(offsets, 0)
            self._seed_offsets = offsets
        return self._seed_offsets

    def seed_count(self) -> int:
        return len(self.seed_offsets())

    def iter_seeds(self) -> Iterator[dict]:
        if not self.has_seeds:
            return
        yield from read_jsonl(self.seeds_path, "strict")

    def __iter__(self) -> Iterator[dict]:
        yield from self.iter_seeds()
        yield from self.accepted

    def rows_at(self, positions: Iterable[int]) -> dict[int, dict]:
        """Rows by pool position, each read by one seek. A position outside the seeds and the committed
        samples is an IndexError."""
        wanted = sorted(set(int(p) for p in positions))
        if wanted and wanted[0] < 0:
            raise IndexError(f"pool position {wanted[0]} is negative")
        seeds = self.seed_offsets()
        n = len(seeds)
        found = read_rows(self.seeds_path, seeds, [p for p in wanted if p < n]) if n else {}
        accepted = self.accepted.rows_at([p - n for p in wanted if p >= n])
        found.update({i + n: row for i, row in accepted.items()})
        return found

    @staticmethod
    def as_sample(row: dict) -> Sample:
        return Sample(id=row["id"], prompt=row["prompt"], response=row.get("response", ""))
