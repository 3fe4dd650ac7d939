"""`decontam` over a file: stream samples in batches through both stages, write the clean file and the
audit, count per stage and benchmark.

Rows are copied to the clean file as they were read (only an `id` is added where the row had none, so
that the audit can name it). Both files are written to temporary names, fsynced and renamed only when the
whole input is done: an interrupted run leaves the previous outputs untouched, never a half file. Memory
holds one batch of samples, not the dataset.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prism_agent.atomic import json_line, staged
from prism_agent.data.reader import Fields, Sample, iter_samples, scan
from prism_agent.decontam.decontaminator import Counts, Decontaminator
from prism_agent.generators.base import GenerationError


@dataclass
class Result:
    counts: Counts
    out: Path
    audit: Path
    bad_rows: int
    seconds: float

    def as_json(self) -> dict:
        return {**self.counts.as_json(), "bad_rows": self.bad_rows, "seconds": round(self.seconds, 2),
                "out": str(self.out), "audit": str(self.audit)}


def _row(sample: Sample, fields: Fields) -> dict:
    return {fields.id: sample.id, fields.prompt: sample.prompt, **sample.extra}


def _batches(samples: Iterator[Sample], size: int) -> Iterator[list[Sample]]:
    batch: list[Sample] = []
    for s in samples:
        batch.append(s)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def scan_input(path: Path, fields: Fields, *, skip_bad: bool) -> int:
    """Validate the input before any model loads; returns the number of bad rows skipped."""
    return scan(path, fields=_prompt_only(fields), skip_bad=skip_bad).bad


def _prompt_only(fields: Fields) -> Fields:
    # Decontamination compares prompts only: a problems-only file (no solutions yet) is valid input, and
    # whatever response column a row has travels on untouched among its other fields.
    return Fields(id=fields.id, prompt=fields.prompt, response=fields.prompt)


async def run_async(path: Path, decon: Decontaminator, out: Path, audit: Path, *, fields: Fields = Fields(),
                    limit: int | None = None, bad_rows: int = 0,
                    progress: Callable[[int, Counts], None] | None = None) -> Result:
    start = time.perf_counter()
    counts = Counts()
    out.parent.mkdir(parents=True, exist_ok=True)
    audit.parent.mkdir(parents=True, exist_ok=True)
    samples = iter_samples(path, fields=_prompt_only(fields), stop=limit)
    with staged(out) as clean_fh, staged(audit) as audit_fh:
        for batch in _batches(samples, decon.cfg.batch_size):
            verdicts = await decon.check(batch)
            if failed := [v for v in verdicts if v.judge == "failed"]:  # a file is cleaned whole or not at all
                more = f" ({len(failed)} of {len(verdicts)} judge requests failed)" if len(failed) > 1 else ""
                raise GenerationError(f"{failed[0].judge_raw}{more}")
            for v in verdicts:
                counts.add(v)
                if v.dropped is None:
                    clean_fh.write(json_line(_row(v.sample, fields)).encode())
                else:
                    audit_fh.write((v.dropped.model_dump_json() + "\n").encode())
            if progress is not None:
                progress(counts.total, counts)
    return Result(counts, out, audit, bad_rows, time.perf_counter() - start)


def run(path: Path, decon: Decontaminator, out: Path, audit: Path, **kwargs) -> Result:
    return asyncio.run(run_async(path, decon, out, audit, **kwargs))
