"""The `[ray]` table and the one-line errors of asking for Ray (README "Running on a Ray cluster"). Fast: no
cluster is started; an unreachable address is a closed local port, and "not installed" is Ray hidden from the
import system (a fake: the real package cannot be uninstalled for one test)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from prism_agent.config.distributed import RayConfig
from prism_agent.config.run import is_free
from prism_agent.config_files import build_run_config
from prism_agent.errors import BadInputError, PrismError


def test_defaults_and_addresses():
    cfg = RayConfig()
    assert (cfg.address, cfg.actors, cfg.gpus_per_actor, cfg.cpus_per_actor, cfg.batch_size) == ("auto", 2, 0.0, 1, 64)
    for ok in ("auto", "local", "10.0.0.5:6379", "head-node:6379", "ray://head:10001"):
        assert RayConfig(address=ok).address == ok
    for bad in ("", "http://head:6379", "head", "head:port", "a b:1"):
        with pytest.raises(ValidationError):
            RayConfig(address=bad)
    assert RayConfig(gpus_per_actor=1).gpus_per_actor == 1.0  # TOML's `1` for one GPU each
    with pytest.raises(ValidationError):
        RayConfig(actors=0)
    with pytest.raises(ValidationError):
        RayConfig(workers=2)


def test_ray_table_in_a_run_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[ray]\naddress = "10.0.0.5:6379"\nactors = 8\ngpus_per_actor = 1\nbatch_size = 64\n')
    cfg = build_run_config(path, {"task": "nli", "target": 10})
    assert cfg.ray == RayConfig(address="10.0.0.5:6379", actors=8, gpus_per_actor=1.0, batch_size=64)
    # --ray on the command line sets the address over the table's, keeping its other settings
    cfg = build_run_config(path, {"task": "nli", "target": 10, "ray": {"address": "auto"}})
    assert cfg.ray.address == "auto" and cfg.ray.actors == 8
    assert build_run_config(None, {"task": "nli", "target": 10}).ray is None
    # where features are computed never changes them: free on resume, out of the run's identity
    assert is_free("ray") and "ray" not in cfg.identity() and cfg.record()["ray"]["actors"] == 8
    path.write_text("[ray]\nnodes = 3\n")
    with pytest.raises(BadInputError, match=r"run.toml: ray\.nodes"):
        build_run_config(path, {"task": "nli", "target": 10})
    path.write_text('[ray]\nactors = "many"\n')
    with pytest.raises(BadInputError, match=r"ray\.actors"):
        build_run_config(path, {"task": "nli", "target": 10})


def _cli(*args, prelude: str = ""):
    code = (f"import sys\n{prelude}\nfrom prism_agent.cli.app import main\n"
            f"sys.argv = ['prism-agent', *{list(args)!r}]\nmain()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _one_error_line(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "response": "r"}\n')
    return path


def test_measure_ray_errors(data):
    line = _one_error_line(_cli("measure", str(data), "--ray", "127.0.0.1:1"))
    assert "no Ray cluster answers at 127.0.0.1:1" in line and "ray start --head" in line
    line = _one_error_line(_cli("measure", str(data), "--ray", "http://x"))
    assert line.startswith("error: --ray:") and "not a Ray address" in line
    hidden = _cli("measure", str(data), "--ray", "local", prelude="sys.modules['ray'] = None")
    line = _one_error_line(hidden)
    assert "Ray was asked for but is not installed" in line and "pip install 'prism-agent[ray]'" in line


def test_run_ray_bad_address_fails_before_anything_is_written(tmp_path):
    run_dir = tmp_path / "run"
    line = _one_error_line(_cli("run", "--task", "nli", "--target", "2", "--run-dir", str(run_dir), "--ray", "nowhere"))
    assert "ray.address" in line and "not a Ray address" in line
    assert not run_dir.exists()


def test_nothing_imports_ray_unless_asked():
    code = ("import sys\nimport prism_agent.cli.app, prism_agent.api, prism_agent.loop.steps\n"
            "import prism_agent.loop.context\n"
            "import prism_agent.loop.seed_features, prism_agent.measure_dataset, prism_agent.config_files\n"
            "import prism_agent.distributed.featurize, prism_agent.distributed.session\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_python_measure_ray_errors(data):
    from prism_agent import measure

    with pytest.raises(BadInputError, match=r"^ray\.actors"):
        measure(data, ray={"address": "local", "actors": 0})
    with pytest.raises(PrismError, match=r"no Ray cluster answers at 127\.0\.0\.1:1"):
        measure(data, ray={"address": "127.0.0.1:1"})
