"""How many calls may be in flight: additive increase, multiplicative decrease (AIMD).

Hosted APIs push back with 429; self-hosted servers (vLLM, llama.cpp) never do, they just queue, so rising
latency is the other overload signal. The limit counts in-flight *calls* (retries and top-ups included),
not samples: a call with n=8 is one slot.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque


class AdaptiveLimiter:
    def __init__(self, max_limit: int, initial: int | None = None, latency_factor: float = 3.0, window: int = 64):
        self.max_limit = max_limit
        self.limit = float(initial if initial is not None else max(1, max_limit // 4))
        self.limit = min(self.limit, float(max_limit))
        self.latency_factor = latency_factor
        self.in_flight = 0
        self.peak_in_flight = 0
        self._recent: deque[float] = deque(maxlen=window)  # seconds per completion token, recent successes
        self._cond = asyncio.Condition()

    @property
    def allowed(self) -> int:
        return max(1, math.floor(self.limit))

    @property
    def has_room(self) -> bool:
        return self.in_flight < self.allowed

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.has_room)
            self.take()

    async def release(self, *, ok: bool, overload: bool = False, latency_s: float = 0.0, tokens: int = 0) -> None:
        async with self._cond:
            self.give(ok=ok, overload=overload, latency_s=latency_s, tokens=tokens)
            self._cond.notify_all()

    def take(self) -> None:
        """One slot, without waiting: for a caller that waits under its own condition (an endpoint pool
        choosing among several limiters, generators/endpoints.py)."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def give(self, *, ok: bool, overload: bool = False, latency_s: float = 0.0, tokens: int = 0) -> None:
        """Return a slot taken with `take`, and adapt the limit to how the call went."""
        self.in_flight -= 1
        if overload:
            self.limit = max(1.0, self.limit / 2)
        elif ok:
            self._on_success(latency_s, tokens)

    def _on_success(self, latency_s: float, tokens: int) -> None:
        per_token = latency_s / max(1, tokens)
        best = min(self._recent) if len(self._recent) >= 8 else None
        self._recent.append(per_token)
        if best is not None and per_token > self.latency_factor * best:
            self.limit = max(1.0, self.limit * 0.9)
        else:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
