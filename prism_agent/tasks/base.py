"""The one small interface every task implements.

A task knows three things about its samples that the quality gates need, and nothing else: how to ask
the solver role about a sample (the `solve` prompt), how to read one solver completion into the answer or
label that votes, and which text stands for the sample when it is compared with benchmark items (the
problem for math; premise and hypothesis for NLI). Keeping these here means voting and decontamination
never look inside a task's rows themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from prism_agent import prompts
from prism_agent.data.reader import Sample

DropReason = Literal["missing", "too_long", "unparsable"]  # too_long: set by voting's length cap


@dataclass(frozen=True)
class Extracted:
    """One completion read for voting: the answer (a math expression or an NLI label), or why there is none."""

    answer: str | None
    reason: DropReason | None = None


class Task(ABC):
    name: str = ""
    seeds: tuple[str, ...] = ()  # built-in seed sets (prism_agent.data.registry)
    benchmarks: tuple[str, ...] = ()  # built-in benchmark sets decontaminated against by default
    # When the answer is one of a few strings (NLI labels), solver requests ask backends that can constrain
    # decoding to pick exactly one of them; others answer in free text, which `extract` parses.
    solve_choices: tuple[str, ...] = ()

    @abstractmethod
    def solve_prompt(self, sample: Sample) -> str:
        """The user message that asks the solver role for one answer to `sample`."""

    @abstractmethod
    def extract(self, completion: str) -> Extracted:
        """The answer or label a solver completion votes for."""

    @abstractmethod
    def compare_text(self, sample: Sample) -> str:
        """The text compared with benchmark items (n-grams and embeddings)."""

    def judge_text(self, sample: Sample) -> str:
        """The text the judge reads for a sample; by default the compared text."""
        return self.compare_text(sample)

    prompts_dir: str | None = None  # a folder of the user's generate.md / solve.md / judge.md

    def template(self, role: str) -> str:
        return prompts.load(self.name, role, self.prompts_dir)

    def check_templates(self) -> None:
        """Refuse a user's template that lacks a placeholder its role fills (or has one it does not)."""
        from prism_agent.errors import BadInputError

        solve = ("problem",) if self.name == "math" else ("premise", "hypothesis")
        for role, fields in {**prompts.FIELDS, "solve": solve}.items():
            text = self.template(role)
            missing = [f for f in fields if "{" + f + "}" not in text]
            try:
                text.format(**dict.fromkeys(fields, ""))
            except (KeyError, IndexError, ValueError) as exc:
                raise BadInputError(f"prompt template {role}.md: cannot fill it ({exc!r}); "
                                    "write literal braces as {{ and }}") from None
            if missing:
                raise BadInputError(f"prompt template {role}.md lacks {{{missing[0]}}}")
