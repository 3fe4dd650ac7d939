"""The live dashboard of `prism-agent run`: progress with ETA, the funnel of this round and of the run,
G-Vendi over rounds, tokens/s per role, backend retries and errors, and, for a role with several endpoints,
one line per endpoint (calls, failures, failovers, prefill mode, parse yield: what `status` shows, from the
same files, `run.status.endpoint_info`).

It is fed the graph's node updates (`update(node, data)`) and renders with rich's `Live`; `lines()`
gives the same information as plain log lines for non-TTY output.
"""

from __future__ import annotations

import time

from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from prism_agent.run.rounds import FUNNEL_STEPS, Funnel, GenerateSummary, Step

STAGES = Funnel.STAGES
BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    vals = values[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    return "".join(BLOCKS[min(7, int((v - lo) / span * 7.999))] for v in vals)


def funnel_of(last: dict) -> dict[str, int]:
    return Funnel.of(last).counts()


class Dashboard:
    def __init__(self, run_id: str, task: str, target: int, accepted: int, roles: dict[str, str],
                 compute: str = ""):
        self.run_id, self.task, self.target, self.accepted = run_id, task, target, accepted
        self.compute = compute  # the compute dtypes, e.g. "featurizer float32 · generator float32"
        self.start_accepted = accepted
        self.started = time.monotonic()
        self.roles = roles
        self.round = 0
        self.node = "starting"
        self.g_vendi: list[float] = []
        self.pool = 0
        self.this_round: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.total: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.tokens: dict[str, tuple[int, float]] = {}  # role → (tokens, seconds)
        self.errors: list[str] = []
        self.stop_reason: str | None = None
        self.endpoint_urls: list[str] = []  # the URLs of roles with several endpoints: one line each
        self.endpoints: dict = {}  # run.status.endpoint_info: {endpoints, prefill, parse_yield}

    # ---- feeding -----------------------------------------------------------------------------------------

    def update(self, node: str, data: dict | None) -> None:
        data = data or {}
        self.node = node
        self.accepted = data.get("accepted", self.accepted)
        self.target = data.get("target", self.target)
        self.pool = data.get("pool", self.pool)
        if "round" in data:
            self.round = data["round"]
        if node == Step.MEASURE and "g_vendi" in data:
            self.g_vendi.append(data["g_vendi"])
        last = data.get("last") or {}
        if node == Step.GENERATE and (g := GenerateSummary.load(last.get(Step.GENERATE))):
            tok, sec = self.tokens.get("generator", (0, 0.0))
            self.tokens["generator"] = (tok + g.tokens, sec + g.seconds)
        if node == Step.CLUSTER:
            self.this_round = dict.fromkeys(STAGES, 0)
        if node in FUNNEL_STEPS:
            self.this_round = funnel_of(last)
        if node == Step.COMMIT:
            for k, v in self.this_round.items():
                self.total[k] += v
        if node == Step.FINISH:
            self.stop_reason = data.get("stop_reason")

    def endpoint_lines(self) -> list[tuple[str, str]]:
        """(URL, what is known about it) for each endpoint of a role that has several; an endpoint not yet
        called, probed or parsed from shows as waiting."""
        info = self.endpoints or {}
        out = []
        for url in self.endpoint_urls:
            parts = []
            if (c := (info.get("endpoints") or {}).get(url)) is not None:
                down = f" · down {c['downs']}×" if c["downs"] else ""
                parts.append(f"{c['requests']} calls · {c['failures']} failed · {c['failovers']} moved{down}")
            if (mode := (info.get("prefill") or {}).get(url)) is not None:
                parts.append(f"prefill {mode}")
            if (y := (info.get("parse_yield") or {}).get(url)) is not None and y["completions"]:
                parts.append(f"parsed {y['parsed']}/{y['completions']} ({y['parsed'] / y['completions']:.0%})")
            out.append((url, " · ".join(parts) or "no calls yet"))
        return out

    def error(self, text: str) -> None:
        self.errors = [*self.errors, text][-5:]

    # ---- rendering ---------------------------------------------------------------------------------------

    def eta(self) -> str:
        done = self.accepted - self.start_accepted
        if done <= 0:
            return "—"
        rate = done / max(1e-9, time.monotonic() - self.started)
        left = max(0, self.target - self.accepted) / rate
        return f"{left / 3600:.1f} h" if left > 5400 else f"{left / 60:.0f} min" if left > 90 else f"{left:.0f} s"

    def lines(self) -> list[str]:
        g = f"{self.g_vendi[-1]:.3f}" if self.g_vendi else "—"
        return [f"round {self.round} · {self.node} · accepted {self.accepted}/{self.target} · ETA {self.eta()} · "
                f"G-Vendi {g} · pool {self.pool}"]

    def __rich__(self) -> Panel:
        head = Table.grid(padding=(0, 2))
        head.add_row(Text(f"round {self.round}", style="bold"), Text(f"step: {self.node}"),
                     Text(f"accepted {self.accepted:,}/{self.target:,}"), Text(f"ETA {self.eta()}"))
        bar = Table.grid()  # a bare ProgressBar ends no line: the funnel's header would be glued onto it and cropped
        bar.add_row(ProgressBar(total=max(1, self.target), completed=min(self.accepted, self.target), width=60))
        funnel = Table("", *STAGES, box=None, pad_edge=False)
        funnel.add_row("this round", *(str(self.this_round[s]) for s in STAGES))
        funnel.add_row("run", *(f"{self.total[s]:,}" for s in STAGES))
        gv = Text(f"G-Vendi {self.g_vendi[-1]:.3f}  " if self.g_vendi else "G-Vendi —  ")
        gv.append(sparkline(self.g_vendi), style="cyan")
        gv.append(f"   pool {self.pool:,}")
        speed = Table.grid(padding=(0, 2))
        for role, model in self.roles.items():
            tok, sec = self.tokens.get(role, (0, 0.0))
            rate = f"{tok / sec:.1f} tok/s" if sec > 0 else "—"
            speed.add_row(role, model, rate)
        parts = [head, bar, funnel, gv, speed]
        if lines := self.endpoint_lines():
            endpoints = Table.grid(padding=(0, 2))
            for url, text in lines:
                endpoints.add_row(Text(url, style="dim"), text)
            parts.append(endpoints)
        if self.compute:
            parts.append(Text(f"compute: {self.compute}", style="dim"))
        if self.errors:
            parts.append(Text("\n".join(self.errors), style="red"))
        if self.stop_reason:
            parts.append(Text(f"stopped: {self.stop_reason}", style="bold green"))
        return Panel(Group(*parts), title=f"prism-agent · {self.task} · run {self.run_id}")
