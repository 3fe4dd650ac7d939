"""Run reports: read run directories (no model loaded), plot them, and write one self-contained HTML page.

`collect` reads a run directory into a `RunReport`, `plots` turns reports into PNG figures, `html` renders
the page, and `build.write_report` ties them together for `prism-agent report`.
"""

from __future__ import annotations

from prism_agent.report.build import write_report
from prism_agent.report.collect import RunReport, collect_run

__all__ = ["RunReport", "collect_run", "write_report"]
