"""Export a run's accepted samples as JSONL, Parquet or a Hugging Face `datasets` folder, streaming.

JSONL keeps each row as committed (provenance nested). Parquet and datasets folders need one schema, so
the scalar fields stay columns and nested provenance (few-shot ids, vote record, decontamination result,
models) becomes JSON text columns.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

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


def export(root: Path, fmt: str, out: Path) -> int:
    if fmt not in FORMATS:
        raise BadInputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    paths = RunPaths(Path(root))
    if not paths.manifest.exists():
        raise BadInputError(f"{root} is not a prism-agent run directory (no manifest.json)")
    log = SampleLog(paths.samples, paths.commits, readonly=True)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    if fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            for row in log:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema()
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema) as writer:
                for batch in _batches(log):
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    n += len(batch)
        else:  # a `datasets.save_to_disk` folder: Arrow stream file + dataset_info.json + state.json
            tmp.mkdir()
            name = "data-00000-of-00001.arrow"
            with pa.OSFile(str(tmp / name), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in _batches(log):
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    n += len(batch)
            features = {f.name: {"dtype": "float64" if f.type == pa.float64() else
                                 "int64" if f.type == pa.int64() else "string", "_type": "Value"} for f in schema}
            (tmp / "dataset_info.json").write_text(json.dumps({"features": features}, indent=2))
            (tmp / "state.json").write_text(json.dumps({
                "_data_files": [{"filename": name}], "_fingerprint": paths.root.name, "_format_columns": None,
                "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": None}, indent=2))
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    tmp.rename(out)
    return n
