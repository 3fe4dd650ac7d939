"""Pool lookups by offset (run/offsets.py): the rows read by seek are exactly the committed ones, after a torn
commit, a kill between a commit record and its index entries, a damaged index, and in a run made before the
index existed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from prism_agent.run.paths import RunPaths
from prism_agent.run.pool import Pool


def _seeds(n: int) -> list[dict]:
    return [{"id": f"seed:{i}", "prompt": f"premise {i} — “quoted” é", "response": "entailment"} for i in range(n)]


def _commit(pool: Pool, r: int, n: int) -> None:
    rows = [{"id": f"r{r}-{i}", "prompt": f"round {r} row {i}" + " x" * (i % 7), "response": "neutral"}
            for i in range(n)]
    pool.accepted.append(rows, round_index=r, features=pool.seed_count() + pool.accepted.count + n)


def _run(tmp_path, seeds: int = 20, rounds: int = 4) -> RunPaths:
    paths = RunPaths(tmp_path / "run")
    pool = Pool(paths)
    pool.write_seeds(_seeds(seeds))
    for r in range(1, rounds + 1):
        _commit(pool, r, 3 + r)
    return paths


def _all_rows(paths: RunPaths) -> list[dict]:
    return list(Pool(paths, readonly=True))  # the streaming reader: every seed, then the committed samples


def _check(paths: RunPaths, *, readonly: bool = False) -> None:
    expected = _all_rows(paths)
    pool = Pool(paths, readonly=readonly)
    positions = list(range(len(expected)))
    random.Random(0).shuffle(positions)
    found = pool.rows_at(positions)
    assert [found[p] for p in range(len(expected))] == expected
    with pytest.raises(IndexError, match="not committed"):
        pool.rows_at([len(expected)])


def _index_entries(paths: RunPaths) -> int:
    return (paths.pool / "accepted.offsets.bin").stat().st_size // 8


def test_rows_by_offset_are_the_rows_in_pool_order(tmp_path):
    paths = _run(tmp_path)
    _check(paths)
    pool = Pool(paths)
    assert pool.seed_count() == 20 and _index_entries(paths) == pool.accepted.count == 4 + 5 + 6 + 7
    assert pool.rows_at([]) == {}
    with pytest.raises(IndexError):
        pool.rows_at([-1])


def test_a_torn_commit_leaves_exactly_the_committed_rows(tmp_path):
    paths = _run(tmp_path)
    committed = _all_rows(paths)
    # killed mid-append: half a row in the sample file, no commit record, and (as a damaged or copied index
    # could have) an entry for that row plus half of another entry
    end = paths.samples.stat().st_size
    with paths.samples.open("ab") as fh:
        fh.write(b'{"id": "r5-0", "prompt": "torn')
    with (paths.pool / "accepted.offsets.bin").open("ab") as fh:
        fh.write(np.array([end], "<i8").tobytes() + b"\x01\x02\x03")
    _check(paths)
    assert _all_rows(paths) == committed
    assert (paths.pool / "accepted.offsets.bin").stat().st_size == 8 * Pool(paths).accepted.count
    # and the next commit continues the index from there
    pool = Pool(paths)
    _commit(pool, 5, 2)
    _check(paths)
    assert _all_rows(paths)[-2]["id"] == "r5-0"


def test_a_kill_after_the_commit_record_before_the_index_entries(tmp_path):
    paths = _run(tmp_path)
    index = paths.pool / "accepted.offsets.bin"
    with index.open("r+b") as fh:  # the last round's 7 entries never written
        fh.truncate(index.stat().st_size - 7 * 8)
    _check(paths)
    assert _index_entries(paths) == Pool(paths).accepted.count


def test_a_run_made_before_the_index_works_and_gets_one(tmp_path):
    paths = _run(tmp_path)
    for name in ("accepted.offsets.bin", "seeds.offsets.bin"):
        (paths.pool / name).unlink()
    _check(paths, readonly=True)  # status and export: read-only, nothing written
    assert not (paths.pool / "accepted.offsets.bin").exists() and not (paths.pool / "seeds.offsets.bin").exists()
    _check(paths)
    assert _index_entries(paths) == Pool(paths).accepted.count
    assert (paths.pool / "seeds.offsets.bin").stat().st_size == 8 * 20


def test_a_damaged_or_stale_index_is_rebuilt(tmp_path):
    paths = _run(tmp_path)
    count = Pool(paths).accepted.count
    (paths.pool / "accepted.offsets.bin").write_bytes(np.arange(0, count * 10, 10, dtype="<i8").tobytes())
    (paths.pool / "seeds.offsets.bin").write_bytes(np.arange(0, 50, 5, dtype="<i8").tobytes())
    _check(paths)
    # the seeds rewritten (prepare drops rows too long for the proxy): the index follows them
    pool = Pool(paths)
    pool.write_seeds(_seeds(20)[::2])
    assert pool.seed_count() == 10
    assert Pool(paths).rows_at([9])[9]["id"] == "seed:18"


def test_a_position_past_the_committed_rows_is_an_error_even_with_rows_on_disk(tmp_path):
    paths = _run(tmp_path, rounds=1)
    live = Pool(paths)
    # a live run wrote a round's rows but not yet its commit record; a read-only reader sees it mid-way
    with paths.samples.open("ab") as fh:
        fh.write(b'{"id": "r2-0", "prompt": "not committed yet"}\n')
    reader = Pool(paths, readonly=True)
    with pytest.raises(IndexError, match="not committed"):
        reader.rows_at([20 + live.accepted.count])
    assert reader.rows_at([20 + live.accepted.count - 1])[20 + live.accepted.count - 1]["id"] == "r1-3"


def test_seed_rows_before_the_first_commit(tmp_path):
    """The first round's few-shot rows are all seeds, and no sample file exists yet."""
    paths = RunPaths(tmp_path / "run")
    pool = Pool(paths)
    pool.write_seeds(_seeds(6))
    assert not paths.samples.exists()
    assert [pool.rows_at([5, 0])[p]["id"] for p in (0, 5)] == ["seed:0", "seed:5"]
    with pytest.raises(IndexError, match="not committed"):
        pool.rows_at([6])
