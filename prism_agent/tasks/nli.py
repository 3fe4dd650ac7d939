"""NLI: the solver answers with one label; premise and hypothesis are what is compared.

Rows carry `premise` and `hypothesis` fields (the built-in SNLI sets do) or a prompt rendered as
`Premise: …\\nHypothesis: …`. Label reading is forgiving about form (case, markdown, punctuation,
"Label: Neutral.", "entails", "contradictory") but not about meaning: a completion that names two
different labels without committing to one (e.g. "entailment or neutral") gives no label, and a label
word right after a negation ("does not entail") is not read as that label.
"""

from __future__ import annotations

import re

from prism_agent.data.reader import Sample
from prism_agent.errors import BadInputError
from prism_agent.tasks.base import Extracted, Task

LABELS = ("entailment", "neutral", "contradiction")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_STEMS = (("entail", "entailment"), ("neutral", "neutral"), ("contradict", "contradiction"))
_NEGATIONS = {"not", "no", "never", "doesn't", "don't", "isn't", "cannot", "neither", "nor"}
_CUES = {"answer", "label", "relationship", "relation", "is", "therefore", "so", "thus", "final"}
_PAIR = re.compile(r"^\s*premise\s*:\s*(?P<p>.*?)\s*\n\s*hypothesis\s*:\s*(?P<h>.*?)\s*$", re.I | re.S)


def _label_of(word: str) -> str | None:
    for stem, label in _STEMS:
        if word.startswith(stem):
            return label
    return None


def _negated(words: list[str], i: int) -> bool:
    """"not entail", "no contradiction", "not an entailment" (but not "nor contradiction, neutral")."""
    if i >= 1 and words[i - 1] in _NEGATIONS:
        return True
    return i >= 2 and words[i - 2] in _NEGATIONS and _label_of(words[i - 1]) is None


def parse_label(text: str) -> str | None:
    """The NLI label a completion commits to, or None."""
    words = _WORD.findall(text.lower())
    if not words:
        return None
    first = _label_of(words[0])
    if first is not None and (len(words) == 1 or words[1] not in ("or", "and")):
        return first  # the prompt asks for exactly one word: a leading label is the answer
    mentions: list[tuple[int, str]] = []
    for i, w in enumerate(words):
        label = _label_of(w)
        if label is not None and not _negated(words, i):
            mentions.append((i, label))
    if not mentions:
        return None
    distinct = {label for _, label in mentions}
    if len(distinct) == 1:
        return mentions[0][1]
    cued = [label for i, label in mentions if i > 0 and words[i - 1] in _CUES]  # "the answer is neutral"
    return cued[-1] if cued else None


def premise_hypothesis(sample: Sample) -> tuple[str, str] | None:
    p, h = sample.extra.get("premise"), sample.extra.get("hypothesis")
    if isinstance(p, str) and isinstance(h, str) and p.strip() and h.strip():
        return p.strip(), h.strip()
    m = _PAIR.match(sample.prompt)
    return (m["p"], m["h"]) if m and m["p"] and m["h"] else None


_LINES = re.compile(r"premise\s*:\s*(?P<p>[^\n]+?)\s*\n+\s*hypothesis\s*:\s*(?P<h>[^\n]+)", re.I)
MIN_WORDS = 3  # a side with fewer words is a placeholder ("...") or a fragment


def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9]+", text))


class NLITask(Task):
    name = "nli"
    tag = "pair"
    answer_start = "<pair>\nPremise:"
    started_stops = ("\nPremise:", "<pair>", "\n\n")  # a pair is two lines; what follows is not part of it
    max_new_tokens = 96
    vote_defaults = {"n": 2, "tau": 2, "max_tokens": 32}  # noqa: RUF012 (both labelings agree)
    solve_fields = ("premise", "hypothesis")
    solve_choices = LABELS
    seeds = ("snli-train",)
    benchmarks = ("snli-test",)

    def solve_prompt(self, sample: Sample) -> str:
        pair = premise_hypothesis(sample)
        if pair is None:
            raise BadInputError(f"sample {sample.id!r}: NLI needs premise/hypothesis fields or a prompt "
                                "'Premise: …\\nHypothesis: …'")
        return self.template("solve").format(premise=pair[0], hypothesis=pair[1])

    def extract(self, completion: str) -> Extracted:
        label = parse_label(completion)
        return Extracted(label) if label else Extracted(None, "unparsable")

    def compare_text(self, sample: Sample) -> str:
        """Premise and hypothesis joined by a space (a row in another format: its whole prompt)."""
        pair = premise_hypothesis(sample)
        return f"{pair[0]} {pair[1]}" if pair else sample.prompt

    def judge_text(self, sample: Sample) -> str:
        pair = premise_hypothesis(sample)
        return f"Premise: {pair[0]}\nHypothesis: {pair[1]}" if pair else sample.prompt

    def example_text(self, sample: Sample) -> str:
        return self.judge_text(sample)

    def read_block(self, block: str) -> list[str]:
        """`Premise:`/`Hypothesis:` line pairs, both sides of at least a few words."""
        out = []
        for m in _LINES.finditer(block):
            premise, hypothesis = " ".join(m["p"].split()), " ".join(m["h"].split())
            if _words(premise) >= MIN_WORDS and _words(hypothesis) >= MIN_WORDS:
                out.append(f"Premise: {premise}\nHypothesis: {hypothesis}")
        return out

    def read_untagged(self, text: str) -> list[str]:
        return self.read_block(text)
