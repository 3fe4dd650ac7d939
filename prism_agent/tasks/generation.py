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

MIN_CHARS = 12
MAX_CHARS = 4000
MIN_WORDS = 3  # fewer words is a placeholder ("...") or a fragment


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9]+", text))


def example_text(task: Task, sample: Sample) -> str:
    """How a pool sample is shown as a few-shot example (the task decides)."""
    return task.example_text(sample)


def generation_messages(task: Task, examples: Sequence[Sample], num_new: int, prefill: bool) -> list[dict]:
    """The generator's chat: the few-shot prompt, then (with `prefill`) the start of its answer, so even a
    small model opens the block in the task's format; each completion is cut at the closing tag."""
    messages = [{"role": "user", "content": fewshot_prompt(task, examples, num_new)}]
    if prefill and task.answer_start:
        messages.append({"role": "assistant", "content": task.answer_start})
    return messages


def generation_stops(task: Task, prefill: bool) -> tuple[str, ...]:
    """Where a completion of one new sample ends: its closing tag, and with a started answer also the
    task's `started_stops` (the start of a second sample)."""
    return (f"</{task.tag}>", *(task.started_stops if prefill and task.answer_start else ()))


def fewshot_prompt(task: Task, examples: Sequence[Sample], num_new: int) -> str:
    tag = task.tag
    shown = "\n".join(f"<{tag}>\n{example_text(task, s)}\n</{tag}>" for s in examples)
    return task.template("generate").format(num_new=num_new, examples=shown)


def parse_candidates(task: Task, text: str) -> list[str]:
    """New sample prompts in a generator completion, in order, normalised like the seed sets' prompts.

    Tagged blocks come first (each read by the task); a completion without any (small models often drop
    the tags) falls back to the task's own shape: `Premise:`/`Hypothesis:` line pairs for NLI, numbered or
    "Problem N:" items for math."""
    tag = task.tag
    blocks = re.findall(rf"<{tag}>\s*(.*?)\s*(?:</{tag}>|(?=<{tag}>)|\Z)", text, flags=re.S | re.I)
    found = [item for block in blocks for item in task.read_block(block)] if blocks else task.read_untagged(text)
    out: list[str] = []
    for item in found:
        if MIN_CHARS <= len(item) <= MAX_CHARS and _words(item) >= MIN_WORDS and item not in out:
            out.append(item)
    return out
