"""Measure-only graph: featurize a dataset into its feature store, then score G-Vendi.

The smallest graph of the product, and the first step of every round of the Prismatic loop. Its
state holds only references and numbers (the data path, the store folder, scores); features live in
the feature store on disk. Load it with LangGraph's tooling through `langgraph.json`, or run it with
`graph.invoke({"data": "gsm8k-train", "limit": 64})`.
"""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class MeasureState(TypedDict, total=False):
    data: str  # a data file or built-in data set name
    limit: int | None
    featurizer: str  # "fast" | "exact"
    proxy: str | None
    features_dir: str  # set by `featurize`
    n: int
    g_vendi: float
    g_vendi_q2: float


def featurize(state: MeasureState) -> MeasureState:
    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.measure_dataset import featurize as run

    store, stats = run(state["data"], config=FeaturizerConfig(kind=state.get("featurizer", "fast")),
                       proxy=state.get("proxy"), limit=state.get("limit"))
    return {"features_dir": str(store.root), "n": stats.featurized}


def score(state: MeasureState) -> MeasureState:
    from prism_agent.gradients.store import FeatureStore
    from prism_agent.measure_dataset import g_vendi_of_store

    result = g_vendi_of_store(FeatureStore.load(state["features_dir"]))
    return {"g_vendi": result.q1, "g_vendi_q2": result.q2}


builder = StateGraph(MeasureState)
builder.add_node("featurize", featurize)
builder.add_node("score", score)
builder.add_edge(START, "featurize")
builder.add_edge("featurize", "score")
builder.add_edge("score", END)
graph = builder.compile()
