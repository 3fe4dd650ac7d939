from __future__ import annotations

import json

import pytest

from prism_agent.data.reader import Fields, iter_samples, scan
from prism_agent.errors import BadInputError


def _write(path, lines):
    path.write_text("".join(lines))
    return path


def test_bad_lines_are_named_and_skippable(tmp_path):
    rows = [json.dumps({"id": "a", "prompt": "p", "response": "r"}) + "\n", "{not json\n",
            json.dumps({"id": "c", "prompt": "p"}) + "\n",
            json.dumps({"id": "d", "prompt": "p", "response": "r"}) + "\n"]
    f = _write(tmp_path / "d.jsonl", rows)
    with pytest.raises(BadInputError, match=r"2 bad row\(s\).*rows 2, 3"):
        scan(f)
    report = scan(f, skip_bad=True)
    assert (report.rows, report.bad) == (2, 2)
    assert [s.id for s in iter_samples(f)] == ["a", "d"]
    assert [s.id for s in iter_samples(f, start=1)] == ["d"]


def test_missing_empty_duplicate_and_fields(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        scan(tmp_path / "nope.jsonl")
    with pytest.raises(BadInputError, match="empty"):
        scan(_write(tmp_path / "e.jsonl", []))
    dup = [json.dumps({"id": "a", "prompt": "p", "response": "r"}) + "\n"] * 2
    with pytest.raises(BadInputError, match="duplicate id 'a' at row 2"):
        scan(_write(tmp_path / "dup.jsonl", dup))
    other = _write(tmp_path / "q.jsonl", [json.dumps({"question": "q", "answer": "a", "x": 1}) + "\n"])
    with pytest.raises(BadInputError, match="missing field 'prompt'"):
        scan(other)
    s = next(iter_samples(other, fields=Fields(prompt="question", response="answer")))
    assert (s.id, s.prompt, s.response, s.extra) == ("q:1", "q", "a", {"x": 1})


def test_parquet_and_hf_datasets_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"id": f"r{i}", "prompt": f"p{i}", "response": f"a{i}", "level": i} for i in range(5)]
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "hf"))
    for path in (tmp_path / "d.parquet", tmp_path / "hf"):
        assert scan(path).rows == 5
        assert [s.extra["level"] for s in iter_samples(path)] == list(range(5))
    with pytest.raises(BadInputError, match="unsupported data format"):
        scan(_write(tmp_path / "x.csv", ["a,b\n"]))
