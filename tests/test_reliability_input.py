"""The bad input matrix of `prism-agent run` (RELIABILITY.md): each case gives one `error:` line on stderr, no
traceback, a non-zero exit, and leaves the run directory as it was: a new one is not created, an existing
one keeps every file byte for byte. All of them fail before a model is loaded, so each takes seconds (the
CLI's own start-up); they run the real CLI as a subprocess."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, connections are refused


def _cli(*args, preexec_fn=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


def _error_line(r: subprocess.CompletedProcess, *, only: bool = True) -> str:
    """The one `error:` line (and, with `only`, nothing else on stderr)."""
    assert r.returncode not in (0, 130), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    if only:
        assert lines == errors, r.stderr
    return errors[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make_run(root: Path, task: str = "nli", generator: str | None = None) -> dict[str, bytes]:
    """A run directory as `prism-agent run --task T --target 2 --run-dir ROOT [--generator G]` leaves it
    after `prepare` (manifest, seeds, events), made in-process so that no model is loaded."""
    from prism_agent.cli.run_cmd import role_spec
    from prism_agent.config.backends import parse_roles
    from prism_agent.config_files import build_run_config
    from prism_agent.loop.context import RunContext

    cfg = build_run_config(None, {"task": task, "target": "2"})
    if generator:
        cfg = cfg.model_copy(update={"roles": parse_roles({"generator": role_spec(generator, "generator")})})
    ctx = RunContext.open(root, cfg)
    ctx.pool.write_seeds([{"id": f"seed:{i}", "prompt": f"Premise: A dog runs {i}.\nHypothesis: An animal moves.",
                           "response": "entailment"} for i in range(8)])
    ctx.events.emit("prepare", seeds=8, pool=8)
    return _snapshot(root)


@pytest.fixture
def files(tmp_path) -> Path:
    good = '{"prompt": "Premise: a b c\\nHypothesis: d e f", "response": "neutral"}\n'
    (tmp_path / "malformed.jsonl").write_text(good + '{"prompt": "oops", "response": \n')
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "fields.jsonl").write_text('{"question": "What is 2+2?", "answer": "4"}\n')
    (tmp_path / "bad.toml").write_text('per_round = 6\n\n[generation\nmax_tokens = 128\n')
    (tmp_path / "unknown.toml").write_text('per_round = 6\n[generation]\ntemprature = 0.7\n')
    (tmp_path / "a-file").write_text("not a folder\n")
    return tmp_path


# case → (extra arguments, words the error line must contain)
NEW_RUN_CASES = {
    "malformed seed file": (["--seed", "{d}/malformed.jsonl"], ["malformed.jsonl", "malformed JSON", "row 2"]),
    "empty seed file": (["--seed", "{d}/empty.jsonl"], ["empty.jsonl", "empty"]),
    "seed rows missing fields": (["--seed", "{d}/fields.jsonl"], ["fields.jsonl", "missing field 'prompt'"]),
    "missing seed file": (["--seed", "{d}/none.jsonl"], ["none.jsonl"]),
    "unknown task": (["--task", "poetry"], ["unknown task 'poetry'", "math, nli"]),
    "bad TOML": (["--config", "{d}/bad.toml"], ["bad.toml", "line 3"]),
    "unknown config key": (["--config", "{d}/unknown.toml"], ["unknown.toml", "generation.temprature"]),
    "run dir under a file": (["--run-dir", "{d}/a-file/run"], ["a-file is a file"]),
    "unreachable endpoint": (["--generator", f"openai:m@{UNREACHABLE}"], ["cannot reach", "127.0.0.1:9",
                                                                            "connection refused"]),
    "missing proxy model": (["--proxy", "/nonexistent/proxy"], ["proxy", "/nonexistent/proxy", "no such file"]),
    "missing generator model": (["--generator", "local:/nonexistent/model"], ["roles.generator.model"]),
}


@pytest.mark.parametrize("case", list(NEW_RUN_CASES))
def test_bad_input_new_run(files, case):
    extra, words = NEW_RUN_CASES[case]
    run_dir = files / "run"
    args = ["run", "--task", "nli", "--target", "2", "--run-dir", run_dir, *(a.format(d=files) for a in extra)]
    started = time.monotonic()
    r = _cli(*args)
    line = _error_line(r)
    for word in words:
        assert word in line, line
    assert not run_dir.exists()  # nothing was created
    assert time.monotonic() - started < 60  # no model load, no retries: the CLI's start-up and one check


EXISTING_RUN_CASES = {
    "other task": (["--task", "math"], ["run of task 'nli'", "not 'math'", "another --run-dir"]),
    "unknown task": (["--task", "poetry"], ["unknown task"]),
    "bad TOML": (["--config", "{d}/bad.toml"], ["bad.toml", "line 3"]),
    "unknown config key": (["--config", "{d}/unknown.toml"], ["generation.temprature"]),
    "changed config": (["--per-round", "7"], ["differs in: per_round: (unset) → 7", "--force-config"]),
    "other task, forced": (["--task", "math", "--force-config"], ["run of task 'nli'"]),
    # only the URL changed (a free field): the config check passes, the endpoint check refuses
    "unreachable endpoint": (["--generator", f"openai:m@{UNREACHABLE}"], ["cannot reach"]),
}


@pytest.mark.parametrize("case", list(EXISTING_RUN_CASES))
def test_bad_input_existing_run_is_untouched(files, case):
    extra, words = EXISTING_RUN_CASES[case]
    run_dir = files / "run"
    before = _make_run(run_dir, generator="openai:m@http://127.0.0.1:8/v1")
    args = ["run", "--task", "nli", "--target", "2", "--run-dir", run_dir,
            "--generator", "openai:m@http://127.0.0.1:8/v1", *(a.format(d=files) for a in extra)]
    line = _error_line(_cli(*args))
    for word in words:
        assert word in line, line
    assert _snapshot(run_dir) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_read_only_parent(files):
    parent = files / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        line = _error_line(_cli("run", "--task", "nli", "--target", "2", "--run-dir", parent / "run"))
    finally:
        parent.chmod(0o700)
    assert "cannot write to" in line and not (parent / "run").exists()


def _file_size_limit(limit: int):
    """For the child: writes past `limit` bytes fail with EFBIG (SIGXFSZ ignored, as a full disk would)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_new_run(files):
    """The manifest cannot be written: one line, no manifest and no temporary file left behind."""
    run_dir = files / "run"
    r = _cli("run", "--task", "nli", "--target", "2", "--run-dir", run_dir, preexec_fn=_file_size_limit(512))
    line = _error_line(r)
    assert "File too large" in line and "resume with:" in line
    assert _snapshot(run_dir) == {}  # no half-written manifest, no .tmp


def test_disk_full_existing_run(files):
    """A started run whose next write fails (here SQLite's first page): one error line, the files it had are
    byte-identical, and the directory still reads as a run."""
    run_dir = files / "run"
    before = _make_run(run_dir)
    args = ["run", "--task", "nli", "--target", "2", "--run-dir", run_dir]
    line = _error_line(_cli(*args, preexec_fn=_file_size_limit(1024)), only=False)
    assert "SQLite" in line and "resume with:" in line and " ".join(map(str, args)) in line
    after = _snapshot(run_dir)
    assert {k: after[k] for k in before} == before
    assert not [k for k in after if k.endswith(".tmp")]
    status = _cli("status", run_dir, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["accepted"] == 0


def test_force_config_allows_a_change(files):
    """--force-config (and its old name) lets a changed field through and records it; the refusal before
    left the manifest alone."""
    from prism_agent.run.manifest import read_manifest
    from prism_agent.run.paths import RunPaths

    run_dir = files / "run"
    _make_run(run_dir)
    # a missing proxy still stops it before anything is written or loaded, after the config check passed
    r = _cli("run", "--task", "nli", "--target", "2", "--run-dir", run_dir, "--per-round", "7",
             "--proxy", "/nonexistent/proxy", "--allow-config-change")
    assert "note: --force-config" in r.stderr and "per_round: (unset) → 7" in r.stderr
    assert "/nonexistent/proxy" in _error_line(r, only=False)
    assert read_manifest(RunPaths(run_dir)).config.get("per_round") is None
