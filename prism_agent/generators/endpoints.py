"""Several endpoints behind one role: which one gets the next call, and what happens when one fails.

Each endpoint has its own admission limiter (`admission.py`): the servers are separate machines with their
own queues, so one slow or overloaded server must not throttle the others. A call goes to the endpoint
with the lowest load (calls in flight over its current limit), not round-robin: a server that answers
slower holds its calls longer and so gets fewer new ones. An endpoint whose calls keep failing (connection
refused or reset, timeouts, 5xx) is marked down for a cool-off and gets no calls; when the cool-off ends it
gets one trial call, which brings it back (success) or marks it down again for twice as long (failure).
When every endpoint is down, none is held back: the calls' own retries and backoff decide, as they do
with a single endpoint.

The pool decides nothing about retries; the backend (`openai_compat.py`) asks it for an endpoint, tells it
how each call went, and moves a failed call to an endpoint that has not failed it yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prism_agent.generators.admission import AdaptiveLimiter

MAX_COOLOFF_S = 600.0


@dataclass
class EndpointStats:
    """What one endpoint's calls went through, for `status` (summed over a run's processes)."""

    requests: int = 0  # calls sent to it (retries and top-ups included)
    failures: int = 0  # calls that failed on it, whatever happened next
    failovers: int = 0  # failed calls that were then sent to another endpoint
    downs: int = 0  # times it was marked down

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "failures": self.failures, "failovers": self.failovers,
                "downs": self.downs}


@dataclass(eq=False)
class Endpoint:
    url: str
    limiter: AdaptiveLimiter
    stats: EndpointStats = field(default_factory=EndpointStats)
    client: object = None  # the backend's HTTP client for this URL
    consecutive: int = 0  # failed calls in a row
    down_until: float | None = None  # None: up
    cooloff_s: float = 0.0  # the current cool-off (doubles with each failed trial)
    trial: bool = False  # a trial call after a cool-off is in flight
    prefill: str | None = None  # how this endpoint continues a started answer (generators/prefill.py)
    ready: bool = False  # probed: answers, takes the key, serves the model
    lock: asyncio.Lock | None = None  # one probe at a time

    def usable(self, now: float) -> bool:
        """Up, or down with its cool-off over and no trial call in flight yet."""
        if self.down_until is None:
            return True
        return now >= self.down_until and not self.trial

    def load(self) -> float:
        return self.limiter.in_flight / self.limiter.allowed


class EndpointPool:
    """The endpoints of one backend, bound to one event loop (its condition wakes waiting calls)."""

    def __init__(self, endpoints: list[Endpoint], *, down_after: int, cooloff_s: float,
                 clock: Callable[[], float] = time.monotonic):
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.endpoints = endpoints
        self.down_after = down_after
        self.cooloff_s = cooloff_s
        self.clock = clock
        self._cond = asyncio.Condition()
        self._turn = 0  # breaks ties between equally loaded endpoints in turn

    def pick(self, avoid: frozenset[str] | set[str] = frozenset()) -> Endpoint | None:
        """The least loaded endpoint with a free slot, preferring those not in `avoid` (endpoints that
        already failed this call) whenever any of them is usable at all; None when the call must wait."""
        now = self.clock()
        # every endpoint down: cool-offs would only hold calls back, so the calls' own retries and backoff
        # decide, as they do with a single endpoint
        usable = [e for e in self.endpoints if e.usable(now)] or self.endpoints
        fresh = [e for e in usable if e.url not in avoid]
        candidates = [e for e in (fresh or usable) if e.limiter.has_room]
        if not candidates:
            return None
        n = len(self.endpoints)
        order = {id(e): (i - self._turn) % n for i, e in enumerate(self.endpoints)}
        best = min(candidates, key=lambda e: (e.load(), order[id(e)]))
        self._turn = (self._turn + 1) % n
        return best

    def has_fresh(self, avoid: set[str]) -> bool:
        """Some endpoint that has not failed this call could take it now or once it has room."""
        now = self.clock()
        return any(e.usable(now) and e.url not in avoid for e in self.endpoints)

    def _wake_in(self) -> float | None:
        """Seconds until a down endpoint's cool-off ends (then a waiting call may try it)."""
        now = self.clock()
        ends = [e.down_until - now for e in self.endpoints if e.down_until is not None and not e.trial]
        return max(0.0, min(ends)) + 0.001 if ends else None

    async def acquire(self, avoid: frozenset[str] | set[str] = frozenset()) -> Endpoint:
        """Wait for a slot on the best endpoint and take it. A down endpoint whose cool-off is over is taken
        for its one trial call."""
        async with self._cond:
            while True:
                ep = self.pick(avoid)
                if ep is not None:
                    if ep.down_until is not None:
                        ep.trial = True
                    ep.limiter.take()
                    ep.stats.requests += 1
                    return ep
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), timeout=self._wake_in())

    async def release(self, ep: Endpoint, *, ok: bool, fault: bool = False, overload: bool = False,
                      latency_s: float = 0.0, tokens: int = 0) -> None:
        """Return the slot. `fault`: the endpoint failed the call (unreachable, dropped, timed out, 5xx), which
        counts towards marking it down; a refusal that is the request's own (a 400) or an overload (429) is
        not the endpoint being broken."""
        async with self._cond:
            ep.limiter.give(ok=ok, overload=overload, latency_s=latency_s, tokens=tokens)
            if ok:
                self.mark_up(ep)
            elif fault or overload:
                ep.stats.failures += 1
                if fault:
                    self._fault(ep)
            if ep.trial and not ok and not fault:  # the trial told nothing about the endpoint: try again
                ep.trial = False
            self._cond.notify_all()

    def mark_up(self, ep: Endpoint) -> None:
        ep.consecutive = 0
        ep.down_until = None
        ep.cooloff_s = 0.0
        ep.trial = False

    def mark_down(self, ep: Endpoint) -> None:
        """Down for a cool-off at once (an endpoint that does not answer its probe)."""
        ep.consecutive = max(ep.consecutive, self.down_after)
        self._down(ep)

    def _fault(self, ep: Endpoint) -> None:
        ep.consecutive += 1
        if ep.trial or ep.consecutive >= self.down_after:
            self._down(ep)

    def _down(self, ep: Endpoint) -> None:
        was_trial = ep.trial
        ep.cooloff_s = min(MAX_COOLOFF_S, ep.cooloff_s * 2 if was_trial and ep.cooloff_s else self.cooloff_s)
        if ep.down_until is None or was_trial:
            ep.stats.downs += 1
        ep.down_until = self.clock() + ep.cooloff_s
        ep.trial = False

    def stats(self) -> dict[str, dict[str, int]]:
        return {e.url: e.stats.as_dict() for e in self.endpoints}
