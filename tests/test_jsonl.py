"""The three JSONL policies on the same damaged file: user input refuses it, a commit log stops at the damage,
an event log skips it; an unterminated last line counts only for user input."""

from __future__ import annotations

import pytest

from prism_agent.errors import BadInputError
from prism_agent.jsonl import numbered, read_jsonl

DAMAGED = b'{"a": 1}\n\n{not json\n{"a": 2}\n{"a": 3}'  # a blank line, a bad line, a torn (unterminated) tail


def test_strict_names_the_bad_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(DAMAGED)
    with pytest.raises(BadInputError, match=r"in\.jsonl: line 3 is not valid JSON"):
        list(read_jsonl(path, "strict"))
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}')  # blank lines and a missing final newline are fine in input
    assert list(read_jsonl(path, "strict")) == [{"a": 1}, {"a": 2}]


def test_prefix_stops_at_the_first_damage(tmp_path):
    path = tmp_path / "commits.jsonl"
    path.write_bytes(DAMAGED)
    assert list(read_jsonl(path, "prefix")) == [{"a": 1}]
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    assert list(read_jsonl(path, "prefix")) == [{"a": 1}]


def test_tolerant_skips_damage_and_leaves_out_the_torn_tail(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(DAMAGED)
    assert list(read_jsonl(path, "tolerate_torn_tail")) == [{"a": 1}, {"a": 2}]


def test_logs_not_yet_written_read_empty_but_input_must_exist(tmp_path):
    assert list(read_jsonl(tmp_path / "none.jsonl", "prefix")) == []
    assert list(read_jsonl(tmp_path / "none.jsonl", "tolerate_torn_tail")) == []
    with pytest.raises(FileNotFoundError):
        list(read_jsonl(tmp_path / "none.jsonl", "strict"))


def test_numbered_hands_bad_lines_to_the_caller(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(DAMAGED + b"\n\xff\xfe\n")
    rows = list(numbered(path))
    assert [n for n, _ in rows] == [1, 3, 4, 5, 6]
    assert rows[0][1] == {"a": 1} and isinstance(rows[1][1], ValueError) and isinstance(rows[4][1], ValueError)
