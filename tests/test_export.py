"""`export` in its three formats from a hand-built run directory: what a reader gets back is what was
committed (rows past the last commit stay out), `hf` folders load with `datasets.load_from_disk`, and a
re-export replaces the previous output whole."""

from __future__ import annotations

import builtins
import json

import pytest

from prism_agent.errors import BadInputError
from prism_agent.run.export import export
from prism_agent.run.paths import RunPaths
from prism_agent.run.samples import SampleLog

ROWS = [
    {"id": f"s{i}", "prompt": f"p{i} é", "response": f"r{i}", "answer": i, "round": 1, "request": i,
     "cluster": i % 2, "nearest_cluster": None, "cosine": 0.5 + i / 10, "fewshot": ["a", "b"],
     "vote": {"agree": 3}, "decontam": None, "models": {"generator": "g"}}
    for i in range(3)
]


@pytest.fixture
def run_dir(tmp_path):
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    paths.manifest.write_text("{}")
    log = SampleLog(paths.samples, paths.commits)
    log.append(ROWS[:2], round_index=1, features=2)
    with paths.samples.open("ab") as fh:  # a round killed between its rows and its commit record
        fh.write((json.dumps(ROWS[2]) + "\n").encode())
    return paths.root


def test_jsonl_keeps_committed_rows_as_written(run_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    assert export(run_dir, "jsonl", out) == 2
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == ROWS[:2]
    assert not list(tmp_path.glob("*.tmp"))


def test_parquet_flattens_nested_provenance(run_dir, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out.parquet"
    assert export(run_dir, "parquet", out) == 2
    table = pq.read_table(out).to_pylist()
    assert [r["id"] for r in table] == ["s0", "s1"]
    assert table[1]["answer"] == "1" and json.loads(table[1]["vote"]) == {"agree": 3}


def test_hf_folder_loads_with_datasets_and_replaces_the_previous_export(run_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out-hf"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier export")
    assert export(run_dir, "hf", out) == 2
    ds = datasets.load_from_disk(str(out))
    assert ds.num_rows == 2 and ds["id"] == ["s0", "s1"] and ds["prompt"][0] == "p0 é"
    assert ds.features["cosine"].dtype == "float64" and ds.features["round"].dtype == "int64"
    assert json.loads(ds["models"][0]) == {"generator": "g"}
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-hf", "run"]  # no scratch or partial left


def test_hf_without_datasets_says_how_to_install(run_dir, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets" or name.startswith("datasets."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(BadInputError, match=r"prism-agent\[hf\]"):
        export(run_dir, "hf", tmp_path / "out-hf")
    assert not (tmp_path / "out-hf").exists()
