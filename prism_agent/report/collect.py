"""Read a run directory into a `RunReport`: everything the report plots, without loading any model.

Sources, most trustworthy first. Accepted counts come from the sample log's commit records (the commit
point of a round, so a round counts once however often it was resumed). A round's step counts come from
its `rounds/round-N/<step>.json` files, which each step writes exactly once, and only when those are
missing from the `round` event's funnel. G-Vendi comes from `measure` events and role usage from `usage`
events when the run wrote them (one per round, holding that round's amounts, which are summed; a resumed
round's last event wins), else from the steps' own timings. Anything that was never recorded is
left as None, and the page says "not recorded" instead of failing.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from prism_agent.errors import BadInputError
from prism_agent.jsonl import read_jsonl
from prism_agent.run.events import EventLog
from prism_agent.run.manifest import read_manifest
from prism_agent.run.paths import RunPaths
from prism_agent.run.rounds import ROUND_STEPS, SUMMARIES, Step, StepSummary

ROLES = ("generator", "solver", "judge")


class ClusterSizes(BaseModel):
    """The last saved clustering: how big each cluster is, and which ones the loop steered toward."""

    round: int
    n: int
    k: int
    sizes: list[int]
    sparse: list[bool]
    threshold: int  # sparse means size < threshold (unless `fallback`)
    fallback: bool  # no cluster was below the threshold, so every cluster counted as sparse


class Funnel(BaseModel):
    """Totals over the committed rounds. None: that step never recorded the count (e.g. a graph without it)."""

    rounds: int
    asked: int | None  # requests × samples asked per request
    generated: int | None  # samples read out of the completions
    parsed: int | None  # of those, not a copy of a shown few-shot example
    voted: int | None  # the solver's votes agreed
    featurized: int | None  # fit in the proxy's context
    sparse: int | None  # nearest centroid is a sparse cluster
    dropped_ngram: int | None
    dropped_judge: int | None
    decontaminated: int | None  # kept by decontamination
    accepted: int  # committed to the pool (capped at the target)

    def stages(self) -> list[tuple[str, int | None]]:
        return [("generated", self.generated), ("parsed", self.parsed), ("voted", self.voted),
                ("in a sparse cluster", self.sparse), ("decontaminated", self.decontaminated),
                ("accepted", self.accepted)]

    def rejections(self) -> list[tuple[str, int | None]]:
        """Why candidates were lost, step by step; each is the drop between two recorded counts."""

        def drop(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else max(0, a - b)

        return [
            ("unparsed (asked for, not readable)", drop(self.asked, self.generated)),
            ("copy of a few-shot example", drop(self.generated, self.parsed)),
            ("vote disagreement", drop(self.parsed, self.voted)),
            ("too long for the proxy", drop(self.voted, self.featurized)),
            ("not nearest a sparse cluster", drop(self.featurized, self.sparse)),
            ("decontamination: n-gram", self.dropped_ngram),
            ("decontamination: judge", self.dropped_judge),
            ("capped at target", drop(self.decontaminated, self.accepted)),
        ]


class RoleUsage(BaseModel):
    role: str
    model: str | None = None
    tokens: int | None = None
    busy_s: float | None = None
    calls: int | None = None
    source: str  # "usage events", "step timings", a mix of both, or "not recorded"


class RunReport(BaseModel):
    name: str  # the legend label: run dir name (+ graph kind)
    root: str
    graph: str | None
    facts: dict  # run_status(root)
    g_vendi: list[tuple[int, float]]  # (pool size, G-Vendi), one point per pool size, ascending
    clusters: ClusterSizes | None
    clusters_note: str | None  # why there is no histogram
    funnel: Funnel | None
    roles: list[RoleUsage]


# ---- sources ----------------------------------------------------------------------------------------------


def _commits(paths: RunPaths) -> list[dict]:
    """Commit records up to the first torn or unreadable line (a live run may be writing the next one)."""
    return list(read_jsonl(paths.commits, "prefix"))


def _accepted_by_round(paths: RunPaths) -> dict[int, int]:
    """Rows each round committed (a round may commit zero rows: its record still says it finished)."""
    out: dict[int, int] = {}
    previous = 0
    for c in _commits(paths):
        out[int(c["round"])] = out.get(int(c["round"]), 0) + int(c["count"]) - previous
        previous = int(c["count"])
    return out


def _step_summary(paths: RunPaths, r: int, step: Step, event: dict | None) -> StepSummary | None:
    path = paths.round_dir(r) / f"{step.file}.json"
    if path.is_file():
        try:
            return SUMMARIES[step].load(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            pass  # a damaged file (pydantic's ValidationError is a ValueError): the event may have the counts
    funnel = (event or {}).get("funnel") or {}
    return SUMMARIES[step].load(funnel.get(step.value))


def _models_of_first_sample(paths: RunPaths) -> dict[str, str]:
    """Model ids per role, as the first accepted sample records them (the fallback when no usage events)."""
    if not paths.samples.is_file():
        return {}
    with paths.samples.open("rb") as fh:
        line = fh.readline()
    try:
        return dict(json.loads(line).get("models") or {}) if line.endswith(b"\n") else {}
    except (ValueError, AttributeError):
        return {}


def _sum(values: list[int | float | None]) -> int | float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# ---- the parts of a report -----------------------------------------------------------------------------------


def _g_vendi(measures: list[dict]) -> list[tuple[int, float]]:
    """One point per pool size: a round that accepted nothing measures the same pool again."""
    by_pool: dict[int, float] = {}
    for e in measures:
        if e.get("g_vendi") is not None and e.get("pool") is not None:
            by_pool[int(e["pool"])] = float(e["g_vendi"])
    return sorted(by_pool.items())


def _clusters(paths: RunPaths) -> tuple[ClusterSizes | None, str | None]:
    from prism_agent.cluster.artifacts import committed_rounds, load_round

    rounds = committed_rounds(paths.clusters)
    if not rounds:
        return None, "not recorded (no saved clustering in this run directory)"
    r = rounds[-1]
    try:
        found = load_round(paths.clusters, r, mmap=True)
    except BadInputError as exc:
        return None, f"not available: {exc}"
    return ClusterSizes(round=r, n=found.n, k=found.k, sizes=[int(s) for s in found.sizes],
                        sparse=[bool(s) for s in found.sparse.mask], threshold=found.sparse.threshold,
                        fallback=found.sparse.fallback), None


def _funnel(paths: RunPaths, manifest_config: dict, round_events: dict[int, dict]) -> Funnel | None:
    accepted = _accepted_by_round(paths)
    if not accepted:
        return None
    per_round = {r: {s: _step_summary(paths, r, s, round_events.get(r)) for s in ROUND_STEPS} for r in accepted}
    num_new = (manifest_config.get("generation") or {}).get("num_new")

    def total(step: Step, field: str) -> int | None:
        return _sum([getattr(steps[step], field, None) for steps in per_round.values()])

    requests = total(Step.GENERATE, "requests")
    return Funnel(
        rounds=len(accepted),
        asked=requests * int(num_new) if requests is not None and num_new else None,
        generated=total(Step.GENERATE, "generated"),
        parsed=total(Step.GENERATE, "parsed"),
        voted=total(Step.VOTE, "voted"),
        featurized=total(Step.REJECT, "featurized"),
        sparse=total(Step.REJECT, "sparse"),
        dropped_ngram=total(Step.DECONTAMINATE, "dropped_ngram"),
        dropped_judge=total(Step.DECONTAMINATE, "dropped_judge"),
        decontaminated=total(Step.DECONTAMINATE, "kept"),
        accepted=sum(accepted.values()),
    )


def _roles(paths: RunPaths, usage_events: dict[int, dict], round_events: dict[int, dict]) -> list[RoleUsage]:
    """Per role, summed over rounds: a round's `usage` event when it has one, else its steps' timings
    (generate → generator tokens and seconds, vote → solver seconds, decontaminate → judge seconds)."""
    rounds = sorted(set(_accepted_by_round(paths)) | set(usage_events))
    fallback_models = _models_of_first_sample(paths)
    step_of = {"generator": Step.GENERATE, "solver": Step.VOTE, "judge": Step.DECONTAMINATE}
    rows: dict[str, dict] = {}
    for r in rounds:
        if r in usage_events:
            for role, u in (usage_events[r].get("roles") or {}).items():
                row = rows.setdefault(role, {"tokens": [], "busy_s": [], "calls": [], "models": [], "sources": set()})
                row["tokens"].append(u.get("tokens"))
                row["busy_s"].append(u.get("busy_s"))
                row["calls"].append(u.get("calls"))
                row["models"].append(u.get("model"))
                row["sources"].add("usage events")
            continue
        for role, step in step_of.items():
            s = _step_summary(paths, r, step, round_events.get(r))
            if s is None:
                continue
            row = rows.setdefault(role, {"tokens": [], "busy_s": [], "calls": [], "models": [], "sources": set()})
            row["tokens"].append(getattr(s, "tokens", None))
            row["busy_s"].append(getattr(s, "seconds", None))
            row["calls"].append(getattr(s, "requests", None))
            row["models"].append(fallback_models.get(role))
            row["sources"].add("step timings")
    out = []
    for role in [*ROLES, *sorted(set(rows) - set(ROLES))]:
        row = rows.get(role)
        if row is None:
            out.append(RoleUsage(role=role, model=fallback_models.get(role), source="not recorded"))
            continue
        models = [m for m in row["models"] if m]
        busy = _sum(row["busy_s"])
        out.append(RoleUsage(role=role, model=models[-1] if models else None, tokens=_sum(row["tokens"]),
                             busy_s=None if busy is None else round(float(busy), 3), calls=_sum(row["calls"]),
                             source=" + ".join(sorted(row["sources"]))))
    return out


# ---- entry point -------------------------------------------------------------------------------------------


def collect_run(root: str | Path, name: str | None = None) -> RunReport:
    """Everything the report shows about one run directory. Raises BadInputError for a missing directory
    or one that is not a run directory; a run with nothing recorded yet still gives a (mostly empty) report."""
    from prism_agent.run.status import run_status

    root = Path(root)
    if not root.exists():
        raise BadInputError(f"{root}: no such run directory")
    if not root.is_dir():
        raise BadInputError(f"{root} is not a directory (expected a run directory made by `prism-agent run`)")
    paths = RunPaths(root)
    manifest = read_manifest(paths)  # BadInputError when this is not a run directory
    facts = run_status(root)
    by_kind: dict[str, list[dict]] = {"measure": [], "round": [], "usage": []}
    for e in EventLog(paths.events):  # one pass; a torn last line is skipped
        if e.get("kind") in by_kind:
            by_kind[e["kind"]].append(e)
    round_events = {int(e["round"]): e for e in by_kind["round"] if "round" in e}  # a resumed round: last wins
    usage_events = {int(e["round"]): e for e in by_kind["usage"] if "round" in e}
    graph = manifest.config.get("graph")
    clusters, clusters_note = _clusters(paths)
    label = name or root.resolve().name
    return RunReport(
        name=f"{label} ({graph})" if graph else label,
        root=str(root),
        graph=graph,
        facts=facts,
        g_vendi=_g_vendi(by_kind["measure"]),
        clusters=clusters,
        clusters_note=clusters_note,
        funnel=_funnel(paths, manifest.config, round_events),
        roles=_roles(paths, usage_events, round_events),
    )
