"""Benchmark sets: built-in names (incl. AIME 2024/2025 pulled from pinned archives) and user files."""

from __future__ import annotations

import json

import pytest

from prism_agent.data.pull import ensure
from prism_agent.decontam.benchmarks import fingerprint, load_all, parse_spec
from prism_agent.decontam.judge import parse_verdict
from prism_agent.errors import BadInputError
from prism_agent.tasks import get_task

MATH, NLI = get_task("math"), get_task("nli")


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_aime_sets_pull_from_pinned_archives():
    for name, first in (("aime24", "aime24-0"), ("aime25", "aime25-I-1")):
        rows = [json.loads(line) for line in ensure(name).open()]
        assert len(rows) == 30 and rows[0]["id"] == first
        assert all(r["prompt"].strip() and r["answer"].strip() for r in rows)
        assert len({r["id"] for r in rows}) == 30
    assert json.loads(ensure("aime25").read_text().splitlines()[-1])["id"] == "aime25-II-15"
    assert "17_{b}" in json.loads(ensure("aime25").read_text().splitlines()[0])["prompt"]


def test_default_benchmarks_per_task():
    assert MATH.benchmarks == ("gsm8k-test", "math-test", "math500", "minerva-math", "aime24", "aime25")
    assert NLI.benchmarks == ("snli-test",)


def test_user_specs(tmp_path):
    f = _write(tmp_path / "mine.jsonl", [{"id": "q1", "question": "What is two plus two, asked twice?"},
                                         {"question": "Name the third planet from the sun."}])
    assert parse_spec(f"mine={f}:question").field == "question"
    (b,) = load_all([f"mine={f}:question"], MATH)
    assert [it.id for it in b.items] == ["q1", "mine:2"] and b.items[1].text.startswith("Name the third")
    with pytest.raises(BadInputError, match="line 1 has no 'prompt'"):
        load_all([f"mine={f}"], MATH)
    with pytest.raises(BadInputError, match="no non-empty string field 'answer'"):
        load_all([f"mine={f}:answer"], MATH)


def test_user_nli_benchmark_uses_premise_and_hypothesis(tmp_path):
    f = _write(tmp_path / "nli.jsonl", [{"premise": "A man sleeps.", "hypothesis": "Someone rests.", "label": "e"}])
    (b,) = load_all([f"x={f}"], NLI)
    assert b.items[0].text == "A man sleeps. Someone rests."
    assert b.items[0].judge_text == "Premise: A man sleeps.\nHypothesis: Someone rests."


@pytest.mark.parametrize(("spec", "message"), [
    ("gsm8k-tset", "unknown benchmark 'gsm8k-tset'"),
    ("x=/no/such/file.jsonl", "no such file"),
    ("bad name=/tmp", "the name must be"),
    ("x=", "no path"),
])
def test_bad_specs(spec, message):
    with pytest.raises(BadInputError, match=message):
        parse_spec(spec)


def test_task_mismatch_and_duplicates(tmp_path):
    with pytest.raises(BadInputError, match="snli-test is a nli set"):
        load_all(["snli-test"], MATH)
    f = _write(tmp_path / "m.jsonl", [{"prompt": "What is one plus one?"}])
    with pytest.raises(BadInputError, match="given twice"):
        load_all([f"m={f}", f"m={f}"], MATH)
    (tmp_path / "broken.jsonl").write_text('{"prompt": "ok"}\n{oops\n')
    with pytest.raises(BadInputError, match="line 2 is not valid JSON"):
        load_all([f"b={tmp_path / 'broken.jsonl'}"], MATH)


def test_fingerprint_follows_content(tmp_path):
    a = load_all([f"m={_write(tmp_path / 'a.jsonl', [{'prompt': 'What is one plus one?'}])}"], MATH)
    b = load_all([f"m={_write(tmp_path / 'b.jsonl', [{'prompt': 'What is one plus one?'}])}"], MATH)
    c = load_all([f"m={_write(tmp_path / 'c.jsonl', [{'prompt': 'What is one plus two?'}])}"], MATH)
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)  # the file name does not matter, the text does


@pytest.mark.parametrize(("text", "verdict"), [
    ("Yes", True), ("yes.", True), ("No", False), ("**No**, they differ.", False),
    ("The answer to both questions is yes.", True), ("They are not the same, so no.", False),
    ("(yes, no)", None), ("Maybe", None), ("", None),
])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict
