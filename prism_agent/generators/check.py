"""`backends check`: one small request per configured role, answering "will this backend work for a run?"
before a run spends hours finding out. Failures become one line that names what to fix."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from prism_agent.config.backends import AnyBackend, OpenAIBackendConfig
from prism_agent.errors import PrismError
from prism_agent.generators.base import GenerationError
from prism_agent.generators.factory import make_generator
from prism_agent.generators.types import GenRequest

PROBE = [{"role": "user", "content": "Name one prime number. Answer with the number only."}]
PROBE_N = 2


class CheckResult(BaseModel):
    roles: list[str]
    backend: str
    model_id: str
    load_s: float
    latency_s: float
    completion_tokens: int
    tokens_per_s: float
    n_requested: int
    n_native: int
    sample: str
    dtype: str | None = None  # embedded engines: what the model computes in, and why (None for endpoints)
    dtype_reason: str | None = None
    # chat endpoints: per URL, whether it continues a started answer (generators/prefill.py: message, vllm,
    # none) as probed, and what a run sends it (the probe, unless the config's `prefill` is set)
    prefill: dict[str, str] | None = None
    prefill_used: dict[str, str] | None = None

    @property
    def n_honoured(self) -> bool:
        return self.n_native >= self.n_requested


def _for_check(cfg: AnyBackend, timeout_s: float) -> AnyBackend:
    """A check should answer within its timeout, so long retry budgets are cut short."""
    if isinstance(cfg, OpenAIBackendConfig):
        short = {"timeout_s": min(cfg.timeout_s, timeout_s), "max_retries": min(cfg.max_retries, 1),
                 "backoff_max_s": 1.0}
        return cfg.model_copy(update=short)
    return cfg


async def _probe(cfg: AnyBackend, timeout_s: float) -> CheckResult:
    gen = make_generator(_for_check(cfg, timeout_s))
    try:
        await gen.probe()  # EndpointError: one line naming what to fix
        loading = time.perf_counter()
        await gen.load()  # embedded engines load their model first; timed apart from the request
        load_s = time.perf_counter() - loading
        choice = gen.dtype
        request = GenRequest.chat(PROBE, n=PROBE_N, temperature=0.7, max_tokens=16, seed=0)
        started = time.perf_counter()
        result = (await gen.generate([request]))[0]
        latency = time.perf_counter() - started
        detected = used = None
        if isinstance(cfg, OpenAIBackendConfig) and cfg.mode == "chat":
            eps = gen.pool.endpoints
            detected = {ep.url: await gen.detect_prefill(ep) for ep in eps}
            used = {url: (mode if cfg.prefill == "auto" else cfg.prefill) for url, mode in detected.items()}
        return CheckResult(
            roles=[], backend=cfg.backend, model_id=gen.model_id, load_s=load_s, latency_s=latency,
            completion_tokens=result.usage.completion_tokens,
            tokens_per_s=result.usage.completion_tokens / latency if latency > 0 else 0.0,
            n_requested=PROBE_N, n_native=result.native_choices, sample=result.texts[0].strip()[:60],
            dtype=choice.name if choice else None, dtype_reason=choice.reason if choice else None,
            prefill=detected, prefill_used=used,
        )
    finally:
        await gen.aclose()


def _where(cfg: AnyBackend) -> str:
    return ", ".join(cfg.base_urls) if isinstance(cfg, OpenAIBackendConfig) else f"{cfg.backend} backend ({cfg.model})"


async def check_backend(cfg: AnyBackend, timeout_s: float) -> CheckResult:
    """Probe one backend; local and vllm get extra time to load their model (not a network timeout)."""
    budget = timeout_s if isinstance(cfg, OpenAIBackendConfig) else max(timeout_s, 600.0)
    try:
        return await asyncio.wait_for(_probe(cfg, timeout_s), timeout=budget)
    except TimeoutError:
        raise PrismError(f"{_where(cfg)}: no answer within {budget:g} s") from None
    except GenerationError as exc:
        raise PrismError(str(exc)) from None
