"""The kill -9 harness (RELIABILITY.md), shared by tests/test_reliability_kill.py and bench/chaos_kill.py.

It runs `prism-agent run` as a subprocess, SIGKILLs it at random moments (anywhere: model loading, a decode
batch, a feature-shard write, an append to the sample log, a SQLite commit), starts it again, and finally
lets it finish. Then it checks what a user relies on: exactly `target` samples, unique ids, every line of
every log valid JSON, each sample's provenance intact, the feature store holding exactly the pool (seeds +
accepted, same ids in the same order), and no LLM call paid for twice (the call log's `sent` ledger has no
request sent after its result was recorded).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ChaosReport:
    kills: int = 0  # SIGKILLs that hit a live process
    finished_early: int = 0  # starts that completed before their kill came (the target was then raised)
    target: int = 0  # the target the run ended with
    delays: list[float] = field(default_factory=list)
    landed_after: dict[str, int] = field(default_factory=dict)  # last finished event before each kill
    final_rc: int | None = None
    final_stderr: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.final_rc == 0 and not self.problems


def _last_event(run_dir: Path | None) -> str:
    path = run_dir / "events.jsonl" if run_dir else None
    if not path or not path.exists():
        return "start"
    lines = [x for x in path.read_bytes().splitlines() if x.strip()]
    try:
        return json.loads(lines[-1]).get("kind", "?") if lines else "start"
    except ValueError:
        return "torn line"


def run_with_kills(args: list[str], kills: int, *, seed: int, min_s: float, max_s: float,
                   env: dict | None = None, timeout: float = 3000) -> ChaosReport:
    """Start `prism-agent run ARGS` and SIGKILL it `kills` times at uniform random delays, then run it to
    the end. A start that finishes before its kill comes (a fast machine) is resumed with the target raised
    by one, a free field on resume, so all `kills` land on a live process whatever the machine's speed.
    Output goes to files, never to pipes a killed child could block on."""
    rng = random.Random(seed)
    report = ChaosReport()
    started = time.monotonic()
    args = list(args)
    at = args.index("--target") + 1
    report.target = int(args[at])
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    run_dir = Path(args[args.index("--run-dir") + 1]) if "--run-dir" in args else None
    starts = 0
    while report.kills < kills and starts < 4 * kills:
        starts += 1
        args[at] = str(report.target)
        cmd = [sys.executable, "-m", "prism_agent.cli.app", *args]
        delay = rng.uniform(min_s, max_s)
        with open(logs / f"chaos-{os.getpid()}.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
            try:
                rc = proc.wait(timeout=delay)
                report.finished_early += 1
                if rc != 0:
                    report.problems.append(f"start {starts} exited {rc} before its kill")
                report.target += 1
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                where = _last_event(run_dir)
                report.landed_after[where] = report.landed_after.get(where, 0) + 1
                report.kills += 1
                report.delays.append(round(delay, 2))
    args[at] = str(report.target)
    cmd = [sys.executable, "-m", "prism_agent.cli.app", *args]
    final = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
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
