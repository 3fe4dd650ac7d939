"""`prism-agent decontam` end to end: clean file, audit, counts, bad input as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prism_agent.atomic import staged
from tests.conftest import ROOT

BENCH = [
    {"id": "t1", "prompt": "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
                           "clips in May. How many clips did Natalia sell altogether in April and May?"},
    {"id": "t2", "prompt": "Compute $\\dbinom{8}{4}$."},
]
DATA = [
    {"id": "a", "prompt": "QUESTION: natalia sold clips to 48 of her friends in april, and then she sold half as "
                          "many clips in may. How many clips did Natalia sell altogether in April and May",
     "response": "72", "source": "planted"},
    {"id": "b", "prompt": "A train leaves at noon travelling at 60 miles per hour towards a city that is 150 miles "
                          "away. When does it arrive?", "response": "2:30 pm"},
    {"id": "c", "prompt": "Compute $\\dbinom{8}{4}$ .", "response": "70"},
    {"prompt": "A rectangle has a perimeter of 30 and a width of 5. What is its area?", "response": "50"},
]


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def _files(tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in BENCH))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in DATA))
    return bench, data


def test_stage1_only_writes_clean_file_audit_and_counts(tmp_path):
    bench, data = _files(tmp_path)
    r = _cli("decontam", data, "--task", "math", "--benchmarks", f"mine={bench}", "--no-judge", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["total"], summary["kept"], summary["dropped_ngram"], summary["dropped_judge"]) == (4, 2, 2, 0)
    assert summary["by_benchmark"] == {"mine": {"ngram": 2, "judge": 0}} and summary["benchmarks"] == {"mine": 2}
    clean = [json.loads(line) for line in (tmp_path / "data.clean.jsonl").read_text().splitlines()]
    assert [c["id"] for c in clean] == ["b", "data:4"]  # rows unchanged but for the id a row lacked
    assert clean[0] == DATA[1]
    audit = [json.loads(line) for line in (tmp_path / "data.audit.jsonl").read_text().splitlines()]
    assert [(a["id"], a["stage"], a["benchmark"], a["item_id"]) for a in audit] == [
        ("a", "ngram", "mine", "t1"), ("c", "ngram", "mine", "t2")]
    assert audit[0]["ngram"] == "natalia sold clips to 48 of her friends in april" and audit[0]["shared_ngrams"] > 20
    assert audit[1]["ngram"] == "compute dbinom 8 4" and audit[0]["judge_answer"] is None
    assert not list(tmp_path.glob("*.tmp"))

    out = tmp_path / "o" / "clean.jsonl"
    r = _cli("decontam", data, "--task", "math", "--benchmarks", f"mine={bench}", "--no-judge", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "4 samples: 2 kept, 2 dropped (stage 1 n-gram: 2, stage 2 judge: 0)" in r.stdout
    assert "stage 2 skipped" in r.stdout
    assert (tmp_path / "o" / "clean.audit.jsonl").is_file()


def test_built_in_benchmarks_by_default(tmp_path):
    data = tmp_path / "d.jsonl"
    aime = "Find the sum of all integer bases $b>9$ for which $17_{b}$ is a divisor of $97_{b}$."
    data.write_text(json.dumps({"id": "x", "prompt": "Problem 1. " + aime}) + "\n"
                    + json.dumps({"id": "y", "prompt": "How many legs do four spiders and two ants have?"}) + "\n")
    r = _cli("decontam", data, "--task", "math", "--no-judge", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(s["benchmarks"]) == {"gsm8k-test", "math-test", "math500", "minerva-math", "aime24", "aime25"}
    assert s["by_benchmark"] == {"aime25": {"ngram": 1, "judge": 0}} and s["kept"] == 1
    audit = json.loads((tmp_path / "d.audit.jsonl").read_text())
    assert audit["item_id"] == "aime25-I-1"


@pytest.mark.parametrize("case", ["missing", "task", "spec", "mismatch", "overwrite", "setting", "judge"])
def test_bad_input_is_one_line(tmp_path, case):
    bench, data = _files(tmp_path)
    args = {
        "missing": [tmp_path / "none.jsonl", "--task", "math", "--no-judge"],
        "task": [data, "--task", "chess", "--no-judge"],
        "spec": [data, "--task", "math", "--benchmarks", "mine=/no/such.jsonl", "--no-judge"],
        "mismatch": [data, "--task", "math", "--benchmarks", "snli-test", "--no-judge"],
        "overwrite": [data, "--task", "math", "--benchmarks", f"mine={bench}", "--out", data, "--no-judge"],
        "setting": [data, "--task", "math", "--benchmarks", f"mine={bench}", "--ngram-rule", "fuzzy"],
        "judge": [data, "--task", "math", "--benchmarks", f"mine={bench}", "--judge-backend", "gpt"],
    }[case]
    r = _cli("decontam", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert not (tmp_path / "data.clean.jsonl").exists()


def test_outputs_are_replaced_only_when_complete(tmp_path):
    target = tmp_path / "clean.jsonl"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError), staged(target) as fh:
        fh.write(b"half")
        raise RuntimeError("killed")
    assert target.read_text() == "previous\n" and not list(tmp_path.glob("*.tmp"))
    with staged(target) as fh:
        fh.write(b"new\n")
    assert target.read_text() == "new\n"


@pytest.mark.slow
def test_both_stages_with_the_embedded_judge(tmp_path):
    bench, data = _files(tmp_path)
    replay = tmp_path / "judge.sqlite"
    args = ["decontam", data, "--task", "math", "--benchmarks", f"mine={bench}", "--json", "--replay", replay]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["dropped_ngram"] == 2 and s["judge_asked"] == 2  # the judge only sees stage-1 survivors
    assert s["judge_model"] == "local/smollm2-135m-instruct" and "far too weak to judge paraphrases" in r.stderr
    assert s["kept"] + s["dropped_judge"] == 2
    for a in map(json.loads, (tmp_path / "data.audit.jsonl").read_text().splitlines()):
        if a["stage"] == "judge":
            assert a["judge_answer"] == "yes" and a["similarity"] is not None and a["judge_raw"]
    again = _cli(*args)  # replayed from the judge log: same decisions, no new calls
    assert again.returncode == 0, again.stderr
    s2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert {k: s2[k] for k in ("kept", "dropped_judge", "judge_unclear")} == \
        {k: s[k] for k in ("kept", "dropped_judge", "judge_unclear")}
