"""The generator role's task side: few-shot prompts and reading new samples out of real-shaped completions
(tagged blocks, and the untagged shapes small models produce)."""

from __future__ import annotations

from prism_agent.data.reader import Sample
from prism_agent.tasks.generation import example_text, fewshot_prompt, parse_candidates
from prism_agent.tasks.registry import get_task

NLI, MATH = get_task("nli"), get_task("math")


def test_fewshot_prompt_shows_examples_in_the_answer_format():
    ex = [Sample("a", "Premise: A dog runs in a park.\nHypothesis: An animal is outside.", "entailment"),
          Sample("b", "Premise: A man  sleeps.\nHypothesis: A man is awake.", "contradiction")]
    text = fewshot_prompt(NLI, ex, 2)
    assert "Write 2\nnew pairs" in text or "Write 2 new pairs" in text.replace("\n", " ")
    assert "<pair>\nPremise: A dog runs in a park.\nHypothesis: An animal is outside.\n</pair>" in text
    assert "entailment\n" not in text.split("Examples:")[1].split("Write each")[0]  # labels are not shown
    assert example_text(MATH, Sample("m", "  What is 2+2?  ", "4")) == "What is 2+2?"
    assert "<problem>\nWhat is 2+2?\n</problem>" in fewshot_prompt(MATH, [Sample("m", "What is 2+2?", "4")], 2)


def test_nli_blocks_and_untagged_pairs():
    tagged = ("<pair>\nPremise: A cat sleeps on a mat.\nHypothesis: The cat is awake.\n</pair>\n"
              "<pair>Premise: ...\nHypothesis: ...</pair>\n"
              "<pair>\nPremise:  Two kids play  tag.\n\nHypothesis: Children are playing")
    assert parse_candidates(NLI, tagged) == [
        "Premise: A cat sleeps on a mat.\nHypothesis: The cat is awake.",
        "Premise: Two kids play tag.\nHypothesis: Children are playing",
    ]
    loose = "Here are two:\nPair 1:\nPremise: A bat hits a ball hard.\nHypothesis: The ball moves fast.\n\nPair 2:"
    assert parse_candidates(NLI, loose) == ["Premise: A bat hits a ball hard.\nHypothesis: The ball moves fast."]
    assert parse_candidates(NLI, "I cannot help with that.") == []


def test_math_blocks_numbered_items_and_duplicates():
    assert parse_candidates(MATH, "<problem>\nWhat is 17 times 3?\n</problem><problem>What is 17 times 3?</problem>"
                                  "<problem>Find x if 3x + 1 = 10.") == ["What is 17 times 3?",
                                                                        "Find x if 3x + 1 = 10."]
    assert parse_candidates(MATH, "Sure:\n1. A train goes 60 km in 1 hour. How far in 3 hours?\n"
                                  "2) Compute the sum 1 + 2 + ... + 10.") == [
        "A train goes 60 km in 1 hour. How far in 3 hours?", "Compute the sum 1 + 2 + ... + 10."]
    assert parse_candidates(MATH, "**Problem 1:** Find all x with x^2 = 4.\n**Problem 2:** Compute 3! plus 4!") == [
        "Find all x with x^2 = 4.", "Compute 3! plus 4!"]
    assert parse_candidates(MATH, "<problem>x</problem>") == []  # too short to be a problem
