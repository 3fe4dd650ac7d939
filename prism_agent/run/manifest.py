"""The run's manifest: which config made it, its current target, its id (the LangGraph thread id).

Reopening a run directory compares the config's identity (everything but the target) with the manifest
and refuses a change unless the user opts in, naming what differs; a new target is simply recorded,
which is how a finished run is extended.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from prism_agent.atomic import write_atomic
from prism_agent.config.run import RunConfig
from prism_agent.errors import BadInputError
from prism_agent.run.paths import RunPaths

FORMAT = 1


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    run_id: str
    task: str
    created: float
    target: int
    identity_hash: str
    config: dict[str, Any]

    def save(self, path: Path) -> None:
        data = self.model_dump_json(indent=2).encode()
        write_atomic(path, lambda fh: fh.write(data))


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def read_manifest(paths: RunPaths) -> Manifest:
    if not paths.manifest.is_file():
        raise BadInputError(f"{paths.root} is not a prism-agent run directory (no manifest.json)")
    try:
        return Manifest.model_validate_json(paths.manifest.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BadInputError(f"{paths.manifest}: unreadable manifest ({str(exc).splitlines()[0]})") from None


def open_manifest(paths: RunPaths, cfg: RunConfig, *, allow_config_change: bool = False) -> Manifest:
    """Create the manifest of a new run, or check and update the one of an existing run."""
    if paths.manifest.exists():
        found = read_manifest(paths)
        if found.identity_hash != cfg.identity_hash():
            changed = _diff(found.config, cfg.identity()) or ["settings (the run's hash differs)"]
            if not allow_config_change:
                raise BadInputError(
                    f"{paths.root} was started with another config (differs in: {', '.join(changed[:6])}); "
                    "pass --allow-config-change to continue with the new one, or use another --run-dir"
                )
            found = found.model_copy(update={"identity_hash": cfg.identity_hash(), "config": cfg.identity()})
        if found.target != cfg.target or found.identity_hash != json.loads(paths.manifest.read_text())["identity_hash"]:
            found = found.model_copy(update={"target": cfg.target})
            found.save(paths.manifest)
        return found
    paths.root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(run_id=uuid.uuid4().hex[:12], task=cfg.task, created=time.time(), target=cfg.target,
                        identity_hash=cfg.identity_hash(), config=cfg.identity())
    manifest.save(paths.manifest)
    return manifest
