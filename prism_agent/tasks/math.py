"""Math: the solver puts its final answer in `\\boxed{…}`; the problem text is what is compared.

Extraction takes the last `\\boxed{…}` with balanced braces (escaped `\\{`, `\\}` do not count), so a
solution that boxes intermediate results votes with its final one. A completion cut off inside its last
box (unbalanced) has no final answer: it is dropped rather than read from an earlier box. (Voting also
drops answers longer than its `max_answer_chars`, 300 as in the paper; see `config/vote.py`.)
"""

from __future__ import annotations

import re

from prism_agent.data.reader import Sample
from prism_agent.tasks.base import Extracted, Task

_BOXED = re.compile(r"\\boxed\s*\{")


def _balanced(text: str, start: int) -> int | None:
    """Index just past the brace closing the group opened at `text[start - 1]`, or None if unclosed."""
    depth, i = 1, start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # an escaped character, e.g. \{ or \}: not a group brace
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the final `\\boxed{…}`; None when there is no box or the last one never closes."""
    found: str | None = None
    pos = 0
    while (m := _BOXED.search(text, pos)) is not None:
        end = _balanced(text, m.end())
        if end is None:
            return None
        found = text[m.end() : end - 1]
        pos = end  # boxes nested inside this one are part of it
    return found


_NUMBERED = re.compile(r"^\s*(?:\**\s*problem\s*\d*\s*[:.)]\s*\**|\d+\s*[.)])\s*", re.I | re.M)


class MathTask(Task):
    name = "math"
    tag = "problem"
    answer_start = "<problem>\n"
    started_stops = ("<problem>",)
    max_new_tokens = 384
    vote_defaults = {"n": 3, "tau": 2, "max_tokens": 2048}  # noqa: RUF012 (paper: 2 of 3 agree)
    seeds = ("gsm8k-train", "math-train")
    benchmarks = ("gsm8k-test", "math-test", "math500", "minerva-math", "aime24", "aime25")

    def solve_prompt(self, sample: Sample) -> str:
        return self.template("solve").format(problem=sample.prompt)

    def extract(self, completion: str) -> Extracted:
        boxed = last_boxed(completion)
        if boxed is None or not boxed.strip():
            return Extracted(None, "missing")
        return Extracted(boxed.strip())

    def compare_text(self, sample: Sample) -> str:
        return sample.prompt

    def read_untagged(self, text: str) -> list[str]:
        """Numbered or "Problem N:" items (small models often drop the tags)."""
        return [part.strip() for part in _NUMBERED.split(text)[1:]]

    def group_answers(self, answers: list[str], timeout_s: int) -> list[list[int]]:
        """Mathematical equivalence (math-verify): `1/2`, `0.5` and `\\frac{1}{2}` are one answer."""
        from prism_agent.quality.equivalence import group_math_answers

        return group_math_answers(answers, timeout_s=timeout_s)
