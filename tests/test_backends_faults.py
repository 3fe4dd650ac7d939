"""The `openai` backend through a FAULT INJECTOR (a test fake: tests/support/fault_injector.py) in front of
a real llama.cpp server: 429 with Retry-After, 500, responses slower than the timeout, dropped
connections and malformed JSON. Every request completes, or fails loudly once its retry budget is spent;
nothing is dropped silently, and completed calls are recorded even when others fail."""

from __future__ import annotations

import asyncio

import pytest

from prism_agent.config.backends import parse_backend
from prism_agent.generators import GenerationError, GenRequest, ReplayingGenerator, ReplayStore, make_generator
from tests.support.fault_injector import FAULTS, FaultInjector

pytestmark = pytest.mark.slow


def _upstream(server) -> str:
    return server.base_url.rsplit("/v1", 1)[0]


CONCURRENCY = 4
_TIMEOUT: list[float] = []


def _timeout(server) -> float:
    """The client's per-call timeout: 1.5 s, or longer on a machine where a real call can take that long.
    The server answers one call at a time, so a call may wait behind CONCURRENCY - 1 others; a real call that
    timed out would be a retry nobody injected, and the exact retry counts below would fail on a slow CPU. The
    injected `slow` fault always holds a call 1 s past this timeout, so each one is still a timeout."""
    if not _TIMEOUT:
        import time

        gen = make_generator(parse_backend({"backend": "openai", "base_url": server.base_url, "model": "smollm2"}))
        worst = 0.0
        for _ in range(3):
            t = time.perf_counter()
            gen.generate_sync(_batch(1))
            worst = max(worst, time.perf_counter() - t)
        _TIMEOUT.append(max(1.5, 3.0 * CONCURRENCY * worst))
    return _TIMEOUT[0]


def _cfg(url: str, timeout_s: float, **extra):
    return parse_backend({"backend": "openai", "base_url": url, "model": "smollm2", "max_concurrency": CONCURRENCY,
                          "timeout_s": timeout_s, "backoff_base_s": 0.05, "backoff_max_s": 0.3, **extra})


def _batch(k: int) -> list[GenRequest]:
    return [GenRequest.chat([{"role": "user", "content": f"Count to {i}."}], temperature=0.0, max_tokens=4)
            for i in range(k)]


@pytest.fixture
def injector(llamacpp_server):
    # every kind once (scripted), then 45 % of calls at random
    timeout = _timeout(llamacpp_server)
    inj = FaultInjector(_upstream(llamacpp_server), rate=0.45, seed=3, slow_s=timeout + 1.0, retry_after_s=0.2,
                        script=list(FAULTS)).start()
    inj.timeout_s = timeout
    yield inj
    inj.stop()


def test_every_request_completes_through_faults(injector):
    gen = make_generator(_cfg(injector.base_url, injector.timeout_s, max_retries=12))
    results = gen.generate_sync(_batch(24))
    assert len(results) == 24 and all(r.texts[0] for r in results)
    injected = {f: injector.counts[f] for f in FAULTS}
    assert all(v > 0 for v in injected.values()), injected  # each kind of fault really happened
    assert gen.stats().retries == sum(injected.values()) and gen.stats().failures == 0
    assert sum(r.calls for r in results) == 24 + gen.stats().retries
    assert {"429 rate limited", "500 server error", "timeout"} <= set(gen.stats().reasons)
    assert any(k.startswith("malformed") for k in gen.stats().reasons)
    assert any(k.startswith("connection error") for k in gen.stats().reasons)


def test_retry_after_is_honoured(llamacpp_server):
    inj = FaultInjector(_upstream(llamacpp_server), rate=0.0, retry_after_s=1.2, script=["429", "ok"]).start()
    try:
        gen = make_generator(_cfg(inj.base_url, _timeout(llamacpp_server), max_retries=2, backoff_base_s=0.01))
        gen.generate_sync(_batch(1))
    finally:
        inj.stop()
    (t429, f1), (t_ok, f2) = inj.arrivals
    assert (f1, f2) == ("429", "ok") and t_ok - t429 >= 1.2


def test_exhausted_retries_fail_loudly_and_keep_finished_calls(llamacpp_server, tmp_path):
    # the first 3 POSTs succeed, then every call fails: 3 results are yielded and recorded, the rest raise
    inj = FaultInjector(_upstream(llamacpp_server), rate=1.0, faults=("500",), script=["ok"] * 3).start()
    store = ReplayStore(tmp_path / "calls.sqlite")
    try:
        gen = ReplayingGenerator(make_generator(_cfg(inj.base_url, _timeout(llamacpp_server), max_retries=2,
                                                     max_concurrency=1,
                                                     initial_concurrency=1)), store)
        seen: list[int] = []

        async def consume():
            async for i, _ in gen.stream(_batch(6)):
                seen.append(i)

        with pytest.raises(GenerationError, match=r"500 server error after 3 attempt\(s\) \(3 of 6 requests failed\)"):
            asyncio.run(consume())
    finally:
        inj.stop()
    assert len(seen) == 3 and len(store) == 3  # the finished ones were recorded before the failure surfaced
    assert inj.counts["500"] == 3 * 3  # 3 failing requests × (1 try + 2 retries): the budget, no more
