"""When to retry a failed call and how long to wait: exponential backoff with full jitter, never less than
the server's `Retry-After`. Kept apart from the backends so the policy is tested on its own and shared."""

from __future__ import annotations

import email.utils
import json
import random
import time
from dataclasses import dataclass

import pydantic


@dataclass(frozen=True)
class Verdict:
    retry: bool
    overload: bool  # the server said "slow down" (429/503): the admission policy shrinks
    reason: str
    retry_after_s: float | None = None


def _header_delay(headers) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def classify(exc: BaseException) -> Verdict:
    """Transient (retry) or final. Anything not known to be transient is final, so bugs surface."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return Verdict(True, False, "timeout")
    if isinstance(exc, openai.APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "dropped"
        return Verdict(True, False, f"connection error ({cause})")
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        delay = _header_delay(getattr(exc.response, "headers", None))
        if code == 429:
            return Verdict(True, True, "429 rate limited", delay)
        if code in (408, 409) or code >= 500:
            return Verdict(True, code in (502, 503, 504), f"{code} server error", delay)
        return Verdict(False, False, f"{code} {_short(exc)}")
    # the reason is a count's key (status, dashboard): a fixed text per kind, not the parser's message with
    # the byte offset where this answer broke
    if isinstance(exc, json.JSONDecodeError):
        return Verdict(True, False, "malformed response (invalid JSON)")
    if isinstance(exc, openai.APIResponseValidationError | pydantic.ValidationError):
        return Verdict(True, False, "malformed response (unexpected fields)")
    if isinstance(exc, MalformedResponse):
        return Verdict(True, False, f"malformed response ({_short(exc)})")
    return Verdict(False, False, f"{type(exc).__name__}: {_short(exc)}")


class MalformedResponse(Exception):
    """A 200 answer without usable choices (truncated or wrong JSON): retried like a server error."""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(max, base·2^attempt)], but at least what the server asked."""
        cap = min(self.max_s, self.base_s * (2**attempt))
        jittered = (rng or random).uniform(0.0, cap)
        return max(jittered, retry_after_s or 0.0)
