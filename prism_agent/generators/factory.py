"""Build a backend from its config through the registry (`generators/registry.py`): the config's `backend`
field names the kind, the kind's registered class takes the config. Unknown names are refused when the
config is parsed, with the list of valid ones (`config/backends.py`)."""

from __future__ import annotations

from pathlib import Path

from prism_agent.config.backends import BACKENDS, AnyBackend, RolesConfig
from prism_agent.errors import BadInputError
from prism_agent.generators.base import Generator
from prism_agent.generators.registry import backend_class
from prism_agent.generators.replay import ReplayingGenerator, ReplayStore


def make_generator(cfg: AnyBackend, *, replay: ReplayStore | None = None) -> Generator:
    kind = getattr(cfg, "backend", None)
    try:
        cls = backend_class(kind)  # type: ignore[arg-type]
    except KeyError:
        raise BadInputError(f"unknown backend config {type(cfg).__name__}; valid: {', '.join(BACKENDS)}") from None
    gen: Generator = cls(cfg)
    return ReplayingGenerator(gen, replay) if replay is not None else gen


def make_role_generators(roles: RolesConfig, *, replay: ReplayStore | None = None,
                         state_dir: Path | None = None) -> dict[str, Generator]:
    """One backend per role; roles with equal configs share one backend instance (one loaded model, one
    connection pool and concurrency limit), each behind its own replay wrapper so usage counts per role.
    `state_dir` (a run directory) keeps what the backends learn about their endpoints."""
    built: dict[str, Generator] = {}
    out: dict[str, Generator] = {}
    for role in ("generator", "solver", "judge"):
        cfg = roles.of(role)
        key = cfg.model_dump_json()
        if key not in built:
            built[key] = make_generator(cfg)
            if state_dir is not None:
                built[key].use_state_dir(state_dir)
        out[role] = ReplayingGenerator(built[key], replay) if replay is not None else built[key]
    return out
