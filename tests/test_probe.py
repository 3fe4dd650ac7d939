"""The endpoint probe's three verdicts and its pass for servers without `/models`, with the openai client's
own exception types (what preflight, `backends check` and the openai backend all get from it)."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from prism_agent.config.backends import OpenAIBackendConfig
from prism_agent.generators.probe import KeyRefused, ModelNotServed, Unreachable, probe

URL = "http://127.0.0.1:9/v1"
CFG = OpenAIBackendConfig(backend="openai", base_url=URL, model="m", api_key_env="MY_KEY")
REQUEST = httpx.Request("GET", f"{URL}/models")


def _run(outcome):
    async def list_models():
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return asyncio.run(probe(CFG, list_models))


def _status(cls, code):
    return cls("no", response=httpx.Response(code, request=REQUEST), body=None)


def test_unreachable_says_why_and_what_to_do():
    refused = openai.APIConnectionError(request=REQUEST)
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(Unreachable, match=r"^cannot reach http://127\.0\.0\.1:9/v1 \(connection refused\); start"):
        _run(refused)
    with pytest.raises(Unreachable, match=r"no answer in time"):
        _run(openai.APITimeoutError(request=REQUEST))


def test_refused_key_names_the_variable():
    with pytest.raises(KeyRefused, match=r"the key was refused \(401\); check \$MY_KEY"):
        _run(_status(openai.AuthenticationError, 401))


def test_model_missing_from_the_listing_lists_what_is_served():
    with pytest.raises(ModelNotServed, match=r"model 'm' is not served here; it serves: a, b"):
        _run(["a", "b"])


def test_served_model_or_no_listing_passes():
    assert _run(["m", "x"]) is None
    assert _run([]) is None
    assert _run(_status(openai.NotFoundError, 404)) is None  # /models is optional in the protocol
