"""Does the embedded solver's NLI label bias come off with per-label offsets fitted on labelled seeds?
(BENCHMARKS.md: with the raw 135M solver almost every candidate is labelled "neutral", and the gradient clusters
of an NLI pool are pure by label, so those candidates land in the big neutral clusters and are rejected.)

    python bench/solver_calibration.py --fit 150 --test 600

Scores the solver prompt's three labels for `--fit` SNLI train rows (the run's seed sample) and `--test`
SNLI test rows, fits one offset per label by maximum likelihood of the gold labels on the train rows, and
prints accuracy and the predicted label mix on the test rows, raw and calibrated.
"""

from __future__ import annotations

import argparse
import collections
import json

import torch

from prism_agent.config.backends import LocalBackendConfig
from prism_agent.config.vote import VoteConfig
from prism_agent.data.pull import ensure
from prism_agent.generators.local import LocalGenerator
from prism_agent.quality.calibration import fit_offsets
from prism_agent.quality.solve import solve_requests
from prism_agent.run.pool import Pool, sample_seeds
from prism_agent.tasks.registry import get_task


def scores(engine, task, samples) -> torch.Tensor:
    reqs = solve_requests(task, samples, VoteConfig.for_task("nli"))
    ids = [engine.encode(q) for q in reqs]
    out = []
    for b in range(0, len(ids), 32):
        out += [[lp for lp, _ in row] for row in engine.choice_logprobs(ids[b:b + 32], task.solve_choices)]
    return torch.tensor(out, dtype=torch.float64)


def report(name: str, logp: torch.Tensor, gold: list[int], labels) -> dict:
    pred = logp.argmax(1).tolist()
    acc = sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold)
    mix = collections.Counter(labels[p] for p in pred)
    two = torch.softmax(logp / 0.75, 1)  # the vote: two labels drawn at T 0.75 agree with this probability
    agree = float((two ** 2).sum(1).mean())
    row = {"solver": name, "accuracy": round(acc, 3), "agree_2_of_2": round(agree, 3),
           "predicted": {lab: mix.get(lab, 0) for lab in labels}}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", type=int, default=150)
    ap.add_argument("--test", type=int, default=600)
    args = ap.parse_args()
    task = get_task("nli")
    labels = task.solve_choices
    engine = LocalGenerator(LocalBackendConfig(threads=1)).engine
    fit_rows = [Pool.as_sample(r) for r in sample_seeds(list(task.seeds), args.fit, 0)]
    test_rows = []
    with ensure("snli-test").open() as f:
        for line in f:
            row = json.loads(line)
            if len(test_rows) < args.test:
                test_rows.append(Pool.as_sample(row))
    fit_gold = [labels.index(s.response) for s in fit_rows]
    test_gold = [labels.index(s.response) for s in test_rows]
    fit_lp, test_lp = scores(engine, task, fit_rows), scores(engine, task, test_rows)
    offsets = fit_offsets(fit_lp.numpy(), fit_gold)
    print(json.dumps({"offsets": dict(zip(labels, [round(float(x), 3) for x in offsets], strict=True)),
                      "gold_test_mix": dict(collections.Counter(labels[g] for g in test_gold))}))
    report("raw", test_lp, test_gold, labels)
    report("calibrated", test_lp + torch.tensor(offsets), test_gold, labels)


if __name__ == "__main__":
    main()
