"""User-facing errors.

Anything a user can cause (a bad path, a malformed file, a missing model) raises `PrismError`; the CLI
prints its message as one line and exits non-zero. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class PrismError(Exception):
    """An error caused by input or environment, reported to the user as one line."""

    exit_code: int = 2


class BadInputError(PrismError):
    """The user's data or arguments cannot be used as given."""


class ModelNotFoundError(PrismError):
    """A model path or pinned model artifact is missing or unreadable."""


def one_line(exc: ValidationError, *, prefix: str = "", root: str = "value", flag: bool = False) -> str:
    """A pydantic ValidationError as the one line a user sees: where, what, and how many more problems.

    pydantic's own text spans several lines and repeats the input; the CLI reports one line per error (see
    `PrismError`), so every config reader formats it here. `prefix` goes before the dotted location (a TOML
    table such as "vote."), `root` names a model-level error that has no location, and `flag` writes the
    first location component as the CLI option it came from (`batch_tokens` → `--batch-tokens`).
    """
    first = exc.errors()[0]
    loc = first["loc"]
    dotted = prefix + ".".join(str(p) for p in loc) or root
    where = f"--{str(loc[0]).replace('_', '-')}" if flag and loc else dotted
    count = exc.error_count()
    more = f" (+{count - 1} more)" if count > 1 else ""
    return f"{where}: {first['msg']}{more}"
