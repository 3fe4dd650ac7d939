"""The solver role's side of voting: one request per sample asking for N completions, then the votes.

Seeds are derived from (base seed, sample id) so that the same sample asks the same question with the
same seed in every run: the replay cache then recognises it, and a resumed run never pays for it twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from prism_agent.config.vote import VoteConfig
from prism_agent.data.reader import Sample
from prism_agent.generators import Generator, GenRequest
from prism_agent.quality.vote import VoteRecord, vote
from prism_agent.seeds import derive_seed
from prism_agent.tasks.base import Task


def solve_requests(task: Task, samples: Sequence[Sample], cfg: VoteConfig,
                   choice_bias: Sequence[float] = ()) -> list[GenRequest]:
    return [
        GenRequest.chat([{"role": "user", "content": task.solve_prompt(s)}], n=cfg.n, temperature=cfg.temperature,
                        top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=derive_seed(cfg.seed, s.id),
                        choices=task.solve_choices, choice_bias=tuple(choice_bias))
        for s in samples
    ]


async def vote_samples(generator: Generator, task: Task, samples: Sequence[Sample],
                       cfg: VoteConfig, choice_bias: Sequence[float] = ()) -> list[VoteRecord]:
    """Ask the solver for N completions per sample and vote on each. The voting itself runs in the calling
    thread (the event loop's: the main thread in a CLI run), where math-verify's timeouts work.
    `choice_bias`: the calibrated solver's per-choice offsets (quality/calibration.py)."""
    results = await generator.generate(solve_requests(task, samples, cfg, choice_bias))
    return [vote(task, r.texts, cfg) for r in results]
