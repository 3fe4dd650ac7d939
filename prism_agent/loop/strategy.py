"""What makes a loop prismatic or vanilla, chosen once per run: how a round picks its few-shot examples and
which featurized candidates it keeps. The steps (`loop/steps.py`) call the run's strategy and never test the
graph's name; the graphs (`graphs/prismatic.py`, `graphs/vanilla.py`) differ only in topology (whether a
round opens with a `cluster` step). A new strategy is one subclass registered with `@register`, plus its name
in the config's `graph` choices (a test checks that the two lists agree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from prism_agent.cluster.fewshot import FewShotPick
    from prism_agent.loop.context import RunContext

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        from prism_agent.errors import BadInputError

        raise BadInputError(f"unknown graph {name!r}; valid: {', '.join(sorted(STRATEGIES))}") from None


class Strategy:
    name: ClassVar[str]
    graph: ClassVar[str]  # the topology: a module of prism_agent.graphs with a `builder`

    def fewshot_picks(self, ctx: RunContext, r: int, seeds: list[list[int]], shots: int) -> list[FewShotPick]:
        """One pick of `shots` pool positions per request of round r (`seeds`: one seed per request)."""
        raise NotImplementedError

    def keep(self, ctx: RunContext, r: int, rows: list[dict], feats: np.ndarray) -> tuple[list[dict], list]:
        """Of round r's featurized voted candidates (`rows`, with their features `feats`), those to keep, each
        with its feature row."""
        raise NotImplementedError


def _cluster_round(ctx: RunContext, r: int):
    from prism_agent.cluster.artifacts import load_round

    return load_round(ctx.paths.clusters, r, mmap=True)


@register
class Prismatic(Strategy):
    """Few-shot examples from one sparse gradient cluster of the round; keep candidates whose nearest
    centroid is a sparse cluster."""

    name = "prismatic"
    graph = "prismatic"

    def fewshot_picks(self, ctx, r, seeds, shots):
        round_ = _cluster_round(ctx, r)
        return [round_.pick_fewshot(s, shots=shots) for s in seeds]

    def keep(self, ctx, r, rows, feats):
        if not rows:
            return [], []
        decision = _cluster_round(ctx, r).decide(feats)
        out, keep_feats = [], []
        for i, row in enumerate(rows):
            if bool(decision.accepted[i]):
                out.append({**row, "nearest_cluster": int(decision.labels[i]),
                            "cosine": round(float(decision.cosines[i]), 4)})
                keep_feats.append(feats[i])
        return out, keep_feats


@register
class Vanilla(Strategy):
    """The paper's baseline: few-shot examples are random pool samples (the pool is the feature store's rows,
    seeds then accepted samples), and every featurized candidate is kept; its features still feed G-Vendi."""

    name = "vanilla"
    graph = "vanilla"

    def fewshot_picks(self, ctx, r, seeds, shots):
        from prism_agent.cluster.fewshot import FewShotPick
        from prism_agent.gradients.store import FeatureStore

        n = len(FeatureStore.load(ctx.paths.features))  # the pool's rows, without loading the proxy
        return [FewShotPick(mode="pool", cluster=None, positions=np.random.default_rng(s).choice(
            n, size=min(shots, n), replace=False).astype(np.int64)) for s in seeds]

    def keep(self, ctx, r, rows, feats):
        return list(rows), list(feats)


# ---- acceptance rules on prismatic prompting (README "Acceptance rules"); the few-shot choice is Prismatic's --


def _pool_search(ctx: RunContext, r: int):
    """Nearest-pool-row search over the run's feature store (memmapped, never loaded whole), through round r's
    clustering as an inverted-file index when the round has one that covers at most the pool
    (`cluster/ivf.py`; on large pools with the fit's rows in cluster order, `cluster/ordered.py`); brute
    force otherwise, or when the search is small."""
    from prism_agent.cluster.artifacts import committed_rounds
    from prism_agent.cluster.ivf import PoolSearch
    from prism_agent.cluster.ordered import ordered_for_round
    from prism_agent.cluster.rows import StoreRows
    from prism_agent.gradients.store import FeatureStore

    rows = StoreRows(FeatureStore.load(ctx.paths.features))
    if ctx.paths.clusters.is_dir() and r in committed_rounds(ctx.paths.clusters):
        round_ = _cluster_round(ctx, r)
        ordered = ordered_for_round(ctx.paths.clusters, r, rows, round_.labels, round_.k)
        return PoolSearch(rows, round_.centroids, round_.labels, ordered=ordered)
    return PoolSearch(rows)


class _Rule(Prismatic):
    """Prismatic's few-shot examples (one sparse cluster per request); subclasses choose which to keep."""

    def keep(self, ctx, r, rows, feats):
        if not rows:
            return [], []
        kept, notes = self.decide(ctx, r, np.asarray(feats))
        return [{**rows[i], **notes[i]} for i in kept], [feats[i] for i in kept]

    def decide(self, ctx: RunContext, r: int, feats: np.ndarray) -> tuple[list[int], dict[int, dict]]:
        """The candidates kept (indices, in the order the rule took them) and what to record on each."""
        raise NotImplementedError


@register
class Novelty(_Rule):
    """Keep a candidate whose cosine to its nearest pool row is below the median of the pool rows' own
    nearest-neighbour cosines (`diversity/novelty.py`)."""

    name = "novelty"

    def decide(self, ctx, r, feats):
        from prism_agent.diversity.novelty import PERCENTILE, SAMPLE, keep_novel

        search = _pool_search(ctx, r)
        threshold = search.threshold(PERCENTILE, SAMPLE)
        picks = keep_novel(feats, search.nearest(feats).cosines, threshold)
        return picks.kept, {i: {"nn_cosine": round(float(picks.cosines[i]), 4),
                                "threshold": round(picks.threshold, 4)} for i in picks.kept}


@register
class Gain(_Rule):
    """Keep the candidates that raise G-Vendi most, greedily over the round's batch, each only if it adds
    more than a copy of its nearest pool row would (`diversity/gain.py`; first-order gains for a large batch,
    `diversity/gain_fast.py`)."""

    name = "gain"

    def decide(self, ctx, r, feats):
        from prism_agent.diversity.gain import keep_by_gain
        from prism_agent.diversity.gram import pool_gram

        search = _pool_search(ctx, r)
        gram, n = pool_gram(ctx)  # the running Gram matrix the measure step keeps (diversity/gram.py)

        def nearest_rows(idx: np.ndarray) -> np.ndarray:  # searched only for candidates the rule may keep
            where = search.nearest(feats[idx]).positions
            refs = np.zeros((idx.size, feats.shape[1]), dtype=np.float32)  # no pool row (empty pool): floor 0
            refs[where >= 0] = search.rows.take(where[where >= 0])
            return refs

        picks = keep_by_gain(gram, n, feats, nearest_rows)
        return picks.order, {i: {"gain": round(g, 6), "floor": round(f, 6)}
                             for i, g, f in zip(picks.order, picks.gains, picks.floors, strict=True)}


@register
class GenerateOnly(_Rule):
    """Sparse-cluster few-shot prompts and every voted candidate kept: what the prompting alone buys."""

    name = "generate-only"

    def decide(self, ctx, r, feats):
        return list(range(feats.shape[0])), {i: {} for i in range(feats.shape[0])}
