"""The Prismatic loop as a LangGraph state machine (README "Generating data": the steps of one round).

    prepare → measure ─┬─▶ END (target reached, `patience` rounds in a row accepted nothing, or `max_rounds`)
                       └─▶ cluster → generate → vote → reject → decontaminate → commit → measure …

`generate` picks few-shot examples from sparse clusters and writes the prompts; `reject` featurizes the
voted candidates and keeps those nearest a sparse centroid. The state holds only small things (the run
directory, counters, the last metrics); samples, candidates and features live in the run directory, and
every node is idempotent over it, so LangGraph's SQLite checkpointer (in the run directory, thread id =
run id) can resume a killed run at the node that was running.

`graph` (compiled without a checkpointer) is what `langgraph.json` exposes; the loop's runner
(`prism_agent.loop.runner`) compiles `builder` with the run's checkpointer. Every node gets the opened run
(`RunContext`) as LangGraph's runtime context: `graph.stream(..., context=ctx)`.
"""

from __future__ import annotations

import itertools
import time
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from prism_agent import killpoint
from prism_agent.loop import steps
from prism_agent.loop.context import RunContext
from prism_agent.run.rounds import Step

Rt = Runtime[RunContext]


class LoopState(TypedDict, total=False):
    run_dir: str
    round: int  # the last round started
    accepted: int
    target: int
    pool: int
    g_vendi: float
    g_vendi_history: list[float]
    idle_rounds: int  # rounds in a row that accepted nothing
    stop_reason: str
    last: dict  # the funnel of the last round
    calibration: dict  # the solver's calibration on the seeds (accuracy before/after), when there is one


def prepare(state: LoopState, runtime: Rt) -> LoopState:
    ctx = runtime.context
    info = steps.prepare(ctx)
    steps.reconcile(ctx)
    calibration = steps.calibrate(ctx)
    ctx.events.emit(Step.PREPARE, **info, **({"calibration": calibration} if calibration else {}))
    return {"target": ctx.target, "accepted": ctx.pool.accepted.count, "pool": info["pool"],
            "round": state.get("round", ctx.pool.accepted.last.round), "idle_rounds": state.get("idle_rounds", 0),
            **({"calibration": calibration} if calibration else {})}


def measure(state: LoopState, runtime: Rt) -> LoopState:
    ctx = runtime.context
    m = steps.measure(ctx)
    history = [*state.get("g_vendi_history", []), m["g_vendi"]][-200:]
    ctx.events.emit(Step.MEASURE, round=state.get("round", 0), **m)
    return {"g_vendi": m["g_vendi"], "g_vendi_history": history, "pool": m["pool"],
            "accepted": ctx.pool.accepted.count, "target": ctx.target}


def route(state: LoopState, runtime: Rt) -> str:
    ctx = runtime.context
    if ctx.pool.accepted.count >= ctx.target:
        return "done"
    if state.get("idle_rounds", 0) >= ctx.cfg.patience:
        return "stuck"
    if ctx.cfg.max_rounds is not None and state.get("round", 0) >= ctx.cfg.max_rounds:
        return "stuck"
    return "next"


def finish(state: LoopState, runtime: Rt) -> LoopState:
    ctx = runtime.context
    if ctx.pool.accepted.count >= ctx.target:
        reason = "target reached"
    elif state.get("idle_rounds", 0) >= ctx.cfg.patience:
        reason = f"no sample accepted in {ctx.cfg.patience} rounds in a row"
    else:
        reason = f"round budget spent ({ctx.cfg.max_rounds} rounds)"
    ctx.events.emit("stop", reason=reason, accepted=ctx.pool.accepted.count, target=ctx.target)
    return {"stop_reason": reason}


def cluster(state: LoopState, runtime: Rt) -> LoopState:
    r = state.get("round", 0) + 1
    ctx = runtime.context
    info = steps.cluster(ctx, r)
    ctx.events.emit(Step.CLUSTER, round=r, **info)
    return {"round": r, "last": {"round": r, "started": time.time(), Step.CLUSTER.value: info}}


def step_node(step: Step | str, fn):
    step = Step(step)

    def node(state: LoopState, runtime: Rt) -> LoopState:
        ctx = runtime.context
        info = fn(ctx, state["round"])
        ctx.events.emit(step, round=state["round"], **info)
        return {"last": {**state.get("last", {}), step.value: info}}

    node.__name__ = step.value
    return node


def commit(state: LoopState, runtime: Rt) -> LoopState:
    ctx = runtime.context
    info = steps.commit(ctx, state["round"])
    last = {**state.get("last", {}), Step.COMMIT.value: info}
    ctx.events.emit("round", round=state["round"], funnel=last, accepted=ctx.pool.accepted.count,
                    target=ctx.target)
    ctx.events.emit("usage", round=state["round"], roles=ctx.usage_since_last(),
                    backend_errors=ctx.backend_errors_since_last())
    idle = 0 if info["accepted"] or info.get("already") else state.get("idle_rounds", 0) + 1
    return {"last": last, "accepted": ctx.pool.accepted.count, "idle_rounds": idle}


def loop_builder(opening: list[tuple[str, object]]) -> StateGraph:
    """The loop's graph: prepare → measure → (route) → `opening` nodes in order → vote → reject →
    decontaminate → commit → measure …; each graph differs only in how a round opens."""
    b = StateGraph(LoopState, context_schema=RunContext)
    nodes = [(Step.PREPARE, prepare), (Step.MEASURE, measure), *opening,
             (Step.VOTE, step_node(Step.VOTE, steps.vote)), (Step.REJECT, step_node(Step.REJECT, steps.reject)),
             (Step.DECONTAMINATE, step_node(Step.DECONTAMINATE, steps.decontaminate)), (Step.COMMIT, commit),
             (Step.FINISH, finish)]
    for step, fn in nodes:
        b.add_node(step.value, killpoint.within(step.value, fn))  # marks the running node (test-only kill points)
    b.add_edge(START, Step.PREPARE.value)
    b.add_edge(Step.PREPARE.value, Step.MEASURE.value)
    b.add_conditional_edges(Step.MEASURE.value, route, {"next": opening[0][0].value, "done": Step.FINISH.value,
                                                        "stuck": Step.FINISH.value})
    chain = [step.value for step, _ in nodes[2:-1]] + [Step.MEASURE.value]
    for here, there in itertools.pairwise(chain):
        b.add_edge(here, there)
    b.add_edge(Step.FINISH.value, END)
    return b


builder = loop_builder([(Step.CLUSTER, cluster), (Step.GENERATE, step_node(Step.GENERATE, steps.generate))])
graph = builder.compile()
