"""User-facing errors.

Anything a user can cause (a bad path, a malformed file, a missing model) raises `PrismError`; the CLI
prints its message as one line and exits non-zero. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PrismError(Exception):
    """An error caused by input or environment, reported to the user as one line."""

    exit_code: int = 2


class BadInputError(PrismError):
    """The user's data or arguments cannot be used as given."""


class ModelNotFoundError(PrismError):
    """A model path or pinned model artifact is missing or unreadable."""
