"""`RunConfig`: everything that decides what a run produces, validated strictly.

It is loaded from a TOML file (`--config`), then CLI flags override it. The manifest of a run directory
keeps its JSON form; reopening a run is refused when a field that shapes the data changed (unless the user
passes --force-config), while the free fields (`FREE_FIELDS`: the target, endpoints, concurrency, …) may
change.
API keys are never here: backends name the environment variable.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prism_agent.config.backends import RolesConfig
from prism_agent.config.cluster import ClusterConfig
from prism_agent.config.decontam import DecontamConfig
from prism_agent.config.distributed import RayConfig
from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.config.measure import MeasureConfig
from prism_agent.config.vote import VoteConfig
from prism_agent.errors import BadInputError

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
    """The generator role's request shape (the paper's: temperature 1.0, top_p 0.95, 2 per request).

    Each request asks for `num_new` completions of one new sample each (the paper asks for 2 blocks in one
    completion): every completion then has its own seed and ends at the sample's closing tag, and a small
    model, whose answer is started for it (`prefill`), keeps the format far more often."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    shots: int = Field(5, ge=1, le=32, description="few-shot examples per request, from one sparse cluster")
    num_new: int = Field(2, ge=1, le=16, description="new samples (completions) per request")
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=16, description="per new sample; default: the task's (nli 96, math 384)")
    prefill: bool = Field(True, description="start the generator's answer with the task's opening tag (turn off "
                          "for endpoints that cannot continue a final assistant message)")


def _task_name(spec: str) -> str:
    """A plug-in task's name (`--task file.py:Class` → its `name`); votes record the name, runs the spec."""
    from prism_agent.errors import PrismError
    from prism_agent.tasks.registry import get_task

    try:
        return get_task(spec).name
    except PrismError:
        return spec


EMBEDDED_JUDGE_FLOOR = 0.75  # see RunConfig.decontam_settings


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    task: str
    graph: Literal["prismatic", "novelty", "gain", "generate-only", "vanilla"] = Field(
        "gain", description="gain (default): few-shot from sparse gradient clusters, keep the candidates that "
        "raise G-Vendi most; prismatic: the same prompts, keep candidates nearest a sparse centroid (the paper's "
        "rule); novelty, generate-only: the same prompts, keep candidates far from the pool, or all (README "
        "\"Acceptance rules\"); vanilla: few-shot from random pool samples, no rejection (the paper's baseline)")
    target: int = Field(..., ge=1)
    seeds: tuple[str, ...] = Field((), description="seed sets (built-in names or files); default: the task's")
    seed_sample: int | None = Field(None, ge=1, description="seed rows used; default: scaled to the target")
    benchmarks: tuple[str, ...] = Field((), description="benchmarks to decontaminate against; default: task's")
    proxy: str | None = None
    per_round: int | None = Field(None, ge=1, description="generator requests per round; default: scaled")
    seed: int = Field(0, ge=0, description="run seed: few-shot picks and every request's seed derive from it")
    patience: int = Field(5, ge=1, description="stop after this many rounds in a row accept nothing")
    max_rounds: int | None = Field(None, ge=1, description="stop after this many rounds (a generation budget: "
                                   "prismatic and vanilla runs compare at equal budgets)")
    prompts: str | None = Field(None, description="folder with your generate.md / solve.md / judge.md")
    max_failed_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="a step's requests that fail for good are recorded and skipped; the run "
        "stops when more than this share of one step's requests failed (0: any failure stops it)")
    generation: GeneratorSampling = GeneratorSampling()
    roles: RolesConfig = RolesConfig()
    featurizer: FeaturizerConfig = FeaturizerConfig()
    cluster: ClusterConfig = ClusterConfig()
    vote: VoteConfig | None = None  # default: the task's (VoteConfig.for_task)
    decontam: DecontamConfig = DecontamConfig()
    measure: MeasureConfig = MeasureConfig()
    ray: RayConfig | None = Field(None, description="featurize on a Ray cluster (README \"Running on a Ray cluster\")")

    @model_validator(mode="after")
    def _vote_matches_task(self) -> RunConfig:
        if self.vote is not None and self.vote.task != self.task and self.vote.task != _task_name(self.task):
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
        """An NLI pair fits in ≈50 tokens and a problem in a few hundred; a tight cap bounds the cost of a row
        that never closes its block (on an endpoint that batches, the batch waits for it)."""
        from prism_agent.tasks.registry import get_task

        return self.generation.max_tokens or get_task(self.task).max_new_tokens

    def decontam_settings(self) -> DecontamConfig:
        """The decontamination settings in force. With the embedded default model as judge and no floor set,
        the judge is asked only from cosine EMBEDDED_JUDGE_FLOOR up: that 135M model answers "yes" (same
        item) to unrelated pairs (measured: it dropped 2 of 2 non-paraphrases at cosine 0.55 and 0.68), so
        asking it about everything drops good samples at random, while 97.5 % of light paraphrases of SNLI
        test items (synonyms, a swap, a dropped word) embed at cosine ≥ 0.75 (median 0.906)."""
        from prism_agent.config.backends import LocalBackendConfig

        judge = self.roles.judge
        d = self.decontam
        if d.judge and d.similarity_floor is None and isinstance(judge, LocalBackendConfig) \
                and judge.model == LocalBackendConfig().model:
            return d.model_copy(update={"similarity_floor": EMBEDDED_JUDGE_FLOOR})
        return d

    def requests_per_round(self) -> int:
        """`per_round` when set; else sized to the generator's backend so that a round keeps it busy for a few
        minutes while a small target still takes several rounds (README "Generating data", "Round size"):
        `local` (CPU decoding, ≈1 request/s): target/20, within 8–4096, as before; `openai`: 64 waves of
        `max_concurrency` calls (32 in flight: 2,048 requests, ≈2–5 min at the 2–5 s a served 7B model takes
        per request) and `vllm` (a GPU engine batching a whole step): 4,096, each at most target/4 (at the
        ≈0.25 samples a request accepts, one round's worth of the target), and at least 8."""
        if self.per_round is not None:
            return self.per_round
        gen = self.roles.generator
        if gen.backend == "local":
            return int(min(4096, max(8, self.target // 20)))
        busy = 64 * gen.max_concurrency if gen.backend == "openai" else 4096
        return int(max(8, min(busy, self.target // 4)))

    def record(self) -> dict[str, Any]:
        """The whole config as JSON (what the manifest keeps). It holds no secret: roles name the environment
        variable of their key, never the key. Unset optional settings (None) are left out, so a newer option
        does not block resume."""
        return json.loads(self.model_dump_json(exclude_none=True))

    def identity(self) -> dict[str, Any]:
        """What must not change when a run resumes: everything that shapes the data. The free fields
        (`FREE_FIELDS`: target, patience, endpoint URLs, key variables, concurrency, timeouts, retries) are
        left out; they change how fast or where calls run, not what a given request returns, and the call
        log keys calls by model id + request, so a moved endpoint serving the same model still replays."""
        return strip_free(self.record())

    def identity_hash(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# Fields that may change when a run resumes, without --force-config (dotted paths; `*` is any role).
FREE_FIELDS: tuple[str, ...] = (
    "target", "patience", "max_rounds", "max_failed_fraction", "measure", "ray",
    "roles.*.base_url", "roles.*.api_key_env",
    "roles.*.max_concurrency", "roles.*.initial_concurrency", "roles.*.batch_size", "roles.*.threads",
    "roles.*.dtype",
    "roles.*.timeout_s", "roles.*.max_retries", "roles.*.backoff_base_s", "roles.*.backoff_max_s",
    "roles.*.latency_factor", "roles.*.down_after", "roles.*.cooloff_s", "roles.*.prefill",
    "featurizer.threads", "featurizer.batch_tokens", "featurizer.max_batch", "featurizer.exact_batch",
    "featurizer.seed_chunk",
    # how later refits are computed; clusterings already made keep theirs (each round records its settings)
    "cluster.refit_iterations", "cluster.refit_points_per_centroid", "cluster.refit_every_round_below",
    "cluster.refit_neighbours",
)
FREE_SUMMARY = ("target, patience, max_rounds, endpoint URLs (base_url), api_key_env, per-role concurrency, "
                "batch size, threads, embedded backends' dtype, timeouts and retries, endpoint cool-offs and prefill "
                "modes, max_failed_fraction, the featurizer's threads, batch sizes and seed chunk, a refit's "
                "iterations, sample and neighbours, the pool size below which every round refits, [measure] and [ray]")


def is_free(field: str) -> bool:
    """Whether a dotted config path (`roles.generator.base_url`) may change on resume."""
    parts = field.split(".")
    for pattern in FREE_FIELDS:
        want = pattern.split(".")
        if len(want) == len(parts) and all(w in ("*", p) for w, p in zip(want, parts, strict=True)):
            return True
    return False


def strip_free(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`data` without its free fields (works on manifests written before a field became free, too)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if is_free(path):
            continue
        out[key] = strip_free(value, f"{path}.") if isinstance(value, dict) else value
    return out
