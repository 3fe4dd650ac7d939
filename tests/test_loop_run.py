"""The Prismatic loop end to end with the real embedded model (generator, solver and judge), real SNLI
seeds and real SNLI test items as the benchmark: a run killed with SIGKILL between nodes resumes where
it stopped, reaches its target, extends to a larger one, refuses a changed config, and exports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.support.limits import hang_limit
from tests.support.tiny import benchmark_head

pytestmark = pytest.mark.slow


def _cli(*args, env=None, timeout=hang_limit(1500)):
    return subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    bench = benchmark_head(tmp, "snli-test")
    cfg = tmp / "run.toml"
    cfg.write_text(f'seed_sample = 16\nper_round = 6\npatience = 10\nbenchmarks = ["snli200={bench}"]\n'
                   # a 16-row pool in 4 clusters, all but the largest sparse: the 135M solver labels almost
                   # every candidate "neutral", so candidates crowd into the big neutral clusters (with the
                   # default sparse half, a run once saw 0 of 57 voted candidates reach a sparse cluster in 15
                   # rounds); this test is about the mechanics
                   "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"
                   "[featurizer]\nrank_in = 16\nrank_out = 16\n")
    return tmp, cfg


def _events(run_dir):
    path = run_dir / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_kill_resume_extend_refuse_export(setup):
    tmp, cfg = setup
    run_dir = tmp / "run"
    args = ["run", "--task", "nli", "--target", "2", "--config", str(cfg), "--run-dir", str(run_dir)]
    proc = subprocess.Popen([sys.executable, "-m", "prism_agent.cli.app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + hang_limit(900)
    while time.monotonic() < deadline and proc.poll() is None:
        if any(e["kind"] == "vote" for e in _events(run_dir)):
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)  # between nodes: `vote` of round 1 is done, `reject` is not
    proc.wait()

    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at" in resumed.stderr
    from prism_agent.models.dtype import resolve_dtype

    kept = json.loads((run_dir / "manifest.json").read_text())["config"]["featurizer"]["dtype"]
    assert kept == resolve_dtype("auto", "cpu").name  # a new run records what `auto` resolved to here
    assert f"compute: featurizer {kept} (kept from the run's start" in resumed.stderr
    status = json.loads(_cli("status", str(run_dir), "--json").stdout)
    assert status["complete"] and status["accepted"] == 2 and status["target"] == 2
    gen_events = [e["round"] for e in _events(run_dir) if e["kind"] == "generate"]
    assert len(gen_events) == len(set(gen_events))  # no round generated twice: nothing paid twice
    rounds_before = status["rounds"]

    extended = _cli(*[a if a != "2" else "3" for a in args])
    assert extended.returncode == 0, extended.stderr[-3000:]
    status = json.loads(_cli("status", str(run_dir), "--json").stdout)
    assert status["accepted"] == 3 and status["complete"] and status["rounds"] > rounds_before
    assert len(status["g_vendi_history"]) >= status["rounds"]

    changed = _cli(*args, "--per-round", "7")
    assert changed.returncode == 2 and "differs in: per_round" in changed.stderr and "Traceback" not in changed.stderr

    out = tmp / "export.jsonl"
    assert _cli("export", str(run_dir), "--format", "jsonl", "--out", str(out)).returncode == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3 and len({r["id"] for r in rows}) == 3
    for r in rows:
        assert r["prompt"].startswith("Premise: ") and r["response"] in ("entailment", "neutral", "contradiction")
        assert r["vote"]["accepted"] and len(r["fewshot"]) >= 1 and r["models"]["generator"].startswith("local/")
        assert r["decontam"]["judge"] in ("no", "unclear", "below_floor")


# ---- a tiny math run, and a tiny vanilla (baseline) run ---------------------------------------------------------

# The 135M solver ignored "put the answer in \\boxed{}" alone (0 of 16 solutions boxed in a first tiny run);
# the default math solve prompt therefore carries one worked example (5 of 8 boxed).


def test_tiny_math_run(tmp_path):
    bench = benchmark_head(tmp_path, "gsm8k-test")
    cfg = tmp_path / "run.toml"
    cfg.write_text('seed_sample = 16\nper_round = 4\npatience = 10\n'
                   f'benchmarks = ["gsm8k200={bench}"]\n'
                   # a new problem fits in ≈100 tokens; the task's 384 let rambling completions run on (CPU time)
                   "[generation]\nmax_tokens = 128\n"
                   # the paper votes 2 of 3 solutions of up to 2048 tokens; for the 135M solver on CPU that costs
                   # minutes per candidate, so: 2 solutions of at most 256 tokens, one boxed answer suffices
                   "[vote]\nn = 2\ntau = 1\nmax_tokens = 256\n"
                   "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n[featurizer]\nrank_in = 16\nrank_out = 16\n")
    run_dir = tmp_path / "run"
    done = _cli("run", "--task", "math", "--target", "1", "--config", str(cfg), "--run-dir", str(run_dir), "--plain")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "done in" in done.stdout and "stopped: target reached" in done.stdout
    status = json.loads(_cli("status", str(run_dir), "--json").stdout)
    assert status["complete"] and status["accepted"] == 1 and status["target"] == 1 and status["rounds"] >= 1
    assert status["task"] == "math" and len(status["g_vendi_history"]) >= 2

    out = tmp_path / "export.jsonl"
    assert _cli("export", str(run_dir), "--format", "jsonl", "--out", str(out)).returncode == 0
    [row] = [json.loads(x) for x in out.read_text().splitlines()]
    assert re.search(r"\\boxed\{[^{}]+\}", row["response"]), row["response"]
    assert row["answer"] and row["vote"]["accepted"] and row["vote"]["n"] == 2 and row["vote"]["tau"] == 1
    assert isinstance(row["round"], int) and isinstance(row["cluster"], int) and len(row["fewshot"]) == 5
    assert all(f.startswith("seed:") for f in row["fewshot"])
    assert row["decontam"]["judge"] in ("no", "unclear", "below_floor")
    assert set(row["models"]) == {"generator", "solver", "judge"}
    assert all(m.startswith("local/") for m in row["models"].values())


def test_tiny_vanilla_run_and_graph_is_kept_on_resume(setup):
    tmp, cfg = setup
    run_dir = tmp / "vanilla"
    args = ["run", "--task", "nli", "--target", "2", "--config", str(cfg), "--run-dir", str(run_dir), "--plain"]
    done = _cli(*args, "--graph", "vanilla")
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(_cli("status", str(run_dir), "--json").stdout)
    assert status["complete"] and status["accepted"] == 2 and status["rounds"] >= 1
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["graph"] == "vanilla"
    assert not list((run_dir / "clusters").glob("round-*"))  # no clustering artifacts, no cluster step
    events = _events(run_dir)
    assert "cluster" not in {e["kind"] for e in events}
    assert sorted(e["round"] for e in events if e["kind"] == "generate") == list(range(1, status["rounds"] + 1))
    rows = [json.loads(x) for x in (run_dir / "pool" / "accepted.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for r in rows:
        assert r["cluster"] is None and "nearest_cluster" not in r and len(r["fewshot"]) == 5
        assert r["prompt"].startswith("Premise: ") and r["vote"]["accepted"]

    files = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    refused = _cli(*args, "--graph", "prismatic")
    assert refused.returncode == 2, refused.stderr
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "graph" in lines[0], refused.stderr
    assert "Traceback" not in refused.stderr
    assert {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()} == files

    # the checkpointer is LangGraph's resume, not the truth about data: without it the same command continues
    # after the last committed round (prepare reads it from the commit log) and pays for no round twice
    (run_dir / "checkpoints.sqlite").unlink()
    rounds_before = status["rounds"]
    extended = _cli(*[a if a != "2" else "3" for a in args])
    assert extended.returncode == 0, extended.stderr[-3000:]
    status = json.loads(_cli("status", str(run_dir), "--json").stdout)
    assert status["complete"] and status["accepted"] == 3 and status["rounds"] > rounds_before
    generated = [e["round"] for e in _events(run_dir) if e["kind"] == "generate"]
    assert sorted(generated) == list(range(1, status["rounds"] + 1))  # continued numbering, no round twice
