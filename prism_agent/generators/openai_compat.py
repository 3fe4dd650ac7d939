"""`openai`: any OpenAI-compatible endpoint through the official async client.

The client's own retries are off (`max_retries=0`): retries, backoff and the concurrency limit live in
`retry.py` and `admission.py`, so every call, retry and top-up counts against one in-flight budget.
Servers that return fewer choices than `n` (llama.cpp's returns one, silently) are topped up with further
calls, each with its own derived seed so that seeded top-ups do not repeat the first call. A role may list
several endpoints (`base_url` as a list): each has its own client and limiter, calls go to the least loaded
one and a call that fails on one endpoint is sent to another (`endpoints.py`); each endpoint is asked once
whether it continues a started answer (`prefill.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from prism_agent.config.backends import OpenAIBackendConfig
from prism_agent.errors import BadInputError
from prism_agent.generators.admission import AdaptiveLimiter
from prism_agent.generators.base import CallStats, GenerationError, Generator, refuse_choice_bias, render_chat
from prism_agent.generators.endpoints import Endpoint, EndpointPool
from prism_agent.generators.prefill import PROBE_MESSAGES, VLLM_CONTINUE, PrefillCache, ask_endpoint
from prism_agent.generators.probe import EndpointError, Unreachable, not_served, probe
from prism_agent.generators.registry import register
from prism_agent.generators.retry import Backoff, MalformedResponse, classify
from prism_agent.generators.types import Completion, GenRequest, GenResult, Usage
from prism_agent.seeds import row_seed

_FINISH = {"length": "length"}  # everything else (stop, eos, content_filter, None) ends the text normally


def api_key(cfg: OpenAIBackendConfig) -> str:
    """The key from the environment variable the config names. Local servers need none."""
    if cfg.api_key_env is None:
        return os.environ.get("PRISM_AGENT_API_KEY", "not-needed")
    value = os.environ.get(cfg.api_key_env)
    if not value:
        raise BadInputError(f"environment variable {cfg.api_key_env} (api_key_env) is not set")
    return value


def split_tokens(total: int, weights: list[int]) -> list[int]:
    """`usage` counts tokens per call, not per choice: share them by text length (largest remainder, so the
    shares add up to the total exactly)."""
    if not weights:
        return []
    w = [max(0, x) for x in weights]
    norm = sum(w) or len(w)
    raw = [total * (x if sum(w) else 1) / norm for x in w]
    shares = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - shares[i], reverse=True)[: total - sum(shares)]:
        shares[i] += 1
    return shares


class _Refused(GenerationError):
    """An endpoint refuses the role's settings (not served, key refused): the backend's error, not one
    request's, so the whole batch fails with it."""


@dataclass
class _Call:
    """What one successful call returned."""

    completions: list[Completion]
    usage: Usage
    attempts: int


@register("openai")
class OpenAIGenerator(Generator):
    kind = "openai"

    def __init__(self, cfg: OpenAIBackendConfig, *, rng: random.Random | None = None):
        self.cfg = cfg
        self._key = api_key(cfg)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: EndpointPool | None = None
        self._template = None
        self.backoff = Backoff(cfg.backoff_base_s, cfg.backoff_max_s)
        self.rng = rng or random.Random()
        self._stats = CallStats()
        self.prefill_cache: PrefillCache | None = None

    @property
    def model_id(self) -> str:
        return f"openai/{self.cfg.model}"

    def stats(self) -> CallStats:
        if self._pool is not None:
            self._stats.endpoints = self._pool.stats()
        return self._stats

    def use_state_dir(self, root) -> None:
        from pathlib import Path

        self.prefill_cache = PrefillCache(Path(root) / "endpoints.json")

    @property
    def pool(self) -> EndpointPool:
        """The endpoints of the current event loop (kept after the loop ends, for inspection)."""
        if self._pool is None:
            self._bind_loop()
        assert self._pool is not None
        return self._pool

    @property
    def limiter(self) -> AdaptiveLimiter:
        """The first endpoint's admission policy (the only one with a single `base_url`)."""
        return self.pool.endpoints[0].limiter

    def _bind_loop(self) -> None:
        """Clients and limiters belong to one event loop; `generate_sync` makes a new loop per call. What
        was learnt about each endpoint (probed, prefill mode, counts) carries over to the new loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        import openai

        before = {e.url: e for e in self._pool.endpoints} if self._pool is not None else {}
        endpoints = []
        for url in self.cfg.base_urls:
            ep = Endpoint(url, AdaptiveLimiter(self.cfg.max_concurrency, self.cfg.initial_concurrency,
                                               self.cfg.latency_factor))
            if (old := before.get(url)) is not None:
                ep.stats, ep.prefill, ep.ready = old.stats, old.prefill, old.ready
            ep.client = openai.AsyncOpenAI(base_url=url, api_key=self._key, max_retries=0, timeout=self.cfg.timeout_s)
            ep.lock = asyncio.Lock()
            endpoints.append(ep)
        self._pool = EndpointPool(endpoints, down_after=self.cfg.down_after, cooloff_s=self.cfg.cooloff_s)
        self._loop = loop

    async def aclose(self) -> None:
        if self._pool is not None and self._loop is not None:
            for ep in self._pool.endpoints:
                if ep.client is not None:
                    await ep.client.close()
                    ep.client = None
            self._loop = None  # the pool stays readable until the next loop binds

    def _one(self, url: str) -> OpenAIBackendConfig:
        return self.cfg.model_copy(update={"base_url": url})

    async def served_models(self, ep: Endpoint | None = None) -> list[str]:
        self._bind_loop()
        ep = ep or self.pool.endpoints[0]
        page = await ep.client.models.list()
        return sorted(m.id for m in page.data)

    async def probe(self) -> None:
        """Every endpoint answers, takes the key and serves the model (generators/probe.py), else one of
        probe's `EndpointError`s."""
        self._bind_loop()
        for ep in self.pool.endpoints:
            await probe(self._one(ep.url), lambda ep=ep: self.served_models(ep))

    async def prepare_prefill(self) -> None:
        """At run start: each endpoint's prefill mode (cache, else one probe), for `status` from the start. One that
        fails now (no answer, a 5xx; refusals were preflight's) is left for its first call, where retries apply."""
        self._bind_loop()
        for ep in self.pool.endpoints:
            with contextlib.suppress(Exception):
                await self._ready(ep, prefill=True)

    async def _ready(self, ep: Endpoint, prefill: bool) -> None:
        """Before an endpoint's first call: the probe (once), and with a started answer, whether the endpoint
        continues one (`prefill.py`: the run's cache, else one probe request). An unreachable endpoint passes
        unprobed: its call fails as calls do, and it is probed again before its next one."""
        if ep.ready and (not prefill or ep.prefill is not None):
            return
        async with ep.lock:
            if not ep.ready:
                try:
                    await probe(self._one(ep.url), lambda: self.served_models(ep))
                except Unreachable:  # its call will fail, be retried elsewhere and count against the endpoint
                    return
                except EndpointError as exc:
                    raise GenerationError(str(exc)) from None
                ep.ready = True
            if prefill and ep.prefill is None:
                ep.prefill = await self.prefill_mode(ep)

    async def prefill_mode(self, ep: Endpoint) -> str:
        """How this endpoint is sent a started answer: the config's setting, the run's cached answer, or
        one probe request (`prefill.detect`). Completions mode renders the started answer itself."""
        if self.cfg.mode == "completions":
            return "message"
        if self.cfg.prefill != "auto":
            return self.cfg.prefill
        cache = self.prefill_cache
        if cache is not None and (mode := cache.get(ep.url, self.cfg.model)) is not None:
            return mode
        mode = await self.detect_prefill(ep)
        if cache is not None:
            cache.put(ep.url, self.cfg.model, mode)
        return mode

    async def detect_prefill(self, ep: Endpoint) -> str:
        """Ask the endpoint (one or two small greedy requests, `prefill.detect`), whatever the config says."""
        self._bind_loop()
        render = (lambda: self._prompt(GenRequest.chat(PROBE_MESSAGES))) if self.cfg.tokenizer else None
        return await ask_endpoint(ep.client, self.cfg.model, render)

    # ---- one HTTP call ------------------------------------------------------------------------------

    def _prompt(self, request: GenRequest) -> str:
        if request.prompt is not None:
            return request.prompt
        if self._template is None:
            if not self.cfg.tokenizer:
                raise BadInputError(
                    "completions mode got chat messages: set `tokenizer` (a pinned name or HF folder whose chat "
                    "template renders them) or use mode = \"chat\""
                )
            from prism_agent.models.load import load_tokenizer

            self._template = load_tokenizer(self.cfg.tokenizer, "tokenizer")
        return render_chat(self._template, request)

    async def _create(self, ep: Endpoint, request: GenRequest, n: int,
                      seed: int | None) -> tuple[list[Completion], Usage]:
        s = request.sampling
        args = dict(model=self.cfg.model, n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
        if seed is not None:
            args["seed"] = seed
        mode = ep.prefill or "message"
        stops = list(s.stop)
        messages = request.as_messages()
        if request.prefill is not None and self.cfg.mode == "chat" and mode == "none":
            # the answer goes unstarted; stops that its start holds would end it before it began
            messages = messages[:-1]
            stops = [x for x in stops if x not in request.prefill]
        if stops:
            args["stop"] = stops
        extra: dict = {}
        if s.choices and self.cfg.choice_constraint == "vllm":
            extra["structured_outputs"] = {"choice": list(s.choices)}
        if request.prefill is not None and mode == "vllm":
            # vLLM continues a final assistant message only when asked; llama.cpp's server does it by default
            extra.update(VLLM_CONTINUE)
        if extra:
            args["extra_body"] = extra
        if self.cfg.mode == "chat" and not (request.prefill is not None and mode == "template"):
            resp = await ep.client.chat.completions.create(messages=messages, **args)
            choices = getattr(resp, "choices", None)
            if not isinstance(choices, list) or not choices:
                raise MalformedResponse("no choices in the response")
            texts = [(c.message.content or "", c.finish_reason) for c in choices]
        else:
            resp = await ep.client.completions.create(prompt=self._prompt(request), **args)
            choices = getattr(resp, "choices", None)
            if not isinstance(choices, list) or not choices:
                raise MalformedResponse("no choices in the response")
            texts = [(c.text or "", c.finish_reason) for c in choices]
        u = getattr(resp, "usage", None)
        usage = Usage(prompt_tokens=getattr(u, "prompt_tokens", 0) or 0,
                      completion_tokens=getattr(u, "completion_tokens", 0) or 0)
        shares = split_tokens(usage.completion_tokens, [len(t) for t, _ in texts])
        prefilled = not (request.prefill is not None and self.cfg.mode == "chat" and mode == "none")
        completions = [
            Completion(text=t, finish_reason=_FINISH.get(f or "stop", "stop"), completion_tokens=k, endpoint=ep.url,
                       prefilled=prefilled)
            for (t, f), k in zip(texts, shares, strict=True)
        ]
        return completions, usage

    async def _call(self, request: GenRequest, n: int, seed: int | None) -> _Call:
        """One logical call. Each attempt holds one slot of one endpoint. A call that fails on an endpoint
        (unreachable, dropped, timed out, 5xx, malformed) goes at once to an endpoint that has not failed it;
        once every endpoint has, it waits (backoff, at least `Retry-After`) and tries again, `max_retries`
        times. Errors that are the request's own (4xx other than 408/409/429) fail it at once."""
        self._bind_loop()
        pool = self.pool
        attempt = sent = 0  # retries after a backoff; attempts on any endpoint (GenResult.calls)
        tried: set[str] = set()
        moved_from: Endpoint | None = None
        while True:
            ep = await pool.acquire(tried)
            sent += 1
            if moved_from is not None and ep is not moved_from:
                moved_from.stats.failovers += 1
            moved_from = None
            started = time.perf_counter()
            self._stats.calls += 1
            try:
                await self._ready(ep, prefill=request.prefill is not None)
                completions, usage = await self._create(ep, request, n, seed)
            except BadInputError:
                await pool.release(ep, ok=False)
                raise
            except GenerationError as exc:  # the endpoint refuses for good (model not served, key refused)
                await pool.release(ep, ok=False)
                raise _Refused(str(exc)) from None
            except Exception as exc:  # classified below: transient ones retry, the rest fail loudly
                verdict = classify(exc)
                fault = verdict.retry and not verdict.reason.startswith("429")
                await pool.release(ep, ok=False, fault=fault, overload=verdict.overload)
                self._stats.reasons[verdict.reason] = self._stats.reasons.get(verdict.reason, 0) + 1
                if not verdict.retry:
                    self._stats.failures += 1
                    raise GenerationError(await self._explain(ep, exc, verdict.reason, attempt + 1)) from None
                tried.add(ep.url)
                if pool.has_fresh(tried):  # another endpoint has not failed this call: no waiting
                    moved_from = ep
                    continue
                if attempt >= self.cfg.max_retries:
                    self._stats.failures += 1
                    raise GenerationError(await self._explain(ep, exc, verdict.reason, attempt + 1)) from None
                await asyncio.sleep(self.backoff.delay(attempt, verdict.retry_after_s, self.rng))
                attempt += 1
                self._stats.retries += 1
                tried = {ep.url} if len(pool.endpoints) > 1 else set()
                moved_from = ep if len(pool.endpoints) > 1 else None
                continue
            await pool.release(ep, ok=True, latency_s=time.perf_counter() - started,
                               tokens=usage.completion_tokens or n)
            return _Call(completions, usage, sent)

    async def _explain(self, ep: Endpoint, exc: BaseException, reason: str, attempts: int) -> str:
        import openai

        url = ep.url
        if isinstance(exc, openai.NotFoundError):
            try:
                served = await self.served_models(ep)
            except Exception:  # the listing is a courtesy; the 404 itself is the error
                served = []
            if served and self.cfg.model not in served:
                return not_served(self._one(url), served)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            where = f" (check ${self.cfg.api_key_env})" if self.cfg.api_key_env else " (set api_key_env)"
            return f"{url}: {reason}{where}"
        others = " (and every other endpoint of the role)" if len(self.pool.endpoints) > 1 else ""
        if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
            return f"cannot reach {url}{others}: {reason} after {attempts} attempt(s)"
        return f"{url}{others}: {reason} after {attempts} attempt(s)"

    # ---- one request: n completions, topped up when the server returns fewer --------------------------

    async def _request(self, request: GenRequest) -> GenResult:
        started = time.perf_counter()
        n, seed = request.sampling.n, request.sampling.seed
        first = await self._call(request, n, seed)
        completions, calls = list(first.completions[:n]), first.attempts
        prompt_tokens, completion_tokens = first.usage.prompt_tokens, first.usage.completion_tokens
        native = len(first.completions)
        per_call = max(1, native)
        round_no = 1
        while len(completions) < n:
            missing = n - len(completions)
            sizes = [min(per_call, missing - k) for k in range(0, missing, per_call)]
            seeds = [None if seed is None else row_seed(seed, 1000 * round_no + j) for j in range(len(sizes))]
            extra = await asyncio.gather(*(self._call(request, k, sd) for k, sd in zip(sizes, seeds, strict=True)))
            for call in extra:
                completions.extend(call.completions[: n - len(completions)])
                calls += call.attempts
                prompt_tokens += call.usage.prompt_tokens
                completion_tokens += call.usage.completion_tokens
            round_no += 1
        return GenResult(
            completions=completions, usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            latency_s=time.perf_counter() - started, model=self.model_id, native_choices=native, calls=calls,
        )

    async def stream(self, requests: Sequence[GenRequest]) -> AsyncIterator[tuple[int, GenResult]]:
        refuse_choice_bias(self.kind, requests)
        if not requests:
            return
        self._bind_loop()

        async def run(i: int, req: GenRequest) -> tuple[int, GenResult | GenerationError]:
            try:
                return i, await self._request(req)
            except GenerationError as exc:
                return i, exc

        tasks = [asyncio.ensure_future(run(i, r)) for i, r in enumerate(requests)]
        failures: list[tuple[int, GenerationError]] = []
        try:
            for fut in asyncio.as_completed(tasks):
                i, out = await fut
                if isinstance(out, GenerationError):
                    failures.append((i, out))
                else:
                    yield i, out
        finally:
            for t in tasks:
                t.cancel()
        if failures:
            failures.sort(key=lambda f: f[0])
            refused = [exc for _, exc in failures if isinstance(exc, _Refused)]
            if refused:
                raise GenerationError(str(refused[0]))
            more = f" ({len(failures)} of {len(requests)} requests failed)" if len(failures) > 1 else ""
            raise GenerationError(f"{failures[0][1]}{more}", failed={i: str(exc) for i, exc in failures})
