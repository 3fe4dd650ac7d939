"""Tasks by name."""

from __future__ import annotations

from prism_agent.errors import BadInputError
from prism_agent.tasks.base import Task
from prism_agent.tasks.math import MathTask
from prism_agent.tasks.nli import NLITask

TASKS: dict[str, type[Task]] = {"math": MathTask, "nli": NLITask}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise BadInputError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}") from None
