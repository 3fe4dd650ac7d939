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


def load(task: str, role: str, override: str | Path | None = None, root: str | Path | None = None) -> str:
    """The template for (task, role): `override/<role>.md` when that file exists, else the task's own
    (`root/<role>.md` for a plug-in task), else the built-in one."""
    for folder in (override, root):
        if folder is not None and (Path(folder) / f"{role}.md").is_file():
            return (Path(folder) / f"{role}.md").read_text(encoding="utf-8")
    if root is not None:
        from prism_agent.errors import BadInputError

        raise BadInputError(f"task {task!r} has no {role}.md in {root}")
    return resources.files(__name__).joinpath(task, f"{role}.md").read_text(encoding="utf-8")
