"""Stage 2 with the real models: all-MiniLM-L6-v2 retrieval and the embedded SmolLM2-135M as the judge.

The 135M judge is too small to judge paraphrases reliably (BENCHMARKS.md), so these tests check what must
hold for any judge: the right item is retrieved, every stage-1 survivor is asked (or skipped below the
floor), the verdict follows the judge's words, drops carry their evidence, and runs are reproducible.
"""

from __future__ import annotations

import asyncio

import pytest

from prism_agent.config.backends import LocalBackendConfig
from prism_agent.config.decontam import DecontamConfig
from prism_agent.data.reader import Sample
from prism_agent.decontam.benchmarks import Benchmark, BenchmarkItem
from prism_agent.decontam.decontaminator import Counts, Decontaminator
from prism_agent.decontam.judge import judge_request, parse_verdict
from prism_agent.tasks import get_task

ITEMS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many "
    "clips did Natalia sell altogether in April and May?",
    "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did "
    "she earn?",
]
SAMPLES = [
    Sample("para-natalia", "In April Natalia sold clips to 48 friends; in May she sold half that many. What is "
                           "the total number of clips she sold in those two months?", ""),
    Sample("para-polar", "Express the rectangular point (0, 3) in polar coordinates.", ""),
    Sample("unrelated", "A farmer has 17 sheep and all but 9 run away. How many are left?", ""),
    Sample("verbatim", ITEMS[2], ""),
]
MATH = get_task("math")


@pytest.fixture(scope="module")
def judge():
    from prism_agent.generators import make_generator

    return make_generator(LocalBackendConfig())


@pytest.fixture(scope="module")
def embedder():
    from prism_agent.diversity.embedding import SentenceEmbedder

    return SentenceEmbedder()


def _decon(tmp_path, judge, embedder, **cfg) -> Decontaminator:
    bench = Benchmark("mine", "test", [BenchmarkItem("mine", f"t{i}", t, t) for i, t in enumerate(ITEMS)])
    return Decontaminator(MATH, [bench], DecontamConfig(**cfg), judge=judge, embedder=embedder, cache_dir=tmp_path)


def test_judge_request_follows_the_paper():
    req = judge_request(MATH, "Problem one?", "Problem two?", "s1", DecontamConfig())
    assert req.sampling.temperature == 0.3 and req.sampling.n == 1
    text = req.messages[0].content
    assert "Problem A:\nProblem one?" in text and "Problem B:\nProblem two?" in text and "yes or no" in text


@pytest.mark.slow
def test_stage2_with_the_embedded_judge(tmp_path, judge, embedder):
    decon = _decon(tmp_path, judge, embedder)
    verdicts = asyncio.run(decon.check(SAMPLES))
    by_id = {v.sample.id: v for v in verdicts}
    # retrieval: each paraphrase finds its source, far above the unrelated problem
    assert by_id["para-natalia"].nearest.id == "t0" and by_id["para-natalia"].similarity > 0.8
    assert by_id["para-polar"].nearest.id == "t1" and by_id["para-polar"].similarity > 0.8
    assert by_id["unrelated"].similarity < 0.5
    # the verbatim copy is stage 1's; the judge is never asked about it
    assert by_id["verbatim"].dropped.stage == "ngram" and by_id["verbatim"].judge == "not_asked"
    for sid in ("para-natalia", "para-polar", "unrelated"):  # the paper's default: ask for every survivor
        v = by_id[sid]
        assert v.judge in ("yes", "no", "unclear") and v.judge_raw is not None
        expected = {True: "yes", False: "no", None: "unclear"}[parse_verdict(v.judge_raw)]
        assert v.judge == expected
        assert (v.dropped is not None) == (v.judge == "yes")
        if v.dropped is not None:
            d = v.dropped
            assert (d.stage, d.item_id, d.judge_answer, d.judge_raw) == ("judge", v.nearest.id, "yes", v.judge_raw)
            assert d.similarity == round(v.similarity, 4) and d.judge_model == "local/smollm2-135m-instruct"
    counts = Counts()
    for v in verdicts:
        counts.add(v)
    assert counts.total == 4 and counts.ngram == 1 and counts.judge_asked == 3
    # seeded: a second run asks the same questions and gets the same answers
    again = asyncio.run(decon.check(SAMPLES))
    assert [(v.judge, v.judge_raw) for v in again] == [(v.judge, v.judge_raw) for v in verdicts]
    # the benchmark embeddings were cached on disk by content
    assert _decon(tmp_path, judge, embedder).embeddings_cached and not decon.embeddings_cached


@pytest.mark.slow
def test_similarity_floor_skips_the_judge(tmp_path, judge, embedder):
    decon = _decon(tmp_path, judge, embedder, similarity_floor=0.99)
    verdicts = asyncio.run(decon.check(SAMPLES[:3]))
    assert [v.judge for v in verdicts] == ["below_floor"] * 3 and all(v.dropped is None for v in verdicts)
    assert all(v.judge_raw is None and v.nearest is not None for v in verdicts)
    counts = Counts()
    for v in verdicts:
        counts.add(v)
    assert (counts.below_floor, counts.judge_asked, counts.kept) == (3, 0, 3)


def test_judge_is_required_for_stage2(tmp_path):
    from prism_agent.errors import BadInputError

    with pytest.raises(BadInputError, match="judge"):
        Decontaminator(MATH, [Benchmark("mine", "t", [BenchmarkItem("mine", "t0", ITEMS[0], ITEMS[0])])],
                       DecontamConfig(), judge=None, cache_dir=tmp_path)
