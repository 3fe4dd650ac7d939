"""One event loop and one admission limiter per backend for the life of a run (loop/eventloop.py): the loop
runs two rounds with every role an `openai` backend talking to a real llama.cpp server (started through the
project's launcher, tests/support/servers.py), through the same `Runner` as `prism-agent run`. Its output
must hold no traceback (an HTTP client collected after its step's loop had closed printed `Task exception
was never retrieved … RuntimeError: Event loop is closed`), and the backend's limiter must be one object
from the first step that sends requests to the last (a limiter per step started again at max/4)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.limits import hang_limit
from tests.support.tiny import benchmark_head

pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys
from pathlib import Path
from prism_agent.loop.context import RunContext
from prism_agent.loop.runner import Runner
from prism_agent.loop.setup import run_config

root, config = Path(sys.argv[1]), Path(sys.argv[2])
made = 0  # limiters seen: each new object gets the next number (an id() could be reused after collection)
cfg, compute = run_config(root, config, {"task": "nli", "target": 40, "max_rounds": 2})
ctx = RunContext.open(root, cfg, compute=compute)
with Runner(ctx) as runner:
    for update in runner.stream():
        node = next(iter(update))
        backend = ctx.roles["generator"].inner if "roles" in ctx.__dict__ else None
        pool = getattr(backend, "_pool", None)  # the endpoints bound to the run's event loop, once it has one
        limiter = pool.endpoints[0].limiter if pool is not None else None
        if limiter is not None and not hasattr(limiter, "seen_as"):
            made += 1
            limiter.seen_as = made
        print(json.dumps({"node": node, "limiter": limiter.seen_as if limiter is not None else None,
                          "same_backend": len({id(g.inner) for g in ctx.roles.values()}) == 1 if backend else None}),
              flush=True)
print(json.dumps({"stop": runner.result.stop_reason}), flush=True)
"""


def test_one_event_loop_and_limiter_for_the_run(llamacpp_server, tmp_path):
    bench = benchmark_head(tmp_path, "snli-test")
    role = (f'backend = "openai"\nbase_url = "{llamacpp_server.base_url}"\nmodel = "{llamacpp_server.model}"\n'
            "max_concurrency = 2\ntimeout_s = 60\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'seed_sample = 16\nper_round = 3\npatience = 5\nbenchmarks = ["snli200={bench}"]\n'
                   "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n[featurizer]\nrank_in = 16\nrank_out = 16\n"
                   # the judge is asked about every candidate, so decontaminate sends requests too
                   "[decontam]\njudge = true\n[generation]\nprefill = false\n[vote]\nn = 2\ntau = 1\n"
                   + "".join(f"[roles.{name}]\n{role}" for name in ("generator", "solver", "judge")))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run"), str(cfg)], capture_output=True,
                          text=True, timeout=hang_limit(900))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    for bad in ("Traceback", "Event loop is closed", "never retrieved", "Unclosed", "RuntimeError"):
        assert bad not in output, output[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert lines[-1]["stop"].startswith("round budget spent"), lines
    used = [x for x in lines if x.get("limiter") is not None]
    assert {x["node"] for x in used} >= {"generate", "vote"}, lines
    assert sum(x["node"] == "generate" for x in used) == 2, lines  # both rounds
    assert len({x["limiter"] for x in used}) == 1, used  # one limiter from the first step to the last
    assert all(x["same_backend"] for x in used)


def test_closing_after_a_step_abandoned_by_a_second_signal_raises_nothing():
    """A second Ctrl-C/SIGTERM raises KeyboardInterrupt inside a step's task; the tasks awaiting it raise it
    again when the loop next runs them, which `close` must absorb (the run then exits 130, not by SIGINT)."""
    import asyncio

    from prism_agent.loop.eventloop import RunLoop

    async def interrupted():
        await asyncio.sleep(0)
        raise KeyboardInterrupt  # where the signal handler's raise lands: inside a running task

    async def step():
        await asyncio.gather(interrupted(), asyncio.sleep(30))

    aio = RunLoop()
    with pytest.raises(KeyboardInterrupt):
        aio.run(step())
    closed = []

    async def aclose():
        closed.append(True)

    aio.close([aclose])  # nothing escapes, the backends are still closed
    assert closed == [True]
    assert aio.run(asyncio.sleep(0, result=7)) == 7  # a later run gets a fresh loop
    aio.close()
