"""Ctrl-C and SIGTERM during a loop: stop taking work, keep what is complete.

The first SIGINT or SIGTERM asks the loop to stop at the next step boundary. A step can run for minutes (a
generate batch at scale), longer than a scheduler waits between SIGTERM and SIGKILL, so if the step has not
ended `grace_s` seconds later, or when a second signal arrives, the step in flight is abandoned by raising
KeyboardInterrupt in the main thread. Abandoning is safe: every step is idempotent over files in the run
directory (written atomically), accepted samples are committed by one record, and every finished LLM call
is already in the run's call log, so the resumed run redoes only unfinished work and pays for no call twice.

It lives with the loop rather than the CLI because every entry point that runs a loop (`prism-agent run`,
`prism_agent.Run`) stops the same way; the CLI only decides what to print and which exit code to use.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator

STOP_GRACE_S = 10.0


class GracefulStop:
    """Signal handlers for the duration of a `with` block (main thread only; elsewhere it does nothing)."""

    def __init__(self, grace_s: float = STOP_GRACE_S, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
                 console=None):
        self.grace_s = grace_s
        self.signals = signals
        self.requested: int | None = None  # the first signal's number
        self._previous: dict[int, object] = {}
        self._timer: threading.Timer | None = None
        self._armed = False
        # Held while the grace timer decides to interrupt and while the loop disarms it: once `disarm` has
        # returned no interrupt can still be on its way (Timer.cancel does not stop a timer already firing).
        self._lock = threading.RLock()  # re-entrant: a signal handled inside `disarm` disarms again
        if console is None:  # a rich console on stderr; a live display on the same screen sets its own
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
            self._armed = True
        return self

    def __exit__(self, *exc) -> None:
        self.disarm()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def disarm(self) -> None:
        """The loop has stopped: the grace timer must not interrupt the cleanup that follows."""
        with self._lock:
            self._armed = False
            if self._timer is not None:
                self._timer.cancel()

    def _handle(self, signum: int, _frame) -> None:
        if self.requested is not None:
            # Stop now: the grace timer has nothing left to do, and firing later it would interrupt the
            # clean-up this KeyboardInterrupt starts (seen as a process ended by SIGINT, rc -2).
            self.disarm()
            raise KeyboardInterrupt
        self.requested = signum
        name = signal.Signals(signum).name
        self.console.print(f"{name}: stopping after the current step (at most {self.grace_s:g} s; again to stop now)",
                           highlight=False, soft_wrap=True)
        self._timer = threading.Timer(self.grace_s, self._abandon)
        self._timer.daemon = True
        self._timer.start()

    def _abandon(self) -> None:
        with self._lock:
            if self._armed:  # a real signal to the main thread wakes it from blocking calls, unlike interrupt_main
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def until(self, updates: Iterable) -> Iterator:
        """`updates`, ending after the first one that arrives once a stop was requested."""
        for update in updates:
            yield update
            if self.requested is not None:
                return
