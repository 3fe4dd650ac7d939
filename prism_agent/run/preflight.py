"""Checks `prism-agent run` makes before it writes to the run directory or loads a model.

Bad input should cost seconds, not the minutes that loading the proxy and a first round take, and must
not leave a half-made run directory behind. So the run directory, the seed files, every model path and
every endpoint are checked first, read-only, and each failure is one `PrismError` line.
"""

from __future__ import annotations

import asyncio
import os
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


def check_models(cfg: RunConfig) -> None:
    """The proxy and every local/vllm role's model exist (a pinned name, or a folder or .gguf file)."""
    from prism_agent.models.load import check_spec
    from prism_agent.models.registry import DEFAULT_PROXY

    check_spec(cfg.proxy or DEFAULT_PROXY, "proxy", gguf_ok=True)
    for role in ROLES:
        backend = cfg.roles.of(role)
        if backend.backend in ("local", "vllm"):
            check_spec(backend.model, f"roles.{role}.model", gguf_ok=backend.backend == "local")


def check_endpoints(cfg: RunConfig, timeout_s: float = ENDPOINT_TIMEOUT_S) -> None:
    """Each distinct OpenAI-compatible endpoint answers, accepts the key and serves the model. Without this,
    an unreachable URL would surface only at the first generate step, after the proxy load and several
    rounds of backoff."""
    seen: set[tuple[str, str, str | None]] = set()
    for role in ROLES:
        backend = cfg.roles.of(role)
        if not isinstance(backend, OpenAIBackendConfig):
            continue
        key = (backend.base_url, backend.model, backend.api_key_env)
        if key not in seen:
            seen.add(key)
            asyncio.run(_probe(backend, role, min(timeout_s, backend.timeout_s)))


def _reason(exc: BaseException) -> str:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "no answer in time"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc.__cause__ or exc) or type(exc).__name__


async def _probe(backend: OpenAIBackendConfig, role: str, timeout_s: float) -> None:
    import openai

    from prism_agent.generators.openai_compat import api_key

    client = openai.AsyncOpenAI(base_url=backend.base_url, api_key=api_key(backend), max_retries=0,
                                timeout=timeout_s)
    where = f"roles.{role}: {backend.base_url}"
    try:
        served = sorted(m.id for m in (await client.models.list()).data)
    except openai.APIConnectionError as exc:  # refused, unresolvable, timed out
        raise BadInputError(f"{where}: cannot reach the endpoint ({_reason(exc)}); start the server or fix "
                            "base_url") from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        var = backend.api_key_env or "PRISM_AGENT_API_KEY"
        raise BadInputError(f"{where}: the key was refused ({exc.status_code}); check ${var}") from None
    except openai.APIStatusError:
        served = []  # listing models is optional in the protocol; the first call will tell
    finally:
        await client.close()
    if served and backend.model not in served:
        raise BadInputError(f"{where}: model {backend.model!r} is not served here; it serves: {', '.join(served)}")
