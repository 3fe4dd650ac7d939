"""One sample's vote: read each of its N solver completions, group the answers, accept or reject.

The record is what a sample keeps (the paper's filter leaves no trace; here a reviewer can see why a
sample passed): every completion's answer or why it had none, the group sizes, the majority answer, and
which completions were kept. Only completions in the majority group are kept, so a sample's solutions
all end in the answer that won the vote.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from prism_agent.config.vote import VoteConfig
from prism_agent.tasks.base import Extracted, Task


class VoteRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    n: int  # completions asked for
    tau: int
    received: int  # completions that came back (a failing backend may return fewer)
    answers: list[str | None]  # per completion: the answer or label it votes for, None when dropped
    dropped: dict[str, int] = Field(default_factory=dict)  # why answers were dropped: missing, too_long, …
    groups: list[list[int]]  # completion indices per group of agreeing answers, largest first
    group_sizes: list[int]
    majority: str | None  # the winning answer (its group's representative)
    majority_size: int
    tied: bool  # another group is as large as the majority group
    accepted: bool
    kept: list[int]  # completion indices kept (the majority group when accepted, else none)
    kept_solutions: list[str] = Field(default_factory=list, exclude=True)  # their texts; not serialised


def _capped(e: Extracted, limit: int) -> Extracted:
    return Extracted(None, "too_long") if e.answer is not None and len(e.answer) > limit else e


def _groups(task: Task, answers: list[str], cfg: VoteConfig) -> list[list[int]]:
    return task.group_answers(answers, cfg.verify_timeout_s)


def vote(task: Task, completions: list[str], cfg: VoteConfig) -> VoteRecord:
    """Vote over one sample's completions (call from the main thread to keep math-verify's timeouts)."""
    if task.name != cfg.task:
        raise ValueError(f"vote config is for {cfg.task!r}, task is {task.name!r}")
    extracted = [_capped(task.extract(c), cfg.max_answer_chars) for c in completions]
    answers = [e.answer for e in extracted]
    dropped = Counter(e.reason for e in extracted if e.answer is None and e.reason)
    valid = [i for i, a in enumerate(answers) if a is not None]
    local = _groups(task, [answers[i] for i in valid], cfg) if valid else []
    groups = [[valid[k] for k in g] for g in local]
    sizes = [len(g) for g in groups]
    top = sizes[0] if sizes else 0
    tied = len(sizes) > 1 and sizes[1] == top
    accepted = top >= cfg.tau and not (tied and cfg.ties == "reject")
    kept = sorted(groups[0]) if accepted else []
    return VoteRecord(
        task=task.name, n=cfg.n, tau=cfg.tau, received=len(completions), answers=answers, dropped=dict(dropped),
        groups=groups, group_sizes=sizes, majority=answers[groups[0][0]] if groups else None, majority_size=top,
        tied=tied, accepted=accepted, kept=kept, kept_solutions=[completions[i] for i in kept],
    )
