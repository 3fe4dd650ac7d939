"""Tasks (math, NLI) behind one small interface: what a solver is asked, how its answer is read for
voting, and which text of a sample is compared against benchmarks."""

from __future__ import annotations

from prism_agent.tasks.base import Extracted, Task
from prism_agent.tasks.registry import TASKS, get_task

__all__ = ["TASKS", "Extracted", "Task", "get_task"]
