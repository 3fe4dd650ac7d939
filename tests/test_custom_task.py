"""A plug-in task (examples/custom_task) loads by import path, brings its own prompts, parsing and voting
rule, and runs the real loop end to end (slow) like a built-in task."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prism_agent.config.vote import VoteConfig
from prism_agent.errors import BadInputError
from prism_agent.quality import vote
from prism_agent.tasks.generation import generation_messages, parse_candidates
from prism_agent.tasks.registry import get_task
from tests.conftest import ROOT

SPEC = f"{ROOT}/examples/custom_task/wordproblems.py:WordProblems"


def test_loads_by_path_with_its_own_prompts_and_defaults():
    task = get_task(SPEC)
    assert task.name == "wordproblems" and task.tag == "question"
    task.check_templates()
    assert "Answer: <whole number>" in task.solve_prompt(_sample("Tom has 3 apples."))
    cfg = VoteConfig.for_task(SPEC)
    assert (cfg.n, cfg.tau, cfg.max_tokens) == (3, 2, 384)
    messages = generation_messages(task, [_sample("A farmer has 12 cows and buys 5 more. How many now?")], 2, True)
    assert messages[-1] == {"role": "assistant", "content": "<question>\n"}
    assert "<question>\nA farmer has 12 cows" in messages[0]["content"]


def test_parses_and_votes_by_integer():
    task = get_task(SPEC)
    text = "<question>\nA shop sells 4 pens a day. How many pens in 7 days?\n</question> chatter"
    assert parse_candidates(task, text) == ["A shop sells 4 pens a day. How many pens in 7 days?"]
    cfg = VoteConfig.for_task(SPEC)
    rec = vote(task, ["4*7 = 28.\nAnswer: 28", "so 28 pens", "Answer: 1,028"], cfg)
    assert rec.accepted and rec.majority == "28" and rec.kept == [0, 1]
    assert not vote(task, ["Answer: 3", "Answer: 4", "no idea"], cfg).accepted


def test_bad_task_specs_are_one_line_errors(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        get_task(f"{tmp_path}/missing.py:X")
    with pytest.raises(BadInputError, match="has no 'Nope'"):
        get_task(f"{ROOT}/examples/custom_task/wordproblems.py:Nope")
    with pytest.raises(BadInputError, match=r"not a prism_agent\.tasks\.base\.Task"):
        get_task(f"{ROOT}/examples/custom_task/wordproblems.py:Path")
    with pytest.raises(BadInputError, match="unknown task 'nope'"):
        get_task("nope")


@pytest.mark.slow
def test_tiny_run_of_the_plugin_task(tmp_path):
    cfg = tmp_path / "run.toml"
    # kept cheap for the 135M model on CPU: short problems and solutions, 2 votes of which 1 must give an
    # integer, and every cluster but the largest sparse; this test is about the plug-in running the loop
    cfg.write_text("seed_sample = 16\nper_round = 3\npatience = 8\n[generation]\nmax_tokens = 96\n"
                   "[vote]\nn = 2\ntau = 1\nmax_tokens = 128\n[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"
                   "[featurizer]\nrank_in = 16\nrank_out = 16\n[decontam]\njudge = false\n")
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "prism_agent.cli.app", "run", "--task", SPEC, "--target", "1",
            "--config", str(cfg), "--run-dir", str(run_dir), "--plain"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(subprocess.run([sys.executable, "-m", "prism_agent.cli.app", "status", str(run_dir),
                                        "--json"], capture_output=True, text=True).stdout)
    assert status["complete"] and status["task"] == SPEC
    row = json.loads((run_dir / "pool" / "accepted.jsonl").read_text().splitlines()[0])
    assert row["vote"]["accepted"] and row["response"].strip() and row["models"]["generator"].startswith("local/")


def _sample(prompt: str):
    from prism_agent.data.reader import Sample

    return Sample(id="x", prompt=prompt, response="")
