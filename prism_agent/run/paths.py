"""Where everything of a run lives. One place, so that resume, status and export agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def pool(self) -> Path:
        return self.root / "pool"

    @property
    def samples(self) -> Path:
        """Accepted samples, append-only JSONL; only the prefix named by the last commit counts."""
        return self.pool / "accepted.jsonl"

    @property
    def commits(self) -> Path:
        return self.pool / "commits.jsonl"

    @property
    def features(self) -> Path:
        """Gradient features of the pool: seeds first, then accepted samples in commit order."""
        return self.root / "features"

    @property
    def clusters(self) -> Path:
        return self.root / "clusters"

    @property
    def calibration(self) -> Path:
        """The solver's per-choice offsets, fitted once on the seeds (quality/calibration.py)."""
        return self.root / "calibration.json"

    @property
    def rounds(self) -> Path:
        return self.root / "rounds"

    def round_dir(self, index: int) -> Path:
        return self.rounds / f"round-{index:05d}"

    @property
    def calls(self) -> Path:
        """The replay log of every completed LLM call."""
        return self.root / "calls.sqlite"

    @property
    def checkpoints(self) -> Path:
        """LangGraph's SQLite checkpointer."""
        return self.root / "checkpoints.sqlite"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"
