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
            _drain(loop)
            for close in closers:
                _settle(loop, close())
            _settle(loop, loop.shutdown_asyncgens())
            _settle(loop, loop.shutdown_default_executor())
        finally:
            loop.close()


def _settle(loop: asyncio.AbstractEventLoop, aw: Awaitable[Any]) -> None:
    """Run `aw` to its end. A step abandoned by a second Ctrl-C/SIGTERM leaves tasks that finished with that
    KeyboardInterrupt; the tasks awaiting them raise it again when the loop next runs them. It was the
    signal that stopped the run, already handled: swallowed here, or it would escape the run's clean exit
    (exit code 130) as an uncaught KeyboardInterrupt."""
    fut = asyncio.ensure_future(aw, loop=loop)
    for _ in range(100):  # each re-raise finishes one waiting task; a chain of awaits is finite
        try:
            loop.run_until_complete(fut)
            return
        except KeyboardInterrupt:
            if fut.done():
                return


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the loop's unfinished tasks and run them to their end."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        _settle(loop, asyncio.gather(*pending, return_exceptions=True))
