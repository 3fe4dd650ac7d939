"""`prism-agent measure`: G-Vendi (and optionally embedding Vendi) of one or more datasets."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from prism_agent.cli.console import err, out, progress_bar, step_reporter
from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.data.reader import Fields
from prism_agent.errors import BadInputError, one_line


def _default(field: str):
    """The featurizer's own default, so the CLI cannot drift from FeaturizerConfig."""
    return FeaturizerConfig.model_fields[field].default


def measure(
    data: Annotated[list[Path], typer.Argument(help="JSONL, Parquet or Hugging Face datasets folder(s) with "
                                               "id/prompt/response rows, or built-in set names "
                                               "(see `prism-agent data list`)")],
    proxy: Annotated[str | None, typer.Option(help="proxy model: pinned name, HF folder or .gguf file "
                                              "[default: smollm2-135m-instruct]")] = None,
    featurizer: Annotated[str, typer.Option(help="fast (Kronecker-projected, batched) or exact (the paper's "
                                            "full-gradient estimator)")] = "fast",
    embedding: Annotated[bool, typer.Option("--embedding", help="also compute the all-MiniLM-L6-v2 "
                                            "embedding Vendi")] = False,
    features_dir: Annotated[Path | None, typer.Option(help="feature store folder (one dataset only) "
                                                      "[default: keyed in the user cache]")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object per dataset")] = False,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    dim: Annotated[int, typer.Option(help="feature dimension d")] = _default("dim"),
    seed: Annotated[int, typer.Option(help="projection seed")] = _default("seed"),
    rank: Annotated[int, typer.Option(help="fast: projection rank per side of each layer")] = _default("rank_in"),
    batch_tokens: Annotated[int, typer.Option(help="fast: padded tokens per batch")] = _default("batch_tokens"),
    exact_batch: Annotated[int, typer.Option(help="exact: gradients projected together (memory: "
                                             "≈0.27 GB each for a 135M proxy)")] = _default("exact_batch"),
    dtype: Annotated[str, typer.Option(help="fast: autocast dtype; exact: projection dtype (auto | bfloat16 | "
                                       "float32); auto: bfloat16 where the device runs it natively (CUDA with "
                                       "bf16, CPUs with AMX or AVX512-BF16), else float32")] = _default("dtype"),
    max_tokens: Annotated[int | None, typer.Option(help="token cap per sample: longer responses are "
                                                   "truncated, prompts that leave no room are skipped; "
                                                   "both counted [default: proxy context]")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="measure only the first N usable rows")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="skip malformed rows (counted) instead of "
                                           "stopping")] = False,
    ray: Annotated[str | None, typer.Option("--ray", help="featurize on a Ray cluster: auto (the one `ray start` "
                                            "joined here) | HOST:PORT | ray://HOST:PORT | local (README \"Running "
                                            "on a Ray cluster\")")] = None,
    ray_actors: Annotated[int, typer.Option(help="with --ray: featurizer actors")] = 2,
    ray_gpus_per_actor: Annotated[float, typer.Option(help="with --ray: GPUs per actor (0: CPU actors of "
                                                      "--threads cores each)")] = 0.0,
    ray_batch_size: Annotated[int, typer.Option(help="with --ray: rows per actor call")] = 64,
    id_field: Annotated[str, typer.Option(help="column holding the id")] = "id",
    prompt_field: Annotated[str, typer.Option(help="column holding the prompt")] = "prompt",
    response_field: Annotated[str, typer.Option(help="column holding the response")] = "response",
) -> None:
    """Measure the gradient diversity (G-Vendi) of datasets with a small proxy model.

    Features are cached and resumable: re-running the same command reuses finished shards.
    """
    if features_dir is not None and len(data) > 1:
        raise BadInputError("--features-dir names one store; give one dataset with it")
    try:
        config = FeaturizerConfig(kind=featurizer, dim=dim, seed=seed, rank_in=rank, rank_out=rank,
                                  batch_tokens=batch_tokens, exact_batch=exact_batch, dtype=dtype,
                                  device=device, threads=threads, max_length=max_tokens)
    except ValidationError as exc:
        raise BadInputError(one_line(exc, flag=True)) from None
    fields = Fields(id=id_field, prompt=prompt_field, response=response_field)
    ray_config = _ray_config(ray, ray_actors, ray_gpus_per_actor, threads, ray_batch_size)
    with _ray_session(ray_config):
        results = _measure_all(data, embedding, fields, config, proxy, features_dir, skip_bad, limit, ray_config,
                               json_out)
    if len(results) > 1 and not json_out:
        _print_ranking([r.as_json() for r in results])


def _ray_config(address: str | None, actors: int, gpus: float, threads: int, batch_size: int):
    """The `[ray]` settings of `measure --ray …` (None without --ray), checked as a run's table is."""
    if address is None:
        return None
    from prism_agent.config.distributed import RayConfig
    from prism_agent.distributed.session import check

    try:
        config = RayConfig(address=address, actors=actors, gpus_per_actor=gpus, cpus_per_actor=threads,
                           batch_size=batch_size)
    except ValidationError as exc:
        raise BadInputError("--ray: " + one_line(exc, flag=True)) from None
    check(config)
    return config


@contextmanager
def _ray_session(config):
    """One connection for every dataset of the command (each would otherwise connect and leave again)."""
    if config is None:
        yield
        return
    from prism_agent.distributed.session import RaySession

    session = RaySession.open(config)
    try:
        yield
    finally:
        session.close()


def _measure_all(data, embedding, fields, config, proxy, features_dir, skip_bad, limit, ray_config, json_out):
    from prism_agent.measure_dataset import measure as run_measure

    results = []
    for path in data:
        with step_reporter("proxy") as step, progress_bar() as bar:
            task = bar.add_task(path.name, total=None, rate="")

            def progress(done: int, total: int, task=task, bar=bar) -> None:
                elapsed = bar.tasks[0].elapsed or 0.0
                bar.update(task, completed=done, total=total,
                           rate=f"{done / elapsed:.1f}/s" if elapsed > 0 and done else "")

            result = run_measure(path, embedding=embedding, fields=fields, config=config, proxy=proxy,
                                 features_dir=features_dir, skip_bad=skip_bad, limit=limit, progress=progress,
                                 step=step, ray=ray_config)
        results.append(result)
        row = result.as_json()
        if json_out:
            out.print_json(json.dumps(row)) if out.is_terminal else print(json.dumps(row), flush=True)
        else:
            _print_one(row)
    return results


def _print_one(row: dict) -> None:
    parts = [f"[bold]{row['path']}[/]", f"n={row['n']}", f"G-Vendi={row['g_vendi']:.3f}"]
    if row["embedding_vendi"] is not None:
        parts.append(f"embedding Vendi={row['embedding_vendi']:.3f}")
    parts.append(f"{row['seconds']:.1f}s")
    parts.append(f"{row['dtype']} ({row['dtype_reason']})")
    if row["samples_per_s"]:
        parts.append(f"{row['samples_per_s']:.2f} samples/s ({row['computed']} computed)")
    else:
        parts.append("features from cache")
    out.print("  ".join(parts))
    notes = [f"{row[k]} {label}" for k, label in (("bad_rows", "bad rows skipped"),
             ("too_long", "too long for the proxy, skipped"), ("truncated", "truncated")) if row[k]]
    if notes:
        err.print("  note: " + ", ".join(notes))


def _print_ranking(rows: list[dict]) -> None:
    table = Table("rank", "dataset", "n", "G-Vendi", "G-Vendi q=2", "embedding Vendi", "seconds",
                  title="ranked by G-Vendi")
    for k, row in enumerate(sorted(rows, key=lambda r: -r["g_vendi"]), 1):
        emb = f"{row['embedding_vendi']:.3f}" if row["embedding_vendi"] is not None else "-"
        table.add_row(str(k), row["path"], str(row["n"]), f"{row['g_vendi']:.3f}", f"{row['g_vendi_q2']:.3f}",
                      emb, f"{row['seconds']:.1f}")
    out.print(table)
