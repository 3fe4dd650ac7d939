"""A custom prism-agent task, end to end: grade-school word problems whose answer is a whole number.

It differs from the built-in `math` task in what it asks for and in how answers vote: the generator
writes one `<question>` per completion, the solver ends with `Answer: <integer>`, and two answers agree
when they are the same integer (no math-verify needed). Seeds and benchmarks are the built-in GSM8K sets,
so it runs offline like the built-in tasks; its prompts live next to this file.

    prism-agent run --task examples/custom_task/wordproblems.py:WordProblems --target 20

An installed package would instead register the class under the `prism_agent.tasks` entry-point group
(`[project.entry-points."prism_agent.tasks"] wordproblems = "my_pkg.tasks:WordProblems"`) and run it
as `--task wordproblems`.
"""

from __future__ import annotations

import re
from pathlib import Path

from prism_agent.data.reader import Sample
from prism_agent.tasks.base import Extracted, Task

_ANSWER = re.compile(r"answer\s*[:=]\s*\$?\s*(-?[\d,]+(?:\.0+)?)\b", re.I)
_LAST_NUMBER = re.compile(r"(-?\d[\d,]*)(?:\.0+)?(?!.*\d)", re.S)


class WordProblems(Task):
    name = "wordproblems"
    tag = "question"
    answer_start = "<question>\n"
    max_new_tokens = 160
    vote_defaults = {"n": 3, "tau": 2, "max_tokens": 384}  # noqa: RUF012
    data_task = "math"  # the built-in math sets are its seeds and benchmarks
    seeds = ("gsm8k-train",)
    benchmarks = ("gsm8k-test",)
    solve_fields = ("question",)
    prompts_root = str(Path(__file__).with_name("prompts"))

    def solve_prompt(self, sample: Sample) -> str:
        return self.template("solve").format(question=sample.prompt)

    def extract(self, completion: str) -> Extracted:
        """The integer after `Answer:`; failing that, the last number of the completion."""
        m = _ANSWER.search(completion) or _LAST_NUMBER.search(completion)
        if m is None:
            return Extracted(None, "missing")
        return Extracted(str(int(m.group(1).replace(",", ""))))

    def compare_text(self, sample: Sample) -> str:
        return sample.prompt
