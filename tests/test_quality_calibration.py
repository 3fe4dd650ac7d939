"""Per-choice offsets for a constrained-choice solver (quality/calibration.py): the fit, the request field,
and the local backend applying them (the real 135M model)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import numpy as np
import pytest

from prism_agent.config.vote import VoteConfig
from prism_agent.data.reader import Sample
from prism_agent.errors import PrismError
from prism_agent.generators import GenRequest
from prism_agent.generators.base import refuse_choice_bias
from prism_agent.generators.replay import request_key
from prism_agent.quality.calibration import ChoiceCalibration, NoCalibration, calibrate_solver, fit_offsets
from prism_agent.tasks.registry import get_task


def test_offsets_undo_a_constant_prior():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, size=600)
    signal = np.eye(3)[gold] * 1.0 + rng.normal(0, 1.0, (600, 3))  # informative scores...
    biased = signal + np.array([0.0, 4.0, -1.0])  # ...under a prior that makes option 1 win almost always
    assert (biased.argmax(1) == 1).mean() > 0.9
    b = fit_offsets(biased, gold)
    assert abs(b.sum()) < 1e-9  # mean zero
    assert np.allclose(b - b[0], -np.array([0.0, 4.0, -1.0]), atol=0.35)  # the prior, recovered
    fixed = (biased + b).argmax(1)
    assert (fixed == gold).mean() > (biased.argmax(1) == gold).mean() + 0.2
    assert min(np.bincount(fixed, minlength=3)) > 120  # every option is predicted again


def test_an_option_never_gold_gets_a_finite_offset():
    b = fit_offsets(np.zeros((10, 3)), [0] * 5 + [1] * 5)
    assert np.isfinite(b).all() and b[2] < b[0] and b[2] < b[1]
    with pytest.raises(ValueError):
        fit_offsets(np.zeros((3, 3)), [0, 1])


def test_bias_field_keeps_old_request_keys_and_is_checked():
    plain = GenRequest.chat([{"role": "user", "content": "x"}], choices=("a", "b"))
    # the key of a request without offsets is the key it had before the field existed: earlier runs replay
    before = {"model": "m", "request": plain.model_dump(mode="json", exclude={"sampling": {"choice_bias"}})}
    text = json.dumps(before, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert request_key("m", plain) == hashlib.sha256(text.encode()).hexdigest()
    biased = GenRequest.chat([{"role": "user", "content": "x"}], choices=("a", "b"), choice_bias=(0.5, -0.5))
    assert request_key("m", biased) != request_key("m", plain)
    with pytest.raises(ValueError, match="one offset per choice"):
        GenRequest.chat([{"role": "user", "content": "x"}], choices=("a", "b"), choice_bias=(1.0,))
    refuse_choice_bias("openai", [plain])
    with pytest.raises(PrismError, match="cannot apply choice offsets"):
        refuse_choice_bias("openai", [plain, biased])


@pytest.mark.slow
def test_local_solver_is_calibrated_on_labelled_seeds_and_applies_the_offsets():
    from prism_agent.config.backends import LocalBackendConfig
    from prism_agent.data.pull import ensure
    from prism_agent.generators import make_generator
    from prism_agent.run.pool import Pool

    task = get_task("nli")
    rows = []
    with ensure("snli-test").open() as f:
        for _, line in zip(range(48), f, strict=False):
            rows.append(Pool.as_sample(json.loads(line)))
    solver = make_generator(LocalBackendConfig(batch_size=16))
    cfg = VoteConfig.for_task("nli")
    found = asyncio.run(calibrate_solver(solver, task, rows, cfg))
    assert isinstance(found, ChoiceCalibration) and found.rows == 48
    assert sum(found.gold.values()) == 48 and sum(found.predicted_raw.values()) == 48
    # the 135M solver's prior: one label for nearly everything; the offsets spread its answers out
    assert max(found.predicted_raw.values()) >= 40
    assert max(found.predicted_calibrated.values()) < max(found.predicted_raw.values())
    # a biased request draws from the shifted scores: a huge offset on one choice makes it the only answer
    q = [{"role": "user", "content": task.solve_prompt(rows[0])}]
    forced = solver.generate_sync([GenRequest.chat(q, n=6, temperature=0.75, seed=1, choices=task.solve_choices,
                                                   choice_bias=(0.0, 0.0, 50.0))])[0]
    assert forced.texts == ["contradiction"] * 6 and len(forced.choice_logprobs) == 3
    unlabelled = [Sample(id=f"u{i}", prompt=r.prompt, response="") for i, r in enumerate(rows)]
    assert isinstance(asyncio.run(calibrate_solver(solver, task, unlabelled, cfg)), NoCalibration)


def test_a_solver_that_samples_choices_is_not_calibrated_and_sent_nothing():
    from prism_agent.config.backends import OpenAIBackendConfig
    from prism_agent.generators import make_generator

    endpoint = make_generator(OpenAIBackendConfig(base_url="http://127.0.0.1:9/v1", model="m"))
    rows = [Sample(id=str(i), prompt="Premise: a\nHypothesis: b", response="neutral") for i in range(10)]
    found = asyncio.run(calibrate_solver(endpoint, get_task("nli"), rows, VoteConfig.for_task("nli")))
    assert isinstance(found, NoCalibration) and "samples choices" in found.reason  # port 9: nothing listens
