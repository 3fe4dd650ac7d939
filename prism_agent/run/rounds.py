"""The loop's step names and what each step reports, typed once.

The graph's nodes, the plain log and the dashboard of `prism-agent run`, `prism-agent status` and the report
all read these; none of them spells a step's name or a summary field as a string of its own. A step's
summary is what it writes to `rounds/round-N/<file>.json` (the round's steps) and what its event and the
graph state's `last` carry.

Summaries are read back from run directories written by earlier versions, so `load` ignores fields it does
not know and every field added later has a default; building one in code is strict (an unknown field is a
bug).
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Step(str, Enum):
    """A node of the loop's graph (a `str`, so it is the node's name wherever a string is expected)."""

    PREPARE = "prepare"
    MEASURE = "measure"
    CLUSTER = "cluster"
    GENERATE = "generate"
    VOTE = "vote"
    REJECT = "reject"
    DECONTAMINATE = "decontaminate"
    COMMIT = "commit"
    FINISH = "finish"

    def __str__(self) -> str:  # as StrEnum does (3.11+); the project supports 3.10
        return self.value

    @classmethod
    def of(cls, name: str | Step) -> Step:
        """A step from its node name or its files' stem (`decontam`)."""
        return cls.DECONTAMINATE if name == "decontam" else cls(name)

    @property
    def file(self) -> str:
        """The stem of the step's files in a round folder (`decontam.json`: the name run directories have
        always used, kept so that older runs resume)."""
        return "decontam" if self is Step.DECONTAMINATE else self.value


ROUND_STEPS = (Step.GENERATE, Step.VOTE, Step.REJECT, Step.DECONTAMINATE)  # the steps with round files
FUNNEL_STEPS = (*ROUND_STEPS, Step.COMMIT)  # what a round's funnel (state `last`, the `round` event) holds


class StepSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    step: ClassVar[Step]

    @classmethod
    def load(cls, data: dict | None):
        """A summary as a file, an event or the graph state holds it (any version); None stays None."""
        if data is None:
            return None
        return cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})

    def as_json(self) -> dict:
        """What is written and emitted: a field with nothing to say (None) is left out."""
        return self.model_dump(mode="json", exclude_none=True)


class PrepareSummary(StepSummary):
    step = Step.PREPARE
    seeds: int
    pool: int


class MeasureSummary(StepSummary):
    step = Step.MEASURE
    g_vendi: float
    g_vendi_q2: float | None = None
    pool: int
    gram: str | None = None  # the running Gram matrix was cached, updated or recomputed (diversity/gram.py)
    audit: dict | None = None  # on audit rounds: the full recompute's rel_err, rows, repaired


class ClusterSummary(StepSummary):
    step = Step.CLUSTER
    k: int
    sparse: int  # sparse clusters
    pool: int
    fit: str | None = None  # cold, warm (refit), update or resumed (cluster/incremental.py)


class GenerateSummary(StepSummary):
    step = Step.GENERATE
    requests: int = 0
    generated: int = 0  # sample blocks the completions held
    parsed: int = 0  # new, well-formed candidates
    tokens: int = 0
    seconds: float = 0.0
    replayed: int = 0  # requests answered from the call log
    failed: int = 0  # requests that failed for good and were skipped (rounds/round-N/generate-failed.jsonl)
    # parse yield per endpoint (or per backend model without one): completions returned, and those holding
    # at least one well-formed sample; `status` sums them over rounds
    endpoints: dict[str, dict[str, int]] | None = None


class VoteSummary(StepSummary):
    step = Step.VOTE
    candidates: int = 0
    voted: int = 0
    seconds: float = 0.0
    failed: int = 0  # solver requests that failed for good (their candidates count as not voted)


class RejectSummary(StepSummary):
    step = Step.REJECT
    voted: int = 0
    featurized: int = 0
    sparse: int = 0  # kept by the run's acceptance rule (the paper's: nearest a sparse centroid)
    seconds: float = 0.0


class DecontamSummary(StepSummary):
    step = Step.DECONTAMINATE
    total: int = 0
    kept: int = 0
    dropped_ngram: int = 0
    dropped_judge: int = 0
    judge_asked: int = 0
    judge_unclear: int = 0
    judge_below_floor: int = 0
    judge_failed: int = 0
    by_benchmark: dict[str, dict[str, int]] = {}
    seconds: float = 0.0
    failed: int = 0  # judge calls that failed for good (those candidates are neither kept nor counted dropped)


class CommitSummary(StepSummary):
    step = Step.COMMIT
    accepted: int = 0
    total: int = 0
    already: bool | None = None  # True: the round had been committed before (a resumed run)


SUMMARIES: dict[Step, type[StepSummary]] = {cls.step: cls for cls in (
    PrepareSummary, MeasureSummary, ClusterSummary, GenerateSummary, VoteSummary, RejectSummary, DecontamSummary,
    CommitSummary)}


class Funnel(BaseModel):
    """A round's funnel, each stage's count, from the summaries of its steps."""

    model_config = ConfigDict(frozen=True)
    STAGES: ClassVar[tuple[str, ...]] = ("generated", "parsed", "voted", "sparse", "decontaminated", "accepted")

    generated: int = 0
    parsed: int = 0
    voted: int = 0
    sparse: int = 0
    decontaminated: int = 0
    accepted: int = 0

    @classmethod
    def of(cls, last: dict | None) -> Funnel:
        """From a round's `last` (state) or `funnel` (event): step name → summary dict."""
        last = last or {}
        g = GenerateSummary.load(last.get(Step.GENERATE)) or GenerateSummary()
        v = VoteSummary.load(last.get(Step.VOTE)) or VoteSummary()
        r = RejectSummary.load(last.get(Step.REJECT)) or RejectSummary()
        d = DecontamSummary.load(last.get(Step.DECONTAMINATE)) or DecontamSummary()
        c = CommitSummary.load(last.get(Step.COMMIT)) or CommitSummary()
        return cls(generated=g.generated, parsed=g.parsed, voted=v.voted, sparse=r.sparse, decontaminated=d.kept,
                   accepted=c.accepted)

    def counts(self) -> dict[str, int]:
        return {s: getattr(self, s) for s in self.STAGES}
