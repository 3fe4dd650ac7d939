"""The run's event log: one JSON object per line (round metrics, funnel counts, backend errors).

It feeds the dashboard, `prism-agent status` and the report, and is append-only and line-buffered, so a
reader never needs more than the lines it asks for. A torn last line (a kill mid-write) is skipped."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prism_agent import killpoint
from prism_agent.jsonl import read_jsonl


class EventLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tail_checked = False

    def _repair_tail(self) -> None:
        """A write cut short (a full disk, a file-size limit) leaves a last line without its newline; the next
        event would be glued to it and both lost to readers. So, once per writer, the fragment is cut off."""
        self._tail_checked = True
        size = self.path.stat().st_size if self.path.exists() else 0
        if size == 0:
            return
        with self.path.open("r+b") as fh:
            end = size
            while end > 0:
                start = max(0, end - 65536)
                fh.seek(start)
                cut = fh.read(end - start).rfind(b"\n")
                if cut >= 0:
                    end = start + cut + 1
                    break
                end = start
            if end != size:
                fh.truncate(end)
                os.fsync(fh.fileno())

    def emit(self, kind: str, **fields) -> dict:
        if not self._tail_checked:
            self._repair_tail()
        killpoint.reached(f"event {kind}")  # test-only (the kill -9 suite)
        event = {"t": round(time.time(), 3), "kind": kind, **fields}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return event

    def __iter__(self) -> Iterator[dict]:
        yield from read_jsonl(self.path, "tolerate_torn_tail")

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self if e.get("kind") == kind]
