from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from prism_agent.cli.clusters import clusters, size_histogram
from prism_agent.cluster.artifacts import load_round
from prism_agent.errors import BadInputError
from prism_agent.gradients.store import FeatureStore

N, DIM, TEMPLATES = 2000, 24, 20


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("clusters")(clusters)

    @app.callback()
    def main() -> None:  # a group, so "clusters" is a subcommand as in the real app
        pass

    return app


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    """Features around 20 "solution templates" of very different popularity, plus the data file."""
    rng = np.random.default_rng(0)
    weights = np.geomspace(1.0, 0.01, TEMPLATES)
    template = rng.choice(TEMPLATES, size=N, p=weights / weights.sum())
    x = rng.standard_normal((TEMPLATES, DIM))[template] + 0.3 * rng.standard_normal((N, DIM))
    data = tmp_path / "pool.jsonl"
    with data.open("w") as fh:
        for i in range(N):
            row = {"id": f"q{i}", "prompt": f"template {template[i]} problem {i}", "response": "ok"}
            fh.write(json.dumps(row) + "\n")
    store = FeatureStore.open(tmp_path / "features", dim=DIM, meta={"source": str(data)})
    for start in range(0, N, 700):
        ids = [f"q{i}" for i in range(start, min(start + 700, N))]
        store.append(ids, x[start : start + 700].astype("f4"))
    return store


def run(*args: str):
    return CliRunner().invoke(make_app(), ["clusters", *args])


def test_json_summary(store):
    result = run(str(store.root), "--json", "--smallest", "4", "--members", "2")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["n"], out["dim"], out["k"], out["k_ratio"]) == (N, DIM, 20, 0.01)
    assert out["k_choice"]["decided_by"] == "ratio"
    assert sum(b["clusters"] for b in out["histogram"]) == 20
    sizes = [s["size"] for s in out["smallest"]]
    assert len(sizes) == 4 and sizes == sorted(sizes) and sizes[0] == out["sizes"]["min"]
    assert out["sparse_fallback"] is False
    assert 0 < out["sparse_count"] <= out["sparse_position"] == 10
    for entry in out["smallest"]:
        assert len(entry["member_ids"]) == min(2, entry["size"])
        # Texts come from the data file, matched by id.
        for sid, prompt in zip(entry["member_ids"], entry["member_prompts"], strict=True):
            assert prompt.endswith(f"problem {sid[1:]}")


def test_ratios_change_k_and_the_sparse_set(store):
    out = json.loads(run(str(store.root), "--json", "--k-ratio", "0.005", "--sparse-ratio", "0.2").stdout)
    assert out["k"] == 10 and out["k_choice"]["decided_by"] == "ratio"
    assert out["sparse_ratio"] == 0.2 and out["sparse_position"] == 2


def test_tables(store):
    result = run(str(store.root), "--smallest", "3")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Cluster sizes" in text and "Smallest clusters" in text and "sparse set:" in text
    assert "k = 20" in text and "template" in text


def test_store_without_source_shows_ids_only(tmp_path):
    store = FeatureStore.open(tmp_path / "f", dim=8, meta={})
    feats = np.random.default_rng(1).standard_normal((300, 8)).astype("f4")
    store.append([f"x{i}" for i in range(300)], feats)
    out = json.loads(run(str(store.root), "--json").stdout)
    assert out["k"] == 10 and out["k_choice"]["decided_by"] == "k_min"
    assert all("member_prompts" not in e for e in out["smallest"])
    assert all(sid.startswith("x") for e in out["smallest"] for sid in e["member_ids"])


def test_data_file_is_featurized_first(store, tmp_path, monkeypatch):
    seen = []

    def featurize_to_store(path, **options):
        seen.append(path)
        return store

    fake = types.SimpleNamespace(featurize_to_store=featurize_to_store)
    monkeypatch.setitem(sys.modules, "prism_agent.measure_dataset", fake)
    data = tmp_path / "pool.jsonl"
    result = run(str(data), "--json")
    assert result.exit_code == 0, result.output
    assert seen == [data] and json.loads(result.stdout)["n"] == N


def test_save_writes_a_loadable_round(store, tmp_path):
    result = run(str(store.root), "--json", "--save", str(tmp_path / "rounds"))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    saved = load_round(tmp_path / "rounds", 0)
    assert saved.k == out["k"] and saved.sparse.count == out["sparse_count"]


@pytest.mark.parametrize(
    "args",
    [
        ["--k-ratio", "0"],
        ["--k-ratio", "1.5"],
        ["--sparse-ratio", "1"],
        ["--init", "kmeans"],
        ["--members", "-1"],
    ],
)
def test_bad_options_are_user_errors(store, args):
    result = run(str(store.root), *args)
    assert result.exit_code != 0 and isinstance(result.exception, BadInputError)


def test_missing_or_empty_input_is_a_user_error(tmp_path):
    result = run(str(tmp_path / "nope"))
    assert isinstance(result.exception, BadInputError)
    FeatureStore.open(tmp_path / "empty", dim=4, meta={})
    result = run(str(tmp_path / "empty"))
    assert isinstance(result.exception, BadInputError) and "no rows" in str(result.exception)


def test_size_histogram_buckets():
    hist = size_histogram(np.array([0, 0, 1, 2, 3, 4, 9, 16]))
    assert hist == [
        {"min": 0, "max": 0, "clusters": 2},
        {"min": 1, "max": 1, "clusters": 1},
        {"min": 2, "max": 3, "clusters": 2},
        {"min": 4, "max": 7, "clusters": 1},
        {"min": 8, "max": 15, "clusters": 1},
        {"min": 16, "max": 31, "clusters": 1},
    ]
