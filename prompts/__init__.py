"""Prompt templates per task and role (shipped in the wheel as `prism_agent.prompts`).

Layout: `prompts/<task>/<role>.md` with roles `generate` (new problems from few-shot examples),
`solve` (answers or labels for voting) and `judge` (benchmark paraphrase check). `load(task, role)`
reads one; a user's own file can replace any of them.
"""

from __future__ import annotations

from importlib import resources


def load(task: str, role: str) -> str:
    return resources.files(__name__).joinpath(task, f"{role}.md").read_text(encoding="utf-8")
