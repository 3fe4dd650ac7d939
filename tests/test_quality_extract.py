"""Reading solver completions for voting: the final \\boxed{} answer (math) and the label (NLI)."""

from __future__ import annotations

import pytest

from prism_agent.data.reader import Sample
from prism_agent.errors import BadInputError
from prism_agent.tasks import get_task
from prism_agent.tasks.math import last_boxed
from prism_agent.tasks.nli import parse_label


@pytest.mark.parametrize(("text", "expected"), [
    ("so the answer is \\boxed{5}.", "5"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
    ("first \\boxed{3}, then corrected: \\boxed{4}", "4"),  # the last box wins
    ("\\boxed {7}", "7"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are not group braces
    ("\\boxed{\\boxed{9}}", "\\boxed{9}"),  # a box inside a box belongs to the outer one
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("no box here: 12", None),
    ("\\boxed{3} and then a truncated \\boxed{\\frac{1}{", None),  # the final box never closes
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_math_extract_reasons():
    task = get_task("math")
    assert task.extract("… \\boxed{ 42 }").answer == "42"
    assert task.extract("the answer is 42").reason == "missing"
    assert task.extract("\\boxed{   }").reason == "missing"


@pytest.mark.parametrize(("text", "expected"), [
    ("entailment", "entailment"),
    ("Entailment.", "entailment"),
    ("**NEUTRAL**", "neutral"),
    ("  Contradiction\n\nThe premise says they run.", "contradiction"),
    ("Label: contradiction", "contradiction"),
    ("The answer is neutral.", "neutral"),
    ("It entails the hypothesis.", "entailment"),
    ("These are contradictory statements.", "contradiction"),
    ("The premise does not entail the hypothesis, so the answer is neutral.", "neutral"),
    ("Neither entailment nor contradiction: neutral", "neutral"),
    ("entailment or neutral", None),  # hedged: no label
    ("It could be entailment, or it could be contradiction.", None),
    ("does not entail", None),
    ("I am not sure.", None),
    ("", None),
])
def test_parse_label(text, expected):
    assert parse_label(text) == expected


def test_nli_texts_and_solve_prompt():
    task = get_task("nli")
    from_fields = Sample("a", "ignored", "neutral", {"premise": "A dog runs.", "hypothesis": "An animal moves."})
    from_prompt = Sample("b", "Premise: A dog runs.\nHypothesis: An animal moves.", "neutral")
    for s in (from_fields, from_prompt):
        assert task.compare_text(s) == "A dog runs. An animal moves."
        assert task.judge_text(s) == "Premise: A dog runs.\nHypothesis: An animal moves."
        prompt = task.solve_prompt(s)
        assert "Premise: A dog runs." in prompt and "Hypothesis: An animal moves." in prompt
    with pytest.raises(BadInputError, match="premise"):
        task.solve_prompt(Sample("c", "no structure", "x"))


def test_math_solve_prompt_keeps_the_problem_and_asks_for_a_box():
    task = get_task("math")
    prompt = task.solve_prompt(Sample("m", "What is $\\{x\\}$ if x = 2.5?", ""))
    assert "What is $\\{x\\}$ if x = 2.5?" in prompt and "\\boxed{}" in prompt


def test_unknown_task_is_bad_input():
    with pytest.raises(BadInputError, match="math, nli"):
        get_task("chess")
