"""Read (id, prompt, response) samples from JSONL, Parquet or a Hugging Face `datasets` folder.

Reading is two-phase so that bad input is reported before any expensive work: `scan` validates every
row once (naming bad line numbers, counting them under `skip_bad`) and `iter_samples` then streams the
good rows in order. Neither holds the whole dataset in memory.

Row schema: `{"id": str, "prompt": str, "response": str, ...}`; extra fields are kept in `Sample.extra`.
A row without an id gets `"<file stem>:<row number>"` (1-based), stable across runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prism_agent.errors import BadInputError
from prism_agent.jsonl import numbered


@dataclass(frozen=True)
class Fields:
    """Which columns hold the id, prompt and response (e.g. `question`/`answer` for GSM8K)."""

    id: str = "id"
    prompt: str = "prompt"
    response: str = "response"


@dataclass
class Sample:
    id: str
    prompt: str
    response: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScanReport:
    path: Path
    rows: int  # good rows
    bad_rows: list[tuple[int, str]]  # (1-based row number, reason); all of them, for counting

    @property
    def bad(self) -> int:
        return len(self.bad_rows)


def _detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "state.json").is_file():
            return "hf"
        if (path / "dataset_dict.json").is_file():
            raise BadInputError(
                f"{path} is a DatasetDict folder; pass one split's folder, e.g. {path / 'train'}"
            )
        raise BadInputError(f"{path} is a folder but not a Hugging Face `datasets` folder (no state.json)")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise BadInputError(f"{path}: unsupported data format {suffix or '(no extension)'}; use .jsonl, .parquet "
                        "or a Hugging Face datasets folder")


def _raw_rows(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(1-based row number, parsed object or an Exception) for every row."""
    if fmt == "jsonl":
        yield from numbered(path)
        return
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=4096)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"{path}: not a readable Parquet file ({exc})") from None
    else:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        files = [path / f["filename"] for f in state.get("_data_files", [])]

        def _arrow_batches():
            for f in files:
                with pa.memory_map(str(f)) as source:
                    yield from pa.ipc.open_stream(source)

        batches = _arrow_batches()
    n = 0
    for batch in batches:
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _validate(row: Any, fields: Fields) -> str | None:
    if isinstance(row, Exception):
        return "malformed JSON"
    if not isinstance(row, dict):
        return "not a JSON object"
    for name in (fields.prompt, fields.response):
        if name not in row:
            return f"missing field {name!r}"
        if not isinstance(row[name], str) or not row[name].strip():
            return f"field {name!r} is not a non-empty string"
    if fields.id in row and not isinstance(row[fields.id], (str, int)):
        return f"field {fields.id!r} is not a string"
    return None


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise BadInputError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise BadInputError(f"{path}: file is empty")


def scan(path: str | Path, *, fields: Fields = Fields(), skip_bad: bool = False,
         hint: str = "fix them or pass --skip-bad") -> ScanReport:
    """Validate every row; raise one readable error for bad input unless `skip_bad`. `hint` ends the error
    (commands without --skip-bad say something else)."""
    path = Path(path)
    _check_exists(path)
    fmt = _detect_format(path)
    good, bad, seen, dup = 0, [], set(), None
    for rowno, row in _raw_rows(path, fmt):
        reason = _validate(row, fields)
        if reason is None:
            sid = _sample_id(path, rowno, row, fields)
            if sid in seen:
                dup = dup or (rowno, sid)
                reason = f"duplicate id {sid!r}"
            else:
                seen.add(sid)
        if reason is None:
            good += 1
        else:
            bad.append((rowno, reason))
    if dup and not skip_bad:
        raise BadInputError(f"{path}: duplicate id {dup[1]!r} at row {dup[0]}; ids must be unique")
    if bad and not skip_bad:
        shown = ", ".join(str(r) for r, _ in bad[:10]) + (" …" if len(bad) > 10 else "")
        raise BadInputError(f"{path}: {len(bad)} bad row(s) ({bad[0][1]} at row {bad[0][0]}); rows {shown}; "
                            f"{hint}")
    if good == 0:
        raise BadInputError(f"{path}: no usable rows (need fields {fields.prompt!r} and {fields.response!r})")
    return ScanReport(path=path, rows=good, bad_rows=bad)


def _sample_id(path: Path, rowno: int, row: dict, fields: Fields) -> str:
    value = row.get(fields.id)
    return str(value) if value is not None else f"{path.stem}:{rowno}"


def iter_samples(path: str | Path, *, fields: Fields = Fields(), start: int = 0,
                 stop: int | None = None) -> Iterator[Sample]:
    """Good rows [start, stop) in file order (`start` for resuming). Call `scan` first."""
    path = Path(path)
    fmt = _detect_format(path)
    seen: set[str] = set()
    k = 0
    for rowno, row in _raw_rows(path, fmt):
        if _validate(row, fields) is not None:
            continue
        sid = _sample_id(path, rowno, row, fields)
        if sid in seen:
            continue
        seen.add(sid)
        if stop is not None and k >= stop:
            return
        if k >= start:
            extra = {key: v for key, v in row.items() if key not in (fields.id, fields.prompt, fields.response)}
            yield Sample(id=sid, prompt=row[fields.prompt], response=row[fields.response], extra=extra)
        k += 1
