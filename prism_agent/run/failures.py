"""Requests that failed for good: recorded and skipped, until a step's share of them says the backend is
broken (README "Generating data", "Requests that fail for good").

A request that still fails after its retries (a poisoned prompt, a server that refuses one request) used
to stop the run. Now each step that sends requests (generate, vote, decontaminate's judge) writes the
failed ones with their reasons to `rounds/round-N/<step>-failed.jsonl` and goes on without them; the step
raises only when more than `max_failed_fraction` of its requests failed, which is what a dead endpoint,
a refused key or an overloaded server look like. That file is written before the step's summary: a step
that stopped the run has no summary, so a resumed run runs it again (its finished calls replay, the
failed ones are sent again); a finished step is not run again, so its failed requests are not retried.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prism_agent.atomic import write_jsonl_atomic
from prism_agent.errors import PrismError
from prism_agent.jsonl import read_jsonl
from prism_agent.run.rounds import Step

STEPS = tuple(s.file for s in (Step.GENERATE, Step.VOTE, Step.DECONTAMINATE))  # the steps that send requests


class TooManyFailures(PrismError):
    """More of a step's requests failed for good than the run allows."""


def failed_path(round_dir: Path, step: str) -> Path:
    return round_dir / f"{step}-failed.jsonl"


def settle(round_dir: Path, step: str, total: int, failed: dict[int, str], limit: float,
           describe: Callable[[int], dict]) -> int:
    """Record `failed` (request index → reason; `describe(i)` adds what identifies request i) and return
    how many failed; raise `TooManyFailures` when more than `limit` of `total` requests failed."""
    round_dir.mkdir(parents=True, exist_ok=True)
    path = failed_path(round_dir, step)
    if failed or path.exists():  # a rerun of the step replaces what an earlier attempt recorded
        write_jsonl_atomic(path, [{**describe(i), "reason": failed[i]} for i in sorted(failed)])
    if failed and len(failed) > limit * total:
        first = failed[min(failed)]
        raise TooManyFailures(
            f"{round_dir.name} {step}: {len(failed)} of {total} requests failed for good (more than "
            f"max_failed_fraction = {limit:g}); first: {first}; resume to send them again")
    return len(failed)


def failed_counts(rounds_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """For `status`: per step, the requests recorded as failed over the run, and the count per reason."""
    per_step: dict[str, int] = {}
    reasons: dict[str, int] = {}
    if not rounds_dir.is_dir():
        return per_step, reasons
    for step in STEPS:
        for path in sorted(rounds_dir.glob(f"round-*/{step}-failed.jsonl")):
            for row in read_jsonl(path, "strict"):
                per_step[step] = per_step.get(step, 0) + 1
                reasons[row.get("reason", "?")] = reasons.get(row.get("reason", "?"), 0) + 1
    return per_step, reasons
