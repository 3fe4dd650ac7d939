"""prism-agent: gradient-diverse synthetic reasoning data (Prismatic Synthesis and G-Vendi).

The Python API (`prism_agent.api`): `Run` drives a run's loop, `measure` scores a dataset.

    from prism_agent import Run, measure

Both load lazily, so `import prism_agent` (and every CLI start) stays cheap. `measure` shares its name with
the engine module `prism_agent.measure`: importing that module would normally rebind the package attribute
to the module, so the package's class keeps the attribute the API function and leaves the module to
`sys.modules` (`from prism_agent.measure import featurize` works as before).
"""

from __future__ import annotations

import sys
import types

__version__ = "0.1.0"
__all__ = ["Run", "RunResult", "Update", "measure"]


class _Package(types.ModuleType):
    @property
    def measure(self):
        from prism_agent.api import measure

        return measure

    @measure.setter
    def measure(self, module) -> None:  # the import system binding the submodule: it stays in sys.modules
        pass


def __getattr__(name: str):
    if name in ("Run", "RunResult", "Update"):
        from prism_agent import api

        return getattr(api, name)
    raise AttributeError(f"module 'prism_agent' has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
