"""Math answer equivalence with `math-verify`, by pairwise verification.

Answers are grouped by verifying pairs, not by hashing parsed objects: `1/2`, `0.5`, `\\frac{1}{2}` and
`50\\%` parse to different sympy objects (or strings) that only a comparison recognises as equal.
`verify(gold, target)` is not symmetric (equations and intervals), so two answers are equivalent when it
holds in either direction.

math-verify bounds each parse and comparison with `signal.alarm`, which Python allows only in the main
thread; anywhere else it raises. Off the main thread (a worker thread, `asyncio.to_thread`) the timeout
is therefore switched off and the 300-character answer cap is what bounds the work. Calling from the
event loop of the main thread keeps the timeouts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

_MAIN = threading.main_thread()


def effective_timeout(seconds: int) -> int | None:
    """math-verify's timeout where signals work (the main thread), else none."""
    return seconds if seconds > 0 and threading.current_thread() is _MAIN else None


def _canonical(answer: str) -> str:
    """Cheap identity before any parsing: whitespace and an outer `$…$` do not matter."""
    text = answer.strip()
    while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    return "".join(text.split())


@dataclass
class _Parsed:
    key: str
    parsed: list = field(default_factory=list)


def _parse(answer: str, timeout: int | None) -> _Parsed:
    from math_verify import parse

    key = _canonical(answer)
    return _Parsed(key, parse(f"${key}$", parsing_timeout=timeout) if key else [])


def _equal(a: _Parsed, b: _Parsed, timeout: int | None) -> bool:
    from math_verify import verify

    if a.key == b.key:
        return bool(a.key)
    if not a.parsed or not b.parsed:
        return False
    return verify(a.parsed, b.parsed, timeout_seconds=timeout) or verify(b.parsed, a.parsed, timeout_seconds=timeout)


def math_equivalent(a: str, b: str, *, timeout_s: int = 5) -> bool:
    t = effective_timeout(timeout_s)
    return _equal(_parse(a, t), _parse(b, t), t)


def group_math_answers(answers: list[str], *, timeout_s: int = 5) -> list[list[int]]:
    """Partition answer indices into groups of equivalent answers, largest first.

    Equivalence from numeric tolerance need not be transitive, so groups are grown around the answer that
    agrees with the most others (ties: the earliest), then the next, and so on: the first group is exactly
    the set of answers equivalent to the best-supported answer. N is small (3 in the paper), so all
    N(N-1)/2 pairs are compared; identical answers are parsed once.
    """
    t = effective_timeout(timeout_s)
    cache: dict[str, _Parsed] = {}
    parsed = []
    for a in answers:
        key = _canonical(a)
        if key not in cache:
            cache[key] = _parse(a, t)
        parsed.append(cache[key])
    n = len(answers)
    eq = [[i == j for j in range(n)] for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            eq[i][j] = eq[j][i] = _equal(parsed[i], parsed[j], t)
    return greedy_groups(eq)


def greedy_groups(eq: list[list[bool]]) -> list[list[int]]:
    """Groups from a symmetric agreement matrix (see `group_math_answers`); each group lists its
    representative (the answer it was grown around) first."""
    n = len(eq)
    support = [sum(row) for row in eq]
    order = sorted(range(n), key=lambda i: (-support[i], i))
    assigned: set[int] = set()
    groups: list[list[int]] = []
    for i in order:
        if i in assigned:
            continue
        group = [i] + [j for j in range(n) if j != i and j not in assigned and eq[i][j]]
        assigned.update(group)
        groups.append(group)
    groups.sort(key=lambda g: -len(g))  # stable: equal sizes keep the support order
    return groups
