"""Secrets stay out (RELIABILITY.md, "Secrets"): an API key is read only from the environment variable a role names
(`api_key_env`); a key written into a config is refused without being echoed; and after a real run whose
every role talks to a key-protected llama.cpp server, no file of the run directory (manifest, checkpoints,
call log, events, round files, features), no export (jsonl, parquet, hf) and no output of the commands
holds the key's bytes."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny import benchmark_head

KEY_VAR = "PRISM_TEST_KEY"


def _cli(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _roles(base_url: str, model: str) -> str:
    return "".join(f'[roles.{role}]\nbackend = "openai"\nbase_url = "{base_url}"\nmodel = "{model}"\n'
                   f'api_key_env = "{KEY_VAR}"\nmax_concurrency = 2\ntimeout_s = 300\n'
                   for role in ("generator", "solver", "judge"))


def test_inline_key_is_refused_without_echo(tmp_path):
    key = "sk-" + secrets.token_hex(16)
    cfg = tmp_path / "run.toml"
    cfg.write_text(_roles("http://127.0.0.1:9/v1", "m").replace(f'api_key_env = "{KEY_VAR}"', f'api_key = "{key}"',
                                                                  1))
    r = _cli("run", "--task", "nli", "--target", "1", "--config", cfg, "--run-dir", tmp_path / "run")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr
    assert "roles.generator" in lines[0] and "api_key_env" in lines[0]
    assert key not in r.stderr + r.stdout and not (tmp_path / "run").exists()


def test_unset_key_variable_is_one_line(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(_roles("http://127.0.0.1:9/v1", "m"))
    env = {k: v for k, v in os.environ.items() if k != KEY_VAR}
    r = subprocess.run([sys.executable, "-m", "prism_agent.cli.app", "run", "--task", "nli", "--target", "1",
                        "--config", str(cfg), "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: environment variable {KEY_VAR} (api_key_env) is not set"]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else [root]


@pytest.fixture(scope="module")
def keyed_server(smollm2_gguf, tmp_path_factory):
    from tests.support.servers import start_llamacpp

    key = "pa-test-" + secrets.token_hex(24)
    server = start_llamacpp(smollm2_gguf, tmp_path_factory.mktemp("keyed") / "server.log", api_key=key)
    yield server, key
    server.stop()


@pytest.mark.slow
def test_key_is_used_and_found_nowhere(keyed_server, tmp_path):

    server, key = keyed_server
    bench = benchmark_head(tmp_path, "snli-test")
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'seed_sample = 16\nper_round = 3\npatience = 1\nbenchmarks = ["snli200={bench}"]\n'
                   "[cluster]\nk_min = 4\n[featurizer]\nrank_in = 16\nrank_out = 16\n"
                   + _roles(server.base_url, server.model))
    run_dir = tmp_path / "run"
    args = ["run", "--task", "nli", "--target", "1", "--config", cfg, "--run-dir", run_dir]

    wrong = _cli(*args, env={KEY_VAR: "wrong-" + key[::-1]})  # the server really checks the key
    assert wrong.returncode == 2 and "key was refused (401)" in wrong.stderr and not run_dir.exists()
    assert key[::-1] not in wrong.stderr

    outputs = [wrong.stdout, wrong.stderr]
    run = _cli(*args, env={KEY_VAR: key}, timeout=1500)
    outputs += [run.stdout, run.stderr]
    assert run.returncode == 0, run.stderr[-3000:]
    with sqlite3.connect(run_dir / "calls.sqlite") as db:  # every role's calls went to the keyed server
        models = {m for (m,) in db.execute("SELECT DISTINCT model FROM calls")}
    assert models == {f"openai/{server.model}"}

    exports = []
    for fmt, name in (("jsonl", "out.jsonl"), ("parquet", "out.parquet"), ("hf", "out-hf")):
        r = _cli("export", run_dir, "--format", fmt, "--out", tmp_path / name, env={KEY_VAR: key})
        assert r.returncode == 0, r.stderr
        outputs += [r.stdout, r.stderr]
        exports.append(tmp_path / name)
    status = _cli("status", run_dir, "--json", env={KEY_VAR: key})
    outputs += [status.stdout, status.stderr]

    files = _files(run_dir) + [f for e in exports for f in _files(e)]
    names = {p.name for p in files}
    assert {"manifest.json", "checkpoints.sqlite", "calls.sqlite", "events.jsonl"} <= names
    needle = key.encode()
    leaks = [str(p) for p in files if needle in p.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if key in text]
    assert leaks == []
    print(f"searched {len(files)} files ({sum(p.stat().st_size for p in files)} bytes) and {len(outputs)} outputs")
    assert KEY_VAR.encode() in (run_dir / "manifest.json").read_bytes()  # the variable's name is what is kept
