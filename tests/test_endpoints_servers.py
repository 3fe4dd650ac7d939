"""Several endpoints behind one role, against real OpenAI-compatible servers on 127.0.0.1 (README "Several
endpoints per role"): the prefill probe's verdict on the project's llama.cpp launcher and on vLLM's server,
the parse yield that verdict buys, failover away from a refused port and from a FAULT INJECTOR (a test fake,
tests/support/fault_injector.py: a 429 storm and dropped connections on demand, which no real server gives),
and a full `prism-agent run` over a llama.cpp and a vLLM server of which one is killed mid-run."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time

import pytest

from prism_agent.config.backends import parse_backend, parse_roles
from prism_agent.data.pull import ensure as ensure_data
from prism_agent.data.reader import iter_samples
from prism_agent.generators import GenRequest, make_generator
from prism_agent.tasks.generation import generation_messages, generation_stops, parse_candidates
from prism_agent.tasks.registry import get_task
from tests.support.fault_injector import FaultInjector
from tests.support.servers import free_port, start_llamacpp, start_vllm

pytestmark = pytest.mark.slow


def _cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def _cfg(urls, **extra):
    return parse_backend({"backend": "openai", "base_url": urls, "model": "smollm2", "timeout_s": 60,
                          "max_concurrency": 2, **extra})


def _generation_requests(k: int, seed: int = 0) -> list[GenRequest]:
    """The loop's own generator requests (5 SNLI examples, 2 new pairs, the answer started) for `k` prompts."""
    task = get_task("nli")
    rows = list(iter_samples(ensure_data("snli-train"), stop=5 * k))
    return [GenRequest.chat(generation_messages(task, rows[5 * j:5 * j + 5], 2, True), n=2, temperature=1.0,
                            top_p=0.95, max_tokens=96, seed=seed + j, stop=generation_stops(task, True))
            for j in range(k)]


def _parsed(results, requests) -> tuple[int, int]:
    task = get_task("nli")
    comps = [(c, r.prefill) for res, r in zip(results, requests, strict=True) for c in res.completions]
    return len(comps), sum(bool(parse_candidates(task, c.full_text(p))) for c, p in comps)


def test_prefill_probe_and_yield_on_the_llamacpp_launcher(llamacpp_server, tmp_path):
    """The launcher opens a new turn after a started answer: the probe says so. Without a tokenizer the run's
    requests then go without it; with one, the started answer is rendered here and continued through
    /v1/completions, which parses about as often as the embedded backend. Sent as is (the old default) most
    completions did not parse."""
    auto = make_generator(_cfg(llamacpp_server.base_url))
    auto.use_state_dir(tmp_path)
    requests = _generation_requests(8)
    plain = auto.generate_sync(requests)
    assert [e.prefill for e in auto.pool.endpoints] == ["none"]
    cached = json.loads((tmp_path / "endpoints.json").read_text())
    assert [v["prefill"] for v in cached.values()] == ["none"]
    assert all(not c.prefilled and c.endpoint == llamacpp_server.base_url for r in plain for c in r.completions)
    rendered = make_generator(_cfg(llamacpp_server.base_url, tokenizer="smollm2-135m-instruct"))
    templated = rendered.generate_sync(requests)
    assert [e.prefill for e in rendered.pool.endpoints] == ["template"]
    assert all(c.prefilled for r in templated for c in r.completions)
    as_is = make_generator(_cfg(llamacpp_server.base_url, prefill="message")).generate_sync(requests)
    local = make_generator(parse_backend({"backend": "local"})).generate_sync(requests)
    n, ok_none = _parsed(plain, requests)
    ok_template, ok_as_is, ok_local = (_parsed(x, requests)[1] for x in (templated, as_is, local))
    print(f"parsed of {n}: without the start {ok_none}, rendered {ok_template}, sent as is {ok_as_is}, "
          f"embedded {ok_local}")
    assert ok_template >= 0.6 * n and ok_template >= ok_local - 0.2 * n  # ≈ the embedded backend
    assert ok_none >= 0.4 * n and ok_none > ok_as_is

    check = _cli("backends", "check", "--role", "generator", "--backend", "openai", "--base-url",
                 llamacpp_server.base_url, "--model", "smollm2", "--json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["prefill"] == {llamacpp_server.base_url: "none"}
    text = _cli("backends", "check", "--role", "generator", "--backend", "openai", "--base-url",
                llamacpp_server.base_url, "--model", "smollm2")
    assert "does not continue a started answer" in text.stdout


def test_run_start_finds_each_endpoints_prefill_mode_before_round_one(llamacpp_server, tmp_path):
    """With `prefill = "auto"`, the run's first node asks every endpoint of the generator role (or reads
    endpoints.json) before the seeds and round 1: `status` shows each mode from the start, and the round's
    backend takes it from the cache. An unreachable endpoint, or one that answers the probe with 429s (the
    FAULT INJECTOR, a test fake), is left for its first call, not the run's error. A resumed run reads the
    cache instead of asking again."""
    from prism_agent.loop import steps
    from prism_agent.loop.context import RunContext
    from prism_agent.run.status import run_status
    from tests.support.loop_nodes import cfg_for

    refused = f"http://127.0.0.1:{free_port()}/v1"
    storm = FaultInjector(llamacpp_server.base_url.rsplit("/v1", 1)[0], rate=1.0, faults=("429",),
                          retry_after_s=0.05).start()
    role = {"backend": "openai", "base_url": [llamacpp_server.base_url, refused, storm.base_url],
            "model": "smollm2", "timeout_s": 60}
    cfg = cfg_for(tmp_path / "bench.jsonl")
    cfg = cfg.model_copy(update={"roles": parse_roles({"generator": role})})
    root = tmp_path / "run"
    ctx = RunContext.open(root, cfg)
    try:
        steps.probe_prefill(ctx)
        assert "roles" not in ctx.__dict__  # the run's own backends (an embedded solver) are not built yet
    finally:
        ctx.close()
        storm.stop()
    assert run_status(root)["prefill"] == {llamacpp_server.base_url: "none"}  # before any round
    text = _cli("status", root).stdout
    assert f"endpoint {llamacpp_server.base_url}: does not continue a started answer" in text

    cached = json.loads((root / "endpoints.json").read_text())
    for entry in cached.values():  # the run must take the cache's word from now on: make it say something else
        entry["prefill"] = "message"
    (root / "endpoints.json").write_text(json.dumps(cached))
    ctx = RunContext.open(root, cfg)  # resumed
    try:
        steps.probe_prefill(ctx)
        gen = getattr(ctx.roles["generator"], "inner", ctx.roles["generator"])
        modes = ctx.run_async(_modes(gen))
    finally:
        ctx.close()
    assert modes == {llamacpp_server.base_url: "message"}  # the round's backend: from the cache, not asked again
    assert [e["prefill"] for e in json.loads((root / "endpoints.json").read_text()).values()] == ["message"]


async def _modes(gen) -> dict[str, str]:
    """How the round's backend will send each endpoint a started answer (the cached ones: the refused one
    would be asked at its first call)."""
    return {ep.url: await gen.prefill_mode(ep) for ep in gen.pool.endpoints
            if gen.prefill_cache.get(ep.url, gen.cfg.model) is not None}


def test_refused_port_429_storm_and_dropped_connections_fail_over(llamacpp_server):
    upstream = llamacpp_server.base_url.rsplit("/v1", 1)[0]
    storm = FaultInjector(upstream, rate=1.0, faults=("429",), retry_after_s=0.05).start()
    dropper = FaultInjector(upstream, rate=1.0, faults=("drop",)).start()
    refused = f"http://127.0.0.1:{free_port()}/v1"
    urls = [refused, storm.base_url, dropper.base_url, llamacpp_server.base_url]
    try:
        gen = make_generator(_cfg(urls, max_retries=2, backoff_base_s=0.05, backoff_max_s=0.2, prefill="none"))
        batch = [GenRequest.chat([{"role": "user", "content": f"Say the number {i}."}], temperature=0.0,
                                 max_tokens=6, seed=i) for i in range(10)]
        results = gen.generate_sync(batch)
    finally:
        storm.stop()
        dropper.stop()
    assert len(results) == 10 and all(r.texts[0] for r in results)
    assert {c.endpoint for r in results for c in r.completions} == {llamacpp_server.base_url}
    per = gen.stats().endpoints
    assert per[llamacpp_server.base_url]["failures"] == 0 and per[llamacpp_server.base_url]["requests"] >= 10
    for url in (refused, storm.base_url, dropper.base_url):
        assert per[url]["failures"] == per[url]["requests"] >= 1 and per[url]["failovers"] >= 1, (url, per)
    assert per[refused]["downs"] >= 1 and per[dropper.base_url]["downs"] >= 1
    assert per[storm.base_url]["downs"] == 0  # a 429 says "slow down", not "broken"
    assert gen.pool.endpoints[1].limiter.allowed == 1  # the storm halved its own limit only
    assert gen.stats().failures == 0


@pytest.fixture(scope="module")
def vllm_server(smollm2_dir, tmp_path_factory):
    server = start_vllm(smollm2_dir, tmp_path_factory.mktemp("vllm") / "server.log")
    yield server
    server.stop()


def test_vllm_server_continues_with_its_flags(vllm_server):
    gen = make_generator(_cfg(vllm_server.base_url))
    ep = asyncio.run(_mode(gen))
    assert ep == "vllm"


async def _mode(gen) -> str:
    try:
        return await gen.detect_prefill(gen.pool.endpoints[0])
    finally:
        await gen.aclose()


TINY = ("seed_sample = 16\nper_round = 8\npatience = 30\n"
        "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"
        "[featurizer]\nrank_in = 16\nrank_out = 16\n"
        "[vote]\nn = 2\ntau = 1\n")


def test_run_over_two_servers_survives_one_killed(smollm2_gguf, vllm_server, tmp_path):
    """Generator and solver over a llama.cpp and a vLLM server; the llama.cpp one is killed once the run
    has paid its first calls (the target leaves it rounds to go, so calls still reach the dead endpoint, even
    with an acceptance rule that keeps most candidates). The run completes, every accepted sample is in the
    pool once, no logged call was sent again, and `status` shows the killed endpoint's failovers and each
    endpoint's parse yield."""
    llama = start_llamacpp(smollm2_gguf, tmp_path / "llama.log")
    urls = [llama.base_url, vllm_server.base_url]
    role = (f'backend = "openai"\nbase_url = {json.dumps(urls)}\nmodel = "smollm2"\nmax_concurrency = 2\n'
            "timeout_s = 60\nmax_retries = 3\nbackoff_base_s = 0.2\nbackoff_max_s = 1.0\ncooloff_s = 600\n")
    cfg = tmp_path / "run.toml"
    cfg.write_text(TINY + "".join(f"[roles.{r}]\n{role}" for r in ("generator", "solver")))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "prism_agent.cli.app", "run", "--task", "nli", "--target", "10",
                             "--config", str(cfg), "--run-dir", str(run_dir), "--plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if _served_by(run_dir, llama.base_url) >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        llama.stop()  # mid-run: its in-flight and later calls must go to vLLM
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        llama.stop()
    assert proc.returncode == 0, err[-3000:] + out[-2000:]

    info = json.loads(_cli("status", run_dir, "--json").stdout)
    assert info["complete"] and info["accepted"] >= 10 and info["failures"] == 0
    killed, alive = info["endpoints"][llama.base_url], info["endpoints"][vllm_server.base_url]
    assert killed["failovers"] >= 1 and killed["failures"] >= 1 and alive["failures"] == 0, info["endpoints"]
    assert info["prefill"] == {llama.base_url: "none", vllm_server.base_url: "vllm"}
    assert info["parse_yield"][vllm_server.base_url]["completions"] > 0
    text = _cli("status", run_dir).stdout
    assert f"endpoint {llama.base_url}:" in text and "moved to another endpoint" in text and "parse yield" in text

    ids = [json.loads(line)["id"] for line in (run_dir / "pool" / "accepted.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == info["accepted"]  # nothing doubled
    with sqlite3.connect(run_dir / "calls.sqlite") as db:
        resent = db.execute("SELECT COUNT(*) FROM sent s JOIN calls c ON s.key = c.key WHERE s.t > c.created")
        assert resent.fetchone()[0] == 0  # no logged call was paid twice
        unlogged = db.execute("SELECT COUNT(DISTINCT key) FROM sent WHERE key NOT IN (SELECT key FROM calls)")
        assert unlogged.fetchone()[0] == 0  # every request sent was answered and logged: nothing lost


def _served_by(run_dir, url: str) -> int:
    """Calls in the run's call log that `url` answered."""
    path = run_dir / "calls.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute("SELECT result FROM calls").fetchall()
    except sqlite3.Error:
        return 0
    return sum(url in r[0] for r in rows)
