"""`prism-agent decontam`: drop samples that overlap evaluation benchmarks, in two stages, with an audit.

Stage 1: normalised word 10-grams (MinHash LSH candidates, confirmed exactly). Stage 2: nearest benchmark
item by sentence embedding, then the judge role ("same question?"). Writes the clean file and an audit
JSONL of every drop; prints counts per stage and benchmark.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from prism_agent.cli.console import err, out, progress_bar, step_reporter
from prism_agent.data.reader import Fields
from prism_agent.errors import BadInputError, one_line


def _resolve_data(data: str, task: str) -> tuple[Path, str]:
    """A path, or a built-in set name (pulled on first use). Returns (path, default output stem)."""
    from prism_agent.data.pull import resolve_data
    from prism_agent.data.registry import builtin

    if builtin(data) is None:
        path = Path(data)
        return path, str(path.with_name(path.name.rsplit(".", 1)[0] if "." in path.name else path.name))
    with step_reporter(data) as step:
        return resolve_data(data, task=task, step=step), data


def _decontam_config(config: Path | None, overrides: dict):
    from prism_agent.config.decontam import DecontamConfig
    from prism_agent.config_files import read_toml

    table = read_toml(config).get("decontam", {}) if config else {}
    if not isinstance(table, dict):
        raise BadInputError(f"{config}: [decontam] must be a table")
    try:
        return DecontamConfig(**{**table, **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        raise BadInputError(f"decontam setting {one_line(exc, root='decontam')}") from None
    except TypeError as exc:
        raise BadInputError(f"decontam settings: {exc}") from None


def decontam(
    data: Annotated[str, typer.Argument(help="JSONL, Parquet or datasets folder with id/prompt rows, or a "
                                        "built-in set name")],
    task: Annotated[str, typer.Option("--task", help="math | nli (what is compared: the problem; premise "
                                      "and hypothesis)")],
    benchmarks: Annotated[str | None, typer.Option("--benchmarks", help="comma-separated benchmark sets: "
                                                   "built-in names or NAME=path.jsonl[:field] \\[default: all "
                                                   "built-in benchmarks of the task]")] = None,
    benchmark: Annotated[list[str] | None, typer.Option("--benchmark", help="add one benchmark, "
                                                        "NAME=path.jsonl[:field] or a built-in name "
                                                        "(repeatable)")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="clean JSONL \\[default: DATA.clean.jsonl]")] = None,
    audit_path: Annotated[Path | None, typer.Option("--audit", help="audit JSONL of the drops \\[default: "
                                                    "DATA.audit.jsonl, or CLEAN.audit.jsonl with --out]")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML with \\[roles.judge] and/or a "
                                                "\\[decontam] table of settings")] = None,
    judge_backend: Annotated[str | None, typer.Option("--judge-backend", help="judge shorthand: local | openai "
                                                      "| vllm \\[default: local SmolLM2-135M]")] = None,
    judge_base_url: Annotated[str | None, typer.Option("--judge-base-url", help="judge: OpenAI-compatible "
                                                       "endpoint URL")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="judge: served name, pinned name "
                                                    "or folder")] = None,
    judge_api_key_env: Annotated[str | None, typer.Option("--judge-api-key-env", help="judge: environment "
                                                          "variable holding the API key")] = None,
    no_judge: Annotated[bool, typer.Option("--no-judge", help="stage 1 only (no embeddings, no judge calls)")
                        ] = False,
    similarity_floor: Annotated[float | None, typer.Option(help="ask the judge only when the nearest item's "
                                                           "cosine similarity is at least this \\[default: ask "
                                                           "for every sample, as the paper]")] = None,
    ngram_rule: Annotated[str | None, typer.Option(help="lsh (MinHash LSH candidates confirmed by a shared "
                                                   "n-gram) | exact (any shared n-gram drops) \\[default: lsh]")
                          ] = None,
    lsh_threshold: Annotated[float | None, typer.Option(help="Jaccard similarity the LSH retrieves at "
                                                        "\\[default: 0.3]")] = None,
    ngram: Annotated[int | None, typer.Option(help="words per n-gram \\[default: 10]")] = None,
    judge_max_tokens: Annotated[int | None, typer.Option(help="judge tokens per answer \\[default: 8]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="samples per stage-2 batch \\[default: 256]")] = None,
    replay: Annotated[Path | None, typer.Option("--replay", help="SQLite file recording judge calls: a re-run "
                                                "replays them instead of asking again")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N usable rows")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="skip malformed rows (counted)")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    id_field: Annotated[str, typer.Option(help="column holding the id")] = "id",
    prompt_field: Annotated[str, typer.Option(help="column holding the prompt")] = "prompt",
) -> None:
    """Remove samples that overlap evaluation benchmarks: word 10-gram overlap, then an LLM paraphrase judge
    on the nearest benchmark item. Every drop goes to the audit file with its evidence."""
    from prism_agent.decontam import benchmarks as bench
    from prism_agent.decontam.pipeline import run_async, scan_input
    from prism_agent.tasks import get_task

    the_task = get_task(task)
    cfg = _decontam_config(config, {"n": ngram, "rule": ngram_rule, "lsh_threshold": lsh_threshold,
                                    "similarity_floor": similarity_floor, "judge_max_tokens": judge_max_tokens,
                                    "batch_size": batch_size, "judge": False if no_judge else None})
    specs = [s.strip() for s in benchmarks.split(",") if s.strip()] if benchmarks else list(the_task.benchmarks)
    specs += list(benchmark or [])
    path, stem = _resolve_data(data, task)
    fields = Fields(id=id_field, prompt=prompt_field, response=prompt_field)
    bad = scan_input(path, fields, skip_bad=skip_bad)
    out_file = out_path or Path(f"{stem}.clean.jsonl")
    audit_file = audit_path or (out_file.with_name(out_file.name.removesuffix(".jsonl") + ".audit.jsonl")
                                if out_path else Path(f"{stem}.audit.jsonl"))
    if out_file.resolve() == path.resolve() or audit_file.resolve() == path.resolve():
        raise BadInputError(f"--out/--audit would overwrite the input {path}")
    if out_file.resolve() == audit_file.resolve():
        raise BadInputError("--out and --audit name the same file")

    with step_reporter("benchmarks") as step:
        sets = bench.load_all(specs, the_task, step=step)
    judge = _judge(config, judge_backend, judge_base_url, judge_model, judge_api_key_env, replay) \
        if cfg.judge else None
    from prism_agent.decontam.decontaminator import Decontaminator

    with step_reporter("decontam") as step:
        decon = Decontaminator(the_task, sets, cfg, judge=judge, step=step)
    total = min(limit, _rows(path)) if limit else None

    async def go():
        with progress_bar() as bar:
            t = bar.add_task("decontam", total=total, rate="")

            def progress(done: int, counts) -> None:
                elapsed = bar.tasks[0].elapsed or 0.0
                bar.update(t, completed=done, rate=f"{done / elapsed:.1f}/s" if elapsed > 0 else "")

            try:
                return await run_async(path, decon, out_file, audit_file, fields=fields, limit=limit,
                                       bad_rows=bad, progress=progress)
            finally:
                if judge is not None:
                    await judge.aclose()

    result = asyncio.run(go())
    summary = {**result.as_json(), "task": task, "rule": cfg.rule, "n": cfg.n, "judge": cfg.judge,
               "judge_model": judge.model_id if judge is not None else None,
               "similarity_floor": cfg.similarity_floor, "ngram_index_cached": decon.ngram_cached,
               "benchmarks": {b.name: len(b.items) for b in sets}}
    if json_out:
        print(json.dumps(summary), flush=True)
    else:
        _print(summary)


def _rows(path: Path) -> int | None:
    if not path.is_file() or path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        return None
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def _judge(config, backend, base_url, model, api_key_env, replay):
    from prism_agent.config.backends import LocalBackendConfig
    from prism_agent.config_files import load_roles, with_shorthand
    from prism_agent.generators import ReplayStore, make_generator
    from prism_agent.loop.setup import base_urls

    urls = base_urls(base_url) if base_url else None  # several endpoints: comma-separated
    roles = with_shorthand(load_roles(config), "judge", {"backend": backend, "base_url": urls, "model": model,
                                                         "api_key_env": api_key_env})
    if roles.judge == LocalBackendConfig():
        err.print("note: the judge is the embedded SmolLM2-135M, far too weak to judge paraphrases (its yes/no "
                  "is close to random); give a stronger one with --judge-backend/--config for real runs",
                  highlight=False, soft_wrap=True)
    return make_generator(roles.judge, replay=ReplayStore(replay) if replay else None)


def _print(s: dict) -> None:
    dropped = s["dropped_ngram"] + s["dropped_judge"]
    out.print(f"[bold]{s['total']}[/] samples: [bold]{s['kept']}[/] kept, {dropped} dropped "
              f"(stage 1 n-gram: {s['dropped_ngram']}, stage 2 judge: {s['dropped_judge']}) in {s['seconds']:.1f} s",
              highlight=False, soft_wrap=True)
    table = Table("benchmark", "items", "stage 1 (n-gram)", "stage 2 (judge)", "dropped")
    for name, items in s["benchmarks"].items():
        row = s["by_benchmark"].get(name, {"ngram": 0, "judge": 0})
        table.add_row(name, str(items), str(row["ngram"]), str(row["judge"]), str(row["ngram"] + row["judge"]))
    table.add_row("[bold]all[/]", str(sum(s["benchmarks"].values())), str(s["dropped_ngram"]),
                  str(s["dropped_judge"]), str(dropped))
    out.print(table)
    if s["judge"]:
        floor = "every sample" if s["similarity_floor"] is None else f"similarity ≥ {s['similarity_floor']}"
        out.print(f"judge ({s['judge_model']}, asked for {floor}): {s['judge_asked']} asked, "
                  f"{s['judge_below_floor']} below the floor, {s['judge_unclear']} unclear answers (kept)",
                  highlight=False, soft_wrap=True)
    else:
        out.print("stage 2 skipped (--no-judge): paraphrases of benchmark items are not caught", highlight=False,
                  soft_wrap=True)
    out.print(f"clean: {s['out']}\naudit: {s['audit']}", highlight=False, soft_wrap=True)
    if s["bad_rows"]:
        err.print(f"  note: {s['bad_rows']} bad rows skipped")
