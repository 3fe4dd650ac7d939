"""The kill -9 harness (RELIABILITY.md), shared by tests/test_reliability_kill.py and bench/chaos_kill.py.

It runs `prism-agent run` as a subprocess and kills it with SIGKILL inside a chosen loop node, starts it
again, and finally lets it finish. Where each kill lands is not left to a timer: each start gets a kill point
(`PRISM_AGENT_TEST_KILL_AT`, the test hook of `prism_agent/killpoint.py`), the process SIGKILLs itself just
before that durable write inside that node, and the harness proves where it landed from two sources: the
line the hook printed (node and write) and the run's own event log (the last event before the kill must be
one that precedes that node, never the node's own completion). Then it checks what a user relies on: exactly
`target` samples, unique ids, every line of every log valid JSON, each sample's provenance intact, the
feature store holding exactly the pool (seeds + accepted, same ids in the same order), and no LLM call paid
for twice (the call log's `sent` ledger has no request sent after its result was recorded).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from prism_agent.killpoint import ENV, KILL_LINE

# The events a kill inside each node may follow: what the nodes before it emit on completion (commit emits
# `round` then `usage`), and the node's own progress events (`seed_features` per seed chunk in prepare).
# The node's own completion event must not be the last one.
PRECEDING = {
    "prepare": {None, "seed_features"},
    "measure": {"prepare", "usage"},
    "cluster": {"measure"},
    "generate": {"cluster", "measure"},  # the vanilla graph has no cluster node
    "vote": {"generate"},
    "reject": {"vote"},
    "decontaminate": {"reject"},
    "commit": {"decontaminate", "round"},
}
NODES = tuple(PRECEDING)
_LANDED = re.compile(re.escape(KILL_LINE) + r" (\w+) before (.+) \(#(\d+)\)$", re.M)


@dataclass
class Kill:
    at: str  # the kill point asked for (`<node>:<n>` or `<node>:<what>:<n>`)
    node: str | None = None  # where the hook says it landed
    write: str | None = None  # the write it stopped before
    last_event: str | None = None  # the last event in the run's log after the kill
    rc: int | None = None
    starts: int = 0  # starts it took (a start that finished first raised the target)


@dataclass
class ChaosReport:
    kills: list[Kill] = field(default_factory=list)
    finished_early: int = 0  # starts that completed before reaching their kill point (the target was then raised)
    target: int = 0  # the target the run ended with
    final_rc: int | None = None
    final_stderr: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.final_rc == 0 and not self.problems

    @property
    def landed(self) -> list[str]:
        return [k.node or "nowhere" for k in self.kills]


def last_event(run_dir: Path) -> str | None:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return None
    lines = [x for x in path.read_bytes().splitlines() if x.strip()]
    try:
        return json.loads(lines[-1]).get("kind") if lines else None
    except ValueError:
        return "torn line"


def _check_landing(kill: Kill, problems: list[str]) -> None:
    want = kill.at.split(":")[0]
    if kill.rc != -signal.SIGKILL:
        problems.append(f"kill at {kill.at}: the process ended with {kill.rc}, not SIGKILL")
    elif kill.node != want:
        problems.append(f"kill at {kill.at}: the hook reports it landed in {kill.node}")
    elif kill.last_event not in PRECEDING[want]:
        problems.append(f"kill at {kill.at}: the last event before it is {kill.last_event!r}, not one that "
                        f"precedes {want} ({sorted(map(str, PRECEDING[want]))})")


def run_with_kills(args: list[str], plan: list[str], *, env: dict | None = None, tries: int = 4,
                   timeout: float = 3000, on_kill=None) -> ChaosReport:
    """Start `prism-agent run ARGS` once per kill point of `plan` (each SIGKILLs itself there, see the module
    docstring), then run it to the end without one. A start that finishes before reaching its point (its
    node came later than the target) is resumed with the target raised by one, a free field on resume, up to
    `tries` starts per point. `on_kill(kill, run_dir)` runs after each kill, before the next start (the suite
    snapshots files there). Output goes to files, never to pipes a killed child could block on."""
    report = ChaosReport()
    started = time.monotonic()
    args = list(args)
    at = args.index("--target") + 1
    report.target = int(args[at])
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    run_dir = Path(args[args.index("--run-dir") + 1])
    base = dict(os.environ if env is None else env)
    base.pop(ENV, None)
    for point in plan:
        kill = Kill(point)
        while kill.rc is None or (kill.rc == 0 and kill.starts < tries):
            kill.starts += 1
            args[at] = str(report.target)
            log_path = logs / f"chaos-{os.getpid()}-{len(report.kills)}-{kill.starts}.log"
            with log_path.open("wb") as log:
                kill.rc = subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *args], stdout=log,
                                         stderr=log, env=base | {ENV: point}, timeout=timeout).returncode
            if kill.rc == 0:
                report.finished_early += 1
                report.target += 1
        found = _LANDED.findall(log_path.read_text(errors="replace"))
        if found:
            kill.node, kill.write = found[-1][0], found[-1][1]
        kill.last_event = last_event(run_dir)
        if kill.rc not in (0, -signal.SIGKILL):
            report.problems.append(f"kill at {point}: exited {kill.rc}: {log_path.read_text(errors='replace')[-2000:]}")
        else:
            _check_landing(kill, report.problems)
        report.kills.append(kill)
        if on_kill is not None:
            on_kill(kill, run_dir)
    args[at] = str(report.target)
    final = subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *args], capture_output=True, text=True,
                           env=base, timeout=timeout)
    report.final_rc, report.final_stderr = final.returncode, final.stderr[-3000:]
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _jsonl(path: Path, problems: list[str]) -> list[dict]:
    rows = []
    if not path.exists():
        return rows
    for n, line in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        if not line.endswith(b"\n"):
            problems.append(f"{path.name}: line {n} is torn (no newline)")
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            problems.append(f"{path.name}: line {n} is not JSON")
    return rows


def check_run(run_dir: Path, target: int, report: ChaosReport) -> ChaosReport:
    """Verify the finished run directory; problems are appended to the report."""
    from prism_agent.gradients.store import FeatureStore

    p = report.problems
    accepted = _jsonl(run_dir / "pool" / "accepted.jsonl", p)
    commits = _jsonl(run_dir / "pool" / "commits.jsonl", p)
    seeds = _jsonl(run_dir / "pool" / "seeds.jsonl", p)
    _jsonl(run_dir / "events.jsonl", p)
    for step_file in sorted(run_dir.glob("rounds/*/*.jsonl")):
        _jsonl(step_file, p)
    ids = [r.get("id") for r in accepted]
    if len(accepted) != target:
        p.append(f"{len(accepted)} accepted samples, target {target}")
    if len(set(ids)) != len(ids):
        p.append(f"{len(ids) - len(set(ids))} duplicated ids")
    if commits and commits[-1].get("count") != len(accepted):
        p.append(f"last commit record says {commits[-1].get('count')} samples, log has {len(accepted)}")
    need = ("id", "prompt", "response", "round", "cluster", "fewshot", "vote", "decontam", "models")
    for r in accepted:
        missing = [k for k in need if k not in r]
        if missing:
            p.append(f"sample {r.get('id')} lacks {missing}")
        elif not (r["vote"].get("accepted") and r["fewshot"] and r["models"].get("generator")):
            p.append(f"sample {r['id']} has empty provenance")
    store = FeatureStore.load(run_dir / "features")
    want = [s["id"] for s in seeds] + ids
    if store.ids() != want:
        p.append(f"feature store holds {len(store)} rows, the pool {len(want)} (or a different order)")
    db = sqlite3.connect(f"file:{run_dir / 'calls.sqlite'}?mode=ro", uri=True)
    try:
        twice = db.execute("SELECT COUNT(*) FROM sent JOIN calls ON sent.key = calls.key "
                           "WHERE sent.t > calls.created").fetchone()[0]
        sent = db.execute("SELECT COUNT(*) FROM sent").fetchone()[0]
        recorded = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    finally:
        db.close()
    if twice:
        p.append(f"{twice} LLM calls were sent again after their result was recorded")
    report.facts = {"accepted": len(accepted), "commits": len(commits), "calls_recorded": recorded,
                    "calls_sent": sent, "resent_after_record": twice, "resent_unrecorded": sent - recorded,
                    "rounds": len(list(run_dir.glob("rounds/*")))}
    return report
