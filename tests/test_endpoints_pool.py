"""The endpoint pool's decisions (generators/endpoints.py), without a network: least-loaded choice with one
limiter per endpoint, failover preference, marking down after repeated faults, cool-off, trial calls and
the all-down fallback. Calls against real servers are in tests/test_endpoints_servers.py. Also the config
and the `--generator` syntax for several endpoints, and the prefill probe's classification of texts."""

from __future__ import annotations

import asyncio
import json

import pytest

from prism_agent.config.backends import parse_backend
from prism_agent.errors import BadInputError
from prism_agent.generators.admission import AdaptiveLimiter
from prism_agent.generators.endpoints import Endpoint, EndpointPool
from prism_agent.generators.prefill import PrefillCache, continues, detect


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _pool(n=2, limit=4, down_after=3, cooloff_s=30.0, clock=None):
    eps = [Endpoint(f"http://e{i}/v1", AdaptiveLimiter(limit, limit)) for i in range(n)]
    return EndpointPool(eps, down_after=down_after, cooloff_s=cooloff_s, clock=clock or Clock())


def test_least_loaded_endpoint_gets_the_next_call():
    async def go():
        pool = _pool(n=2, limit=4)
        a, b = pool.endpoints
        got = [await pool.acquire() for _ in range(4)]
        assert [e.url for e in got].count(a.url) == 2 and [e.url for e in got].count(b.url) == 2
        await pool.release(got[[e.url for e in got].index(a.url)], ok=True, latency_s=0.1, tokens=10)
        assert (await pool.acquire()) is a  # a has one call fewer in flight now
        b.limiter.limit = 8.0  # b adapted to a higher limit: the same in-flight count is a lower load
        assert a.load() > b.load() and pool.pick() is b
    asyncio.run(go())


def test_each_endpoint_has_its_own_limiter():
    async def go():
        pool = _pool(n=2, limit=1)
        a, b = pool.endpoints
        first, second = await pool.acquire(), await pool.acquire()
        assert {first, second} == {a, b}
        assert a.limiter.in_flight == b.limiter.in_flight == 1
        waiter = asyncio.ensure_future(pool.acquire())  # both full: the third call waits
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await pool.release(b, ok=False, overload=True)  # a 429 halves b's limit, not a's
        got = await asyncio.wait_for(waiter, 1)
        assert got is b and a.limiter.limit == 1.0 and b.stats.failures == 1 and b.down_until is None
    asyncio.run(go())


def test_a_failed_call_prefers_endpoints_that_have_not_failed_it():
    async def go():
        pool = _pool(n=3)
        first = await pool.acquire()
        await pool.release(first, ok=False, fault=True)
        avoid = {first.url}
        assert pool.has_fresh(avoid)
        for _ in range(5):
            ep = await pool.acquire(avoid)
            assert ep is not first
            await pool.release(ep, ok=True, latency_s=0.1, tokens=5)
        everyone = {e.url for e in pool.endpoints}
        assert not pool.has_fresh(everyone)
        assert (await pool.acquire(everyone)) in pool.endpoints  # nobody fresh: any endpoint is a retry
    asyncio.run(go())


def test_repeated_faults_mark_down_then_a_trial_brings_it_back():
    async def go():
        clock = Clock()
        pool = _pool(n=2, down_after=3, cooloff_s=30.0, clock=clock)
        a, b = pool.endpoints
        for _ in range(2):
            await pool.release(a if (await pool.acquire({b.url})) is a else b, ok=False, fault=True)
        assert a.down_until is None  # two in a row: still up
        ep = await pool.acquire({b.url})
        await pool.release(ep, ok=False, fault=True)
        assert a.down_until == clock.t + 30.0 and a.stats.downs == 1
        for _ in range(4):  # down: every call goes to b, even one that would rather avoid b
            ep = await pool.acquire({b.url})
            assert ep is b
            await pool.release(ep, ok=True, latency_s=0.1, tokens=5)
        clock.t += 31.0  # cool-off over: one trial call, and only one, may go to a
        trial = await pool.acquire({b.url})
        assert trial is a and a.trial and pool.pick({b.url}) is b
        await pool.release(trial, ok=False, fault=True)  # the trial failed: down twice as long
        assert a.cooloff_s == 60.0 and a.down_until == clock.t + 60.0 and a.stats.downs == 2
        clock.t += 61.0
        trial = await pool.acquire({b.url})
        await pool.release(trial, ok=True, latency_s=0.1, tokens=5)
        assert trial is a and a.down_until is None and a.consecutive == 0 and a.cooloff_s == 0.0
    asyncio.run(go())


def test_a_success_between_faults_resets_the_count():
    async def go():
        pool = _pool(n=1, down_after=2)
        (a,) = pool.endpoints
        for ok in (False, True, False):
            await pool.release(await pool.acquire(), ok=ok, fault=not ok, latency_s=0.1, tokens=3)
        assert a.down_until is None and a.consecutive == 1
    asyncio.run(go())


def test_every_endpoint_down_holds_no_call_back():
    async def go():
        pool = _pool(n=2, down_after=1)
        for ep in list(pool.endpoints):
            pool.mark_down(ep)
        assert all(e.down_until is not None for e in pool.endpoints)
        ep = await asyncio.wait_for(pool.acquire(), 1)  # no waiting out a cool-off: retries decide
        assert ep in pool.endpoints
    asyncio.run(go())


def test_overload_and_request_errors_do_not_mark_down():
    async def go():
        pool = _pool(n=2, down_after=1)
        a = pool.endpoints[0]
        for _ in range(3):
            ep = await pool.acquire({pool.endpoints[1].url})
            await pool.release(ep, ok=False, overload=True)  # 429: slow down, not broken
            ep = await pool.acquire({pool.endpoints[1].url})
            await pool.release(ep, ok=False)  # a 400: the request's own fault
        assert a.down_until is None and a.stats.failures == 3 and a.stats.requests == 6
    asyncio.run(go())


def test_several_base_urls_in_config_and_on_the_command_line():
    from prism_agent.loop.setup import role_spec

    cfg = parse_backend({"backend": "openai", "model": "m", "base_url": ["http://a/v1", "http://b/v1"]})
    assert cfg.base_urls == ["http://a/v1", "http://b/v1"] and cfg.prefill == "auto"
    one = parse_backend({"backend": "openai", "model": "m", "base_url": ["http://a/v1"]})
    assert one.base_url == "http://a/v1" and one.base_urls == ["http://a/v1"]
    table = role_spec("openai:Qwen/Qwen2.5-7B@http://a:8000/v1,http://b:8000/v1", "generator")
    assert table["base_url"] == ["http://a:8000/v1", "http://b:8000/v1"] and table["model"] == "Qwen/Qwen2.5-7B"
    assert role_spec("openai:m@http://a/v1", "generator")["base_url"] == "http://a/v1"
    for bad in ([], ["http://a/v1", "http://a/v1"], [""]):
        with pytest.raises(BadInputError, match="base_url"):
            parse_backend({"backend": "openai", "model": "m", "base_url": bad})
    with pytest.raises(BadInputError, match="base_url"):
        role_spec("openai:m@http://a/v1,", "generator")


def test_prefill_probe_reads_continuation_or_restart(tmp_path):
    assert continues(" lazy dog.") and continues("lazy dog")
    assert not continues("The quick brown fox jumps over the lazy dog.") and not continues("") \
        and not continues("Sure! The quick brown fox")

    def server(answers):
        sent = []

        async def send(extra):
            sent.append(extra)
            return answers[len(sent) - 1]
        return send, sent

    send, sent = server([" lazy dog."])
    assert asyncio.run(detect(send)) == "message" and sent == [None]
    send, sent = server(["The quick brown fox", " lazy dog."])
    assert asyncio.run(detect(send)) == "vllm" and sent[1] == {"continue_final_message": True,
                                                              "add_generation_prompt": False}
    send, _ = server(["The quick", "The quick"])
    assert asyncio.run(detect(send)) == "none"

    async def rendered():
        return " lazy dog."
    send, _ = server(["The quick", "The quick"])
    assert asyncio.run(detect(send, rendered)) == "template"  # a tokenizer is named: /v1/completions continues
    with pytest.raises(BadInputError, match="tokenizer"):
        parse_backend({"backend": "openai", "model": "m", "base_url": "http://a/v1", "prefill": "template"})

    cache = PrefillCache(tmp_path / "endpoints.json")
    cache.put("http://a/v1", "m", "none")
    again = PrefillCache(tmp_path / "endpoints.json")  # a resumed run reads it back
    assert again.get("http://a/v1", "m") == "none" and again.get("http://a/v1", "other") is None
    (tmp_path / "endpoints.json").write_text("{torn")
    assert PrefillCache(tmp_path / "endpoints.json").get("http://a/v1", "m") is None  # a cache: probe again


def test_status_sums_endpoint_counts_and_parse_yield(tmp_path):
    """`status` reads the per-endpoint counts from the usage events, the prefill modes from endpoints.json and
    the parse yield from the generate step files (a resumed round is counted once, from its file)."""
    from prism_agent.run.paths import RunPaths
    from prism_agent.run.rounds import GenerateSummary
    from prism_agent.run.status import _endpoints

    paths = RunPaths(tmp_path)
    a, b = "http://a/v1", "http://b/v1"
    usage = [{"backend_errors": {"generator+solver": {"endpoints": {
                 a: {"requests": 5, "failures": 2, "failovers": 2, "downs": 1}, b: {"requests": 7}}}}},
             {"backend_errors": {"generator+solver": {"endpoints": {b: {"requests": 3, "failovers": 0}}}}}]
    for r, tallies in ((1, {a: {"completions": 4, "parsed": 1}, b: {"completions": 4, "parsed": 3}}),
                       (2, {b: {"completions": 8, "parsed": 6}})):
        paths.round_dir(r).mkdir(parents=True)
        summary = GenerateSummary(requests=4, endpoints=tallies)
        (paths.round_dir(r) / "generate.json").write_text(json.dumps(summary.as_json()))
    PrefillCache(paths.root / "endpoints.json").put(a, "smollm2", "none")
    info = _endpoints(usage, paths)
    assert info["endpoints"] == {a: {"requests": 5, "failures": 2, "failovers": 2, "downs": 1},
                                 b: {"requests": 10, "failures": 0, "failovers": 0, "downs": 0}}
    assert info["prefill"] == {a: "none"}
    assert info["parse_yield"] == {a: {"completions": 4, "parsed": 1}, b: {"completions": 12, "parsed": 9}}
