"""`RunConfig`: everything that decides what a run produces, validated strictly.

It is loaded from a TOML file (`--config`), then CLI flags override it. The manifest of a run directory
keeps its JSON form minus `target` (a larger target extends a run) and minus operational settings that do
not change the data; reopening a run with a different config is refused unless the user opts in.
API keys are never here: backends name the environment variable.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prism_agent.cluster.config import ClusterConfig
from prism_agent.config.backends import RolesConfig, parse_roles, read_toml
from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.decontam.config import DecontamConfig
from prism_agent.errors import BadInputError
from prism_agent.quality.config import VoteConfig

_TARGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_target(text: str | int) -> int:
    """`300`, `200k`, `1.5M` → an integer count of accepted samples."""
    if isinstance(text, int):
        value = text
    else:
        m = _TARGET.match(str(text))
        if not m:
            raise BadInputError(f"--target {text!r}: expected a count like 300, 200k or 1.5M")
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
        value = float(m.group(1)) * scale
        if value != int(value):
            raise BadInputError(f"--target {text!r} is not a whole number of samples")
        value = int(value)
    if value < 1:
        raise BadInputError("--target must be at least 1")
    return value


class GeneratorSampling(BaseModel):
    """The generator role's request shape (METHOD §2 step 5: temperature 1.0, top_p 0.95, 2 per request)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    shots: int = Field(5, ge=1, le=32, description="few-shot examples per request, from one sparse cluster")
    num_new: int = Field(2, ge=1, le=16, description="new samples asked for per request")
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=16, description="default: the task's (nli 256, math 768)")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    task: str
    target: int = Field(..., ge=1)
    seeds: tuple[str, ...] = Field((), description="seed sets (built-in names or files); default: the task's")
    seed_sample: int | None = Field(None, ge=1, description="seed rows used; default: scaled to the target")
    benchmarks: tuple[str, ...] = Field((), description="benchmarks to decontaminate against; default: task's")
    proxy: str | None = None
    per_round: int | None = Field(None, ge=1, description="generator requests per round; default: scaled")
    seed: int = Field(0, ge=0, description="run seed: few-shot picks and every request's seed derive from it")
    patience: int = Field(5, ge=1, description="stop after this many rounds in a row accept nothing")
    prompts: str | None = Field(None, description="folder with your generate.md / solve.md / judge.md")
    generation: GeneratorSampling = GeneratorSampling()
    roles: RolesConfig = RolesConfig()
    featurizer: FeaturizerConfig = FeaturizerConfig()
    cluster: ClusterConfig = ClusterConfig()
    vote: VoteConfig | None = None  # default: the task's (VoteConfig.for_task)
    decontam: DecontamConfig = DecontamConfig()

    @model_validator(mode="after")
    def _vote_matches_task(self) -> RunConfig:
        if self.vote is not None and self.vote.task != self.task:
            raise ValueError(f"vote.task is {self.vote.task!r} but the run's task is {self.task!r}")
        return self

    @property
    def votes(self) -> VoteConfig:
        return self.vote or VoteConfig.for_task(self.task)

    def seed_rows(self, available: int) -> int:
        """Small targets use a sample of the seeds so a first run finishes in minutes; large ones use all."""
        if self.seed_sample is not None:
            return min(self.seed_sample, available)
        return min(available, max(128, self.target // 2))

    def generation_max_tokens(self) -> int:
        """Two NLI pairs fit in ≈100 tokens and two problems in a few hundred; local decoding runs a batch
        until its longest row ends, so a tight cap is most of a round's time on CPU."""
        return self.generation.max_tokens or {"nli": 256, "math": 768}.get(self.task, 512)

    def requests_per_round(self) -> int:
        if self.per_round is not None:
            return self.per_round
        return int(min(4096, max(8, self.target // 20)))

    def identity(self) -> dict[str, Any]:
        """What must not change when a run resumes: everything that shapes the data, minus the target."""
        data = json.loads(self.model_dump_json(exclude_none=True))
        data.pop("target")
        data.pop("patience")
        return data  # unset optional settings (None) are left out, so a newer option does not block resume

    def identity_hash(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _one_line(exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    where = prefix + ".".join(str(p) for p in first["loc"]) or "config"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


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
                         ("cluster", ClusterConfig), ("decontam", DecontamConfig)):
            if key in data:
                nested[key] = cls.model_validate(data.pop(key))
        if "vote" in data:
            key = "vote"
            nested["vote"] = VoteConfig.for_task(data.get("task", ""), **data.pop("vote"))
        key = ""
        return RunConfig(**data, **nested, roles=parsed_roles)
    except ValidationError as exc:
        raise BadInputError(f"{where}{_one_line(exc, f'{key}.' if key else '')}") from None
    except TypeError as exc:  # an unknown top-level key
        raise BadInputError(f"{where}{exc}") from None
