"""From what a caller asks for to a run directory the loop may start in: the run's config (TOML file, role
specs, overrides) and the checks made before anything is written or loaded. Shared by `prism-agent run` and
`prism_agent.Run`, so that both accept the same input and refuse bad input with the same one-line errors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prism_agent.config.backends import parse_backend
from prism_agent.config.run import RunConfig
from prism_agent.errors import BadInputError, PrismError

if TYPE_CHECKING:
    from prism_agent.run.compute import ComputeDtypes

ROLE_SPECS = "local | local:MODEL | vllm:MODEL | openai:MODEL@BASE_URL[,BASE_URL…]"


def base_urls(text: str) -> str | list[str]:
    """One URL, or several separated by commas (a role over several endpoints serving one model)."""
    urls = [u.strip() for u in text.split(",")]
    return urls[0] if len(urls) == 1 else urls


def role_spec(spec: str, role: str) -> dict:
    """`openai:Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1` (as given to `--generator`) → a role table;
    `openai:M@http://a:8000/v1,http://b:8000/v1` lists two endpoints."""
    kind, _, rest = spec.partition(":")
    if kind == "openai":
        model, _, url = rest.rpartition("@")
        if not model or not url:
            raise BadInputError(f"--{role} {spec!r}: expected openai:MODEL@BASE_URL[,BASE_URL…]")
        table = {"backend": "openai", "model": model, "base_url": base_urls(url)}
    elif kind in ("local", "vllm"):
        table = {"backend": kind, **({"model": rest} if rest else {})}
    else:
        raise BadInputError(f"--{role} {spec!r}: unknown backend {kind!r}; valid: local, openai, vllm")
    parse_backend(table, where=f"--{role}")
    return table


def graph_of(root: Path) -> str | None:
    """The graph an existing run directory was started with (None for a new or unreadable one)."""
    from prism_agent.run.manifest import read_manifest
    from prism_agent.run.paths import RunPaths

    try:
        return (read_manifest(RunPaths(root)).config or {}).get("graph")
    except PrismError:
        return None


def run_config(root: Path, config: Path | None, overrides: dict[str, Any],
               roles: dict[str, str | None] | None = None, dtype: str | None = None) -> tuple[RunConfig, ComputeDtypes]:
    """The run's config: the TOML file `config` (if any), `overrides` on top (None: not given), and role specs
    (`{"generator": "openai:M@URL"}`) over the file's role tables. Without a graph named anywhere, an existing
    run directory keeps its own (resuming a vanilla run needs no `graph`). `dtype` (auto | bfloat16 | float32)
    sets the featurizer's and every embedded backend's. Returns the config with its dtypes pinned (an existing
    run keeps its featurizer's; preflight compares the config with the manifest) and what they resolved to
    (`run.dtypes.ComputeDtypes`, for the run's header)."""
    from prism_agent.config.backends import parse_roles
    from prism_agent.config_files import build_run_config, read_toml
    from prism_agent.run.dtypes import pin_dtypes, with_dtype
    from prism_agent.run.paths import RunPaths

    data = read_toml(config) if config else {}
    tables = dict(data.get("roles", {}))
    for role, spec in (roles or {}).items():
        if spec:
            tables[role] = role_spec(spec, role)
    overrides = dict(overrides)
    if overrides.get("graph") is None and "graph" not in data:
        overrides["graph"] = graph_of(root)
    cfg = build_run_config(config, overrides)
    if tables:
        cfg = cfg.model_copy(update={"roles": parse_roles(tables)})
    if dtype is not None:
        cfg = with_dtype(cfg, dtype)
    return pin_dtypes(RunPaths(root), cfg)


def preflight(root: Path, cfg: RunConfig, *, force: bool = False, note: Callable[[str], None] | None = None) -> None:
    """Everything that can be checked without writing or loading a model: the task and its prompt templates,
    the run directory, seeds, models, endpoints. Bad input then costs seconds and leaves the run directory
    as it was. The config changes `force` let through are told to `note` as soon as they are known (before a
    later check fails)."""
    from prism_agent.run import preflight as checks
    from prism_agent.run.manifest import describe
    from prism_agent.run.paths import RunPaths
    from prism_agent.tasks.registry import get_task

    task = get_task(cfg.task)  # unknown tasks and broken user templates fail before anything is written
    task.prompts_dir = cfg.prompts
    task.check_templates()
    paths = RunPaths(root)
    changes = checks.check_run_dir(paths, cfg, force=force)
    if changes and note is not None:
        note(f"continuing {root} with a changed config ({describe(changes)})")
    checks.check_seeds(paths, cfg, task.seeds)
    checks.check_models(cfg)
    checks.check_endpoints(cfg)
    if cfg.ray is not None:  # installed and answering, before anything is written (distributed/session.py)
        from prism_agent.distributed.session import check

        check(cfg.ray)
