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

from langgraph.graph import END, START, StateGraph
from prism_agent.graphs.prismatic import LoopState, commit, ctx_of, finish, measure, prepare, route, step_node

from prism_agent.loop import steps


def generate(state: LoopState) -> LoopState:
    """Start round r and generate it (the prismatic loop starts a round in `cluster`)."""
    r = state.get("round", 0) + 1
    ctx = ctx_of(state)
    info = steps.generate(ctx, r)
    ctx.events.emit("generate", round=r, **info)
    return {"round": r, "last": {"round": r, "started": time.time(), "generate": info}}


builder = StateGraph(LoopState)
builder.add_node("prepare", prepare)
builder.add_node("measure", measure)
builder.add_node("generate", generate)
builder.add_node("vote", step_node("vote", steps.vote))
builder.add_node("reject", step_node("reject", steps.reject))
builder.add_node("decontaminate", step_node("decontaminate", steps.decontaminate))
builder.add_node("commit", commit)
builder.add_node("finish", finish)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "measure")
builder.add_conditional_edges("measure", route, {"next": "generate", "done": "finish", "stuck": "finish"})
builder.add_edge("generate", "vote")
builder.add_edge("vote", "reject")
builder.add_edge("reject", "decontaminate")
builder.add_edge("decontaminate", "commit")
builder.add_edge("commit", "measure")
builder.add_edge("finish", END)
graph = builder.compile()
