"""The report page: one HTML file with every figure inlined as a base64 data URI, so it can be mailed,
attached to an issue or opened from any folder without the PNGs beside it. No scripts, no external
styles or fonts: it renders the same offline and in a locked-down browser. All run-derived text is escaped.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence

from prism_agent.report.collect import RunReport

NOT_RECORDED = '<span class="nr">not recorded</span>'

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 980px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f4f4f4; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.nr { color: #999; font-style: italic; } .note { color: #666; font-size: 0.85rem; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object, fmt: str = "{:,}") -> str:
    if value is None:
        return NOT_RECORDED
    return _e(fmt.format(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells are already HTML (escaped by the caller); headers are plain text."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: bytes | None, alt: str, file: str) -> str:
    if png is None:
        return f'<p>{NOT_RECORDED} <span class="note">(none of the runs recorded this)</span></p>'
    data = base64.b64encode(png).decode("ascii")
    return (f'<p><img src="data:image/png;base64,{data}" alt="{_e(alt)}" data-file="{_e(file)}"></p>')


def _facts(reports: Sequence[RunReport]) -> str:
    def g(r: RunReport) -> str:
        return _num(r.facts.get("g_vendi"), "{:.3f}")

    rows = [
        ("run directory", lambda r: f"<code>{_e(r.root)}</code>"),
        ("run id", lambda r: _e(r.facts.get("run_id"))),
        ("graph", lambda r: _e(r.graph) if r.graph else NOT_RECORDED),
        ("task", lambda r: _e(r.facts.get("task"))),
        ("target", lambda r: _num(r.facts.get("target"))),
        ("accepted", lambda r: _num(r.facts.get("accepted"))),
        ("rounds", lambda r: _num(r.facts.get("rounds"))),
        ("pool (seeds + accepted)", lambda r: f"{_num(r.facts.get('pool'))} ({_num(r.facts.get('seeds'))} seeds)"),
        ("final G-Vendi", g),
        ("stop reason", lambda r: _e(r.facts["stop_reason"]) if r.facts.get("stop_reason")
         else ('<span class="nr">still running or stopped early</span>' if not r.facts.get("complete")
               else NOT_RECORDED)),
    ]
    return _table(["", *(r.name for r in reports)], [[_e(name), *(fn(r) for r in reports)] for name, fn in rows])


def _funnel_table(reports: Sequence[RunReport], which: str) -> str:
    shown = [r for r in reports if r.funnel is not None]
    if not shown:
        return ""
    labels = [name for name, _ in getattr(shown[0].funnel, which)()]
    columns = [dict(getattr(r.funnel, which)()) for r in shown]
    return _table(["", *(r.name for r in shown)], [[_e(x), *(_num(c[x]) for c in columns)] for x in labels])


def _roles_table(reports: Sequence[RunReport]) -> str:
    rows = []
    for r in reports:
        for u in r.roles:
            rows.append([_e(u.role), _e(r.name), _e(u.model) if u.model else NOT_RECORDED, _num(u.tokens),
                         _num(u.busy_s, "{:,.1f}"), _num(u.calls), _e(u.source)])
    return _table(["role", "run", "model", "completion tokens", "busy s", "calls", "source"], rows)


def render(reports: Sequence[RunReport], figures: dict[str, bytes | None]) -> str:
    """The whole page. `figures` maps a file name (gvendi.png, …) to its PNG bytes, or None if not recorded."""
    names = ", ".join(r.name for r in reports)
    cluster_notes = "".join(f'<p class="note">{_e(r.name)}: {_e(r.clusters_note)}</p>'
                            for r in reports if r.clusters_note)
    funnel_missing = "".join(f'<p class="note">{_e(r.name)}: no committed round yet</p>'
                             for r in reports if r.funnel is None)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>prism-agent report: {_e(names)}</title><style>{STYLE}</style></head><body>",
        "<h1>prism-agent run report</h1>",
        f'<p class="sub">{_e(names)} · made {_e(time.strftime("%Y-%m-%d %H:%M"))} by '
        "<code>prism-agent report</code></p>",
        "<h2>Run facts</h2>", _facts(reports),
        "<h2>G-Vendi against pool size</h2>",
        '<p class="note">Gradient diversity of the whole pool, measured before each round '
        "(one point per pool size).</p>",
        _figure(figures.get("gvendi.png"), "G-Vendi against pool size", "gvendi.png"),
        "<h2>Cluster sizes, last round</h2>",
        '<p class="note">Gradient-space clusters of the pool the last round generated for; '
        "new samples were steered toward the sparse ones.</p>",
        _figure(figures.get("clusters.png"), "cluster-size histogram", "clusters.png"), cluster_notes,
        "<h2>Acceptance funnel</h2>",
        '<p class="note">Totals over all committed rounds.</p>',
        _figure(figures.get("funnel.png"), "acceptance funnel", "funnel.png"), funnel_missing,
        _funnel_table(reports, "stages"),
        "<h2>Rejection reasons</h2>",
        '<p class="note">“Unparsed” counts samples asked for (requests × samples per request) that could not '
        "be read out of the completions.</p>",
        _figure(figures.get("rejections.png"), "rejection reasons", "rejections.png"),
        _funnel_table(reports, "rejections"),
        "<h2>Tokens and time per role</h2>",
        '<p class="note">From the run\'s <code>usage</code> events where present; otherwise from the steps\' '
        "own timings: generation (generator tokens and seconds), voting (solver seconds) and decontamination "
        "(judge seconds, including its n-gram and embedding stages).</p>",
        _figure(figures.get("roles.png"), "tokens and time per role", "roles.png"),
        _roles_table(reports),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
