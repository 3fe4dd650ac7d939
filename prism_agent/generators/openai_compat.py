"""`openai`: any OpenAI-compatible endpoint through the official async client.

The client's own retries are off (`max_retries=0`): retries, backoff and the concurrency limit live in
`retry.py` and `admission.py`, so every call, retry and top-up counts against one in-flight budget.
Servers that return fewer choices than `n` (llama.cpp's returns one, silently) are topped up with further
calls, each with its own derived seed so that seeded top-ups do not repeat the first call.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from prism_agent.config.backends import OpenAIBackendConfig
from prism_agent.errors import BadInputError
from prism_agent.generators.admission import AdaptiveLimiter
from prism_agent.generators.base import CallStats, GenerationError, Generator, refuse_choice_bias, render_chat
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
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter: AdaptiveLimiter | None = None
        self._template = None
        self.backoff = Backoff(cfg.backoff_base_s, cfg.backoff_max_s)
        self.rng = rng or random.Random()
        self._stats = CallStats()
        self._verified = False

    @property
    def model_id(self) -> str:
        return f"openai/{self.cfg.model}"

    def stats(self) -> CallStats:
        return self._stats

    @property
    def limiter(self) -> AdaptiveLimiter:
        """The admission policy of the current event loop (kept after the loop ends, for inspection)."""
        if self._limiter is None:
            self._bind_loop()
        assert self._limiter is not None
        return self._limiter

    def _bind_loop(self) -> None:
        """The client and the limiter belong to one event loop; `generate_sync` makes a new loop per call."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self.cfg.base_url, api_key=self._key, max_retries=0, timeout=self.cfg.timeout_s,
            )
            self._limiter = AdaptiveLimiter(
                self.cfg.max_concurrency, self.cfg.initial_concurrency, self.cfg.latency_factor
            )
            self._loop = loop

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client, self._loop = None, None  # the limiter stays readable until the next loop binds

    async def served_models(self) -> list[str]:
        self._bind_loop()
        page = await self._client.models.list()
        return sorted(m.id for m in page.data)

    async def probe(self) -> None:
        """The endpoint answers, takes the key and serves the model (generators/probe.py), else one of
        probe's `EndpointError`s."""
        await probe(self.cfg, self.served_models)

    async def _verify_model(self) -> None:
        """The probe, once, before the first call. An unreachable server passes here: its calls retry with
        backoff and say so when they give up."""
        if self._verified:
            return
        try:
            await self.probe()
        except Unreachable:
            pass
        except EndpointError as exc:
            raise GenerationError(str(exc)) from None
        self._verified = True

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

    async def _create(self, request: GenRequest, n: int, seed: int | None) -> tuple[list[Completion], Usage]:
        s = request.sampling
        args = dict(model=self.cfg.model, n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
        if seed is not None:
            args["seed"] = seed
        if s.stop:
            args["stop"] = list(s.stop)
        extra: dict = {}
        if s.choices and self.cfg.choice_constraint == "vllm":
            extra["structured_outputs"] = {"choice": list(s.choices)}
        if request.prefill is not None and self.cfg.prefill == "vllm":
            # vLLM continues a final assistant message only when asked; llama.cpp's server does it by default
            extra.update(continue_final_message=True, add_generation_prompt=False)
        if extra:
            args["extra_body"] = extra
        if self.cfg.mode == "chat":
            resp = await self._client.chat.completions.create(messages=request.as_messages(), **args)
            choices = getattr(resp, "choices", None)
            if not isinstance(choices, list) or not choices:
                raise MalformedResponse("no choices in the response")
            texts = [(c.message.content or "", c.finish_reason) for c in choices]
        else:
            resp = await self._client.completions.create(prompt=self._prompt(request), **args)
            choices = getattr(resp, "choices", None)
            if not isinstance(choices, list) or not choices:
                raise MalformedResponse("no choices in the response")
            texts = [(c.text or "", c.finish_reason) for c in choices]
        u = getattr(resp, "usage", None)
        usage = Usage(prompt_tokens=getattr(u, "prompt_tokens", 0) or 0,
                      completion_tokens=getattr(u, "completion_tokens", 0) or 0)
        shares = split_tokens(usage.completion_tokens, [len(t) for t, _ in texts])
        completions = [
            Completion(text=t, finish_reason=_FINISH.get(f or "stop", "stop"), completion_tokens=k)
            for (t, f), k in zip(texts, shares, strict=True)
        ]
        return completions, usage

    async def _call(self, request: GenRequest, n: int, seed: int | None) -> _Call:
        """One logical call with retries; each attempt holds one concurrency slot."""
        self._bind_loop()
        limiter = self.limiter
        attempt = 0
        while True:
            await limiter.acquire()
            started = time.perf_counter()
            self._stats.calls += 1
            try:
                completions, usage = await self._create(request, n, seed)
            except BadInputError:
                await limiter.release(ok=False)
                raise
            except Exception as exc:  # classified below: transient ones retry, the rest fail loudly
                verdict = classify(exc)
                await limiter.release(ok=False, overload=verdict.overload)
                self._stats.reasons[verdict.reason] = self._stats.reasons.get(verdict.reason, 0) + 1
                if not verdict.retry or attempt >= self.cfg.max_retries:
                    self._stats.failures += 1
                    raise GenerationError(await self._explain(exc, verdict.reason, attempt + 1)) from None
                await asyncio.sleep(self.backoff.delay(attempt, verdict.retry_after_s, self.rng))
                attempt += 1
                self._stats.retries += 1
                continue
            await limiter.release(ok=True, latency_s=time.perf_counter() - started,
                                  tokens=usage.completion_tokens or n)
            return _Call(completions, usage, attempt + 1)

    async def _explain(self, exc: BaseException, reason: str, attempts: int) -> str:
        import openai

        url = self.cfg.base_url
        if isinstance(exc, openai.NotFoundError):
            try:
                served = await self.served_models()
            except Exception:  # the listing is a courtesy; the 404 itself is the error
                served = []
            if served and self.cfg.model not in served:
                return not_served(self.cfg, served)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            where = f" (check ${self.cfg.api_key_env})" if self.cfg.api_key_env else " (set api_key_env)"
            return f"{url}: {reason}{where}"
        if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
            return f"cannot reach {url}: {reason} after {attempts} attempt(s)"
        return f"{url}: {reason} after {attempts} attempt(s)"

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
        await self._verify_model()

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
            more = f" ({len(failures)} of {len(requests)} requests failed)" if len(failures) > 1 else ""
            raise GenerationError(f"{failures[0][1]}{more}", failed={i: str(exc) for i, exc in failures})
