"""Voting settings: N completions per sample and the acceptance threshold τ, always explicit.

The paper accepts a math sample when at least τ = 2 of N = 3 solutions agree; its released code
effectively accepts 1 of 3. Both are one setting apart here and the record of every vote carries the N
and τ it was taken with. NLI uses N = 2 labelings that must both agree (τ = 2).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_ANSWER_CHARS = 300  # paper: longer boxed answers are rarely one final answer, and slow to compare
TiePolicy = Literal["first", "reject"]

CALIBRATION_ROWS = 256  # seed rows a calibration is fitted on, unless `calibration_rows` says otherwise


class VoteConfig(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    task: str
    n: int = Field(ge=1, le=256, description="solver completions per sample")
    tau: int = Field(ge=1, description="accept when the largest agreeing group has at least tau members")
    temperature: float = Field(0.75, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(ge=1, description="solver tokens per completion")
    max_answer_chars: int = Field(MAX_ANSWER_CHARS, ge=1, description="longer answers are dropped")
    # Two groups of the same, largest size (possible when tau <= n/2, e.g. tau = 1): "first" keeps the group
    # whose answer has the most support and appeared first; "reject" refuses the sample.
    ties: TiePolicy = "first"
    verify_timeout_s: int = Field(5, ge=0, description="math-verify per parse/comparison; main thread only")
    seed: int = Field(0, ge=0, description="base of the per-sample solver seeds")
    calibrate: bool | None = Field(None, description="choice tasks (nli): fit one offset per label on the seeds' "
                                   "gold labels and add it to the solver's scores; default: when the solver "
                                   "scores the choices (the local backend)")
    calibration_rows: int | None = Field(None, ge=8, description="seed rows the offsets are fitted on, at most "
                                         f"(default {CALIBRATION_ROWS})")

    @model_validator(mode="after")
    def _tau_le_n(self) -> VoteConfig:
        if self.tau > self.n:
            raise ValueError(f"tau ({self.tau}) cannot exceed n ({self.n}): no sample could be accepted")
        if self.n > 1 and self.temperature == 0.0:
            raise ValueError("n > 1 completions need temperature > 0 (greedy decoding repeats one answer)")
        return self

    @classmethod
    def for_task(cls, task: str, **overrides) -> VoteConfig:
        """The task's defaults (`Task.vote_defaults`: the paper's for math and nli), with any field overridden
        (None values are ignored)."""
        name, base = _task_defaults(task)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(task=name, **base)


def _task_defaults(spec: str) -> tuple[str, dict]:
    """A task's name and voting defaults (`Task.vote_defaults`, their one home); none for a spec that is no
    task, so that validation names the missing settings."""
    from prism_agent.errors import PrismError
    from prism_agent.tasks.registry import get_task

    try:
        task = get_task(spec)
    except PrismError:
        return spec, {}
    return task.name, dict(task.vote_defaults)
