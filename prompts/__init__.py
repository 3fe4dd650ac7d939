"""Prompt templates per task and role (shipped in the wheel as `prism_agent.prompts`).

Layout: `prompts/<task>/<role>.md` with roles `generate` (new problems from few-shot examples),
`solve` (answers or labels for voting) and `judge` (benchmark paraphrase check). `load(task, role)`
reads one; a user's own file can replace any of them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The placeholders each role's template must use (a user's file missing one would silently drop content).
FIELDS = {"generate": ("examples", "num_new"), "judge": ("candidate", "benchmark_item")}


def load(task: str, role: str, override: str | Path | None = None) -> str:
    """The template for (task, role): `override/<role>.md` when that file exists, else the built-in one."""
    if override is not None:
        mine = Path(override) / f"{role}.md"
        if mine.is_file():
            return mine.read_text(encoding="utf-8")
    return resources.files(__name__).joinpath(task, f"{role}.md").read_text(encoding="utf-8")
