"""`prism-agent report`: one self-contained HTML page (plus PNGs) about one or more run directories."""

from __future__ import annotations

from pathlib import Path

import typer

from prism_agent.cli.console import out as console


def report(
    run_dirs: list[Path] = typer.Argument(..., help="run directories made by `prism-agent run` (several: compared)"),
    out: Path = typer.Option(..., "--out", help="folder for index.html, the PNGs and summary.json"),
) -> None:
    """Write a run report: G-Vendi against pool size (one line per run), the last round's cluster-size
    histogram, the acceptance funnel, rejection reasons, and tokens and time per role, as one self-contained
    index.html (figures inlined) plus PNGs. Reads the run directories only; no model is loaded."""
    from prism_agent.report import write_report

    index, reports = write_report(run_dirs, out)
    console.print(f"report on {len(reports)} run{'s' if len(reports) > 1 else ''} → {index}", highlight=False)
