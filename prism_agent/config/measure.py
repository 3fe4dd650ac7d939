"""Settings of the loop's `measure` step: how often the running Gram matrix is audited by a full recompute."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MeasureConfig(BaseModel):
    """`[measure]` in a run's config. It changes how G-Vendi is computed, never its value, so it is free to
    change when a run resumes."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    # Every `audit_every` rounds (by the last committed round's number, so round 0 too) `measure` recomputes
    # the pool's Gram matrix from every feature row, records how far the running one was from it in the
    # `measure` event, and replaces the running one when they disagree (diversity/gram.py). At 1.5M rows and
    # d = 1024 a recompute costs 100–165 s on one thread (BENCHMARKS.md, "Streaming G-Vendi and pool lookups
    # by offset"): every 100 rounds keeps it under 2 s a round amortized, while every 25 would cost 4–7 s of
    # a round whose whole overhead should stay near 10 s. 0 turns the audit off.
    audit_every: int = Field(100, ge=0)
