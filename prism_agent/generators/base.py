"""The one interface every text backend implements: an async batch of requests in, one result per
request out, streamed in completion order so that callers (the replay cache) can record each result the
moment it exists instead of when the whole batch is done."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from prism_agent.errors import PrismError
from prism_agent.generators.types import GenRequest, GenResult


class GenerationError(PrismError):
    """A request failed after its retry budget, or the backend refused it for good (bad model, auth).

    `failed` maps the index of each request that failed for good (in the batch the raising `stream` was
    given) to its reason; empty when the whole backend is unusable rather than some of its requests."""

    def __init__(self, message: str, failed: dict[int, str] | None = None):
        super().__init__(message)
        self.failed: dict[int, str] = dict(failed or {})


@dataclass
class CallStats:
    """What a backend's calls went through: attempts, retries, calls that failed for good, and each
    failure's reason (a fixed text per kind). Embedded backends do not retry and report zeros."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    # per endpoint URL (endpoint backends): requests, failures, failovers, downs (generators/endpoints.py)
    endpoints: dict[str, dict[str, int]] = field(default_factory=dict)


def refuse_choice_bias(kind: str, requests: Sequence[GenRequest]) -> None:
    """Backends that sample choices (structured outputs) cannot add offsets to their probabilities: refuse
    rather than return uncalibrated labels as if they were calibrated."""
    if any(r.sampling.choice_bias for r in requests):
        raise PrismError(f"the {kind} backend samples choices and cannot apply choice offsets; "
                         "calibrated choices need the local backend")


class Generator(ABC):
    """A text backend. Subclasses set `kind` and implement `model_id` and `stream`; a backend kind is one such
    class registered with `@register(kind)` (generators/registry.py) next to its config class
    (config/backends.py). `probe`, `load`, `dtype` and `stats` have defaults that fit a backend with nothing
    to check, load, pin or retry."""

    kind: str = ""
    scores_choices: bool = False  # returns each choice's log-probability (GenResult.choice_logprobs)

    @property
    @abstractmethod
    def model_id(self) -> str:
        """A stable name of what produces the text (backend kind + model), used in replay keys. It must not
        depend on file paths or object identity, so a moved model folder still replays."""

    @abstractmethod
    def stream(self, requests: Sequence[GenRequest]) -> AsyncIterator[tuple[int, GenResult]]:
        """Yield `(index, result)` as requests finish. If some requests fail for good, the others are
        still yielded first and then `GenerationError` is raised: nothing is dropped silently."""

    async def probe(self) -> None:
        """Raise a one-line `PrismError` when the backend cannot serve as configured (endpoint unreachable,
        key refused, model not served); preflight and `backends check` ask it before anything is spent.
        Embedded backends have nothing to ask before loading (preflight checks their model files)."""

    async def load(self) -> None:
        """Load what the first request would otherwise load (an embedded model), so that `backends check`
        times loading apart from the request. Endpoints have nothing to load."""

    @property
    def dtype(self):
        """What an embedded model computes in, with its reason (`models.dtype.DtypeChoice`); None for an
        endpoint, whose server decides."""
        return None

    def stats(self) -> CallStats:
        """Calls, retries and failures so far (status and the dashboard count them per backend)."""
        return CallStats()

    def use_state_dir(self, root) -> None:
        """Where a run keeps what a backend learns about its endpoints (`endpoints.json`, generators/prefill.py),
        so it asks once per run, not once per process. Backends without endpoints keep nothing."""

    async def generate_settled(self, requests: Sequence[GenRequest]) -> tuple[list[GenResult | None], dict[int, str]]:
        """Every request's result, or None with its reason (second value) for each request that failed for
        good; the loop records those and goes on (README "Generating data"). An error that is not one
        request's (the model is not served, the backend refused the batch) still raises."""
        out: list[GenResult | None] = [None] * len(requests)
        failed: dict[int, str] = {}
        try:
            async for i, result in self.stream(requests):
                out[i] = result
        except GenerationError as exc:
            if not exc.failed:
                raise
            failed = exc.failed
        missing = [i for i, r in enumerate(out) if r is None and i not in failed]
        if missing:  # a backend bug, not a user error: keep it loud
            raise RuntimeError(f"{self.kind} backend returned no result for requests {missing[:5]}")
        return out, failed

    async def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        out: list[GenResult | None] = [None] * len(requests)
        async for i, result in self.stream(requests):
            out[i] = result
        missing = [i for i, r in enumerate(out) if r is None]
        if missing:  # a backend bug, not a user error: keep it loud
            raise RuntimeError(f"{self.kind} backend returned no result for requests {missing[:5]}")
        return out  # type: ignore[return-value]

    def generate_sync(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        """For scripts and tests outside an event loop. Network clients belong to the loop this makes, so
        they are closed before it ends (the next call opens new ones)."""
        return asyncio.run(self._generate_and_close(requests))

    async def _generate_and_close(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        try:
            return await self.generate(requests)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release network clients; engines that hold a model keep it (they are reused across steps)."""


def render_chat(tokenizer, request: GenRequest) -> str:
    """The request in the model's chat template; a final assistant message is left open (prefill)."""
    if request.prefill is not None:
        return tokenizer.apply_chat_template(request.as_messages(), continue_final_message=True, tokenize=False)
    return tokenizer.apply_chat_template(request.as_messages(), add_generation_prompt=True, tokenize=False)


def chat_token_ids(tokenizer, request: GenRequest) -> list[int]:
    """The request rendered with the model's chat template, as token ids (no second BOS)."""
    return tokenizer(render_chat(tokenizer, request), add_special_tokens=False)["input_ids"]


class EmbeddedGenerator(Generator):
    """A backend holding a model in this process (`local`, `vllm`): the model loads on first use, and roles
    whose settings give the same `_engine_key` share one loaded engine."""

    _engines: ClassVar[dict[tuple[str, str], object]] = {}
    _engines_lock = threading.Lock()

    def __init__(self, cfg):
        self.cfg = cfg
        self._engine = None

    @abstractmethod
    def _load(self):
        """A new engine for `self.cfg`; it must have an `identity` (pinned name or content fingerprint)."""

    def _engine_key(self) -> str:
        return self.cfg.model_dump_json()

    @property
    def engine(self):
        if self._engine is None:
            key = (self.kind, self._engine_key())
            with EmbeddedGenerator._engines_lock:
                if key not in EmbeddedGenerator._engines:
                    EmbeddedGenerator._engines[key] = self._load()
                self._engine = EmbeddedGenerator._engines[key]
        return self._engine

    @property
    def model_id(self) -> str:
        return f"{self.kind}/{self.engine.identity}"

    async def load(self) -> None:
        await asyncio.to_thread(lambda: self.engine)

    @property
    def dtype(self):
        return getattr(self.engine, "dtype", None)
