"""The paper's baseline as a LangGraph state machine: the Prismatic loop without gradient targeting.

    prepare → measure ─┬─▶ END (target reached, `patience` rounds in a row accepted nothing, or `max_rounds`)
                       └─▶ generate → vote → reject → decontaminate → commit → measure …

Few-shot examples are random pool samples (no clustering), and `reject` keeps every candidate it can
featurize: the features are still computed, so G-Vendi is measured over the same pool as a prismatic
run's and the two can be compared round by round (`prism-agent report`). Voting and decontamination are
the same steps. It shares its nodes with `graphs/prismatic.py`; a run directory is one graph or the other
(the config's `graph` is part of what a resume must keep).
"""

from __future__ import annotations

import time

from prism_agent.graphs.prismatic import LoopState, Rt, loop_builder

from prism_agent.loop import steps
from prism_agent.run.rounds import Step


def generate(state: LoopState, runtime: Rt) -> LoopState:
    """Start round r and generate it (the prismatic loop starts a round in `cluster`)."""
    r = state.get("round", 0) + 1
    ctx = runtime.context
    info = steps.generate(ctx, r)
    ctx.events.emit(Step.GENERATE, round=r, **info)
    return {"round": r, "last": {"round": r, "started": time.time(), Step.GENERATE.value: info}}


builder = loop_builder([(Step.GENERATE, generate)])
graph = builder.compile()
