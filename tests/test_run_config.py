"""RunConfig from TOML + flags, targets like 1.5M, and the manifest's resume/extend/refuse rules."""

from __future__ import annotations

import pytest

from prism_agent.config.backends import OpenAIBackendConfig
from prism_agent.config.run import build_run_config, parse_target
from prism_agent.errors import BadInputError
from prism_agent.run.manifest import open_manifest, read_manifest
from prism_agent.run.paths import RunPaths
from prism_agent.run.pool import Pool


@pytest.mark.parametrize(("text", "value"), [("300", 300), ("200k", 200_000), ("1.5M", 1_500_000), (" 2K ", 2000)])
def test_targets(text, value):
    assert parse_target(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.5", "0", "-3", "1.2345k", "5G"])
def test_bad_targets(text):
    with pytest.raises(BadInputError, match="target"):
        parse_target(text)


def test_toml_then_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('task = "math"\ntarget = "2k"\nseeds = ["gsm8k-train"]\n[vote]\nn = 5\ntau = 3\n'
                    '[generation]\nnum_new = 3\n[roles.generator]\nbackend = "openai"\n'
                    'base_url = "http://127.0.0.1:1/v1"\nmodel = "m"\n')
    cfg = build_run_config(path, {"target": "300", "generation": {"temperature": 0.9}})
    assert cfg.task == "math" and cfg.target == 300 and cfg.seeds == ("gsm8k-train",)
    assert cfg.votes.n == 5 and cfg.votes.tau == 3 and cfg.votes.max_tokens == 2048  # task defaults kept
    assert cfg.generation.num_new == 3 and cfg.generation.temperature == 0.9
    assert cfg.generation_max_tokens() == 768  # the task's default when not set
    assert isinstance(cfg.roles.generator, OpenAIBackendConfig)
    with pytest.raises(BadInputError, match="tau"):
        build_run_config(None, {"task": "nli", "target": 10, "vote": {"n": 2, "tau": 3}})
    with pytest.raises(BadInputError, match=r"generation\.shots"):
        build_run_config(None, {"task": "nli", "target": 10, "generation": {"shots": 0}})


def test_manifest_resume_extend_and_refuse(tmp_path):
    paths = RunPaths(tmp_path / "run")
    first = open_manifest(paths, build_run_config(None, {"task": "nli", "target": 100}))
    again = open_manifest(paths, build_run_config(None, {"task": "nli", "target": 100}))
    assert again.run_id == first.run_id
    extended = open_manifest(paths, build_run_config(None, {"task": "nli", "target": 500}))
    assert extended.target == 500 and read_manifest(paths).target == 500 and extended.run_id == first.run_id
    changed = build_run_config(None, {"task": "nli", "target": 500, "generation": {"num_new": 4}})
    with pytest.raises(BadInputError, match=r"differs in: generation\.num_new.*--allow-config-change"):
        open_manifest(paths, changed)
    assert open_manifest(paths, changed, allow_config_change=True).config["generation"]["num_new"] == 4
    with pytest.raises(BadInputError, match="not a prism-agent run directory"):
        read_manifest(RunPaths(tmp_path))


def test_pool_positions_span_seeds_then_accepted(tmp_path):
    pool = Pool(RunPaths(tmp_path))
    pool.write_seeds([{"id": f"seed:{i}", "prompt": f"p{i}", "response": "r"} for i in range(4)])
    pool.accepted.append([{"id": "gen:1", "prompt": "q", "response": "a"}], round_index=1, features=5)
    assert pool.seed_count() == 4
    rows = pool.rows_at([0, 3, 4])
    assert [rows[p]["id"] for p in (0, 3, 4)] == ["seed:0", "seed:3", "gen:1"]
    assert Pool.as_sample(rows[4]).prompt == "q"


def test_example_config_parses():
    from pathlib import Path

    cfg = build_run_config(Path(__file__).resolve().parents[1] / "examples" / "run-nli.toml", {"target": "200k"})
    assert cfg.task == "nli" and cfg.target == 200_000 and cfg.roles.solver.backend == "vllm"
    assert cfg.roles.judge.api_key_env == "JUDGE_API_KEY" and cfg.generation_max_tokens() == 256
