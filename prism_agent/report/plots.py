"""The report's figures, drawn with matplotlib's Agg canvas straight to PNG bytes.

Figures are built as `matplotlib.figure.Figure` objects on an Agg canvas rather than through pyplot, so
no global state or display is touched (reports run on headless machines and inside other programs).
Each function takes all the runs being compared and returns PNG bytes, or None when none of the runs
recorded what it plots.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prism_agent.report.collect import RunReport

SPARSE, DENSE = "#e4572e", "#4c78a8"
DPI = 110


def _color(i: int) -> str:
    return f"C{i % 10}"


def to_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # no Software/date metadata: the same run gives the same bytes
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def g_vendi_plot(reports: Sequence[RunReport]) -> bytes | None:
    """G-Vendi against pool size, one line per run: the paper's picture of diversity growing (or saturating)."""
    if not any(r.g_vendi for r in reports):
        return None
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, r in enumerate(reports):
        if not r.g_vendi:
            continue
        pool, g = zip(*r.g_vendi, strict=True)
        ax.plot(pool, g, marker="o", markersize=4, color=_color(i), label=r.name)
    ax.xaxis.get_major_locator().set_params(integer=True)  # pool sizes are row counts
    ax.set_xlabel("pool size (seed rows + accepted samples)")
    ax.set_ylabel("G-Vendi")
    ax.set_title("G-Vendi against pool size")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return to_png(fig)


def cluster_plot(reports: Sequence[RunReport]) -> bytes | None:
    """Histogram of the last round's cluster sizes per run, sparse clusters (the loop's targets) in their own
    colour, with the sparse threshold marked."""
    shown = [r for r in reports if r.clusters is not None]
    if not shown:
        return None
    fig = Figure(figsize=(8, 3.4 * len(shown)), layout="constrained")
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    for ax, r in zip(axes, shown, strict=True):
        c = r.clusters
        sizes = np.asarray(c.sizes)
        mask = np.asarray(c.sparse, dtype=bool)
        top = int(sizes.max()) if sizes.size else 0
        # one bar per size while sizes are small integers, else numpy's automatic bins
        bins = np.arange(-0.5, top + 1.5, 1.0) if top <= 60 else np.histogram_bin_edges(sizes, bins="auto")
        ax.hist([sizes[mask], sizes[~mask]], bins=bins, stacked=True, color=[SPARSE, DENSE],
                label=[f"sparse ({int(mask.sum())})", f"not sparse ({int((~mask).sum())})"], edgecolor="white")
        if not c.fallback:
            ax.axvline(c.threshold - 0.5, color="0.3", linestyle="--", linewidth=1,
                       label=f"sparse: size < {c.threshold}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("cluster size (pool rows)")
        ax.set_ylabel("clusters")
        ax.yaxis.get_major_locator().set_params(integer=True)
        note = " (no cluster below the threshold: all count as sparse)" if c.fallback else ""
        ax.set_title(f"{r.name}: round {c.round}, {c.k} clusters over {c.n} rows{note}", fontsize="medium")
        ax.legend(fontsize="small")
    return to_png(fig)


def _grouped_barh(ax, labels: Sequence[str], reports: Sequence[RunReport], values: list[list[float | None]],
                  fmt: str = "{:,.0f}", invert: bool = True) -> None:
    """Horizontal bars, one group per label and one bar per run; a value never recorded is written as such.
    `invert` lists the first label on top; leave it off for the second of two axes sharing y (it would
    flip them back)."""
    n = len(reports)
    height = 0.8 / n
    y = np.arange(len(labels))
    finite = [v for row in values for v in row if v is not None]
    span = max(finite) if finite else 1.0
    for i, (r, row) in enumerate(zip(reports, values, strict=True)):
        pos = y + (i - (n - 1) / 2) * height
        ax.barh(pos, [0 if v is None else v for v in row], height=height * 0.92, color=_color(i), label=r.name)
        for p, v in zip(pos, row, strict=True):
            text = "not recorded" if v is None else fmt.format(v)
            ax.text((v or 0) + span * 0.01, p, text, va="center", fontsize="x-small",
                    color="0.45" if v is None else "0.1")
    ax.set_yticks(y, labels)
    if invert:
        ax.invert_yaxis()
    ax.set_xlim(0, span * 1.18 or 1)
    ax.grid(axis="x", alpha=0.3)
    if n > 1:
        ax.legend(fontsize="small", loc="lower right")


def _funnel_bars(reports: Sequence[RunReport], pick, xlabel: str, title: str) -> bytes | None:
    """One grouped bar chart over each run's funnel; `pick(funnel)` gives the (label, count) pairs."""
    shown = [r for r in reports if r.funnel is not None]
    if not shown:
        return None
    labels = [name for name, _ in pick(shown[0].funnel)]
    fig = Figure(figsize=(8, 0.5 + 0.45 * len(labels) * max(1, len(shown)) ** 0.5 + 0.8), layout="constrained")
    ax = fig.add_subplot()
    _grouped_barh(ax, labels, shown, [[v for _, v in pick(r.funnel)] for r in shown])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return to_png(fig)


def funnel_plot(reports: Sequence[RunReport]) -> bytes | None:
    """Where candidates go, from generated to accepted, totalled over the run's committed rounds."""
    return _funnel_bars(reports, lambda f: f.stages(), "samples", "Acceptance funnel (run total)")


def rejection_plot(reports: Sequence[RunReport]) -> bytes | None:
    """How many candidates each gate dropped, so the binding constraint of a run is visible at a glance."""
    return _funnel_bars(reports, lambda f: f.rejections(), "candidates dropped", "Rejection reasons (run total)")


def roles_plot(reports: Sequence[RunReport]) -> bytes | None:
    """Tokens and busy time per role: what a run spent where."""
    roles: list[str] = []
    for r in reports:
        roles += [u.role for u in r.roles if u.role not in roles]
    if not any(u.tokens is not None or u.busy_s is not None for r in reports for u in r.roles):
        return None
    fig = Figure(figsize=(8, 1.2 + 0.9 * len(roles) * max(1, len(reports)) ** 0.5), layout="constrained")
    ax_tok, ax_time = fig.subplots(1, 2, sharey=True)

    def column(field: str) -> list[list[float | None]]:
        out = []
        for r in reports:
            by_role = {u.role: u for u in r.roles}
            out.append([getattr(by_role[x], field) if x in by_role else None for x in roles])
        return out

    _grouped_barh(ax_tok, roles, reports, column("tokens"))
    _grouped_barh(ax_time, roles, reports, column("busy_s"), fmt="{:,.1f} s", invert=False)
    ax_tok.set_xlabel("completion tokens")
    ax_time.set_xlabel("busy seconds")
    ax_tok.set_title("Tokens per role")
    ax_time.set_title("Time per role")
    if ax_time.get_legend() is not None:
        ax_tok.get_legend().remove()
    return to_png(fig)
