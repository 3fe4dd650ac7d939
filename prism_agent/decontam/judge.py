"""Stage 2, second half: the judge role answers "are these the same question?" for a sample and its
nearest benchmark item (prompt: `prompts/<task>/judge.md`, temperature 0.3 as in the paper).

A verdict is read from the first word (yes/no, unless the other follows at once: "yes, no"), else from a
completion that says only one of the two; anything else is `None` (unclear): the sample is kept and
counted, because the paper drops only on yes.
"""

from __future__ import annotations

import re

from prism_agent.config.decontam import DecontamConfig
from prism_agent.generators import GenRequest
from prism_agent.seeds import derive_seed
from prism_agent.tasks.base import Task

_WORD = re.compile(r"[a-z]+")


def parse_verdict(text: str) -> bool | None:
    words = _WORD.findall(text.lower())
    if not words:
        return None
    if words[0] in ("yes", "no") and not {"yes", "no"} <= set(words[:3]):  # "yes, no" commits to nothing
        return words[0] == "yes"
    said = {w for w in words if w in ("yes", "no")}
    return (said.pop() == "yes") if len(said) == 1 else None


def judge_request(task: Task, candidate: str, benchmark_item: str, sample_id: str,
                  cfg: DecontamConfig) -> GenRequest:
    prompt = task.template("judge").format(candidate=candidate, benchmark_item=benchmark_item)
    return GenRequest.chat([{"role": "user", "content": prompt}], n=1, temperature=cfg.judge_temperature,
                           max_tokens=cfg.judge_max_tokens, seed=derive_seed(cfg.judge_seed, sample_id))
