"""Running a loop: the one place that compiles a run's graph with its SQLite checkpointer, resumes it, streams
its updates and stops cleanly on a signal. `prism-agent run`, the Python API (`prism_agent.Run`) and the tests
all go through it; they differ only in what they do with the updates.

    with Runner(ctx) as runner:           # ctx: an opened RunContext; signals are handled from here on
        runner.pending                    # the nodes a resumed run starts at (empty: a fresh start)
        for update in runner.stream():    # LangGraph's "updates" mode: {node: the state it wrote}
            ...
    runner.result                         # RunResult: accepted/target, why it ended, or the signal that stopped it

The graph gets the run as LangGraph's runtime context (`context=ctx`), so the checkpointed state holds no
path the nodes depend on: a run directory that was moved or copied resumes where it now is.
"""

from __future__ import annotations

import errno
import importlib
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prism_agent.errors import PrismError
from prism_agent.loop.context import RunContext
from prism_agent.loop.stop import GracefulStop

RECURSION_LIMIT = 10_000_000  # a whole run is one graph invocation: LangGraph's default of 25 steps is one round


@dataclass(frozen=True)
class RunResult:
    """How a loop ended. `stop_reason` is set when the graph reached its end (target reached, patience
    spent, round budget spent); `interrupted` is the signal that stopped it earlier (resume to continue)."""

    run_dir: Path
    run_id: str
    accepted: int
    target: int
    stop_reason: str | None
    interrupted: int | None
    pending: tuple[str, ...]  # the nodes a resume would start at; empty when the graph ended
    seconds: float

    @property
    def finished(self) -> bool:
        return not self.pending


class Runner:
    """Runs the loop of one opened run directory (see the module docstring). `stop` decides how signals are
    reported (the CLI passes one that prints on its own console); by default a first Ctrl-C/SIGTERM stops
    after the current step, a second one (or the grace period) abandons the step."""

    def __init__(self, ctx: RunContext, *, stop: GracefulStop | None = None):
        self.ctx = ctx
        self.stop = stop or GracefulStop()
        self.result: RunResult | None = None
        self.pending: tuple[str, ...] = ()
        self._conn: sqlite3.Connection | None = None
        self._t0: float | None = None

    def __enter__(self) -> Runner:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.stop.__enter__()  # before anything is reported: a signal from now on is handled
        try:
            self._conn = sqlite3.connect(self.ctx.paths.checkpoints, check_same_thread=False)
            builder = importlib.import_module(f"prism_agent.graphs.{self.ctx.strategy.graph}").builder
            self.graph = builder.compile(checkpointer=SqliteSaver(self._conn))
            self.thread = {"configurable": {"thread_id": self.ctx.manifest.run_id}, "recursion_limit": RECURSION_LIMIT}
            self.pending = tuple(self.graph.get_state(self.thread).next)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None and self.result is None and self._t0 is not None:  # the caller left the stream early
                self._finish()
            self.stop.__exit__(*exc)
        finally:
            try:
                self.ctx.close()  # the backends' clients, then the run's event loop: once, at the end
            finally:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    def stream(self) -> Iterator[dict]:
        """The graph's updates from its last checkpoint until it ends or a stop was requested; then
        `self.result` is set. A second signal (or the grace period running out) abandons the step in flight:
        the stream ends without raising, and the result says which signal stopped it."""
        start = None if self.pending else {"run_dir": str(self.ctx.paths.root), "idle_rounds": 0}
        self._t0 = time.perf_counter()
        updates = self.graph.stream(start, self.thread, stream_mode="updates", context=self.ctx)
        try:
            try:
                yield from self.stop.until(updates)
            except KeyboardInterrupt:  # a second signal, or the grace period ran out: the step is abandoned
                self.stop.requested = self.stop.requested or signal.SIGINT
            except PrismError:  # e.g. a call failed for good: its round never commits, so record its counts now
                self._record_usage()
                raise
        finally:
            self.stop.disarm()
            updates.close()  # lets LangGraph write the checkpoint of the last finished step
        self._finish()

    def run(self, consume: Callable[[Iterable[dict]], None] | None = None) -> RunResult:
        """Stream to `consume` (a renderer; by default the updates are dropped) and return the result. A
        second signal that lands in `consume`'s own code, between two updates, ends the run the same way."""
        updates = self.stream()
        try:
            if consume is None:
                for _ in updates:
                    pass
            else:
                consume(updates)
        except KeyboardInterrupt:
            self.stop.requested = self.stop.requested or signal.SIGINT
        finally:
            updates.close()
        return self._finish()

    def _finish(self) -> RunResult:
        if self.result is not None:
            return self.result
        seconds = time.perf_counter() - (self._t0 or time.perf_counter())
        state = self.graph.get_state(self.thread)
        pending = tuple(state.next)
        self.result = RunResult(
            run_dir=self.ctx.paths.root, run_id=self.ctx.manifest.run_id, accepted=self.ctx.pool.accepted.count,
            target=self.ctx.target, stop_reason=None if pending else (state.values or {}).get("stop_reason"),
            interrupted=self.stop.requested if pending else None, pending=pending, seconds=seconds)
        return self.result

    def _record_usage(self) -> None:
        """A round's `usage` event (tokens, endpoint retries and failed calls) is written when it commits; a
        round ended by an error never commits, and `status` would not count what made it fail. Marked
        `unfinished`; a resumed round writes its own event at its commit."""
        ctx = self.ctx
        if "roles" not in ctx.__dict__:  # no backend was built: nothing to count
            return
        try:
            r = (self.graph.get_state(self.thread).values or {}).get("round")
            ctx.events.emit("usage", **({"round": r} if r is not None else {}), roles=ctx.usage_since_last(),
                            backend_errors=ctx.backend_errors_since_last(), unfinished=True)
        except (OSError, sqlite3.Error):  # a full disk: the error on its way out matters more than the counts
            pass


@contextmanager
def environment_errors(root: Path, resume: str):
    """A full disk or a file-size limit hit mid-run is the environment, not a bug: one line that says how to
    resume (`resume`: the command or call to repeat). What was committed stays (atomic writes, commit
    records, SQLite transactions)."""
    full = "disk full or a file-size limit?"
    try:
        yield
    except OSError as exc:
        if exc.errno is None and "written" in str(exc):  # numpy's short write: "N requested and M written"
            why, where = f"short write ({exc}; {full})", root
        elif exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            why, where = f"{exc.strerror} ({full})", exc.filename or root
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EIO):
            why, where = exc.strerror, exc.filename or root
        else:
            raise
        raise PrismError(f"cannot write to {where}: {why}; fix that and resume with: {resume}") from None
    except sqlite3.OperationalError as exc:  # SQLite reports a full disk or a file-size limit in its own words
        if not any(w in str(exc) for w in ("full", "disk I/O", "readonly", "unable to open")):
            raise
        raise PrismError(f"cannot write to a SQLite file in {root}: {exc} ({full}); fix that and resume with: "
                         f"{resume}") from None
