"""The Python API (`from prism_agent import Run, measure`): the loop driven by `Run(...).stream()` through the
same runner as `prism-agent run`, a stopped run resumed from a copied folder, status and export equal to the
CLI's, `measure` equal to `prism-agent measure --json`, and bad input as one-line errors.

The loop test uses the tiny random Llama (conftest) in every role and as the proxy: its text parses into few
or no candidates, so the run ends on its round budget, but every node runs on real files, real backends and
LangGraph's real checkpointer in seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import prism_agent
from prism_agent import Run, measure
from prism_agent.errors import BadInputError
from tests.conftest import ROOT
from tests.support.tiny import benchmark_head

STEPS = ["prepare", "measure", "cluster", "generate", "vote", "reject", "decontaminate", "commit", "measure",
         "finish"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _events(root: Path) -> list[dict]:
    return [json.loads(x) for x in (root / "events.jsonl").read_text().splitlines()]


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def settings(tmp_path_factory, tiny_llama_dir) -> dict:
    tmp = tmp_path_factory.mktemp("api")
    tiny = f"local:{tiny_llama_dir}"
    return {"task": "nli", "target": 2, "proxy": str(tiny_llama_dir), "generator": tiny, "solver": tiny,
            "judge": tiny, "seed_sample": 16, "per_round": 2, "max_rounds": 1, "patience": 5,
            "benchmarks": [f"snli200={benchmark_head(tmp, 'snli-test')}"], "cluster": {"k_min": 4},
            "featurizer": {"rank_in": 8, "rank_out": 8, "dim": 64}, "generation": {"max_tokens": 24},
            "vote": {"max_tokens": 8}}


def test_stream_stop_resume_from_a_copied_folder_status_export(settings, tmp_path):
    root = tmp_path / "run"
    run = Run(run_dir=root, **settings)
    assert not root.exists()  # checked, nothing written yet
    seen = []
    for update in run.stream():
        seen.append(update.step)
        if update.step == "vote":
            break  # the caller stops iterating: the loop stops after the finished step, resumable
    assert seen == STEPS[:5]
    assert run.result is None  # it did not end
    kinds = [e["kind"] for e in _events(root)]
    assert "seed_features" in kinds  # progress of seed featurization, chunk by chunk, before `prepare` ends
    assert [k for k in kinds if k != "seed_features"] == ["prepare", "measure", "cluster", "generate", "vote"]

    copy = tmp_path / "moved run"  # the state names the old folder; the copy resumes on its own files
    shutil.copytree(root, copy)
    before = _snapshot(root)
    resumed = Run(run_dir=copy, **settings)
    steps = [u.step for u in resumed.stream()]
    assert steps == STEPS[5:]  # resumed at reject: no step ran twice, round 1 was not generated again
    result = resumed.result
    assert result.finished and result.interrupted is None and result.run_dir == copy
    assert result.stop_reason == "round budget spent (1 rounds)"
    assert _snapshot(root) == before  # the original folder was not touched
    assert [e["round"] for e in _events(copy) if e["kind"] == "generate"] == [1]

    status = resumed.status()
    cli = _cli("status", copy, "--json")
    assert cli.returncode == 0, cli.stderr
    assert status == json.loads(cli.stdout)
    assert status["rounds"] == 1 and status["accepted"] == result.accepted and status["stop_reason"]

    n = resumed.export(tmp_path / "out.jsonl")
    assert _cli("export", copy, "--format", "jsonl", "--out", tmp_path / "cli.jsonl").returncode == 0
    assert n == result.accepted and (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "cli.jsonl").read_bytes()

    again = resumed.run()  # a finished run, in the same process: no round left, the loaded run reused
    assert again.finished and again.accepted == result.accepted and again.stop_reason == result.stop_reason
    assert [e["round"] for e in _events(copy) if e["kind"] == "generate"] == [1]


def test_measure_equals_the_cli_json(tmp_path, tiny_llama_dir):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"s{i}", "prompt": f"What is {i} times 7?",
                                        "response": f"The answer is {i * 7}."}) + "\n" for i in range(10)))
    mine = measure(data, proxy=str(tiny_llama_dir), dim=32, features_dir=tmp_path / "a")
    r = _cli("measure", data, "--proxy", tiny_llama_dir, "--dim", "32", "--json", "--features-dir", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout.strip().splitlines()[-1])
    same = ("path", "n", "g_vendi", "g_vendi_q2", "g_vendi_qinf", "embedding_vendi", "bad_rows", "too_long",
            "truncated")
    assert {k: mine[k] for k in same} == {k: cli[k] for k in same}
    assert mine["n"] == 10 and 1.0 <= mine["g_vendi"] <= 10


def test_measure_is_the_api_function_whatever_was_imported_before():
    import importlib

    import prism_agent.measure_dataset as engine  # what the loop and the CLI import: no name shared with the API

    importlib.import_module("prism_agent.api")
    assert prism_agent.measure is measure and callable(prism_agent.measure)
    assert engine.measure is not measure  # the engine's function returns a MeasureResult, the API's a dict


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"task": "poetry", "target": 2}, ["unknown task 'poetry'"]),
    ({"task": "nli", "target": "many"}, ["target"]),
    ({"task": "nli", "target": 2, "generator": "openai:gpt"}, ["--generator", "openai:MODEL@BASE_URL"]),
    ({"task": "nli", "target": 2, "per_round": 0}, ["per_round"]),
    ({"task": "nli", "target": 2, "cluster": {"k_mn": 4}}, ["cluster.k_mn"]),
])
def test_bad_input_raises_one_line_before_anything_is_written(tmp_path, kwargs, words):
    with pytest.raises(BadInputError) as info:
        Run(run_dir=tmp_path / "run", **kwargs)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert not (tmp_path / "run").exists()


def test_bad_measure_input_is_one_line(tmp_path):
    with pytest.raises(BadInputError) as info:
        measure(tmp_path / "d.jsonl", featurizer="slow")
    assert "\n" not in str(info.value) and "kind" in str(info.value)
    with pytest.raises(BadInputError, match="format="):
        Run(task="nli", target=2, run_dir=tmp_path / "r").export(tmp_path / "out.csv")


def test_a_changed_config_is_refused_unless_forced_then_a_warning(tmp_path):
    from prism_agent.config_files import build_run_config
    from prism_agent.loop.context import RunContext

    root = tmp_path / "run"
    ctx = RunContext(root, build_run_config(None, {"task": "nli", "target": "2"}))
    ctx.pool.write_seeds([{"id": f"seed:{i}", "prompt": f"Premise: A dog runs {i}.\nHypothesis: An animal moves.",
                           "response": "entailment"} for i in range(8)])
    before = _snapshot(root)
    with pytest.raises(BadInputError, match=r"differs in: per_round: \(unset\) → 7"):
        Run(task="nli", target=2, run_dir=root, per_round=7)
    with pytest.warns(UserWarning, match=r"changed config \(.*per_round: \(unset\) → 7"):
        Run(task="nli", target=2, run_dir=root, per_round=7, force_config=True)
    assert _snapshot(root) == before  # checked only: the run directory is written when the loop starts
