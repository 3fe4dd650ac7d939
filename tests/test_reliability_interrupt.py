"""Ctrl-C/SIGTERM and a full disk during `prism-agent run` (RELIABILITY.md, "Ctrl-C and SIGTERM").

The fast tests drive `GracefulStop` in this process with real signals. The slow ones run a real tiny NLI run
(the embedded 135M model in every role, as in test_loop_run) as a subprocess:

1. a file-size limit makes the feature shard write in `prepare` fail: one error line, exit 2;
2. the same command without the limit resumes; SIGTERM after round 1's generate line: exit 130 and the
   exact command to resume, the run directory still reads as a run;
3. that command under a tighter limit fails at its first SQLite write: one line, the committed files byte for
   byte as they were;
4. that command without a limit completes (patience 1 ends the run after round 1), without generating
   round 1 again and with every logged call kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from prism_agent.cli.interrupt import GracefulStop, invocation
from tests.support.tiny import benchmark_head

# ---- fast: the handler itself ------------------------------------------------------------------------------


def _updates(n: int, delay: float = 0.05):
    for i in range(n):
        time.sleep(delay)
        yield i


def test_first_signal_stops_at_the_next_boundary():
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    with GracefulStop(grace_s=30) as stop:
        for update in stop.until(_updates(5)):
            seen.append(update)
            if update == 1:
                signal.raise_signal(signal.SIGTERM)
    assert seen == [0, 1] and stop.requested == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_grace_period_abandons_a_long_step():
    """A step that outlasts the grace period is interrupted in the main thread, even inside a blocking call."""
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), GracefulStop(grace_s=0.3) as stop:
        signal.raise_signal(signal.SIGINT)
        time.sleep(20)  # a long step
    assert stop.requested == signal.SIGINT and time.monotonic() - started < 5


def test_second_signal_stops_now():
    with pytest.raises(KeyboardInterrupt), GracefulStop(grace_s=30):
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        time.sleep(20)


def test_grace_timer_is_disarmed_when_the_loop_ends():
    with GracefulStop(grace_s=0.2) as stop:
        signal.raise_signal(signal.SIGTERM)
        stop.disarm()
        time.sleep(0.5)  # no KeyboardInterrupt: the loop had already stopped


@pytest.mark.parametrize(("argv0", "head"), [
    ("/x/prism_agent/cli/app.py", [sys.executable, "-m", "prism_agent.cli.app"]),
    ("/x/cli.py", [sys.executable, "/x/cli.py"]),
    ("/nowhere/bin/prism-agent", ["prism-agent"]),
])
def test_invocation_quotes_the_command(monkeypatch, argv0, head):
    monkeypatch.setattr(sys, "argv", [argv0])
    line = invocation(["run", "--task", "nli", "--run-dir", "my runs/a b"])
    assert shlex.split(line) == [*head, "run", "--task", "nli", "--run-dir", "my runs/a b"]


# ---- slow: a real run ------------------------------------------------------------------------------------


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "prism_agent.cli.app", *map(str, args)]


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _committed(snapshot: dict[str, bytes]) -> dict[str, bytes]:
    """Files a failed resume must leave alone (SQLite's own -wal/-shm side files may appear)."""
    return {k: v for k, v in snapshot.items() if not k.endswith(("-wal", "-shm", "-journal"))}


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]


def _call_keys(run_dir: Path) -> set[str]:
    """The logged call keys. Closing the last connection checkpoints SQLite's WAL into calls.sqlite, which
    changes that file's bytes (not its content): take this before a byte snapshot, not after."""
    with contextlib.closing(sqlite3.connect(run_dir / "calls.sqlite")) as db:
        return {k for (k,) in db.execute("SELECT key FROM calls")}


def _run_until(cmd: list[str], marker: str, log: Path, *, on_stderr: bool = False, signals: int = 1,
               timeout: float = 600) -> tuple[int, list[str], str]:
    """Start `cmd`; once a line of its stdout (or stderr) starts with `marker`, send SIGTERM `signals` times
    half a second apart; wait for it to end. Returns its exit code, the watched lines and its stderr."""
    with log.open("w") as other:
        proc = subprocess.Popen(cmd, text=True, stdout=other if on_stderr else subprocess.PIPE,
                                stderr=subprocess.PIPE if on_stderr else other)
        watched = proc.stderr if on_stderr else proc.stdout
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in watched] + [lines.put(None)], daemon=True).start()
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
            if line.startswith(marker):
                for i in range(signals):
                    time.sleep(0.5 * (i > 0))
                    proc.send_signal(signal.SIGTERM)
        else:
            proc.kill()
        rc = proc.wait(timeout=120)
    return rc, seen, "".join(seen) if on_stderr else log.read_text()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """Steps 1 and 2 of the module docstring; returns what they left."""

    tmp = tmp_path_factory.mktemp("interrupt")
    bench = benchmark_head(tmp, "snli-test")
    cfg = tmp / "run.toml"
    cfg.write_text(f'seed_sample = 16\nper_round = 4\npatience = 1\nbenchmarks = ["snli200={bench}"]\n'
                   "[cluster]\nk_min = 4\n[featurizer]\nrank_in = 16\nrank_out = 16\n")
    run_dir = tmp / "run"
    args = _cmd("run", "--task", "nli", "--target", "1", "--config", cfg, "--run-dir", run_dir)
    # 16 seeds × 1024 float32 features = 64 KiB: the shard write in `prepare` passes the 32 KiB limit
    full = subprocess.run(args, capture_output=True, text=True, timeout=600, preexec_fn=_file_size_limit(32768))
    rc, stdout, stderr = _run_until(args, "  generate:", tmp / "stop.log")
    return {"run_dir": run_dir, "args": args, "full": full, "rc": rc, "stdout": stdout, "stderr": stderr}


@pytest.mark.slow
def test_disk_full_in_prepare_then_resume(stopped):
    line = _error_line(stopped["full"])
    assert "disk full or a file-size limit" in line and "resume with:" in line
    assert "pool ready: 16 rows" in "".join(stopped["stdout"])  # the rerun without the limit got past it
    assert not list(stopped["run_dir"].rglob("*.tmp"))


@pytest.mark.slow
def test_sigterm_exits_130_with_the_command_to_resume(stopped):
    run_dir, stderr = stopped["run_dir"], stopped["stderr"]
    assert stopped["rc"] == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "SIGTERM: stopping after the current step" in stderr
    lines = stderr.splitlines()
    resume = lines[lines.index(next(ln for ln in lines if ln.endswith("To resume:"))) + 1]
    assert shlex.split(resume) == stopped["args"]
    status = subprocess.run(_cmd("status", run_dir, "--json"), capture_output=True, text=True, timeout=120)
    info = json.loads(status.stdout)
    assert status.returncode == 0 and info["accepted"] == 0 and not info["complete"]
    assert [e["round"] for e in _events(run_dir) if e["kind"] == "generate"] == [1]


@pytest.mark.slow
def test_copied_run_resumes_and_a_second_signal_stops_the_step_now(stopped, tmp_path):
    """A run directory copied elsewhere resumes (the state names the old path); two signals abandon the
    step in flight at once, and the original directory is not touched."""
    import shutil

    run_dir = stopped["run_dir"]
    before = _snapshot(run_dir)
    copy = tmp_path / "copied run"
    shutil.copytree(run_dir, copy)
    args = [str(copy) if a == str(run_dir) else a for a in stopped["args"]]
    started = time.monotonic()
    rc, _, stderr = _run_until(args, "resuming at", tmp_path / "out.log", on_stderr=True, signals=2)
    assert rc == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert shlex.quote(str(copy)) in stderr and time.monotonic() - started < 120
    assert _snapshot(run_dir) == before


@pytest.mark.slow
def test_other_task_is_refused_and_leaves_the_run_alone(stopped):
    run_dir = stopped["run_dir"]
    before = _snapshot(run_dir)
    r = subprocess.run(_cmd("run", "--task", "math", "--target", "1", "--run-dir", run_dir), capture_output=True,
                       text=True, timeout=120)
    assert "run of task 'nli'" in _error_line(r) and len(r.stderr.strip().splitlines()) == 1
    assert _snapshot(run_dir) == before


@pytest.mark.slow
def test_disk_full_on_resume_then_the_resume_completes(stopped):
    """Steps 3 and 4; runs last in this module because it finishes the run."""
    run_dir, args = stopped["run_dir"], stopped["args"]
    calls_before = _call_keys(run_dir)  # first: its checkpoint must not count as the failed resume's change
    before = _snapshot(run_dir)
    full = subprocess.run(args, capture_output=True, text=True, timeout=600, preexec_fn=_file_size_limit(4096))
    assert "resume with:" in _error_line(full)
    assert _committed(_snapshot(run_dir)) == _committed(before)

    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming at" in done.stderr
    assert [e["round"] for e in _events(run_dir) if e["kind"] == "generate"] == [1]  # round 1 not generated again
    assert calls_before <= _call_keys(run_dir)  # every paid call is still logged
    info = json.loads(subprocess.run(_cmd("status", run_dir, "--json"), capture_output=True, text=True).stdout)
    assert info["stop_reason"] and info["accepted"] <= 1
    rows = [json.loads(x) for x in (run_dir / "pool" / "accepted.jsonl").read_text().splitlines()] if (
        run_dir / "pool" / "accepted.jsonl").exists() else []
    assert len(rows) == info["accepted"] and len({r["id"] for r in rows}) == len(rows)


def test_resume_command_survives_odd_paths(tmp_path):
    """The printed command round-trips through the shell even for a run directory with spaces and quotes."""
    run_dir = tmp_path / "it's a run"
    line = invocation(["run", "--task", "nli", "--target", "1", "--run-dir", str(run_dir)])
    out = subprocess.run(["bash", "-c", f"printf '%s\\n' {line}"], capture_output=True, text=True).stdout
    assert out.splitlines()[-1] == str(run_dir)
    assert os.sep in line


def test_torn_event_line_is_cut_before_the_next_append(tmp_path):
    """A full disk can leave half an event line; the next writer must not glue its event onto it."""
    from prism_agent.run.events import EventLog

    log = EventLog(tmp_path / "events.jsonl")
    log.emit("measure", round=0)
    with log.path.open("ab") as fh:
        fh.write(b'{"t": 1, "kind": "vo')  # the write that hit the limit
    EventLog(log.path).emit("round", round=1)
    assert [e["kind"] for e in EventLog(log.path)] == ["measure", "round"]
    assert log.path.read_bytes().endswith(b"\n") and log.path.read_bytes().count(b"\n") == 2
