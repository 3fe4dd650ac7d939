"""Both stages for a batch of samples: `decontam/pipeline.py` streams a file through it for the `decontam`
command, and the loop's decontaminate step checks each round's candidates with it.

Stage 1 (n-gram overlap) runs first on every sample; only survivors reach stage 2 (nearest benchmark item
by embedding, then the judge), so the expensive judge is never asked about a sample already dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prism_agent.config.decontam import DecontamConfig
from prism_agent.data.reader import Sample
from prism_agent.decontam.audit import AuditRecord
from prism_agent.decontam.benchmarks import Benchmark, BenchmarkItem
from prism_agent.decontam.judge import judge_request, parse_verdict
from prism_agent.decontam.ngram_index import NgramIndex
from prism_agent.decontam.retrieval import EmbeddingIndex
from prism_agent.errors import BadInputError
from prism_agent.generators import Generator
from prism_agent.models.pull import Step
from prism_agent.paths import cache_root
from prism_agent.tasks.base import Task

JudgeOutcome = Literal["yes", "no", "unclear", "below_floor", "not_asked", "failed"]


@dataclass
class Verdict:
    sample: Sample
    dropped: AuditRecord | None
    judge: JudgeOutcome
    nearest: BenchmarkItem | None = None  # stage 2: the nearest benchmark item by embedding
    similarity: float | None = None
    judge_raw: str | None = None  # the judge's completion, also when it said no


@dataclass
class Counts:
    """Running totals, per stage and per benchmark."""

    total: int = 0
    kept: int = 0
    ngram: int = 0
    judge: int = 0
    judge_asked: int = 0
    judge_unclear: int = 0
    below_floor: int = 0
    judge_failed: int = 0  # judge calls that failed for good: neither kept nor dropped as contaminated
    by_benchmark: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, v: Verdict) -> None:
        self.total += 1
        self.judge_asked += v.judge in ("yes", "no", "unclear")
        self.judge_unclear += v.judge == "unclear"
        self.below_floor += v.judge == "below_floor"
        self.judge_failed += v.judge == "failed"
        if v.judge == "failed":
            return
        if v.dropped is None:
            self.kept += 1
            return
        stage = v.dropped.stage
        setattr(self, stage, getattr(self, stage) + 1)
        row = self.by_benchmark.setdefault(v.dropped.benchmark, {"ngram": 0, "judge": 0})
        row[stage] += 1

    def as_json(self) -> dict:
        return {"total": self.total, "kept": self.kept, "dropped_ngram": self.ngram, "dropped_judge": self.judge,
                "judge_asked": self.judge_asked, "judge_unclear": self.judge_unclear,
                "judge_below_floor": self.below_floor, "judge_failed": self.judge_failed,
                "by_benchmark": self.by_benchmark}


def decontam_cache_dir() -> Path:
    return cache_root() / "decontam"


class Decontaminator:
    def __init__(self, task: Task, benchmarks: list[Benchmark], cfg: DecontamConfig, *,
                 judge: Generator | None = None, embedder=None, cache_dir: Path | None = None,
                 step: Step | None = None):
        if cfg.judge and judge is None:
            raise BadInputError("stage 2 needs a judge backend (or turn the judge off)")
        self.task, self.benchmarks, self.cfg, self.judge = task, benchmarks, cfg, judge
        cache_dir = cache_dir or decontam_cache_dir()
        report = step or (lambda _s: None)
        report("n-gram index")
        self.ngram, self.ngram_cached = NgramIndex.cached(benchmarks, cfg, cache_dir)
        self.embeddings: EmbeddingIndex | None = None
        self.embeddings_cached = False
        if cfg.judge:
            if embedder is None:
                from prism_agent.diversity.embedding import SentenceEmbedder

                report("sentence embedder")
                embedder = SentenceEmbedder(step=step)
            report("benchmark embeddings")
            self.embeddings, self.embeddings_cached = EmbeddingIndex.cached(benchmarks, embedder, cache_dir,
                                                                            batch=cfg.embed_batch)

    @property
    def items(self) -> int:
        return sum(len(b.items) for b in self.benchmarks)

    def stage1(self, sample: Sample) -> AuditRecord | None:
        text = self.task.compare_text(sample)
        m = self.ngram.match(text)
        if m is None:
            return None
        return AuditRecord(id=sample.id, stage="ngram", benchmark=m.item.benchmark, item_id=m.item.id,
                           ngram=m.ngram, shared_ngrams=m.shared, jaccard=round(m.jaccard, 4),
                           also_matched=[f"{it.benchmark}:{it.id}" for it in m.also], text=text,
                           item_text=m.item.text)

    async def check(self, samples: Sequence[Sample]) -> list[Verdict]:
        """Verdicts in input order."""
        out: list[Verdict | None] = [None] * len(samples)
        survivors: list[int] = []
        for i, s in enumerate(samples):
            rec = self.stage1(s)
            if rec is not None:
                out[i] = Verdict(s, rec, "not_asked")
            else:
                survivors.append(i)
        if self.cfg.judge and survivors:
            await self._stage2([samples[i] for i in survivors], survivors, out)
        else:
            for i in survivors:
                out[i] = Verdict(samples[i], None, "not_asked")
        return out  # type: ignore[return-value]

    async def _stage2(self, samples: list[Sample], where: list[int], out: list[Verdict | None]) -> None:
        assert self.embeddings is not None and self.judge is not None
        texts = [self.task.compare_text(s) for s in samples]
        nearest = self.embeddings.nearest(texts)
        floor = self.cfg.similarity_floor
        ask = [k for k, (_, sim) in enumerate(nearest) if floor is None or sim >= floor]
        for k in set(range(len(samples))) - set(ask):
            out[where[k]] = Verdict(samples[k], None, "below_floor", *nearest[k])
        if not ask:
            return
        requests = [judge_request(self.task, self.task.judge_text(samples[k]), nearest[k][0].judge_text,
                                  samples[k].id, self.cfg) for k in ask]
        results, failed = await self.judge.generate_settled(requests)
        model = self.judge.model_id
        for j, (k, result) in enumerate(zip(ask, results, strict=True)):
            if result is None:  # failed for good: not judged, so the caller must not keep it as clean
                out[where[k]] = Verdict(samples[k], None, "failed", *nearest[k], failed[j])
                continue
            raw = result.texts[0] if result.texts else ""
            verdict = parse_verdict(raw)
            item, sim = nearest[k]
            if verdict is True:
                rec = AuditRecord(id=samples[k].id, stage="judge", benchmark=item.benchmark, item_id=item.id,
                                  similarity=round(sim, 4), judge_answer="yes", judge_raw=raw, judge_model=model,
                                  text=texts[k], item_text=item.text)
                out[where[k]] = Verdict(samples[k], rec, "yes", item, sim, raw)
            else:
                outcome: JudgeOutcome = "no" if verdict is False else "unclear"
                out[where[k]] = Verdict(samples[k], None, outcome, item, sim, raw)
