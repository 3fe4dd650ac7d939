"""One writer per run directory: `prism-agent run` holds an exclusive `flock` on the run directory itself while
it runs.

Everything the loop writes assumes it is the only writer (the sample log's tail, the feature store's next
shard, the checkpoint database); two `run` processes on one directory, e.g. a second terminal started by
mistake or a scheduler retrying while the first is still alive, would interleave commits. The lock is an
advisory `flock` on the directory's own file descriptor: nothing is written for it (a run directory that a
rejected command touched stays byte for byte as it was), and the kernel drops it when the holder exits in
any way, kill -9 included, so there is never a stale lock and the same command resumes at once after a
crash. Readers (`status`, `report`, `export`) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from prism_agent.errors import PrismError


class RunDirectoryBusy(PrismError):
    """Another live process holds the run directory's lock."""


class RunLock:
    """`with RunLock(root):` holds the run directory's lock for the block. A directory it had to create is
    removed again if the block fails and left it empty (a rejected new run leaves nothing behind)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> RunLock:
        self._created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirectoryBusy(f"{self.root} is in use by another `prism-agent run`; wait for it to finish "
                                   "or stop it (Ctrl-C), then run this again") from None
        self._fd = fd
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
        if kind is not None and self._created and self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()
