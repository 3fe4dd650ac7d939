"""What a run directory says about itself, without loading any model: for `prism-agent status`, the
dashboard's resume line, and reports."""

from __future__ import annotations

from pathlib import Path

from prism_agent.run.events import EventLog
from prism_agent.run.manifest import read_manifest
from prism_agent.run.paths import RunPaths
from prism_agent.run.pool import Pool
from prism_agent.run.rounds import Funnel


def run_status(root: Path) -> dict:
    paths = RunPaths(Path(root))
    manifest = read_manifest(paths)
    pool = Pool(paths, readonly=True)  # status may run beside a live run: read, never repair
    accepted = pool.accepted.count
    by_kind: dict[str, list[dict]] = {"measure": [], "round": [], "stop": [], "usage": [], "seed_features": []}
    for e in EventLog(paths.events):  # one pass: the log grows by a few lines per round
        if e.get("kind") in by_kind:
            by_kind[e["kind"]].append(e)
    measures, rounds, stops = by_kind["measure"], by_kind["round"], by_kind["stop"]
    seeds = pool.seed_count()
    return {
        "run_dir": str(paths.root),
        "run_id": manifest.run_id,
        "task": manifest.task,
        "target": manifest.target,
        "accepted": accepted,
        "complete": accepted >= manifest.target,
        "rounds": max((e["round"] for e in rounds), default=0),
        "seeds": seeds,
        "pool": seeds + accepted,
        "g_vendi": measures[-1]["g_vendi"] if measures else None,
        "g_vendi_history": [round(e["g_vendi"], 4) for e in measures],
        "last_round": rounds[-1].get("funnel") if rounds else None,
        "last_funnel": Funnel.of(rounds[-1].get("funnel")).counts() if rounds else None,
        "stop_reason": stops[-1]["reason"] if stops and stops[-1].get("accepted") == accepted else None,
        **_backend_errors(by_kind["usage"]),
        **_endpoints(by_kind["usage"], paths),
        **_skipped(paths),
        # seed featurization's progress, chunk by chunk (`loop/seed_features.py`): rows done of the seeds
        "seed_features": {k: chunks[-1][k] for k in ("rows", "of")} if (chunks := by_kind["seed_features"]) else None,
    }


def endpoint_info(root: Path) -> dict:
    """Only the per-endpoint part of `run_status` ({endpoints, prefill, parse_yield}): what the live dashboard
    shows per endpoint, from the same files (usage events, `endpoints.json`, the generate step files)."""
    paths = RunPaths(Path(root))
    usage = [e for e in EventLog(paths.events) if e.get("kind") == "usage"]
    return _endpoints(usage, paths)


def endpoint_line(info: dict, name: str) -> str:
    """One endpoint's calls, how it is sent a started answer, and its parse yield, as far as known (`status`
    and the dashboard)."""
    from prism_agent.generators.prefill import describe

    parts = []
    if (c := info["endpoints"].get(name)) is not None:
        down = f", marked down {c['downs']}×" if c["downs"] else ""
        parts.append(f"{c['requests']} calls, {c['failures']} failed, {c['failovers']} moved to another "
                     f"endpoint{down}")
    if (mode := info["prefill"].get(name)) is not None:
        parts.append(describe(mode))
    if (y := info["parse_yield"].get(name)) is not None:
        share = f" ({y['parsed'] / y['completions']:.0%})" if y["completions"] else ""
        parts.append(f"parse yield {y['parsed']} of {y['completions']} completions{share}")
    return "; ".join(parts)


def _skipped(paths: RunPaths) -> dict:
    """Requests that failed for good and were skipped (run/failures.py), per step and per reason."""
    from prism_agent.run.failures import failed_counts

    per_step, reasons = failed_counts(paths.rounds)
    return {"skipped_requests": per_step, "skipped_reasons": reasons}


def _backend_errors(usage: list[dict]) -> dict:
    """Retries and failed calls of the run's endpoints, summed over rounds (a resumed round counts the calls
    of each process that worked on it)."""
    retries = failures = 0
    reasons: dict[str, int] = {}
    for e in usage:
        for b in (e.get("backend_errors") or {}).values():
            retries += b.get("retries", 0)
            failures += b.get("failures", 0)
            for k, v in (b.get("reasons") or {}).items():
                reasons[k] = reasons.get(k, 0) + v
    return {"retries": retries, "failures": failures, "retry_reasons": reasons}


def _endpoints(usage: list[dict], paths: RunPaths) -> dict:
    """Per endpoint URL: calls sent, failed, moved to another endpoint, times marked down (from the usage
    events, summed over rounds and processes); how each is sent a started answer (`endpoints.json`); and the
    parse yield per endpoint: completions returned and those that held a sample (the generate step files, so
    a resumed round counts its replayed completions once)."""
    import json

    from prism_agent.generators.prefill import PrefillCache

    counts: dict[str, dict[str, int]] = {}
    for e in usage:
        for b in (e.get("backend_errors") or {}).values():
            for url, c in (b.get("endpoints") or {}).items():
                mine = counts.setdefault(url, {"requests": 0, "failures": 0, "failovers": 0, "downs": 0})
                for k in mine:
                    mine[k] += int(c.get(k, 0))
    cache = PrefillCache(paths.root / "endpoints.json")
    prefill = {entry["url"]: entry["prefill"] for entry in cache.entries()}
    parse_yield: dict[str, dict[str, int]] = {}
    for path in sorted(paths.rounds.glob("round-*/generate.json")) if paths.rounds.is_dir() else ():
        try:
            tallies = json.loads(path.read_text()).get("endpoints") or {}
        except (OSError, ValueError):  # a step file is written atomically; anything else is not ours to judge
            continue
        for name, t in tallies.items():
            mine = parse_yield.setdefault(name, {"completions": 0, "parsed": 0})
            mine["completions"] += int(t.get("completions", 0))
            mine["parsed"] += int(t.get("parsed", 0))
    return {"endpoints": counts, "prefill": prefill, "parse_yield": parse_yield}
