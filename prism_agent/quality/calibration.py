"""Per-option offsets for a constrained-choice solver, fitted on labelled rows (the run's seeds).

A small solver's choice scores carry a prior: SmolLM2-135M gives "neutral" to almost every NLI pair
(bench/solver_calibration.py). Adding one offset per option, fitted by maximum likelihood of the gold
options on labelled rows, removes that prior without touching how the scores rank pairs against each
other (a "bias-only" calibration: Zhao et al. 2021, Guo et al. 2017 without the temperature). The fit is a
convex problem in k numbers; L-BFGS solves it in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict


def fit_offsets(logprobs: np.ndarray, gold: Sequence[int], l2: float = 1e-3) -> np.ndarray:
    """Offsets b (one per option, mean zero) maximising Σ log softmax(logprobs + b)[gold]; a small L2 term
    keeps an option that never appears as gold finite."""
    import torch

    x = torch.as_tensor(np.asarray(logprobs, dtype=np.float64))
    y = torch.as_tensor(list(gold), dtype=torch.long)
    if x.ndim != 2 or len(y) != x.shape[0] or len(y) == 0:
        raise ValueError("need one row of option scores per gold label")
    b = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([b], lr=1.0, max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(x + b, y) + l2 * (b ** 2).sum()
        value.backward()
        return value

    opt.step(loss)
    out = b.detach().numpy()
    return out - out.mean()


class ChoiceCalibration(BaseModel):
    """What `calibration.json` holds: the offsets and how they did on the rows they were fitted on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choices: tuple[str, ...]
    offsets: tuple[float, ...]
    rows: int  # seed rows with a gold choice that were scored
    solver: str
    accuracy_raw: float  # argmax agreement with the gold choices on those rows, before and after
    accuracy_calibrated: float
    predicted_raw: dict[str, int]
    predicted_calibrated: dict[str, int]
    gold: dict[str, int]


class NoCalibration(BaseModel):
    """Recorded when calibration was not possible, so a resumed run does not try again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str


def _mix(choices: Sequence[str], picks: Sequence[int]) -> dict[str, int]:
    return {c: sum(1 for p in picks if p == i) for i, c in enumerate(choices)}


async def calibrate_solver(generator, task, samples: Sequence, cfg) -> ChoiceCalibration | NoCalibration:
    """Score every choice for labelled `samples` (greedy, one completion each) and fit the offsets. Goes
    through the run's solver role, so the calls are logged and a resumed run replays them."""
    from prism_agent.quality.solve import solve_requests

    choices = tuple(task.solve_choices)
    if not getattr(generator, "scores_choices", False):  # decided before sending anything
        return NoCalibration(reason=f"the solver ({generator.kind}) samples choices and returns no scores")
    gold, rows = [], []
    for s in samples:
        answer = task.extract(s.response).answer
        if answer in choices:
            gold.append(choices.index(answer))
            rows.append(s)
    if len(rows) < 8 or len(set(gold)) < 2:
        return NoCalibration(reason=f"{len(rows)} seed rows with a gold choice, {len(set(gold))} distinct: too few")
    greedy = cfg.model_copy(update={"n": 1, "temperature": 0.0})
    results = await generator.generate(solve_requests(task, rows, greedy))
    if any(r.choice_logprobs is None for r in results):  # a backend that claimed to score and did not
        return NoCalibration(reason=f"the solver ({generator.kind}) returned no choice scores")
    scores = np.array([r.choice_logprobs for r in results], dtype=np.float64)
    offsets = fit_offsets(scores, gold)
    raw, fitted = scores.argmax(1), (scores + offsets).argmax(1)
    return ChoiceCalibration(
        choices=choices, offsets=tuple(round(float(x), 6) for x in offsets), rows=len(rows),
        solver=generator.model_id,
        accuracy_raw=round(float((raw == np.array(gold)).mean()), 4),
        accuracy_calibrated=round(float((fitted == np.array(gold)).mean()), 4),
        predicted_raw=_mix(choices, raw.tolist()), predicted_calibrated=_mix(choices, fitted.tolist()),
        gold=_mix(choices, gold))


def read_calibration(path) -> ChoiceCalibration | NoCalibration | None:
    """What a run recorded in `calibration.json`, or None before it calibrated."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return NoCalibration(**data) if "reason" in data else ChoiceCalibration(**data)
