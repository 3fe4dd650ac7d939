from __future__ import annotations

import numpy as np
import pytest

from prism_agent.errors import BadInputError
from prism_agent.gradients.store import FeatureStore


def test_append_reopen_take(tmp_path):
    store = FeatureStore.open(tmp_path / "s", dim=4, meta={"k": 1})
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), -np.ones((2, 4), np.float32)
    store.append(["a", "b", "c"], a, info={"consumed": 3})
    store.append(["d", "e"], b)
    again = FeatureStore.open(tmp_path / "s", dim=4, meta={"k": 1})
    assert len(again) == 5 and again.ids() == list("abcde")
    np.testing.assert_array_equal(again.take([4, 0, 2]), np.stack([b[1], a[0], a[2]]))
    assert again.shards[0].info() == {"consumed": 3}
    assert np.concatenate(list(again.iter_blocks(rows=2))).shape == (5, 4)


def test_uncommitted_shard_is_dropped_and_meta_is_checked(tmp_path):
    store = FeatureStore.open(tmp_path, dim=2, meta={"k": 1})
    store.append(["a"], np.ones((1, 2), np.float32))
    # a kill between the ids rename and the array rename leaves ids without an array
    (tmp_path / "shard-000001.ids.jsonl").write_text('"b"\n')
    (tmp_path / "shard-000001.npy.tmp").write_bytes(b"partial")
    again = FeatureStore.open(tmp_path, dim=2, meta={"k": 1})
    assert again.ids() == ["a"]
    assert not (tmp_path / "shard-000001.ids.jsonl").exists() and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(BadInputError, match="other settings"):
        FeatureStore.open(tmp_path, dim=2, meta={"k": 2})
    with pytest.raises(ValueError):
        again.append(["x"], np.ones((1, 3), np.float32))


def test_truncate_drops_whole_shards_from_the_end(tmp_path):
    store = FeatureStore.open(tmp_path / "s", dim=4, meta={"k": 1})
    for i in range(3):
        store.append([f"{i}a", f"{i}b"], np.full((2, 4), i, dtype=np.float32))
    assert store.truncate(6) == 0 and len(store) == 6
    assert store.truncate(4) == 2
    again = FeatureStore.open(tmp_path / "s", dim=4, meta={"k": 1})
    assert len(again) == 4 and again.ids() == ["0a", "0b", "1a", "1b"]
    with pytest.raises(BadInputError, match="inside shard"):
        again.truncate(3)
    again.append(["2x"], np.ones((1, 4), dtype=np.float32))  # numbering continues without a gap
    assert FeatureStore.load(tmp_path / "s").ids()[-1] == "2x"
