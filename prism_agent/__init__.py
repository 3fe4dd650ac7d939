"""prism-agent: gradient-diverse synthetic reasoning data (Prismatic Synthesis and G-Vendi).

The Python API (`prism_agent.api`): `Run` drives a run's loop, `measure` scores a dataset.

    from prism_agent import Run, measure

Both load lazily, so `import prism_agent` (and every CLI start) stays cheap. (The engine behind `measure`
is the module `prism_agent.measure_dataset`, named apart so that importing it never shadows the API.)
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Run", "RunResult", "Update", "measure"]


def __getattr__(name: str):
    if name in ("Run", "RunResult", "Update", "measure"):
        from prism_agent import api

        return getattr(api, name)
    raise AttributeError(f"module 'prism_agent' has no attribute {name!r}")

