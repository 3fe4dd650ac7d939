"""Majority voting with real math-verify on real MATH/GSM8K answers, and NLI label voting."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import ValidationError

from prism_agent.data.pull import ensure
from prism_agent.data.reader import Sample
from prism_agent.quality import VoteConfig, group_math_answers, math_equivalent, solve_requests, vote
from prism_agent.tasks import get_task
from prism_agent.tasks.math import last_boxed

MATH = get_task("math")
NLI = get_task("nli")


def test_equivalent_forms_group_together():
    answers = ["1/2", "0.5", "\\frac{1}{2}", "\\dfrac12", "1/3", "0.3333", "\\frac{2}{6}"]
    groups = group_math_answers(answers)
    as_sets = [{answers[i] for i in g} for g in groups]
    assert {"1/2", "0.5", "\\frac{1}{2}", "\\dfrac12"} in as_sets
    assert all(not ({"1/2", "1/3"} <= s) for s in as_sets)
    assert math_equivalent("1/3", "\\frac{2}{6}")
    assert not math_equivalent("0.5", "0.6")


@pytest.mark.parametrize(("a", "b"), [
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("1,000", "1000"),
    ("\\$18", "18.00"),
    ("x=5", "5"),
    ("$\\frac{\\sqrt{3}}{2}$", "\\frac{1}{2}\\sqrt{3}"),
])
def test_equivalent_pairs(a, b):
    assert math_equivalent(a, b) and math_equivalent(b, a)


def test_real_math500_answers_match_their_boxed_solutions():
    """The `answer` field of MATH-500 and the last box of its worked solution are the same answer written by
    different hands; math-verify must agree on (nearly) all of them, and must not merge different items."""
    rows = [json.loads(line) for line in ensure("math500").open()][:60]
    pairs = [(r["answer"], last_boxed(r["response"])) for r in rows if r.get("answer") and last_boxed(r["response"])]
    assert len(pairs) >= 50
    agree = sum(math_equivalent(a, b) for a, b in pairs)
    assert agree >= 0.95 * len(pairs)
    # distinct items rarely share an answer: neighbours with different answer strings must not all merge
    different = [(pairs[i][0], pairs[i + 1][0]) for i in range(len(pairs) - 1) if pairs[i][0] != pairs[i + 1][0]]
    assert sum(math_equivalent(a, b) for a, b in different) <= 0.1 * len(different)


def test_real_gsm8k_answers_vote_against_rewritten_forms():
    rows = [json.loads(line) for line in ensure("gsm8k-test").open()][:20]
    cfg = VoteConfig.for_task("math")
    for r in rows:
        ans = r["answer"]
        completions = [f"So she earns \\boxed{{{ans}}}.", f"Total: $\\boxed{{{ans}.00}}$",
                       f"\\boxed{{{int(ans.replace(',', '')) + 1}}}"]
        rec = vote(MATH, completions, cfg)
        assert rec.accepted and rec.group_sizes == [2, 1] and rec.kept == [0, 1], (ans, rec)


def test_vote_record_math():
    cfg = VoteConfig.for_task("math")
    assert (cfg.n, cfg.tau) == (3, 2)
    rec = vote(MATH, ["… \\boxed{0.5}", "… \\boxed{\\frac{1}{2}}", "… \\boxed{7}"], cfg)
    assert rec.accepted and rec.majority == "0.5" and rec.group_sizes == [2, 1] and rec.kept == [0, 1]
    assert rec.kept_solutions == ["… \\boxed{0.5}", "… \\boxed{\\frac{1}{2}}"]
    assert "kept_solutions" not in rec.model_dump()  # the stored record does not duplicate the solutions

    rec = vote(MATH, ["\\boxed{1}", "\\boxed{2}", "no answer"], cfg)
    assert not rec.accepted and rec.kept == [] and rec.dropped == {"missing": 1} and rec.group_sizes == [1, 1]

    long = "\\boxed{" + "x+" * 200 + "1}"
    rec = vote(MATH, [long, long, "\\boxed{3}"], cfg)
    assert not rec.accepted and rec.dropped == {"too_long": 2} and rec.answers[:2] == [None, None]


def test_tau_and_ties_are_explicit():
    answers = ["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"]
    released = VoteConfig.for_task("math", tau=1)  # the released code's effective 1 of 3
    rec = vote(MATH, answers, released)
    assert rec.accepted and rec.tied and rec.kept == [0]
    assert not vote(MATH, answers, VoteConfig.for_task("math", tau=1, ties="reject")).accepted
    unanimous = VoteConfig.for_task("math", tau=3)
    assert not vote(MATH, ["\\boxed{1}", "\\boxed{1}", "\\boxed{2}"], unanimous).accepted
    with pytest.raises(ValidationError, match="cannot exceed"):
        VoteConfig.for_task("math", tau=4)
    with pytest.raises(ValidationError):
        VoteConfig.for_task("math", n="3")  # strict: no silent coercion


def test_nli_vote():
    cfg = VoteConfig.for_task("nli")
    assert (cfg.n, cfg.tau) == (2, 2)
    rec = vote(NLI, ["Neutral.", "**neutral**"], cfg)
    assert rec.accepted and rec.majority == "neutral" and rec.group_sizes == [2]
    rec = vote(NLI, ["entailment", "contradiction"], cfg)
    assert not rec.accepted and rec.group_sizes == [1, 1]
    rec = vote(NLI, ["entailment", "I cannot tell"], cfg)
    assert not rec.accepted and rec.dropped == {"unparsable": 1}


def test_grouping_works_off_the_main_thread():
    """math-verify's signal timeout raises in worker threads; grouping must still work there."""
    answers = ["1/2", "0.5", "\\frac{1}{3}"]
    main = group_math_answers(answers)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("groups", group_math_answers(answers)))
    thread.start()
    thread.join()
    assert box["groups"] == main == [[0, 1], [2]]


def test_solve_requests_are_deterministic_per_sample():
    cfg = VoteConfig.for_task("math")
    samples = [Sample("a", "What is 1+1?", ""), Sample("b", "What is 2+2?", "")]
    reqs = solve_requests(MATH, samples, cfg)
    again = solve_requests(MATH, list(reversed(samples)), cfg)
    assert reqs[0] == again[1] and reqs[0].sampling.seed != reqs[1].sampling.seed
    s = reqs[0].sampling
    assert (s.n, s.temperature, s.top_p) == (3, 0.75, 0.95)
    assert "What is 1+1?" in reqs[0].messages[0].content


def test_vote_defaults_come_from_the_task():
    """The paper's settings live on the task classes only (Task.vote_defaults); VoteConfig reads them."""
    assert VoteConfig.for_task("math").model_dump(include={"n", "tau", "max_tokens"}) == {
        "n": 3, "tau": 2, "max_tokens": 2048}
    assert VoteConfig.for_task("nli").model_dump(include={"n", "tau", "max_tokens"}) == {
        "n": 2, "tau": 2, "max_tokens": 32}
    assert VoteConfig.for_task("nli", n=4).n == 4
