"""One `prism-agent run` per run directory (run/lock.py): a second one is refused with one line and changes
nothing; the lock goes with its holder, kill -9 included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prism_agent.run.lock import RunDirectoryBusy, RunLock

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from prism_agent.run.lock import RunLock
    with RunLock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(120)
""")


def _holder(root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_is_refused_and_released_lock_is_free(tmp_path):
    root = tmp_path / "run"
    with RunLock(root), pytest.raises(RunDirectoryBusy, match="in use by another"):
        RunLock(root).__enter__()
    with RunLock(root):  # released on exit
        pass
    assert list(root.iterdir()) == []  # nothing written for the lock


def test_failed_block_removes_a_directory_it_created(tmp_path):
    root = tmp_path / "new"
    with pytest.raises(ValueError), RunLock(root):
        raise ValueError("rejected")
    assert not root.exists()
    root.mkdir()
    (root / "keep.txt").write_text("x")
    with pytest.raises(ValueError), RunLock(root):
        raise ValueError("rejected")
    assert (root / "keep.txt").exists()


def test_run_on_a_busy_directory_is_one_error_line_and_kill_9_frees_it(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "marker").write_text("untouched")
    holder = _holder(root)
    try:
        r = subprocess.run([sys.executable, "-m", "prism_agent.cli.app", "run", "--task", "nli", "--target", "2",
                            "--run-dir", str(root), "--plain"], capture_output=True, text=True, timeout=120)
        assert r.returncode not in (0, 130), r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "in use by another `prism-agent run`" in errors[0], r.stderr
        assert sorted(p.name for p in root.iterdir()) == ["marker"]
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with RunLock(root):  # the kernel dropped the dead holder's lock: no stale lock to clean up
        pass
