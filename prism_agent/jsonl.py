"""Reading JSONL: one reader, with what a bad or torn line means named by the caller.

The project reads three kinds of JSONL file, and each needs its own answer to "this line does not parse":

- `strict`: files a user gives us (data sets, benchmarks) and files written whole through `atomic`
  (seeds, feature-store ids). Blank lines are skipped; the first other line that is not JSON raises one
  `BadInputError` naming the file and line. Nothing here can be half-written, so a bad line is damage.
- `prefix`: append logs whose lines are commit points (`pool/commits.jsonl`). Only the lines before the
  first unterminated (a write in flight, or cut by a kill) or unreadable one count; nothing after it does.
- `tolerate_torn_tail`: append logs read for display (`events.jsonl`). An unterminated last line is left
  out (its writer may still be writing it) and a complete line that does not parse is skipped, so one
  damaged event never hides the ones after it.

The data reader decides row by row (`--skip-bad`), so it reads `numbered()`. The writers' own recovery
(`SampleLog` cutting bytes past its last commit, `EventLog` cutting a torn tail before appending) needs byte
offsets rather than rows and keeps its own code; `SampleLog` also reads its rows only up to the committed
byte count, which no line rule can express.

Not the `jsonlines` library: its reader either stops at the first invalid line or skips it silently, so it
can give neither `numbered()`'s per-line verdicts (the data reader reports every bad row number) nor the
log policies, which turn on whether the last line has its newline; and writing is one `json.dumps` per
row inside `atomic.staged`, which it would not shorten.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from prism_agent.errors import BadInputError

Policy = Literal["strict", "prefix", "tolerate_torn_tail"]


def read_jsonl(path: Path, policy: Policy) -> Iterator[Any]:
    """The parsed lines of `path` under `policy` (module docstring). A log that does not exist yet reads as
    empty; a missing `strict` file raises FileNotFoundError (callers check user paths first)."""
    if policy == "strict":
        yield from (row for _, row in numbered(path, strict=True))
        return
    path = Path(path)
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return
            try:
                row = json.loads(line)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
                if policy == "prefix":
                    return
                continue
            yield row


def numbered(path: Path, *, strict: bool = False) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed object) for every non-blank line. A line that is not JSON raises
    `BadInputError` when `strict`, else comes as (line number, the exception) for a reader that reports or
    skips bad rows itself."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except ValueError as exc:
                if strict:
                    raise BadInputError(f"{path}: line {lineno} is not valid JSON") from None
                yield lineno, exc
