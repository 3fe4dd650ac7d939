"""Stage 1: normalised word 10-grams, the MinHash LSH index with exact confirmation, and its disk cache."""

from __future__ import annotations

import json

import pytest

from prism_agent.config.decontam import DecontamConfig
from prism_agent.decontam.benchmarks import Benchmark, BenchmarkItem
from prism_agent.decontam.ngram_index import NgramIndex
from prism_agent.decontam.normalize import ngrams, words

LONG = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
        "for her friends every day with four. How much does she make every day at the market?")
OTHER = ("A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it "
         "take to make three robes for the winter festival?")
SHORT = "Compute $\\dbinom{8}{4}$."  # 4 words once normalised: compute dbinom 8 4


def _bench(*texts: str, name: str = "b") -> Benchmark:
    return Benchmark(name, "test", [BenchmarkItem(name, f"{name}-{i}", t, t) for i, t in enumerate(texts)])


def _index(*texts: str, **cfg) -> NgramIndex:
    return NgramIndex(_bench(*texts).items, DecontamConfig(**cfg))


def test_normalisation():
    assert words("What is X=5?  (Answer: ${-3}$)") == ["what", "is", "x", "5", "answer", "3"]
    assert words("Über straße_name 3.14") == ["über", "straße", "name", "3", "14"]
    assert ngrams(words("one two three"), 10) == []  # shorter than n: no n-gram at all
    toks = [str(i) for i in range(12)]
    assert ngrams(toks, 10) == ["0 1 2 3 4 5 6 7 8 9", "1 2 3 4 5 6 7 8 9 10", "2 3 4 5 6 7 8 9 10 11"]


@pytest.mark.parametrize("rule", ["lsh", "exact"])
def test_verbatim_and_light_edits_match(rule):
    index = _index(LONG, OTHER, SHORT, rule=rule)
    edits = [LONG, LONG.upper(), "Question: " + LONG, LONG.replace(" ", "   ").replace(".", " ."),
             "  " + LONG.replace("?", "") + "\n", LONG.replace("Janet's", "Janets")]
    for text in edits:
        m = index.match(text)
        assert m is not None and m.item.id == "b-0", text
    m = index.match(LONG)
    assert m.shared == len(ngrams(words(LONG), 10)) and m.jaccard == 1.0
    assert m.ngram == "janet s ducks lay 16 eggs per day she eats"  # the first shared n-gram, normalised


def test_short_items_are_compared_whole():
    index = _index(LONG, SHORT)
    assert index.match(SHORT).item.id == "b-1"
    assert index.match("Question: compute DBINOM(8, 4)").item.id == "b-1"  # contains it, adds 1 word
    embedded = "A club has 8 members. " + "Word " * 12 + "Compute $\\dbinom{8}{4}$ and then double it."
    assert index.match(embedded) is None  # a 4-word item inside a long problem is not a 10-word overlap
    assert index.match("Compute 8 choose 4") is None
    assert _index(LONG).match("Janet's ducks lay 16 eggs.") is None  # short sample, long item: no 10-gram


def test_lsh_candidates_are_confirmed_exactly():
    """An LSH candidate that shares no 10-gram never drops. To make the LSH return a wrong candidate for
    sure, the item is also filed under the MinHash of the near-miss text (what a hash collision does)."""
    item = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
    near = "alpha beta gamma delta epsilon zeta eta theta iota XXX kappa lambda mu"  # 9-word runs only
    index = _index(item, rule="lsh")
    index.items.append(index.items[0])  # key 1: the same item, filed under the wrong MinHash
    index.grams.append(index.grams[0])
    index.lsh.insert(1, index._minhash(ngrams(words(near), 10)))
    assert index.lsh.query(index._minhash(ngrams(words(near), 10))) == [1]
    assert index.match(near) is None
    assert index.match(near.replace("XXX ", "")) is not None


def test_exact_rule_finds_one_shared_sentence_the_lsh_rule_leaves():
    """A long sample sharing one 10-word run with an item: the paper's literal rule drops it; the LSH rule
    (Jaccard-based retrieval) does not, which is what keeps boilerplate overlaps from dropping seed data."""
    item = "Let x and y be positive real numbers such that x plus y equals ten exactly. Find the largest xy."
    sample = ("Let x and y be positive real numbers such that x plus y equals ten. " + " ".join(
        f"filler{i}" for i in range(60)) + " Find x.")
    assert _index(item, rule="exact").match(sample) is not None
    assert _index(item, rule="lsh", lsh_threshold=0.5).match(sample) is None


def test_best_item_and_ties_are_reported():
    index = NgramIndex(_bench(LONG, name="math-test").items + _bench(LONG, name="math500").items, DecontamConfig())
    m = index.match("Question: " + LONG)
    assert m.item.benchmark == "math-test" and [f"{it.benchmark}:{it.id}" for it in m.also] == ["math500:math500-0"]


def test_real_benchmark_recall_verbatim():
    """Every real MATH-500 problem, planted verbatim, is caught by the index over the math benchmarks."""
    from prism_agent.decontam.benchmarks import load_all
    from prism_agent.tasks import get_task

    task = get_task("math")
    sets = load_all(["math500", "aime24", "aime25"], task)
    index = NgramIndex([it for b in sets for it in b.items], DecontamConfig())
    items = [it for b in sets for it in b.items]
    assert len(items) == 560
    assert all(index.match(it.text) is not None for it in items)
    assert sum(index.match("Problem: " + it.text.lower()) is not None for it in items) >= 0.99 * len(items)


def test_index_is_cached_by_content(tmp_path):
    cfg = DecontamConfig()
    a, b = [_bench(LONG, OTHER)], [_bench(LONG, OTHER + " Changed.")]
    _, cached = NgramIndex.cached(a, cfg, tmp_path)
    assert not cached and len(list(tmp_path.glob("ngram-*.pkl"))) == 1
    again, cached = NgramIndex.cached(a, cfg, tmp_path)
    assert cached and again.match(LONG).item.id == "b-0"
    _, cached = NgramIndex.cached(b, cfg, tmp_path)  # different content: its own index
    assert not cached and len(list(tmp_path.glob("ngram-*.pkl"))) == 2
    _, cached = NgramIndex.cached(a, DecontamConfig(lsh_threshold=0.5), tmp_path)  # different settings
    assert not cached
    for f in tmp_path.glob("ngram-*.pkl"):
        f.write_bytes(b"torn")
    rebuilt, cached = NgramIndex.cached(a, cfg, tmp_path)
    assert not cached and rebuilt.match(LONG) is not None
    assert not list(tmp_path.glob("*.tmp"))
    json.dumps(cfg.model_dump())  # settings are plain data (they go into run records)
