"""The accepted-sample log: commit markers decide what counts; a killed round leaves no trace."""

from __future__ import annotations

import json

from prism_agent.run.events import EventLog
from prism_agent.run.paths import RunPaths
from prism_agent.run.samples import SampleLog


def _log(tmp_path) -> SampleLog:
    p = RunPaths(tmp_path)
    return SampleLog(p.samples, p.commits)


def test_append_commit_and_reopen(tmp_path):
    log = _log(tmp_path)
    log.append([{"id": "a"}, {"id": "b"}], round_index=1, features=12)
    log.append([{"id": "c", "text": "ünïcode"}], round_index=2, features=13)
    again = _log(tmp_path)
    assert again.count == 3 and [r["id"] for r in again] == ["a", "b", "c"]
    assert [c.round for c in again.commits()] == [1, 2] and again.last.features == 13


def test_uncommitted_tail_and_torn_commit_are_cut(tmp_path):
    log = _log(tmp_path)
    log.append([{"id": "a"}], round_index=1, features=1)
    committed = log.data.stat().st_size
    # a round killed after writing rows but before its commit record
    with log.data.open("ab") as fh:
        fh.write(b'{"id": "x"}\n{"id": "y"')
    # and a commit record torn mid-line
    with log.commits_path.open("ab") as fh:
        fh.write(b'{"bytes": 99, "co')
    again = _log(tmp_path)
    assert again.count == 1 and [r["id"] for r in again] == ["a"]
    assert again.data.stat().st_size == committed
    assert again.commits_path.read_bytes().count(b"\n") == 1
    again.append([{"id": "b"}], round_index=2, features=2)  # appends after the cut, nothing doubled
    assert [r["id"] for r in _log(tmp_path)] == ["a", "b"]


def test_event_log_skips_torn_line(tmp_path):
    ev = EventLog(tmp_path / "events.jsonl")
    ev.emit("round", round=1, accepted=3)
    with ev.path.open("a") as fh:
        fh.write('{"kind": "round", "rou')
    assert [e["round"] for e in ev.of_kind("round")] == [1]
    assert json.loads(ev.path.read_text().splitlines()[0])["accepted"] == 3


def test_readonly_log_reads_the_committed_prefix_and_cuts_nothing(tmp_path):
    log = _log(tmp_path)
    log.append([{"id": "a"}], round_index=1, features=1)
    with log.data.open("ab") as fh:  # a live run between writing rows and writing their commit record
        fh.write(b'{"id": "in-flight"}\n')
    size = log.data.stat().st_size
    p = RunPaths(tmp_path)
    reader = SampleLog(p.samples, p.commits, readonly=True)
    assert reader.count == 1 and [r["id"] for r in reader] == ["a"]
    assert log.data.stat().st_size == size  # status/export never repair a file a run is writing
