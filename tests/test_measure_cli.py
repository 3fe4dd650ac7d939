"""The `measure` command end to end on the tiny proxy: JSON output, bad input, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.support.limits import hang_limit


def _rows(n, long_every=0):
    out = []
    for i in range(n):
        resp = f"The answer is {i * 7}." + (" many words" * 200 if long_every and i % long_every == 0 else "")
        out.append(json.dumps({"id": f"s{i}", "prompt": f"What is {i} times 7?", "response": resp}) + "\n")
    return "".join(out)


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_json_output_and_truncation(tmp_path, tiny_llama_dir):
    data = tmp_path / "d.jsonl"
    data.write_text(_rows(12, long_every=5))
    r = _cli("measure", data, "--proxy", tiny_llama_dir, "--json", "--max-tokens", "64", "--dim", "32",
             "--features-dir", tmp_path / "f")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"path", "n", "g_vendi", "embedding_vendi", "seconds"} <= row.keys()
    assert row["n"] == 12 and row["truncated"] == 3 and row["embedding_vendi"] is None
    assert 1.0 <= row["g_vendi"] <= 12
    from prism_agent.models.dtype import resolve_dtype

    auto = resolve_dtype("auto", "cpu")  # what the CLI must have chosen on this machine, and said why
    assert (row["dtype"], row["dtype_reason"]) == (auto.name, auto.reason)
    forced = _cli("measure", data, "--proxy", tiny_llama_dir, "--json", "--max-tokens", "64", "--dim", "32",
                  "--features-dir", tmp_path / "f32", env={"PRISM_AGENT_NATIVE_BF16": "0"})
    assert forced.returncode == 0, forced.stderr
    row32 = json.loads(forced.stdout.strip().splitlines()[-1])
    assert row32["dtype"] == "float32" and "PRISM_AGENT_NATIVE_BF16=0" in row32["dtype_reason"]
    plain = _cli("measure", data, "--proxy", tiny_llama_dir, "--max-tokens", "64", "--dim", "32",
                 "--features-dir", tmp_path / "f32", env={"PRISM_AGENT_NATIVE_BF16": "0"})
    assert "float32 (auto: PRISM_AGENT_NATIVE_BF16=0" in plain.stdout, plain.stdout


@pytest.mark.parametrize("case", ["missing", "empty", "malformed", "proxy", "featurizer"])
def test_bad_input_is_one_line(tmp_path, tiny_llama_dir, case):
    data = tmp_path / "d.jsonl"
    data.write_text(_rows(3) + "{oops\n")
    args = {"missing": [tmp_path / "none.jsonl"], "empty": [tmp_path / "e.jsonl"], "malformed": [data],
            "proxy": [data, "--skip-bad", "--proxy", tmp_path / "no-model"],
            "featurizer": [data, "--featurizer", "slow"]}[case]
    (tmp_path / "e.jsonl").write_text("")
    r = _cli("measure", *args, "--proxy", tiny_llama_dir) if case not in ("proxy",) else _cli("measure", *args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    if case == "malformed":
        assert "row 4" in lines[0] and "--skip-bad" in lines[0]


def test_killed_measure_resumes_without_recomputing(tmp_path, tiny_llama_dir):
    data = tmp_path / "d.jsonl"
    data.write_text(_rows(160))  # 20 shards: a kill right after the second lands long before the last
    store = tmp_path / "store"
    cmd = [sys.executable, str(ROOT / "cli.py"), "measure", str(data), "--proxy", str(tiny_llama_dir),
           "--featurizer", "exact", "--dim", "32", "--exact-batch", "1", "--features-dir", str(store)]
    env = {**os.environ, "PRISM_AGENT_SHARD_SIZE": "8"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + hang_limit(240)
    while not (store / "shard-000001.npy").exists():
        assert proc.poll() is None and time.time() < deadline, "no shard written"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(store.glob("shard-*.npy")))
    assert 2 <= done_before < 20
    r = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["n"] == 160 and row["computed"] == 160 - 8 * done_before
    fresh = subprocess.run([*cmd[:-2], "--features-dir", str(tmp_path / "fresh"), "--json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert json.loads(fresh.stdout.strip().splitlines()[-1])["g_vendi"] == pytest.approx(row["g_vendi"], rel=1e-6)
    from prism_agent.gradients.store import FeatureStore

    a, b = FeatureStore.load(store), FeatureStore.load(tmp_path / "fresh")
    assert a.ids() == b.ids()
    np.testing.assert_allclose(np.concatenate(list(a.iter_blocks())), np.concatenate(list(b.iter_blocks())),
                               rtol=1e-5, atol=1e-6)
