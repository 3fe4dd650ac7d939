"""Benchmark sets to decontaminate against: built-in names or the user's own `NAME=path.jsonl[:field]`.

Built-in sets come from the offline data registry (pulled on first use). A user file is JSONL; each row's
compared text is `field` when one is named, otherwise the task's own text of the row (math: `prompt`;
NLI: `premise` + `hypothesis`, or a `Premise: …\\nHypothesis: …` prompt). Row ids are the `id` field or
`NAME:<line>`. The fingerprint covers every item's benchmark, id and text, so caches keyed by it (the
n-gram index, the embeddings) follow the benchmark *content*, not file names or dates.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prism_agent.data.pull import ensure
from prism_agent.data.reader import Sample
from prism_agent.data.registry import DATASETS
from prism_agent.errors import BadInputError
from prism_agent.jsonl import numbered
from prism_agent.models.pull import Step
from prism_agent.tasks.base import Task

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class BenchmarkItem:
    benchmark: str
    id: str
    text: str  # compared (n-grams, embeddings)
    judge_text: str  # shown to the judge


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path | None = None  # None: a built-in set
    field: str | None = None


@dataclass
class Benchmark:
    name: str
    source: str
    items: list[BenchmarkItem]


def parse_spec(spec: str) -> Spec:
    """`NAME` (built-in) or `NAME=path.jsonl[:field]`."""
    spec = spec.strip()
    if "=" not in spec:
        if spec not in DATASETS:
            raise BadInputError(f"unknown benchmark {spec!r}; built-in: {', '.join(DATASETS)}; "
                                "or give your own as NAME=path.jsonl[:field]")
        return Spec(spec)
    name, _, rest = spec.partition("=")
    name = name.strip()
    if not _NAME.match(name):
        raise BadInputError(f"--benchmark {spec!r}: the name must be letters, digits, '.', '_' or '-'")
    if not rest:
        raise BadInputError(f"--benchmark {spec!r}: no path after '='")
    path, field = Path(rest), None
    if not path.exists() and ":" in rest:
        head, _, tail = rest.rpartition(":")
        path, field = Path(head), tail or None
    if not path.is_file():
        raise BadInputError(f"--benchmark {name}: {path}: no such file")
    return Spec(name, path, field)


def _sample(row: dict, sid: str) -> Sample:
    prompt = row.get("prompt")
    extra = {k: v for k, v in row.items() if k not in ("id", "prompt")}
    return Sample(id=sid, prompt=prompt if isinstance(prompt, str) else "", response="", extra=extra)


def _items_from_rows(name: str, rows: Iterable[tuple[int, dict]], task: Task, field: str | None,
                     where: str) -> list[BenchmarkItem]:
    items, seen = [], set()
    for lineno, row in rows:
        if not isinstance(row, dict):
            raise BadInputError(f"{where}: line {lineno} is not a JSON object")
        sid = str(row["id"]) if isinstance(row.get("id"), (str, int)) else f"{name}:{lineno}"
        if sid in seen:
            raise BadInputError(f"{where}: duplicate id {sid!r} at line {lineno}")
        seen.add(sid)
        if field is not None:
            text = row.get(field)
            if not isinstance(text, str) or not text.strip():
                raise BadInputError(f"{where}: line {lineno} has no non-empty string field {field!r}")
            items.append(BenchmarkItem(name, sid, text, text))
            continue
        sample = _sample(row, sid)
        text = task.compare_text(sample)
        if not text.strip():
            raise BadInputError(f"{where}: line {lineno} has no 'prompt'"
                                f"{' (or premise/hypothesis)' if task.name == 'nli' else ''}; "
                                "name the text column as NAME=path.jsonl:FIELD")
        items.append(BenchmarkItem(name, sid, text, task.judge_text(sample)))
    if not items:
        raise BadInputError(f"{where}: no benchmark items")
    return items


def load(spec: Spec, task: Task, *, step: Step | None = None) -> Benchmark:
    if spec.path is None:
        ds = DATASETS[spec.name]
        if ds.task != task.data_kind:
            raise BadInputError(f"benchmark {spec.name} is a {ds.task} set; this is a {task.name} run")
        path = ensure(spec.name, step=step)
        items = _items_from_rows(spec.name, numbered(path, strict=True), task, None, spec.name)
        return Benchmark(spec.name, f"{ds.archive.requirement}:{ds.member}", items)
    items = _items_from_rows(spec.name, numbered(spec.path, strict=True), task, spec.field, str(spec.path))
    return Benchmark(spec.name, str(spec.path) + (f":{spec.field}" if spec.field else ""), items)


def load_all(specs: Iterable[str], task: Task, *, step: Step | None = None) -> list[Benchmark]:
    parsed = [parse_spec(s) for s in specs]
    if not parsed:
        raise BadInputError("no benchmarks to decontaminate against")
    names = [p.name for p in parsed]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise BadInputError(f"benchmark {dup!r} given twice")
    return [load(p, task, step=step) for p in parsed]


def fingerprint(benchmarks: list[Benchmark], *extra: object) -> str:
    """sha256 over every item (benchmark, id, compared text, judge text) and any settings in `extra`."""
    digest = hashlib.sha256(json.dumps([str(e) for e in extra]).encode())
    for b in benchmarks:
        for it in b.items:
            digest.update(json.dumps([it.benchmark, it.id, it.text, it.judge_text], ensure_ascii=False).encode())
            digest.update(b"\n")
    return digest.hexdigest()
