"""Backend config, replay keys, retry policy and admission control: the parts that need no model."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import openai
import pytest

from prism_agent.config.backends import LocalBackendConfig, OpenAIBackendConfig, parse_backend
from prism_agent.config_files import load_roles, with_shorthand
from prism_agent.errors import BadInputError
from prism_agent.generators import GenRequest, Message, Sampling, make_generator, request_key
from prism_agent.generators.admission import AdaptiveLimiter
from prism_agent.generators.retry import Backoff, MalformedResponse, classify


def test_unknown_backend_lists_valid_names():
    with pytest.raises(BadInputError, match="unknown backend 'tgi'; valid: local, openai, vllm"):
        parse_backend({"backend": "tgi"})


def test_roles_from_toml_and_shorthands(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        '[roles.generator]\nbackend = "openai"\nbase_url = "http://127.0.0.1:1/v1"\nmodel = "m"\n'
        'api_key_env = "MY_KEY"\nmax_concurrency = 8\n\n[roles.judge]\nbackend = "local"\nbatch_size = 4\n'
    )
    roles = load_roles(path)
    assert isinstance(roles.generator, OpenAIBackendConfig) and roles.generator.max_concurrency == 8
    assert isinstance(roles.solver, LocalBackendConfig)  # no table: the embedded default
    assert roles.judge.batch_size == 4
    changed = with_shorthand(roles, "solver", {"backend": "openai", "base_url": "http://x/v1", "model": "s"})
    assert changed.solver.model == "s" and changed.generator == roles.generator
    everyone = with_shorthand(roles, None, {"model": "other"})
    assert everyone.generator.model == everyone.judge.model == "other"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[roles.writer]\nbackend = "local"\n', "unknown role 'writer'"),
        ('[roles.generator]\nbackend = "openai"\nmodel = "m"\n', "base_url: Field required"),
        ('[roles.generator]\nbackend = "local"\nbatch_sise = 3\n', "batch_sise"),
        ("[roles.generator\n", "not valid TOML"),
    ],
)
def test_bad_role_config_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message) as info:
        load_roles(path)
    assert "\n" not in str(info.value)


def test_missing_api_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("PRISM_TEST_KEY", raising=False)
    cfg = parse_backend({"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m",
                         "api_key_env": "PRISM_TEST_KEY"})
    with pytest.raises(BadInputError, match="PRISM_TEST_KEY"):
        make_generator(cfg)
    monkeypatch.setenv("PRISM_TEST_KEY", "sk-secret-value")
    gen = make_generator(cfg)
    assert "sk-secret-value" not in cfg.model_dump_json()  # the key never enters config (or the run folder)
    assert gen.model_id == "openai/m"


def test_request_key_is_canonical():
    a = GenRequest(messages=(Message(role="user", content="hi"),), sampling=Sampling(n=2, seed=3, temperature=0.7))
    b = GenRequest.model_validate(json.loads(json.dumps(
        {"sampling": {"temperature": 0.7, "seed": 3, "n": 2}, "messages": [{"content": "hi", "role": "user"}]})))
    assert a is not b and request_key("local/x", a) == request_key("local/x", b)
    assert request_key("local/x", a) != request_key("local/y", a)
    assert request_key("local/x", a) != request_key("local/x", a.model_copy(update={"sampling": Sampling(n=2, seed=4,
                                                                                                      temperature=0.7)}))
    # the same key in a fresh interpreter (no dependence on hash randomisation or object identity)
    code = ("from prism_agent.generators import GenRequest, request_key;"
            "print(request_key('local/x', GenRequest.chat([{'role': 'user', 'content': 'hi'}], n=2, seed=3,"
            " temperature=0.7)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert other == request_key("local/x", a)


def test_request_needs_exactly_one_input():
    with pytest.raises(ValueError):
        GenRequest()
    with pytest.raises(ValueError):
        GenRequest(prompt="x", messages=(Message(role="user", content="y"),))
    assert GenRequest(prompt="x").as_messages() == [{"role": "user", "content": "x"}]


def _status_error(code: int, headers: dict | None = None) -> openai.APIStatusError:
    req = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    resp = httpx.Response(code, headers=headers or {}, request=req, json={"error": {"message": "x"}})
    cls = {429: openai.RateLimitError, 500: openai.InternalServerError, 404: openai.NotFoundError,
           401: openai.AuthenticationError, 400: openai.BadRequestError}.get(code, openai.APIStatusError)
    return cls("x", response=resp, body=None)


def test_classify_transient_and_final_errors():
    req = httpx.Request("POST", "http://127.0.0.1/v1")
    v = classify(_status_error(429, {"Retry-After": "2"}))
    assert v.retry and v.overload and v.retry_after_s == 2.0
    assert classify(_status_error(429, {"retry-after-ms": "250"})).retry_after_s == 0.25
    assert classify(_status_error(500)).retry and not classify(_status_error(500)).overload
    assert classify(openai.APITimeoutError(request=req)).retry
    assert classify(openai.APIConnectionError(request=req)).retry
    assert classify(MalformedResponse("no choices")).retry
    assert classify(json.JSONDecodeError("x", "{", 1)).retry
    # one key per kind in the retry counts, whatever offset the answer broke at
    assert classify(json.JSONDecodeError("x", "{", 1)).reason == classify(json.JSONDecodeError("y", "{}", 2)).reason
    for code in (400, 401, 404):
        assert not classify(_status_error(code)).retry
    assert not classify(ValueError("a bug")).retry


def test_backoff_grows_with_jitter_and_honours_retry_after():
    import random

    rng = random.Random(0)
    b = Backoff(base_s=0.5, max_s=4.0)
    delays = [b.delay(a, rng=rng) for a in range(8) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(b.delay(0, rng=rng) for _ in range(50)) <= 0.5
    assert b.delay(0, retry_after_s=3.0, rng=rng) >= 3.0


def test_limiter_bounds_in_flight_calls_and_adapts():
    async def scenario():
        lim = AdaptiveLimiter(max_limit=8, initial=3)
        active = 0
        peak = 0

        async def call():
            nonlocal active, peak
            await lim.acquire()
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            await lim.release(ok=True, latency_s=0.01, tokens=1)

        await asyncio.gather(*(call() for _ in range(40)))
        assert peak <= 8 and lim.peak_in_flight == peak
        grown = lim.limit
        assert grown > 3  # additive increase on success
        await lim.acquire()
        await lim.release(ok=False, overload=True)
        assert lim.limit == pytest.approx(max(1.0, grown / 2))  # multiplicative decrease on 429
        for _ in range(10):
            await lim.acquire()
            await lim.release(ok=True, latency_s=0.01, tokens=1)
        before = lim.limit
        await lim.acquire()
        await lim.release(ok=True, latency_s=1.0, tokens=1)  # 100× the best recent latency: back off
        assert lim.limit < before
        while lim.limit > 1:
            await lim.acquire()
            await lim.release(ok=False, overload=True)
        assert lim.allowed == 1

    asyncio.run(scenario())


def test_usage_split_over_choices_adds_up():
    from prism_agent.generators.openai_compat import split_tokens

    assert sum(split_tokens(42, [17, 30, 25, 20])) == 42
    assert split_tokens(5, [0, 0]) in ([3, 2], [2, 3])
    assert split_tokens(10, [1, 9]) == [1, 9]
    assert split_tokens(0, [4]) == [0] and split_tokens(3, []) == []


def test_registry_builds_every_backend_kind_the_config_accepts():
    """Each kind a role table may name (config/backends.py BACKENDS) has exactly one registered class, whose
    `kind` is that name and which implements the whole Generator contract."""
    from prism_agent.config.backends import BACKENDS
    from prism_agent.generators.base import Generator
    from prism_agent.generators.registry import backend_class, kinds

    assert set(kinds()) == set(BACKENDS)
    for kind in BACKENDS:
        cls = backend_class(kind)
        assert issubclass(cls, Generator) and cls.kind == kind
        assert not getattr(cls, "__abstractmethods__", None), (kind, cls.__abstractmethods__)
    with pytest.raises(KeyError, match="no backend registered"):
        backend_class("nope")


def test_failed_requests_are_recorded_and_stop_only_past_the_threshold(tmp_path):
    """run/failures.py: failures are written with their reasons; the step raises only when more than the
    allowed share failed, and a clean rerun replaces an earlier attempt's record."""
    import json

    from prism_agent.run.failures import TooManyFailures, failed_counts, settle

    rd = tmp_path / "rounds" / "round-00001"
    assert settle(rd, "generate", 8, {3: "500 server error after 1 attempt(s)"}, 0.5, lambda j: {"request": j}) == 1
    rows = [json.loads(x) for x in (rd / "generate-failed.jsonl").read_text().splitlines()]
    assert rows == [{"request": 3, "reason": "500 server error after 1 attempt(s)"}]
    assert settle(rd, "vote", 4, {0: "a", 1: "b"}, 0.5, lambda i: {"id": f"c{i}"}) == 2  # 2 of 4: not past 0.5
    with pytest.raises(TooManyFailures, match=r"round-00001 vote: 3 of 4 requests failed for good .*first: a"):
        settle(rd, "vote", 4, {0: "a", 1: "b", 2: "c"}, 0.5, lambda i: {"id": f"c{i}"})
    with pytest.raises(TooManyFailures):
        settle(rd, "decontam", 10, {0: "x"}, 0.0, lambda i: {"id": i})  # 0: any failure stops the run
    assert failed_counts(tmp_path / "rounds") == ({"generate": 1, "vote": 3, "decontam": 1},
                                                  {"500 server error after 1 attempt(s)": 1, "a": 1, "b": 1, "c": 1,
                                                   "x": 1})
    settle(rd, "vote", 4, {}, 0.5, lambda i: {})  # the step's rerun failed nothing
    assert (rd / "vote-failed.jsonl").read_text() == ""


def test_round_size_follows_the_generator_backend():
    from prism_agent.config.backends import parse_roles
    from prism_agent.config.run import RunConfig

    local = RunConfig(task="nli", target=20)
    assert local.requests_per_round() == 8  # the embedded default: as before, target/20 within 8..4096
    assert RunConfig(task="nli", target=300).requests_per_round() == 15
    roles = parse_roles({"generator": {"backend": "openai", "base_url": "http://h/v1", "model": "m"}})
    assert RunConfig(task="nli", target=1_500_000, roles=roles).requests_per_round() == 64 * 32
    assert RunConfig(task="nli", target=300, roles=roles).requests_per_round() == 75  # at most target/4
    vllm = parse_roles({"generator": {"backend": "vllm"}})
    assert RunConfig(task="nli", target=1_500_000, roles=vllm).requests_per_round() == 4096
    assert RunConfig(task="nli", target=1_500_000, roles=roles, per_round=100).requests_per_round() == 100
