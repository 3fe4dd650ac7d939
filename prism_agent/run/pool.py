"""The pool a run grows: the seed rows it started from, then every accepted sample, in one position space
(seeds first). Positions are what the feature store and the clustering speak; this turns them back into
rows by streaming the two JSONL files once, so nothing holds the pool in memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from prism_agent.atomic import write_jsonl_atomic
from prism_agent.data.reader import Sample, iter_samples, scan
from prism_agent.errors import BadInputError
from prism_agent.jsonl import read_jsonl
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
        self.accepted = SampleLog(paths.samples, paths.commits, readonly=readonly)

    @property
    def seeds_path(self) -> Path:
        return self.paths.pool / SEEDS

    @property
    def has_seeds(self) -> bool:
        return self.seeds_path.is_file()

    def write_seeds(self, rows: list[dict]) -> None:
        self.paths.pool.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(self.seeds_path, rows)

    def seed_count(self) -> int:
        if not self.has_seeds:
            return 0
        with self.seeds_path.open("rb") as fh:
            return sum(1 for _ in fh)

    def iter_seeds(self) -> Iterator[dict]:
        if not self.has_seeds:
            return
        yield from read_jsonl(self.seeds_path, "strict")

    def __iter__(self) -> Iterator[dict]:
        yield from self.iter_seeds()
        yield from self.accepted

    def rows_at(self, positions: Iterable[int]) -> dict[int, dict]:
        """Rows by pool position, in one streaming pass."""
        wanted = set(int(p) for p in positions)
        found: dict[int, dict] = {}
        if not wanted:
            return found
        last = max(wanted)
        for pos, row in enumerate(self):
            if pos in wanted:
                found[pos] = row
            if pos >= last:
                break
        return found

    @staticmethod
    def as_sample(row: dict) -> Sample:
        return Sample(id=row["id"], prompt=row["prompt"], response=row.get("response", ""))
