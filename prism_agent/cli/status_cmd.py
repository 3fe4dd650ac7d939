"""`prism-agent status` and `prism-agent export`: read a run directory; no model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from prism_agent.cli.console import out


def status(
    run_dir: Path = typer.Argument(..., help="a run directory made by `prism-agent run`"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object (target, accepted, rounds, g_vendi, …)"),
) -> None:
    """Show a run's progress: accepted/target, rounds, G-Vendi over rounds, the last round's funnel."""
    from prism_agent.run.status import endpoint_line, run_status

    info = run_status(run_dir)
    if as_json:
        out.print_json(json.dumps(info))
        return
    state = "complete" if info["complete"] else "incomplete"
    line = {"highlight": False, "markup": False, "soft_wrap": True}  # one line each, also in a pipe or a log
    out.print(f"run {info['run_id']} ({info['task']}) in {info['run_dir']}: {state}", **line)
    out.print(f"  accepted {info['accepted']}/{info['target']} after {info['rounds']} rounds; pool {info['pool']} "
              f"({info['seeds']} seeds)", **line)
    if (sf := info["seed_features"]) and sf["rows"] < sf["of"]:
        out.print(f"  seed featurization: {sf['rows']}/{sf['of']} rows (resumes after the last chunk)", **line)
    if info["g_vendi"] is not None:
        hist = " → ".join(f"{g:.3f}" for g in info["g_vendi_history"][-8:])
        out.print(f"  G-Vendi {info['g_vendi']:.3f} (last measures: {hist})", **line)
    if info["last_funnel"]:
        stages = " → ".join(f"{n} {stage}" for stage, n in info["last_funnel"].items())
        out.print(f"  last round: {stages}", **line)
    if info["retries"] or info["failures"]:
        reasons = sorted(info["retry_reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
        why = f" ({', '.join(f'{n}× {reason}' for reason, n in reasons)})" if reasons else ""
        out.print(f"  endpoint retries: {info['retries']}{why}, failed calls: {info['failures']}", **line)
    for name in {**info["endpoints"], **info["prefill"], **info["parse_yield"]}:
        kind = "endpoint" if "://" in name else "backend"  # an embedded backend is named by its model id
        out.print(f"  {kind} {name}: {endpoint_line(info, name)}", **line)
    if info["skipped_requests"]:
        steps = ", ".join(f"{step} {n}" for step, n in info["skipped_requests"].items())
        first = max(info["skipped_reasons"].items(), key=lambda kv: kv[1])[0]
        out.print(f"  requests failed for good and skipped: {steps} (most often: {first})", **line)
    if info["stop_reason"]:
        out.print(f"  stopped: {info['stop_reason']}", **line)


def export(
    run_dir: Path = typer.Argument(..., help="a run directory made by `prism-agent run`"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | parquet | hf (a datasets.save_to_disk folder)"),
    dest: Path = typer.Option(..., "--out", help="output file (jsonl, parquet) or folder (hf)"),
) -> None:
    """Write the accepted samples with their provenance (round, cluster, few-shot ids, votes, decontamination,
    models). Written under a temporary name and renamed at the end."""
    from prism_agent.run.export import export as run_export

    n = run_export(run_dir, fmt, dest)
    out.print(f"{n} samples → {dest}", highlight=False)
