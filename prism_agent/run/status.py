"""What a run directory says about itself, without loading any model: for `prism-agent status`, the
dashboard's resume line, and reports."""

from __future__ import annotations

from pathlib import Path

from prism_agent.run.events import EventLog
from prism_agent.run.manifest import read_manifest
from prism_agent.run.paths import RunPaths
from prism_agent.run.samples import SampleLog


def run_status(root: Path) -> dict:
    paths = RunPaths(Path(root))
    manifest = read_manifest(paths)
    log = SampleLog(paths.samples, paths.commits) if paths.samples.exists() or paths.commits.exists() else None
    accepted = log.count if log else 0
    measures = [e for e in EventLog(paths.events) if e.get("kind") == "measure"]
    rounds = [e for e in EventLog(paths.events) if e.get("kind") == "round"]
    stops = [e for e in EventLog(paths.events) if e.get("kind") == "stop"]
    seeds = 0
    if (paths.pool / "seeds.jsonl").exists():
        with (paths.pool / "seeds.jsonl").open("rb") as fh:
            seeds = sum(1 for _ in fh)
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
        "stop_reason": stops[-1]["reason"] if stops and stops[-1].get("accepted") == accepted else None,
    }
