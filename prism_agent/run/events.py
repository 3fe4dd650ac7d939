"""The run's event log: one JSON object per line (round metrics, funnel counts, backend errors).

It feeds the dashboard, `prism-agent status` and the report, and is append-only and line-buffered, so a
reader never needs more than the lines it asks for. A torn last line (a kill mid-write) is skipped."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path


class EventLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, kind: str, **fields) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind, **fields}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return event

    def __iter__(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self if e.get("kind") == kind]
