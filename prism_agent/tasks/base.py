"""The one small interface every task implements: a task is a plug-in.

A task knows what the loop needs about its samples, and nothing else: how a pool sample is shown as a
few-shot example and how new samples are read out of a generator completion (its tag and answer start);
how to ask the solver role about a sample (the `solve` prompt), how to read one solver completion into the
answer or label that votes, and when two answers agree; which text stands for the sample when it is
compared with benchmark items; and its defaults (seed sets, benchmarks, voting, token caps, prompts).
Keeping these here means generation, voting and decontamination never look inside a task's rows
themselves, and a user's task (`--task my_pkg.tasks:Triage`, see examples/custom_task) runs the same loop.
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
    # The generator writes each new sample inside <tag>…</tag>; its answer is started for it with
    # `answer_start` (when the run's generation.prefill is on) and cut at the closing tag.
    tag: str = "sample"
    answer_start: str = ""
    # More stop strings once the answer is started (it then holds exactly one sample): e.g. the start of a
    # second one. A small model that runs past its sample otherwise decodes to the token cap, holding up
    # its whole batch.
    started_stops: tuple[str, ...] = ()
    max_new_tokens: int = 256  # generator tokens per new sample, unless the run config sets one
    # N solver completions, τ agreeing, solver tokens each (keys of quality.VoteConfig)
    vote_defaults: dict = {"n": 3, "tau": 2, "max_tokens": 512}  # noqa: RUF012 (read-only class default)
    solve_fields: tuple[str, ...] = ("problem",)  # the placeholders solve.md fills
    data_task: str = ""  # which built-in sets fit (their `task`: "math", "nli"); default: the task's name
    prompts_root: str | None = None  # a plug-in's own folder of generate.md/solve.md/judge.md (built-in: None)

    @abstractmethod
    def solve_prompt(self, sample: Sample) -> str:
        """The user message that asks the solver role for one answer to `sample`."""

    @abstractmethod
    def extract(self, completion: str) -> Extracted:
        """The answer or label a solver completion votes for."""

    @abstractmethod
    def compare_text(self, sample: Sample) -> str:
        """The text compared with benchmark items (n-grams and embeddings)."""

    @property
    def data_kind(self) -> str:
        """The `task` of the built-in seed and benchmark sets this task can use."""
        return self.data_task or self.name

    def judge_text(self, sample: Sample) -> str:
        """The text the judge reads for a sample; by default the compared text."""
        return self.compare_text(sample)

    def example_text(self, sample: Sample) -> str:
        """How a pool sample is shown inside a few-shot block."""
        return sample.prompt.strip()

    def read_block(self, block: str) -> list[str]:
        """New sample prompts in one `<tag>` block of a generator completion (normalised like the seeds)."""
        return [block.strip()]

    def read_untagged(self, text: str) -> list[str]:
        """New sample prompts in a completion that has no `<tag>` block at all (none by default)."""
        return []

    def group_answers(self, answers: list[str], timeout_s: int) -> list[list[int]]:
        """Indices of equivalent answers, largest group first (default: equal strings)."""
        from prism_agent.quality.equivalence import greedy_groups

        return greedy_groups([[a == b for b in answers] for a in answers])

    prompts_dir: str | None = None  # a folder of the user's generate.md / solve.md / judge.md

    def template(self, role: str) -> str:
        return prompts.load(self.name, role, self.prompts_dir, root=self.prompts_root)

    def check_templates(self) -> None:
        """Refuse a user's template that lacks a placeholder its role fills (or has one it does not)."""
        from prism_agent.errors import BadInputError

        for role, fields in {**prompts.FIELDS, "solve": self.solve_fields}.items():
            text = self.template(role)
            missing = [f for f in fields if "{" + f + "}" not in text]
            try:
                text.format(**dict.fromkeys(fields, ""))
            except (KeyError, IndexError, ValueError) as exc:
                raise BadInputError(f"prompt template {role}.md: cannot fill it ({exc!r}); "
                                    "write literal braces as {{ and }}") from None
            if missing:
                raise BadInputError(f"prompt template {role}.md lacks {{{missing[0]}}}")
