"""The run's manifest: which config made it, its current target, its id (the LangGraph thread id).

Reopening a run directory compares the config's identity (everything that shapes the data) with the
manifest and refuses a change unless the user passes --force-config, showing each field's old and new
value; a new target or another free field (`config.run.FREE_FIELDS`) is simply recorded, which is how a
finished run is extended or moved to another endpoint.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from prism_agent.atomic import write_atomic
from prism_agent.config.run import FREE_SUMMARY, RunConfig, strip_free
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


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field, old value, new value) for every leaf that differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def describe(changes: list[tuple[str, Any, Any]], limit: int = 8) -> str:
    """`per_round: 6 → 7, roles.generator.model: "a" → "b"`: the diff a refusal shows."""
    shown = ", ".join(f"{field}: {_show(old)} → {_show(new)}" for field, old, new in changes[:limit])
    return shown + (f" (+{len(changes) - limit} more)" if len(changes) > limit else "")


def read_manifest(paths: RunPaths) -> Manifest:
    if not paths.manifest.is_file():
        raise BadInputError(f"{paths.root} is not a prism-agent run directory (no manifest.json)")
    try:
        return Manifest.model_validate_json(paths.manifest.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BadInputError(f"{paths.manifest}: unreadable manifest ({str(exc).splitlines()[0]})") from None


def _is_default(cfg: BaseModel, field: str) -> bool:
    """Whether the dotted `field` of `cfg` holds its model's default value."""
    owner: Any = cfg
    *parents, name = field.split(".")
    for part in parents:
        owner = getattr(owner, part, None)
    if not isinstance(owner, BaseModel):
        return False
    info = type(owner).model_fields.get(name)
    if info is None or info.is_required():
        return False
    return getattr(owner, name) == info.get_default(call_default_factory=True)


def config_changes(found: Manifest, cfg: RunConfig) -> list[tuple[str, Any, Any]]:
    """Fields that shape the data and differ between a run's manifest and `cfg`. Free fields are ignored on
    both sides, so manifests written before a field became free compare correctly too; so is a field the
    manifest lacks while `cfg` holds its default: an option added by a newer version must not block
    resuming the runs an older one started (its default keeps the old behaviour)."""
    changes = _diff(strip_free(found.config), cfg.identity())
    return [(f, old, new) for f, old, new in changes if not (old is None and _is_default(cfg, f))]


def check_resume(paths: RunPaths, cfg: RunConfig, *, force: bool = False) -> tuple[Manifest | None, list]:
    """Read-only: may `cfg` continue the run in `paths`? Returns its manifest (None for a new run) and the
    changed fields that `force` let through. Another task is refused even with `force`: its samples, seeds
    and features would mix two tasks in one pool."""
    if not paths.manifest.exists():
        return None, []
    found = read_manifest(paths)
    if found.task != cfg.task:
        raise BadInputError(f"{paths.root} is a run of task {found.task!r}, not {cfg.task!r}; "
                            f"use another --run-dir for {cfg.task}")
    changes = config_changes(found, cfg)
    if changes and not force:
        raise BadInputError(
            f"{paths.root} was started with another config; differs in: {describe(changes)}. "
            "Pass --force-config to continue with the new one, or use another --run-dir "
            f"(free to change without it: {FREE_SUMMARY})"
        )
    return found, changes


def open_manifest(paths: RunPaths, cfg: RunConfig, *, allow_config_change: bool = False) -> Manifest:
    """Create the manifest of a new run, or check and update the one of an existing run (a new target, free
    fields, or a change that `allow_config_change` (--force-config) let through)."""
    found, _ = check_resume(paths, cfg, force=allow_config_change)
    if found is not None:
        update: dict[str, Any] = {}
        if found.target != cfg.target:
            update["target"] = cfg.target
        if found.config != cfg.record() or found.identity_hash != cfg.identity_hash():
            update.update(identity_hash=cfg.identity_hash(), config=cfg.record())
        if update:
            found = found.model_copy(update=update)
            found.save(paths.manifest)
        return found
    paths.root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(run_id=uuid.uuid4().hex[:12], task=cfg.task, created=time.time(), target=cfg.target,
                        identity_hash=cfg.identity_hash(), config=cfg.record())
    manifest.save(paths.manifest)
    return manifest
