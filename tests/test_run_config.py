"""RunConfig from TOML + flags, targets like 1.5M, and the manifest's resume/extend/refuse rules."""

from __future__ import annotations

import pytest

from prism_agent.config.backends import OpenAIBackendConfig, parse_roles
from prism_agent.config.run import parse_target
from prism_agent.config_files import build_run_config
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
    assert cfg.generation_max_tokens() == 384  # the task's default when not set
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
    with pytest.raises(BadInputError, match=r"differs in: generation\.num_new: 2 → 4\. Pass --force-config"):
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


def _openai_run(**generator):
    table = {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "m", **generator}
    cfg = build_run_config(None, {"task": "nli", "target": 100})
    return cfg.model_copy(update={"roles": parse_roles({"generator": table})})


def test_free_fields_change_without_force(tmp_path):
    """Target, patience, endpoint URL, key variable, concurrency, timeouts and retries may change on resume;
    the manifest records the new values. The model may not, and the refusal shows old → new."""
    paths = RunPaths(tmp_path / "run")
    first = open_manifest(paths, _openai_run())
    moved = _openai_run(base_url="http://10.0.0.5:8000/v1", api_key_env="MY_KEY", max_concurrency=4,
                        timeout_s=30.0, max_retries=2, backoff_max_s=5.0)
    moved = moved.model_copy(update={"target": 300, "patience": 9})
    again = open_manifest(paths, moved)
    assert again.run_id == first.run_id and again.target == 300
    saved = read_manifest(paths).config
    assert saved["roles"]["generator"]["base_url"] == "http://10.0.0.5:8000/v1" and saved["patience"] == 9
    assert first.identity_hash == again.identity_hash
    with pytest.raises(BadInputError, match=r'roles\.generator\.model: "m" → "other".*free to change without it: '
                                            r"target, patience, max_rounds, endpoint URLs"):
        open_manifest(paths, _openai_run(model="other"))


def test_manifest_from_before_free_fields(tmp_path):
    """A manifest whose stored config still holds fields that are free now (and a hash over them) resumes."""
    import json

    paths = RunPaths(tmp_path / "run")
    open_manifest(paths, _openai_run())
    data = json.loads(paths.manifest.read_text())
    data["identity_hash"] = "0" * 16  # as computed by an older identity that included the free fields
    data["config"].pop("target")
    paths.manifest.write_text(json.dumps(data))
    assert open_manifest(paths, _openai_run(max_concurrency=8)).identity_hash == _openai_run().identity_hash()


@pytest.mark.parametrize(("field", "free"), [("target", True), ("roles.judge.base_url", True),
                                             ("roles.solver.max_concurrency", True), ("featurizer.threads", True),
                                             ("featurizer.batch_tokens", True),
                                             ("roles.solver.model", False), ("per_round", False),
                                             ("generation.temperature", False), ("featurizer.rank_in", False)])
def test_is_free(field, free):
    from prism_agent.config.run import is_free

    assert is_free(field) is free


def test_other_task_refused_even_forced(tmp_path):
    paths = RunPaths(tmp_path / "run")
    open_manifest(paths, build_run_config(None, {"task": "nli", "target": 10}))
    with pytest.raises(BadInputError, match="is a run of task 'nli', not 'math'"):
        open_manifest(paths, build_run_config(None, {"task": "math", "target": 10}), allow_config_change=True)


def test_inline_api_key_refused_without_echo():
    with pytest.raises(BadInputError, match="api_key_env") as info:
        parse_roles({"judge": {"backend": "openai", "base_url": "http://x/v1", "model": "m", "api_key": "sk-SECRET"}})
    assert "sk-SECRET" not in str(info.value)


def test_option_added_later_does_not_block_resume(tmp_path):
    """A manifest written before an option existed (here `seed` and `generation.top_p`) resumes while the
    option holds its default, and is refused once the user sets another value."""
    import json

    paths = RunPaths(tmp_path / "run")
    open_manifest(paths, build_run_config(None, {"task": "nli", "target": 10}))
    data = json.loads(paths.manifest.read_text())
    del data["config"]["seed"], data["config"]["generation"]["top_p"]
    paths.manifest.write_text(json.dumps(data))
    open_manifest(paths, build_run_config(None, {"task": "nli", "target": 10}))
    assert read_manifest(paths).config["generation"]["top_p"] == 0.95  # recorded from now on
    paths.manifest.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match=r"generation\.top_p: \(unset\) → 0\.9"):
        open_manifest(paths, build_run_config(None, {"task": "nli", "target": 10, "generation": {"top_p": 0.9}}))


def test_the_default_model_is_a_pinned_artifact():
    """config/ names the default model without importing the model registry; the registry must pin it."""
    from prism_agent.config.defaults import DEFAULT_PROXY
    from prism_agent.models.registry import PINNED

    assert DEFAULT_PROXY in PINNED


def test_config_declarations_import_nothing_above_errors():
    """config/ is imported by everything; it must not pull in the layers above it at import time."""
    import ast
    from pathlib import Path

    import prism_agent.config as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: the task lookups for vote defaults are lazy, by design
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prism_agent."):
                assert node.module == "prism_agent.errors" or node.module.startswith("prism_agent.config"), \
                    f"{path.name} imports {node.module}"
