"""The wheel ships prompts/ and graphs/ as prism_agent.prompts / prism_agent.graphs and works outside the
checkout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tomllib

from tests.conftest import ROOT


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(("prism_agent", *p.parent.relative_to(ROOT / "prism_agent").parts))
             for p in (ROOT / "prism_agent").rglob("__init__.py")}
    assert found | {"prism_agent.prompts", "prism_agent.graphs"} == listed


@pytest.mark.slow
def test_installed_wheel_works_from_another_directory(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheel_dir), str(ROOT)], check=True)
    (wheel,) = wheel_dir.glob("prism_agent-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    code = ("import prism_agent, prism_agent.prompts as p, prism_agent.graphs.measure as g; "
            "print(prism_agent.__file__); print(p.load('math', 'solve')[:5]); print(type(g.graph).__name__)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(str(target)), "imported the checkout, not the wheel"
    assert r.stdout.splitlines()[1] == "Solve" and "Compiled" in r.stdout.splitlines()[2]
    cli = subprocess.run([sys.executable, "-c", "from prism_agent.cli.app import main; main()", "--help"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert cli.returncode == 0 and "measure" in cli.stdout
