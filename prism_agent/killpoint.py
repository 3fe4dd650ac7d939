"""Test-only: SIGKILL this process at a named point inside a loop node (RELIABILITY.md, "Exactly once under
kill -9").

The kill -9 suite has to prove where its kills land; a timer cannot (on a slow CPU every random kill fell in
seed featurization). So the run itself says when it is inside a node: the loop's graph marks the node that is
running (`within`), and each durable write announces itself here first (`reached`): a staged file about to
be renamed into place (`atomic.staged`), a call about to be recorded in the call log, a sample commit record,
an event line. With `PRISM_AGENT_TEST_KILL_AT` in the environment the process SIGKILLs itself just before
one of them, after printing one line to stderr that names the node and the write (`KILL_LINE`), which is
how the suite asserts where the kill landed:

    <node>:<n>          before the n-th write inside <node> (counted from 1 over this process's life)
    <node>:<what>:<n>   before the n-th write named <what> inside <node> (`shard-000002.npy`, `call log`,
                        `event measure`, `commit record` (of a commit with rows; an empty one is
                        `commit record (no rows)`))

This is a real kill -9 of the real process, at a point known to be inside that node.

Without the variable (every real run) `reached` returns at once. The variable is read here and nowhere
else; it is a test hook (RELIABILITY.md says so), not a user setting.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

ENV = "PRISM_AGENT_TEST_KILL_AT"
KILL_LINE = "test kill: SIGKILL inside"  # followed by "<node> before <what> (#<n>)"

F = TypeVar("F", bound=Callable)

_lock = threading.Lock()
_node: str | None = None  # the loop node running now (nodes run one at a time)
_hits: dict[str, int] = {}


def _spec() -> tuple[str, str | None, int] | None:
    raw = os.environ.get(ENV)
    if not raw:
        return None
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[-1].isdigit() or int(parts[-1]) < 1:
        raise ValueError(f"{ENV} must be <node>:<n> or <node>:<what>:<n> with n ≥ 1, got {raw!r}")
    return parts[0], parts[1] if len(parts) == 3 else None, int(parts[-1])


def within(name: str, fn: F) -> F:
    """`fn` (a graph node) marking itself as the running node `name` while it runs."""

    @functools.wraps(fn)
    def node(*args, **kwargs):
        global _node
        _node = name
        try:
            return fn(*args, **kwargs)
        finally:
            _node = None

    return node  # type: ignore[return-value]


def reached(what: str) -> None:
    """A durable write (`what`) is about to happen: die here when the environment asks for this one."""
    if _node is None or ENV not in os.environ:
        return
    spec = _spec()
    if spec is None or spec[0] != _node or spec[1] not in (None, what):
        return
    with _lock:
        _hits[_node] = count = _hits.get(_node, 0) + 1
        if count == spec[2]:
            sys.stderr.write(f"{KILL_LINE} {_node} before {what} (#{count})\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
