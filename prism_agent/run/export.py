"""Export a run's accepted samples as JSONL, Parquet or a Hugging Face `datasets` folder, streaming.

The `hf` format needs the optional `datasets` library (`pip install 'prism-agent[hf]'`).

JSONL keeps each row as committed (provenance nested). Parquet and datasets folders need one schema, so
the scalar fields stay columns and nested provenance (few-shot ids, vote record, decontamination result,
models) becomes JSON text columns.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from prism_agent.atomic import fsync_dir, json_line, staged
from prism_agent.errors import BadInputError
from prism_agent.run.paths import RunPaths
from prism_agent.run.samples import SampleLog

COLUMNS = ("id", "prompt", "response", "answer", "round", "request", "cluster", "nearest_cluster", "cosine")
NESTED = ("fewshot", "vote", "decontam", "models")
FORMATS = ("jsonl", "parquet", "hf")


def _flat(row: dict) -> dict:
    out = {k: row.get(k) for k in COLUMNS}
    out["answer"] = None if out["answer"] is None else str(out["answer"])
    for k in NESTED:
        out[k] = json.dumps(row.get(k), ensure_ascii=False)
    return out


def _schema():
    import pyarrow as pa

    types = {"round": pa.int64(), "request": pa.int64(), "cluster": pa.int64(), "nearest_cluster": pa.int64(),
             "cosine": pa.float64()}
    return pa.schema([(k, types.get(k, pa.string())) for k in (*COLUMNS, *NESTED)])


def _batches(log: SampleLog, size: int = 10_000) -> Iterator[list[dict]]:
    buf: list[dict] = []
    for row in log:
        buf.append(_flat(row))
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def _save_hf(log: SampleLog, schema, folder: Path) -> int:
    """A `datasets.save_to_disk` folder, written by `datasets` itself so that its layout follows the
    library's version. The rows stream into one Arrow file beside the output first; `Dataset.from_file`
    memory-maps it, so memory holds one batch, not the dataset."""
    try:
        from datasets import Dataset
    except ImportError:
        raise BadInputError("--format hf needs the `datasets` library: pip install 'prism-agent[hf]'") from None
    import pyarrow as pa

    scratch = folder.with_name(folder.name + ".arrow")
    n = 0
    try:
        with pa.OSFile(str(scratch), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in _batches(log):
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
        ds = Dataset.from_file(str(scratch), in_memory=False)
        ds.save_to_disk(str(folder))
        del ds
    finally:
        scratch.unlink(missing_ok=True)
    return n


def export(root: Path, fmt: str, out: Path) -> int:
    """Write the committed rows to `out` and return how many. A file goes through `atomic.staged` and an
    `hf` folder is built under a hidden name and renamed, so an interrupted export leaves the previous
    output, never a half one; a live run's uncommitted rows are not read (`SampleLog(readonly=True)`)."""
    if fmt not in FORMATS:
        raise BadInputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    paths = RunPaths(Path(root))
    if not paths.manifest.exists():
        raise BadInputError(f"{root} is not a prism-agent run directory (no manifest.json)")
    log = SampleLog(paths.samples, paths.commits, readonly=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        tmp = out.with_name(f".{out.name}.partial")
        _remove(tmp)
        n = _save_hf(log, _schema(), tmp)
        _remove(out)
        tmp.rename(out)
        fsync_dir(out.parent)
        return n
    if out.is_dir():  # an earlier `hf` export under the same name: a file cannot replace a folder
        shutil.rmtree(out)
    n = 0
    with staged(out) as fh:
        if fmt == "jsonl":
            for row in log:
                fh.write(json_line(row).encode("utf-8"))
                n += 1
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = _schema()
            with pq.ParquetWriter(fh, schema) as writer:
                for batch in _batches(log):
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    n += len(batch)
    return n


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
