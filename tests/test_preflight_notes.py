"""A math run with the embedded 135M solver gets one `note:` line naming what to use instead, before it
spends anything; other runs get none (EVIDENCE.md: that solver boxed 8 of 45 answers, none agreeing)."""

from __future__ import annotations

from prism_agent.config.backends import OpenAIBackendConfig
from prism_agent.config_files import build_run_config
from prism_agent.run.preflight import check_models, weak_solver_note


def _notes(cfg) -> list[str]:
    lines: list[str] = []
    check_models(cfg, note=lines.append)  # pinned models only: nothing is pulled or loaded
    return lines


def test_math_with_the_embedded_solver_says_what_to_use_instead():
    [line] = _notes(build_run_config(None, {"task": "math", "target": 10}))
    assert line.startswith("note: the solver is the embedded SmolLM2-135M") and "--solver openai:" in line


def test_other_tasks_and_real_solvers_get_no_note():
    assert _notes(build_run_config(None, {"task": "nli", "target": 10})) == []
    cfg = build_run_config(None, {"task": "math", "target": 10})
    solver = OpenAIBackendConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="big")
    real = cfg.model_copy(update={"roles": cfg.roles.model_copy(update={"solver": solver})})
    assert weak_solver_note(real) is None
