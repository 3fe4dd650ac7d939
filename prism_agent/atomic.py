"""Crash-safe file writes: write to a temporary name, fsync, rename, fsync the folder.

Everything the run directory, the feature store, the data cache and `decontam` commit goes through here, so
a kill at any moment leaves either the old file or the new one, never a torn one, and a committed rename
survives a power cut (the folder's entry is fsynced too). Append-only logs (`run/samples.py`,
`run/events.py`) have their own commit protocol instead: they cannot be rewritten whole on every append.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from prism_agent import killpoint


@contextmanager
def staged(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on `path` + ".tmp"; on a clean exit it is fsynced, renamed onto `path` and the folder
    fsynced. A failed write (disk full, file-size limit, Ctrl-C) removes the temporary file and leaves `path`
    as it was, so a run directory holds no half-written leftovers after an error. Streaming writers (the
    `decontam` outputs, a pulled data set) hold it open for the whole input; nothing appears before the end."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fh = tmp.open("wb")
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        killpoint.reached(path.name)  # test-only: the kill -9 suite's point between fsync and rename
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):  # closing flushes the buffer again, which fails again on a full disk
            fh.close()
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write(fh)` into `path` through `staged`: all of it or, after any failure, the previous file."""
    with staged(path) as fh:
        write(fh)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, an unlink) durable: a file's fsync does not cover its name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    """Rows as UTF-8 JSON lines (non-ASCII kept readable)."""
    return "".join(json_line(r) for r in rows).encode("utf-8")


def json_line(row: dict) -> str:
    """One row as a JSON line, the format of every JSONL file the project writes (non-ASCII kept readable)."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    payload = jsonl_bytes(rows)
    write_atomic(path, lambda fh: fh.write(payload))
