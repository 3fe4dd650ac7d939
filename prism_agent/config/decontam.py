"""Decontamination settings (README, "Quality gates"): word n-gram overlap, then a paraphrase judge.

Stage 1 has two rules. `lsh` (default): a MinHash LSH index over the benchmark items' n-gram sets
retrieves the items whose estimated Jaccard similarity with the sample reaches `lsh_threshold`, and an
exact n-gram comparison confirms each one, so the LSH can miss but never drops on its own. `exact`: the
paper's literal rule, any single shared n-gram drops, found through an exact table of every benchmark
n-gram. BENCHMARKS.md measures both (recall, false drops on clean seed data, speed).

Stage 2 asks the judge role about the single nearest benchmark item by sentence embedding. The paper asks
for every sample; `similarity_floor` skips the judge below a cosine similarity, trading the judge's cost
for the chance that a paraphrase embeds far from its source.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stage1Rule = Literal["lsh", "exact"]


class DecontamConfig(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    # -- stage 1: word n-grams
    n: int = Field(10, ge=1, le=64, description="words per n-gram")
    rule: Stage1Rule = "lsh"
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    lsh_threshold: float = Field(0.3, gt=0.0, lt=1.0, description="Jaccard similarity the LSH retrieves at")

    # -- stage 2: nearest item by embedding, then the judge
    judge: bool = True
    similarity_floor: float | None = Field(None, ge=-1.0, le=1.0,
                                           description="ask the judge only at or above this cosine; None: always")
    judge_temperature: float = Field(0.3, ge=0.0, le=5.0)
    judge_max_tokens: int = Field(8, ge=1)
    judge_seed: int = Field(0, ge=0)

    # -- execution
    batch_size: int = Field(256, ge=1, description="samples per stage-2 batch (embedding and judge calls)")
    embed_batch: int = Field(64, ge=1)
