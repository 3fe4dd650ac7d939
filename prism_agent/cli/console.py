"""Shared rich consoles and progress displays for the CLI.

Results go to stdout (so `--json` output can be piped); progress, status and errors go to stderr.
Progress bars show only on a terminal; elsewhere the commands stay quiet until their result.
"""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console()
err = Console(stderr=True)


def quiet_libraries() -> None:
    """Keep transformers' own bars and warnings out of our output; never reach for a model hub."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=err, disable=not err.is_terminal, transient=False,
    )


@contextmanager
def step_reporter(title: str):
    """A `step(name)` callback that shows model-pull steps (download, verify, convert) as they happen."""
    steps: list[str] = []
    with err.status(title) as status:

        def step(name: str) -> None:
            steps.append(name)
            status.update(f"{title}: {name}")
            if not err.is_terminal:
                err.print(f"{title}: {name}")

        yield step
