"""Never pay twice: every completed call is written to SQLite (and committed) before its result is
used, so a resumed run replays it instead of calling the backend again.

The key is the sha256 of a canonical JSON of (model id, request): the request's pydantic form with sorted
keys, so it depends on neither object identity, dict order nor file paths. Requests without a seed are
replayed too; the loop always sets seeds so that repeated prompts stay distinct requests.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from prism_agent import killpoint
from prism_agent.generators.base import CallStats, GenerationError, Generator
from prism_agent.generators.types import GenRequest, GenResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    key TEXT NOT NULL,
    t REAL NOT NULL
)
"""


def request_key(model_id: str, request: GenRequest) -> str:
    dumped = request.model_dump(mode="json")
    if not dumped["sampling"]["choice_bias"]:  # a field added later: keys of earlier runs' calls stay valid
        del dumped["sampling"]["choice_bias"]
    payload = {"model": model_id, "request": dumped}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ReplayStore:
    """The run's call log. One connection shared by the backends of every role, guarded by a lock.

    Write-ahead log with `synchronous=NORMAL`: each call is its own transaction, written to the WAL file
    before `put` returns, so it survives a kill -9 of this process (the OS has the bytes); the WAL is
    fsynced only at checkpoints, so an OS crash or power loss can lose the calls since the last one (they
    are then paid again, never doubled). `FULL` (one fsync per call, ≈3.8 ms) capped a run near 260 calls/s
    (BENCHMARKS.md, "Call log"). A call log made in rollback-journal mode is switched to WAL on open."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL"):
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def get(self, key: str) -> GenResult | None:
        with self._lock:
            row = self._db.execute("SELECT result FROM calls WHERE key = ?", (key,)).fetchone()
        return GenResult.model_validate_json(row[0]) if row else None

    def put(self, key: str, model_id: str, request: GenRequest, result: GenResult) -> None:
        killpoint.reached("call log")  # test-only (the kill -9 suite): a call about to be recorded
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, model, request, result, created) VALUES (?, ?, ?, ?, ?)",
                (key, model_id, request.model_dump_json(), result.model_dump_json(), time.time()),
            )

    def mark_sent(self, keys: Sequence[str]) -> None:
        """Record that these requests go to a backend now: the ledger that shows no call recorded in
        `calls` is ever paid for again (a key sent after its `created` time would be), and what a run paid."""
        now = time.time()
        with self._lock:
            self._db.executemany("INSERT INTO sent (key, t) VALUES (?, ?)", [(k, now) for k in keys])

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ReplayingGenerator(Generator):
    """Wraps a backend: hits come from the store, misses go to the backend (identical requests in one batch
    are sent once) and are recorded the moment each finishes."""

    def __init__(self, inner: Generator, store: ReplayStore):
        self.inner = inner
        self.store = store
        self.kind = inner.kind
        self.scores_choices = inner.scores_choices
        self.backend_requests = 0  # requests passed to the backend (what replay saves)
        self.replayed = 0
        self.tokens = 0  # completion tokens the backend produced (not replayed ones)
        self.busy_s = 0.0  # wall time spent waiting on the backend

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def probe(self) -> None:
        await self.inner.probe()

    async def load(self) -> None:
        await self.inner.load()

    @property
    def dtype(self):
        return self.inner.dtype

    def stats(self) -> CallStats:
        return self.inner.stats()

    def use_state_dir(self, root) -> None:
        self.inner.use_state_dir(root)

    async def stream(self, requests: Sequence[GenRequest]) -> AsyncIterator[tuple[int, GenResult]]:
        model_id = self.model_id
        keys = [request_key(model_id, r) for r in requests]
        waiting: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            cached = self.store.get(key)
            if cached is not None:
                self.replayed += 1
                yield i, cached.model_copy(update={"replayed": True})
            else:
                waiting.setdefault(key, []).append(i)
        if not waiting:
            return
        todo = [(key, idx[0]) for key, idx in waiting.items()]
        self.store.mark_sent([key for key, _ in todo])
        self.backend_requests += len(todo)
        started = time.perf_counter()
        try:
            async for j, result in self.inner.stream([requests[i] for _, i in todo]):
                key, first = todo[j]
                self.store.put(key, model_id, requests[first], result)
                self.tokens += result.usage.completion_tokens
                for i in waiting[key]:
                    yield i, result
        except GenerationError as exc:  # the failed requests by their index in `requests`, not in `todo`
            if not exc.failed:
                raise
            failed = {i: reason for j, reason in exc.failed.items() for i in waiting[todo[j][0]]}
            raise GenerationError(str(exc), failed=failed) from None
        finally:
            self.busy_s += time.perf_counter() - started
