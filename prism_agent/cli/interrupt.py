"""Ctrl-C and SIGTERM for `prism-agent run`: the exit code and the command that resumes.

How a loop stops on a signal (`GracefulStop`) is the loop's own (`prism_agent.loop.stop`), shared with the
Python API; this module adds what only a process run from a shell needs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
from pathlib import Path

from prism_agent.loop.stop import STOP_GRACE_S, GracefulStop

__all__ = ["EXIT_INTERRUPTED", "STOP_GRACE_S", "GracefulStop", "exit_after_stop", "exit_on_further_signals",
           "invocation"]

EXIT_INTERRUPTED = 130  # the shell's code for "ended by SIGINT"


def exit_on_further_signals() -> None:
    """For a process that has stopped its run and is winding down (joining a worker thread can take seconds):
    a further Ctrl-C/SIGTERM exits at once, still with 130. Without it a KeyboardInterrupt could escape after
    the resume line was printed (CI saw exit -2)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_interrupted)


def _exit_interrupted(_signum: int, _frame) -> None:
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def exit_after_stop() -> None:
    """End a stopped (or interrupted) command with 130 now, without the interpreter's own exit.

    A second signal abandons the step in flight by raising KeyboardInterrupt wherever the main thread is. When
    that is inside Python source that a C extension runs with `PyRun_String` (seen: a frame `<string>`, line 0,
    during an import in the `reject` step), CPython 3.11 records the KeyboardInterrupt as unhandled even
    though the runner catches it, and a `python -m` process then ends itself by SIGINT at exit (exit −2
    instead of 130, no traceback; reproduced in a few lines with `ctypes.pythonapi.PyRun_String`,
    RELIABILITY.md "Ctrl-C and SIGTERM"). By the time this is called the run is closed and its directory
    unlocked, and every step is committed or redone on resume, so nothing is lost by skipping the exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def invocation(argv: list[str] | None = None) -> str:
    """The command line that ran this process, shell-quoted, to be pasted back to resume: the program as
    the user called it (`prism-agent`, `python cli.py`, `python -m prism_agent.cli.app`) and its arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("prism-agent")
    if prog.name in ("app.py", "__main__.py") and prog.parent.name == "cli":
        head = [sys.executable, "-m", "prism_agent.cli.app"]
    elif prog.suffix == ".py":
        head = [sys.executable, str(prog)]
    else:
        found = shutil.which(prog.name)
        same = found is not None and prog.exists() and Path(found).resolve() == prog.resolve()
        head = [prog.name] if same or not prog.exists() else [str(prog)]
    return shlex.join(head + args)
