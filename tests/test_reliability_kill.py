"""Exactly once under kill -9 (RELIABILITY.md): a real tiny NLI run (the embedded 135M model in every role, real
SNLI seeds and test items) is SIGKILLed at 10 random moments, restarted each time, then finished; the run
directory must hold exactly the target, unique ids, valid JSON everywhere, intact provenance, a feature
store equal to the pool, and no LLM call paid twice (tests/support/chaos.py). The longer version with the
figure in RELIABILITY.md is bench/chaos_kill.py."""

from __future__ import annotations

import pytest

from tests.support.chaos import check_run, run_with_kills
from tests.support.tiny import benchmark_head

pytestmark = pytest.mark.slow

TINY = ("seed_sample = 16\nper_round = 4\npatience = 30\n"
        # a 16-row pool in 4 clusters, all but the largest sparse: the 135M solver labels almost every candidate
        # "neutral", so candidates crowd into the big neutral clusters; this test is about bookkeeping
        "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"
        "[featurizer]\nrank_in = 16\nrank_out = 16\n")


def tiny_config(tmp) -> str:
    bench = benchmark_head(tmp, "snli-test")
    cfg = tmp / "run.toml"
    cfg.write_text(f'benchmarks = ["snli200={bench}"]\n' + TINY)
    return str(cfg)


def test_ten_random_kills_lose_and_duplicate_nothing(tmp_path):
    run_dir = tmp_path / "run"
    target = 3
    args = ["run", "--task", "nli", "--target", str(target), "--config", tiny_config(tmp_path),
            "--run-dir", str(run_dir), "--plain"]
    report = run_with_kills(args, kills=10, seed=7, min_s=4.0, max_s=30.0)
    assert report.final_rc == 0, report.final_stderr
    check_run(run_dir, report.target, report)
    assert not report.problems, report.problems
    assert report.kills == 10, report  # every kill hit a live process (a start that finished raised the target)
