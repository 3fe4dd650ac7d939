"""The generator role's side of a task: the few-shot prompt, and reading new samples out of a completion.

The prompts (prompts/<task>/generate.md) ask for each new sample inside its own tag block (`<problem>`
for math, `<pair>` for NLI). Reading is strict about the block and forgiving about the rest: stray text
between blocks is ignored, a block left open is read up to the next block or the end of the completion (a model
that stops at max_tokens mid-sample leaves a short block that the length floor or, later, voting drops),
duplicates within one completion are kept once, and an NLI pair must have both a premise and a hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prism_agent.data.reader import Sample
from prism_agent.tasks.base import Task

TAGS = {"math": "problem", "nli": "pair"}
MIN_CHARS = 12
MAX_CHARS = 4000
_PAIR = re.compile(r"premise\s*:\s*(?P<p>[^\n]+?)\s*\n+\s*hypothesis\s*:\s*(?P<h>[^\n]+)", re.I)
_NUMBERED = re.compile(r"^\s*(?:\**\s*problem\s*\d*\s*[:.)]\s*\**|\d+\s*[.)])\s*", re.I | re.M)
MIN_WORDS = 3  # a side with fewer words is a placeholder ("...") or a fragment


def example_text(task: Task, sample: Sample) -> str:
    """How a pool sample is shown as a few-shot example: the problem, or the premise/hypothesis pair."""
    if task.name == "nli":
        from prism_agent.tasks.nli import premise_hypothesis

        pair = premise_hypothesis(sample)
        if pair is not None:
            return f"Premise: {pair[0]}\nHypothesis: {pair[1]}"
    return sample.prompt.strip()


def fewshot_prompt(task: Task, examples: Sequence[Sample], num_new: int) -> str:
    tag = TAGS.get(task.name, "sample")
    shown = "\n".join(f"<{tag}>\n{example_text(task, s)}\n</{tag}>" for s in examples)
    return task.template("generate").format(num_new=num_new, examples=shown)


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9]+", text))


def _pairs(text: str) -> list[str]:
    out = []
    for m in _PAIR.finditer(text):
        premise, hypothesis = " ".join(m["p"].split()), " ".join(m["h"].split())
        if _words(premise) >= MIN_WORDS and _words(hypothesis) >= MIN_WORDS:
            out.append(f"Premise: {premise}\nHypothesis: {hypothesis}")
    return out


def parse_candidates(task: Task, text: str) -> list[str]:
    """New sample prompts in a generator completion, in order, normalised like the seed sets' prompts.

    Tagged blocks come first; a completion without any (small models often drop the tags) falls back to
    the task's own shape: `Premise:`/`Hypothesis:` line pairs for NLI, numbered or "Problem N:" items
    for math."""
    tag = TAGS.get(task.name, "sample")
    blocks = re.findall(rf"<{tag}>\s*(.*?)\s*(?:</{tag}>|(?=<{tag}>)|\Z)", text, flags=re.S | re.I)
    found: list[str] = []
    if task.name == "nli":
        for block in blocks or [text]:
            found += _pairs(block)
    elif blocks:
        found = [b.strip() for b in blocks]
    else:
        found = [part.strip() for part in _NUMBERED.split(text)[1:]]
    out: list[str] = []
    for item in found:
        if MIN_CHARS <= len(item) <= MAX_CHARS and _words(item) >= MIN_WORDS and item not in out:
            out.append(item)
    return out
