"""Build a backend by name from its config (unknown names are refused when the config is parsed, with
the list of valid ones; see `config/backends.py`)."""

from __future__ import annotations

from prism_agent.config.backends import (
    BACKENDS,
    LocalBackendConfig,
    OpenAIBackendConfig,
    RolesConfig,
    VLLMBackendConfig,
)
from prism_agent.errors import BadInputError
from prism_agent.generators.base import Generator
from prism_agent.generators.replay import ReplayingGenerator, ReplayStore


def make_generator(
    cfg: LocalBackendConfig | OpenAIBackendConfig | VLLMBackendConfig, *, replay: ReplayStore | None = None
) -> Generator:
    if isinstance(cfg, LocalBackendConfig):
        from prism_agent.generators.local import LocalGenerator

        gen: Generator = LocalGenerator(cfg)
    elif isinstance(cfg, OpenAIBackendConfig):
        from prism_agent.generators.openai_compat import OpenAIGenerator

        gen = OpenAIGenerator(cfg)
    elif isinstance(cfg, VLLMBackendConfig):
        from prism_agent.generators.vllm_engine import VLLMGenerator

        gen = VLLMGenerator(cfg)
    else:
        raise BadInputError(f"unknown backend config {type(cfg).__name__}; valid: {', '.join(BACKENDS)}")
    return ReplayingGenerator(gen, replay) if replay is not None else gen


def make_role_generators(roles: RolesConfig, *, replay: ReplayStore | None = None) -> dict[str, Generator]:
    """One backend per role; roles with equal configs share one backend instance (one loaded model, one
    connection pool and concurrency limit), each behind its own replay wrapper so usage counts per role."""
    built: dict[str, Generator] = {}
    out: dict[str, Generator] = {}
    for role in ("generator", "solver", "judge"):
        cfg = roles.of(role)
        key = cfg.model_dump_json()
        if key not in built:
            built[key] = make_generator(cfg)
        out[role] = ReplayingGenerator(built[key], replay) if replay is not None else built[key]
    return out
