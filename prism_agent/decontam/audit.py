"""One audit line per dropped sample: which stage dropped it, against which benchmark item, and the
evidence (the shared n-gram, or the similarity and the judge's answer), with both texts so that a
reviewer can check the decision without looking anything up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Stage = Literal["ngram", "judge"]


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    stage: Stage
    benchmark: str
    item_id: str
    ngram: str | None = None  # stage 1: the first shared normalised n-gram
    shared_ngrams: int | None = None  # stage 1: distinct n-grams shared with the item
    jaccard: float | None = None  # stage 1: Jaccard similarity of the n-gram sets
    also_matched: list[str] = []  # stage 1: "benchmark:item_id" of other items with as many shared n-grams
    similarity: float | None = None  # stage 2: cosine similarity of the sentence embeddings
    judge_answer: str | None = None  # stage 2: "yes" (what dropped it)
    judge_raw: str | None = None  # stage 2: the judge's full completion
    judge_model: str | None = None
    text: str  # the sample's compared text
    item_text: str  # the benchmark item's compared text
