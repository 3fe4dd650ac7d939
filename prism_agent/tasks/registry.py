"""Tasks by name: the built-in ones, installed plug-ins, or an import path.

`--task nli|math` names a built-in task. A plug-in task is a `Task` subclass found either through the
`prism_agent.tasks` entry-point group of an installed package (`--task NAME`) or by import path
(`--task my_pkg.tasks:Triage`, or `--task path/to/file.py:Triage` for a file that is not a package);
examples/custom_task shows one end to end. The run's manifest stores the spec given, so a resume loads
the same class.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

from prism_agent.errors import BadInputError
from prism_agent.tasks.base import Task
from prism_agent.tasks.math import MathTask
from prism_agent.tasks.nli import NLITask

TASKS: dict[str, type[Task]] = {"math": MathTask, "nli": NLITask}
ENTRY_POINTS = "prism_agent.tasks"


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def _from_path(spec: str) -> type:
    where, _, attr = spec.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise BadInputError(f"--task {spec!r}: no such file {where}")
            mod_spec = importlib.util.spec_from_file_location(f"prism_agent_task_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as exc:
        raise BadInputError(f"--task {spec!r}: cannot import {where} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BadInputError(f"--task {spec!r}: {where} has no {attr!r}") from None


def get_task(name: str) -> Task:
    if name in TASKS:
        return TASKS[name]()
    if ":" in name:
        cls = _from_path(name)
    elif name in (found := _plugins()):
        cls = found[name].load()
    else:
        known = [*TASKS, *_plugins()]
        raise BadInputError(f"unknown task {name!r}; tasks: {', '.join(known)} (or a plug-in: module:Class)")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise BadInputError(f"--task {name!r} is not a prism_agent.tasks.base.Task subclass")
    task = cls()
    if not task.name:
        raise BadInputError(f"--task {name!r}: the task class sets no `name`")
    return task
