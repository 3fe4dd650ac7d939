"""The call log (generators/replay.py) in WAL mode with `synchronous=NORMAL`: a call `put` returned for is
still there after the writing process is killed with SIGKILL, and a call log written in rollback-journal mode
(an older run directory's) opens, replays and is switched to WAL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from prism_agent.generators.replay import ReplayStore, request_key
from prism_agent.generators.types import Completion, GenRequest, GenResult, Usage

WRITER = """
import sys
from prism_agent.generators.replay import ReplayStore, request_key
from prism_agent.generators.types import Completion, GenRequest, GenResult, Usage
store = ReplayStore(sys.argv[1])
for i in range(1_000_000):
    req = GenRequest.chat([{"role": "user", "content": f"q{i}"}], n=1, seed=i)
    res = GenResult(completions=[Completion(text=f"a{i}", finish_reason="stop", completion_tokens=1)],
                    usage=Usage(prompt_tokens=1, completion_tokens=1), latency_s=0.0, model="m")
    store.put(request_key("m", req), "m", req, res)
    print(i, flush=True)
"""


def _call(i: int) -> tuple[GenRequest, GenResult]:
    req = GenRequest.chat([{"role": "user", "content": f"q{i}"}], n=1, seed=i)
    return req, GenResult(completions=[Completion(text=f"a{i}", finish_reason="stop", completion_tokens=1)],
                          usage=Usage(prompt_tokens=1, completion_tokens=1), latency_s=0.0, model="m")


def test_calls_survive_kill_9(tmp_path):
    path = tmp_path / "calls.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    done = -1
    for line in proc.stdout:  # the writer says each call once `put` returned
        done = int(line)
        if done >= 300:
            break
    proc.kill()  # SIGKILL: no close, no checkpoint
    proc.wait()
    store = ReplayStore(path)
    for i in range(done + 1):
        req, res = _call(i)
        got = store.get(request_key("m", req))
        assert got is not None and got.texts == res.texts, i
    store.close()


def test_rollback_journal_call_log_opens(tmp_path):
    path = tmp_path / "calls.sqlite"
    old = ReplayStore(path, synchronous="FULL")
    req, res = _call(1)
    old.put(request_key("m", req), "m", req, res)
    old.close()
    with sqlite3.connect(path) as db:  # as a run directory from before WAL would have it
        assert db.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    store = ReplayStore(path)
    assert store.get(request_key("m", req)).texts == res.texts and len(store) == 1
    assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store._db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    store.close()
