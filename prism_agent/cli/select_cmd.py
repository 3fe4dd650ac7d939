"""`prism-agent select`: the N rows of an existing dataset that maximise G-Vendi, written in pick order."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import typer

from prism_agent.cli.console import err, out, progress_bar, step_reporter
from prism_agent.data.reader import Fields
from prism_agent.errors import BadInputError


def select(
    data: Annotated[Path, typer.Argument(help="JSONL, Parquet or Hugging Face datasets folder with id/prompt/"
                                         "response rows, or a built-in set name (see `prism-agent data list`)")],
    size: Annotated[int, typer.Option("--size", min=1, help="rows to keep")],
    out_path: Annotated[Path, typer.Option("--out", help="where to write them: .jsonl or .parquet")],
    method: Annotated[str, typer.Option(help="gain: greedy on G-Vendi's marginal gain | sparse: one row per "
                                        "gradient cluster, smallest clusters first | random")] = "gain",
    seed: Annotated[int, typer.Option(help="seed of random and of the k-means behind sparse")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
    proxy: Annotated[str | None, typer.Option(help="proxy model [default: smollm2-135m-instruct]")] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    dtype: Annotated[str, typer.Option(help="featurizer dtype: auto | bfloat16 | float32")] = "auto",
    limit: Annotated[int | None, typer.Option(min=1, help="select from the first N usable rows only")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="skip malformed rows (counted)")] = False,
    id_field: Annotated[str, typer.Option(help="column holding the id")] = "id",
    prompt_field: Annotated[str, typer.Option(help="column holding the prompt")] = "prompt",
    response_field: Annotated[str, typer.Option(help="column holding the response")] = "response",
) -> None:
    """Pick the --size rows of DATA whose gradient features maximise G-Vendi, and write them with their pick
    order (`select_rank`) and, for `gain`, how much each raised G-Vendi (`select_gain`).

    Features are computed as `prism-agent measure` computes them, and cached the same way: selecting again
    (another size or method) reuses them."""
    from pydantic import ValidationError

    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.data.pull import resolve_data
    from prism_agent.diversity.select import METHODS
    from prism_agent.diversity.select import select as pick
    from prism_agent.diversity.vendi import vendi
    from prism_agent.errors import one_line
    from prism_agent.measure_dataset import featurize

    if method not in METHODS:
        raise BadInputError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if out_path.suffix.lower() not in (".jsonl", ".parquet"):
        raise BadInputError(f"--out {out_path}: expected a .jsonl or .parquet file name")
    try:
        config = FeaturizerConfig(dtype=dtype, device=device, threads=threads)
    except ValidationError as exc:
        raise BadInputError(one_line(exc, flag=True)) from None
    fields = Fields(id=id_field, prompt=prompt_field, response=response_field)
    t0 = time.perf_counter()
    with step_reporter("proxy") as step, progress_bar() as bar:
        task = bar.add_task(data.name, total=None, rate="")
        source = resolve_data(data, step=step)
        store, stats = featurize(source, config=config, proxy=proxy, fields=fields, skip_bad=skip_bad, limit=limit,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total),
                                 step=step)
    import numpy as np

    features = np.concatenate(list(store.iter_blocks())) if len(store) else np.zeros((0, store.dim))
    ids = store.ids()
    chosen = pick(features, size, method, seed=seed)
    rows = _rows_by_id(source, fields, {ids[p] for p in chosen.positions})
    records = []
    for rank, (p, gain) in enumerate(zip(chosen.positions, chosen.gains, strict=True), 1):
        s = rows[ids[p]]
        records.append({fields.id: s.id, fields.prompt: s.prompt, fields.response: s.response, **s.extra,
                        "select_rank": rank, "select_gain": None if math.isnan(gain) else float(gain)})
    _write(out_path, records)
    summary = {"path": str(source), "rows": len(ids), "size": size, "method": method,
               "g_vendi": chosen.g_vendi, "g_vendi_all": vendi(features).q1, "out": str(out_path),
               "seconds": round(time.perf_counter() - t0, 3), "dtype": stats.dtype}
    if json_out:
        print(json.dumps(summary), flush=True)
    else:
        out.print(f"selected {size} of {len(ids)} rows ({method}): G-Vendi {chosen.g_vendi:.3f} "
                  f"(all rows: {summary['g_vendi_all']:.3f}) → {out_path}", highlight=False, soft_wrap=True)
    if stats.bad_rows or stats.too_long:
        err.print(f"  note: {stats.bad_rows} bad rows skipped, {stats.too_long} too long for the proxy",
                  highlight=False)


def _rows_by_id(path: Path, fields: Fields, wanted: set[str]) -> dict:
    from prism_agent.data.reader import iter_samples

    found = {}
    for s in iter_samples(path, fields=fields):
        if s.id in wanted:
            found[s.id] = s
            if len(found) == len(wanted):
                break
    return found


def _write(path: Path, records: list[dict]) -> None:
    """Written beside the target and renamed into place: an interrupted write leaves no half file."""
    from prism_agent.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        write_atomic(path, lambda fh: fh.write(data))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(records)
    write_atomic(path, lambda fh: pq.write_table(table, fh))
