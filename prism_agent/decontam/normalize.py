"""Normalised word n-grams, the unit of stage-1 overlap.

Lower-cased, and every run of non-alphanumeric characters (punctuation, LaTeX markup, whitespace, `_`)
is a word break, so `x=5`, `x = 5` and `X  =5.` give the same words. The cost is that signs and operators
vanish (`-150` and `150` read alike): n-gram overlap is a test of shared wording, and the paraphrase judge
of stage 2 is where meaning is weighed. Letters and digits of every script count as word characters.
"""

from __future__ import annotations

import re

_BREAK = re.compile(r"[\W_]+")


def words(text: str) -> list[str]:
    return [w for w in _BREAK.split(text.lower()) if w]


def ngrams(tokens: list[str], n: int) -> list[str]:
    """The n-word windows in text order, each joined by single spaces (empty when fewer than n words)."""
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
