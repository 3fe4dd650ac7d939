"""Endpoint faults during a full run (RELIABILITY.md): a real tiny `prism-agent run --task nli` whose generator,
solver and judge are all `openai` roles talking to a FAULT INJECTOR (a test fake: tests/support/
fault_injector.py) in front of a real llama.cpp server. 20 % of the POSTs get a fault, every kind the
injector has: 429 with Retry-After, 500, an answer slower than the timeout, a connection closed without an
answer, a connection reset mid-answer, malformed JSON, and fewer choices than asked for.

The run must complete (exit 0, target reached) with no call failed for good; `status` must count the
retries by reason, one reason per injected kind, and their sum must match what the injector did; the call
log must hold every request exactly once, topped up to its `n`, with every attempt counted; and the
`--plain` log must be whole lines of the known shapes. A request that fails past its retry budget is recorded
in the round's files and skipped; when more than `max_failed_fraction` of a step's requests fail, the run ends
with one `error:` line, and `status` counts the failed calls and the skipped requests."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from prism_agent.data.pull import ensure as ensure_data
from tests.support.fault_injector import FAULTS, FaultInjector

pytestmark = pytest.mark.slow

RATE = 0.2
TIMEOUT_S = 15.0  # a generator call takes 2–6 s on the shared 2-core CPU (one llama.cpp thread, 2 in flight)
TARGET = 2
# 11 tries per call: at 20 % independent faults a call fails for good with p = 0.2^11 ≈ 2e-8
RETRIES = 10
ROLE = ('backend = "openai"\nbase_url = "{url}"\nmodel = "{model}"\nmax_concurrency = 2\n'
        f"timeout_s = {TIMEOUT_S}\n"
        "max_retries = {retries}\nbackoff_base_s = 0.2\nbackoff_max_s = 2.0\n")
# The tiny config of test_reliability_kill (16 seeds, a 16-row pool in 4 clusters, all but the largest sparse)
# with 8 generator requests a round, so that even a run done in one round makes 40+ POSTs and the fault
# schedule below reaches every kind.
TINY = ("seed_sample = 16\nper_round = 8\npatience = 30\n"
        "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"
        "[featurizer]\nrank_in = 16\nrank_out = 16\n"
        "[decontam]\njudge = true\n"
        # llama-cpp-python's server does not continue a final assistant message: it closes it and opens a new
        # turn, so the prefilled "<pair>\nPremise:" was followed by a second "Premise:" and most completions
        # did not parse. Without prefill the model writes the block itself.
        "[generation]\nprefill = false\n"
        # the 135M solver rarely labels a pair the same way twice, so τ = 2 took 2–13 rounds (up to 6 min) to
        # accept 2; this test is about endpoints, so one parsed label accepts
        "[vote]\nn = 2\ntau = 1\n")

# the header's second line: the featurizer's dtype and why (the roles here are endpoints: no dtype of theirs)
COMPUTE = re.compile(r"compute: featurizer (bfloat16|float32) \(auto: .+\)")
PLAIN = [re.compile(p) for p in (
    r"pool ready: \d+ rows, \d+/\d+ accepted(; solver not calibrated: the solver \(openai\) samples choices "
    r"and returns no scores)?",
    r"G-Vendi \d+\.\d{3} over \d+ pool rows",
    r"round \d+: k=\d+, \d+ sparse clusters",
    r"  (generate|vote|reject|decontaminate): [a-z_]+ -?\d+(\.\d+)?(, [a-z_]+ -?\d+(\.\d+)?)*",
    r"  commit: \+\d+ → \d+ accepted",
    r"stopped: target reached",
    rf"done in \d+ s: {TARGET}/{TARGET} accepted in .+",
)]


def _cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def _config(tmp, url: str, model: str, retries: int = RETRIES):
    bench = tmp / "snli-test-200.jsonl"
    with ensure_data("snli-test").open() as src, bench.open("w") as dst:
        for _, line in zip(range(200), src, strict=False):
            dst.write(line)
    cfg = tmp / "run.toml"
    role = ROLE.format(url=url, model=model, retries=retries)
    cfg.write_text(f'benchmarks = ["snli200={bench}"]\n' + TINY
                   + "".join(f"[roles.{name}]\n{role}" for name in ("generator", "solver", "judge")))
    return cfg


def test_full_run_completes_through_endpoint_faults(llamacpp_server, tmp_path):
    # one fault in every 5 POSTs, the 7 kinds in turn (each cycle shuffled; all of them by POST 35)
    injector = FaultInjector(llamacpp_server.base_url.rsplit("/v1", 1)[0], rate=RATE, seed=7, slow_s=TIMEOUT_S + 2,
                             retry_after_s=0.5, script=FaultInjector.spread(RATE, seed=7, cycles=40))
    run_dir = tmp_path / "run"
    cfg = _config(tmp_path, injector.start().base_url, llamacpp_server.model)
    started = time.monotonic()
    try:
        run = _cli("run", "--task", "nli", "--target", TARGET, "--config", cfg, "--run-dir", run_dir, "--plain",
                   timeout=900)
    finally:
        injector.stop()
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]

    injected = {f: injector.counts[f] for f in FAULTS}
    posts = len(injector.arrivals)
    assert posts >= 5 * len(FAULTS), f"only {posts} POSTs: the schedule did not reach every kind"
    assert all(injected.values()), injected  # every kind of fault really happened during the run
    assert abs(sum(injected.values()) - RATE * posts) <= 1  # 20 %, to within the last block of 5

    info = json.loads(_cli("status", run_dir, "--json").stdout)
    assert info["complete"] and info["accepted"] == TARGET and info["stop_reason"] == "target reached"
    reasons = info["retry_reasons"]
    assert info["failures"] == 0 and info["retries"] > 0, info
    assert info["retries"] == sum(reasons.values())  # no call failed, so every error was retried
    connection = {k: v for k, v in reasons.items() if k.startswith("connection error")}
    timeouts = reasons.get("timeout", 0)
    # each injected kind shows under its own reason, as many times as it was injected
    assert reasons.get("429 rate limited") == injected["429"], reasons
    assert reasons.get("500 server error") == injected["500"], reasons
    assert reasons.get("malformed response (invalid JSON)") == injected["malformed"], reasons
    assert reasons.get("malformed response (no choices in the response)") == injected["fewer"], reasons
    assert sum(connection.values()) == injected["drop"] + injected["reset"], reasons
    assert len(connection) == 2, reasons  # closed with no answer, and reset mid-answer: two different errors
    assert timeouts >= injected["slow"], reasons  # a real call may time out too on a loaded CPU
    assert set(reasons) <= {"429 rate limited", "500 server error", "timeout", "malformed response (invalid JSON)",
                            "malformed response (no choices in the response)", *connection}, reasons
    assert info["retries"] == sum(injected.values()) + (timeouts - injected["slow"])

    # the call log: each request once, topped up to its n, every attempt (POST) counted once
    with sqlite3.connect(f"file:{run_dir / 'calls.sqlite'}?mode=ro", uri=True) as db:
        rows = [(json.loads(q), json.loads(r)) for q, r in db.execute("SELECT request, result FROM calls")]
        sent = db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM sent").fetchone()
    assert sent == (len(rows), len(rows))  # no request was sent twice: retries stayed inside the backend
    assert all(len(r["completions"]) == q["sampling"]["n"] for q, r in rows)
    topped = [r for q, r in rows if q["sampling"]["n"] > 1]
    assert topped and all(r["native_choices"] == 1 for r in topped)  # llama.cpp answers one choice whatever n is
    assert sum(r["calls"] for _, r in rows) == posts

    # `--plain`: whole lines of the known shapes (nothing wrapped, no None or nan), and one header on stderr
    lines = run.stdout.splitlines()
    broken = [line for line in lines if not any(p.fullmatch(line) for p in PLAIN)]
    assert lines and not broken, broken
    assert lines[-2:-1] == ["stopped: target reached"]
    head, compute = run.stderr.strip().splitlines()
    assert head == f"run {info['run_id']} in {run_dir}: task nli, target {TARGET}", run.stderr
    assert COMPUTE.fullmatch(compute), compute

    # the plain `status`: one line with the retries and their reasons
    status = _cli("status", run_dir)
    assert status.returncode == 0, status.stderr
    line = next((x for x in status.stdout.splitlines() if x.startswith("  endpoint retries: ")), None)
    assert line is not None, status.stdout
    assert line.startswith(f"  endpoint retries: {info['retries']} (") and line.endswith("), failed calls: 0")
    assert all(f"{n}× {reason}" in line for reason, n in reasons.items()), line

    print(f"\nrun {seconds:.0f} s, {posts} POSTs, injected {injected} ({sum(injected.values())}), "
          f"retries {info['retries']} {reasons}, failures {info['failures']}, rounds {info['rounds']}, "
          f"requests {len(rows)}, top-ups {len(topped)}\nstatus:{line[1:]}")


def test_a_request_failing_for_good_is_skipped_and_too_many_stop_the_run(llamacpp_server, tmp_path):
    # no retries: the first POST (a generator request's first call) gets a 500 and that request fails for
    # good; the other 7 requests take 14 POSTs (llama.cpp answers one choice, so each is topped up once);
    # from then on every POST gets a 500, so the solver's requests all fail
    injector = FaultInjector(llamacpp_server.base_url.rsplit("/v1", 1)[0], rate=1.0, faults=("500",),
                             script=["500"] + ["ok"] * 14)
    run_dir = tmp_path / "run"
    cfg = _config(tmp_path, injector.start().base_url, llamacpp_server.model, retries=0)
    try:
        run = _cli("run", "--task", "nli", "--target", TARGET, "--config", cfg, "--run-dir", run_dir, "--plain",
                   timeout=600)
    finally:
        injector.stop()
    # one request of 8 failed for good (1/8 ≤ max_failed_fraction 0.5): recorded with its reason, skipped
    first = run_dir / "rounds" / "round-00001"
    [skipped] = [json.loads(x) for x in (first / "generate-failed.jsonl").read_text().splitlines()]
    assert skipped["reason"] == f"{injector.base_url}: 500 server error after 1 attempt(s)", skipped
    assert json.loads((first / "generate.json").read_text())["failed"] == 1
    # then a step whose requests all failed: the run stops with one line saying so
    assert run.returncode == 2, run.stderr[-3000:]
    error = run.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: round-\d{5} (generate|vote): (\d+) of \2 requests failed for good \(more than "
                        r"max_failed_fraction = 0\.5\); first: .*500 server error after 1 attempt\(s\); resume to "
                        r"send them again", error), run.stderr
    assert "Traceback" not in run.stderr
    info = json.loads(_cli("status", run_dir, "--json").stdout)
    assert info["skipped_requests"]["generate"] >= 1 and not info["complete"], info
    assert info["failures"] >= 1 + 1 and info["retries"] == 0, info  # calls that failed for good, none retried
    status = _cli("status", run_dir).stdout
    assert any(x.startswith("  requests failed for good and skipped: generate ") for x in status.splitlines()), status
    print(f"\nstatus: {info['skipped_requests']} {info['skipped_reasons']}; stderr: {error}")
