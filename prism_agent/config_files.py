"""The user's input (a TOML config file, command-line shorthands and overrides) turned into the declared
config models of `config/`, with one-line errors. `config/` holds the declarations; reading files and
merging flags is here, so that the declarations import nothing but `errors`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prism_agent.config.backends import ROLES, RolesConfig, parse_backend, parse_roles
from prism_agent.config.cluster import ClusterConfig
from prism_agent.config.decontam import DecontamConfig
from prism_agent.config.distributed import RayConfig
from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.config.measure import MeasureConfig
from prism_agent.config.run import GeneratorSampling, RunConfig, parse_target
from prism_agent.config.vote import VoteConfig
from prism_agent.errors import BadInputError, one_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise BadInputError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{path}: not valid TOML: {exc}") from None


def load_roles(path: Path | None) -> RolesConfig:
    """Roles from a TOML file's `[roles.*]` tables (or none: all local)."""
    if path is None:
        return RolesConfig()
    return parse_roles(read_toml(path).get("roles", {}), where=f"{path.name}: roles")


def with_shorthand(roles: RolesConfig, role: str | None, overrides: dict) -> RolesConfig:
    """Apply CLI shorthands (`--backend`, `--base-url`, `--model`, `--api-key-env`) to one role or all.
    Changing the backend kind starts that role from the new kind's defaults."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return roles
    targets = [role] if role else list(ROLES)
    updated = {}
    for r in targets:
        current = roles.of(r).model_dump()
        if "backend" in overrides and overrides["backend"] != current["backend"]:
            current = {}
        updated[r] = parse_backend({**current, **overrides}, where=f"--role {r}")
    return roles.model_copy(update=updated)


def build_run_config(path: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """TOML file (if any) → dict, CLI overrides on top (None means "not given"), then strict validation."""
    data: dict[str, Any] = read_toml(path) if path else {}
    roles = data.pop("roles", None)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    if "target" in data:
        data["target"] = parse_target(data["target"])
    for key in ("seeds", "benchmarks"):
        if key in data and isinstance(data[key], list):
            data[key] = tuple(data[key])
    where = f"{path.name}: " if path else ""
    parsed_roles = parse_roles(roles, where=f"{where}roles") if roles is not None else RolesConfig()
    nested = {}
    key = ""
    try:
        for key, cls in (("generation", GeneratorSampling), ("featurizer", FeaturizerConfig),
                         ("cluster", ClusterConfig), ("decontam", DecontamConfig), ("measure", MeasureConfig),
                         ("ray", RayConfig)):
            if key in data:
                nested[key] = cls.model_validate(data.pop(key))
        if "vote" in data:
            key = "vote"
            vote = dict(data.pop("vote"))
            if "task" in vote:
                raise BadInputError(f"{where}vote.task: not a setting (voting follows the run's task)")
            nested["vote"] = VoteConfig.for_task(data.get("task", ""), **vote)
        key = ""
        return RunConfig(**data, **nested, roles=parsed_roles)
    except ValidationError as exc:
        raise BadInputError(f"{where}{one_line(exc, prefix=f'{key}.' if key else '', root='config')}") from None
    except TypeError as exc:  # an unknown top-level key
        raise BadInputError(f"{where}{exc}") from None
