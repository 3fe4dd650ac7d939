"""The kill -9 suite's test hook (`prism_agent/killpoint.py`): a real SIGKILL at a named write inside a named
node, nothing without the variable. The suite that uses it is tests/test_reliability_kill.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from prism_agent import killpoint

SCRIPT = """
from prism_agent import killpoint
from prism_agent.atomic import write_atomic
import pathlib, sys
tmp = pathlib.Path(sys.argv[1])
def node(name):
    def run():
        for i in range(3):
            write_atomic(tmp / f"{name}-{i}.txt", lambda fh: fh.write(b"x"))
        killpoint.reached("commit record")
    return killpoint.within(name, run)
for name in ("measure", "commit", "commit"):
    node(name)()
print("finished")
"""


def _run(tmp_path, at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != killpoint.ENV} | ({killpoint.ENV: at} if at else {})
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize(("at", "line", "written"), [
    ("commit:2", "commit before commit-1.txt (#2)", ["commit-0.txt", "measure-0.txt", "measure-1.txt",
                                                     "measure-2.txt"]),
    ("commit:commit record:2", "commit before commit record (#2)", ["commit-0.txt", "commit-1.txt", "commit-2.txt",
                                                                    "measure-0.txt", "measure-1.txt",
                                                                    "measure-2.txt"]),
])
def test_the_process_kills_itself_before_the_named_write_inside_the_named_node(tmp_path, at, line, written):
    r = _run(tmp_path, at)
    assert r.returncode == -signal.SIGKILL and "finished" not in r.stdout
    assert r.stderr.strip() == f"{killpoint.KILL_LINE} {line}"
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == written  # the write it stopped before is not in place
    # the staged file of the write it stopped before is left behind, as a kill between fsync and rename leaves it
    assert [p.name for p in tmp_path.glob("*.tmp")] == (["commit-1.txt.tmp"] if at == "commit:2" else [])


def test_without_the_variable_or_outside_a_node_nothing_happens(tmp_path):
    r = _run(tmp_path, None)
    assert r.returncode == 0 and r.stdout.strip() == "finished" and not r.stderr
    assert _run(tmp_path, "cluster:1").returncode == 0  # no such node ran


def test_a_malformed_point_is_refused(monkeypatch):
    monkeypatch.setenv(killpoint.ENV, "commit")
    with pytest.raises(ValueError, match="<node>:<n>"):
        killpoint.within("commit", lambda: killpoint.reached("x"))()
