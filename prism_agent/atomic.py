"""Crash-safe file writes: write to a temporary name, fsync, rename, fsync the folder.

Everything the run directory and the feature store commit goes through here, so a kill at any moment
leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """A failed write (disk full, file-size limit, Ctrl-C) removes its temporary file and leaves `path` as
    it was, so a run directory holds no half-written leftovers after an error."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    """Rows as UTF-8 JSON lines (non-ASCII kept readable)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    payload = jsonl_bytes(rows)
    write_atomic(path, lambda fh: fh.write(payload))
