"""One asyncio event loop for the life of a run.

Every step that talks to a backend (calibrate, generate, vote, decontaminate) used to run its calls with
`asyncio.run`, which makes a new loop per step and closes it at the step's end. The backends' HTTP clients
and their adaptive admission limiters belong to the loop they were made in, so each step rebuilt them (the
limiter started again at max/4 and re-learnt the endpoint every step), and an HTTP client collected after
its step's loop had closed printed `Task exception was never retrieved … RuntimeError: Event loop is
closed` into the dashboard. Here the run owns one loop: the steps run their coroutines on it from the
thread that drives the graph (math-verify's `signal.alarm` timeouts need the main thread), and it is closed
once, after the backends' `aclose()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class RunLoop:
    """A lazily made event loop, run step by step with `run`, closed once with `close`. A `run` after
    `close` makes a new loop (the backends bind their clients to it afresh)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one step's coroutine to its end on the run's loop."""
        return self.loop.run_until_complete(coro)

    def close(self, closers: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        """Cancel what an abandoned step left running, await each closer (the backends' `aclose`), then shut
        the loop down as `asyncio.run` does. Idempotent."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            for close in closers:
                loop.run_until_complete(close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
