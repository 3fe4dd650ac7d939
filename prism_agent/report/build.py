"""`write_report`: collect the runs, draw the figures, write the PNGs, `summary.json` and `index.html`.

Everything is collected and drawn before the first file is written, so a bad run directory fails before
--out is touched; each file is written atomically, so a re-run over an old report never leaves a mix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from prism_agent.atomic import write_atomic
from prism_agent.errors import BadInputError
from prism_agent.report import plots
from prism_agent.report.collect import RunReport, collect_run
from prism_agent.report.html import render

FIGURES = {
    "gvendi.png": plots.g_vendi_plot,
    "clusters.png": plots.cluster_plot,
    "funnel.png": plots.funnel_plot,
    "rejections.png": plots.rejection_plot,
    "roles.png": plots.roles_plot,
}


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Legend labels: the run directory's name, or more of its path where two runs share a name."""
    parts = [Path(p).resolve().parts for p in run_dirs]
    depth = 1
    while depth < max(len(p) for p in parts):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
        depth += 1
    return ["/".join(p[-depth:]) for p in parts]


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file; give a folder for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None


def write_report(run_dirs: Sequence[str | Path], out: str | Path) -> tuple[Path, list[RunReport]]:
    """Write the report for these run directories into `out`; returns (index.html path, the collected runs)."""
    if not run_dirs:
        raise BadInputError("give at least one run directory")
    run_dirs = [Path(p) for p in run_dirs]
    seen: set[Path] = set()
    for p in run_dirs:
        if p.resolve() in seen:
            raise BadInputError(f"{p} is given twice")
        seen.add(p.resolve())
    reports = [collect_run(p, name) for p, name in zip(run_dirs, _labels(run_dirs), strict=True)]
    figures = {name: fn(reports) for name, fn in FIGURES.items()}
    page = render(reports, figures).encode("utf-8")
    summary = json.dumps([r.model_dump(mode="json") for r in reports], indent=1).encode("utf-8")
    out = Path(out)
    _prepare_out(out)
    try:
        for name, png in figures.items():
            target = out / name
            if png is None:
                target.unlink(missing_ok=True)  # an older report's figure would contradict this page
                continue
            write_atomic(target, lambda fh, data=png: fh.write(data))
        write_atomic(out / "summary.json", lambda fh: fh.write(summary))
        write_atomic(out / "index.html", lambda fh: fh.write(page))
    except OSError as exc:
        raise BadInputError(f"--out {out}: cannot write the report ({exc.strerror or exc})") from None
    return out / "index.html", reports
