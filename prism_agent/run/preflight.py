"""Checks `prism-agent run` makes before it writes to the run directory or loads a model.

Bad input should cost seconds, not the minutes that loading the proxy and a first round take, and must
not leave a half-made run directory behind. So the run directory, the seed files, every model path and
every endpoint are checked first, read-only, and each failure is one `PrismError` line.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prism_agent.config.backends import ROLES, OpenAIBackendConfig
from prism_agent.config.run import RunConfig
from prism_agent.errors import BadInputError
from prism_agent.run.manifest import check_resume
from prism_agent.run.paths import RunPaths

ENDPOINT_TIMEOUT_S = 10.0  # one listing call; a healthy server answers in milliseconds


def check_run_dir(paths: RunPaths, cfg: RunConfig, *, force: bool = False) -> list[tuple[str, Any, Any]]:
    """The run directory can be written, and `cfg` may continue the run already in it (same task; a changed
    config only with `force`). Returns the changes `force` let through."""
    _check_writable(paths.root)
    _, changes = check_resume(paths, cfg, force=force)
    return changes


def _check_writable(root: Path) -> None:
    """The folder, or its nearest existing parent, must be a folder we may write. (As root, permissions do
    not block writes, but a parent that is a file or a read-only mount still does: `access` reports both.)"""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BadInputError(f"cannot use {root} as a run directory: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInputError(f"cannot write to {probe} (permission denied or read-only); pick another --run-dir")


def check_seeds(paths: RunPaths, cfg: RunConfig, task_seeds: tuple[str, ...]) -> None:
    """Every seed file exists and every row is usable, before the run starts. Skipped once the run has drawn
    its seeds (they live in the run directory from then on). Built-in sets are verified when pulled."""
    from prism_agent.data.registry import builtin
    from prism_agent.run.pool import SEEDS, count_rows

    if (paths.pool / SEEDS).is_file():
        return
    for name in cfg.seeds or task_seeds:
        if builtin(name) is not None:
            continue
        count_rows([name])  # a missing, empty or malformed file raises with its row numbers


def weak_solver_note(cfg: RunConfig) -> str | None:
    """What to use instead, when a math run votes with the embedded 135M solver: in EVIDENCE.md it boxed an
    answer in 8 of 45 solutions and no two agreed, so the run would spend its budget accepting nothing. The
    run goes ahead (a smoke test is a fair use), as `decontam` does with its embedded judge."""
    from prism_agent.config.defaults import DEFAULT_PROXY

    solver = cfg.roles.of("solver")
    if cfg.task != "math" or solver.backend != "local" or solver.model != DEFAULT_PROXY:
        return None
    return ("note: the solver is the embedded SmolLM2-135M, which rarely boxes a math answer and almost never "
            "agrees with itself (EVIDENCE.md: 8 boxed of 45, none agreeing), so nearly nothing will pass the "
            "vote; give a real solver for real runs: --solver openai:MODEL@BASE_URL or vllm:MODEL on a GPU")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def check_models(cfg: RunConfig, note: Callable[[str], None] = _stderr) -> None:
    """The proxy and every local/vllm role's model exist (a pinned name, or a folder or .gguf file); a model
    that exists but cannot do the job gets a `note` line (`weak_solver_note`)."""
    from prism_agent.config.defaults import DEFAULT_PROXY
    from prism_agent.models.load import check_spec

    check_spec(cfg.proxy or DEFAULT_PROXY, "proxy", gguf_ok=True)
    for role in ROLES:
        backend = cfg.roles.of(role)
        if backend.backend in ("local", "vllm"):
            check_spec(backend.model, f"roles.{role}.model", gguf_ok=backend.backend == "local")
    if (line := weak_solver_note(cfg)) is not None:
        note(line)


def check_endpoints(cfg: RunConfig, timeout_s: float = ENDPOINT_TIMEOUT_S) -> None:
    """Each distinct OpenAI-compatible endpoint answers, accepts the key and serves the model. Without this,
    an unreachable URL would surface only at the first generate step, after the proxy load and several
    rounds of backoff."""
    seen: set[tuple[str, str, str | None]] = set()
    for role in ROLES:
        backend = cfg.roles.of(role)
        if not isinstance(backend, OpenAIBackendConfig):
            continue
        key = (tuple(backend.base_urls), backend.model, backend.api_key_env)
        if key not in seen:
            seen.add(key)
            asyncio.run(_probe(backend, role, min(timeout_s, backend.timeout_s)))


async def _probe(backend: OpenAIBackendConfig, role: str, timeout_s: float,
                 note: Callable[[str], None] = _stderr) -> None:
    """Every endpoint of the role; with several, an unreachable one is a note (its calls go to the others
    until it answers) unless none answers."""
    from prism_agent.generators.openai_compat import OpenAIGenerator
    from prism_agent.generators.probe import EndpointError, Unreachable

    urls = backend.base_urls
    down = []
    for url in urls:
        gen = OpenAIGenerator(backend.model_copy(update={"timeout_s": timeout_s, "base_url": url}))
        try:
            await gen.probe()
        except Unreachable as exc:
            if len(urls) == 1:
                raise BadInputError(f"roles.{role}: {exc}") from None
            down.append(str(exc))
        except EndpointError as exc:
            raise BadInputError(f"roles.{role}: {exc}") from None
        finally:
            await gen.aclose()
    if down and len(down) == len(urls):
        raise BadInputError(f"roles.{role}: no endpoint answers; {down[0]}")
    for line in down:
        note(f"note: roles.{role}: {line}; its calls go to the other endpoints until it answers")
