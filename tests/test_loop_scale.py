"""Memory stays bounded as the pool grows: the loop's bookkeeping at 1.5M pool entries (fake features:
this is bookkeeping, not generation) runs in a subprocess whose peak RSS must stay within a few GB."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_bookkeeping_at_one_and_a_half_million(tmp_path):
    total = 1_500_000
    proc = subprocess.run([sys.executable, "-m", "tests.support.scale_bookkeeping", str(tmp_path / "run"),
                           str(total), "100000"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["accepted"] == total and out["features"] == total + 1000  # the killed round left nothing
    assert out["commits"] == 15 and out["found"] == 100 and out["exported"] == total
    assert out["last_id"].startswith(("r", "seed:")) and out["last_id"] != "ghost"
    assert 1.0 < out["g_vendi"] <= 16.0
    assert out["peak_rss_mb"] < 3000, out  # bounded: nothing holds the pool in memory
