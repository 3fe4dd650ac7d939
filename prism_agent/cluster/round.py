"""One round of gradient-space clustering: fit on the pool, assign the pool, find the sparse set.

`ClusterRound` is what the generation loop holds during a round: it answers "which clusters are sparse",
"give me few-shot examples" and "keep or reject these candidates", and it is what `artifacts.py` saves
so a run can be inspected afterwards and resumed without refitting.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from prism_agent.cluster.assign import CandidateDecision, assign_nearest, decide_candidates
from prism_agent.cluster.backend import use_gpu
from prism_agent.cluster.fewshot import FewShotPick, NearestClusters, pick_fewshot
from prism_agent.cluster.kchoice import KChoice, choose_k
from prism_agent.cluster.kmeans import fit_spherical_kmeans
from prism_agent.cluster.members import ClusterMembers
from prism_agent.cluster.nearby import fit_nearby
from prism_agent.cluster.rows import Rows, as_rows
from prism_agent.cluster.sparse import SparseSet, sparse_clusters
from prism_agent.config.cluster import ClusterConfig, FewShotMode, InitMethod


@dataclass(frozen=True)
class FitRecord:
    train_size: int
    train_mean_cosine: float
    init: InitMethod | str  # or "warm"
    init_size: int
    init_seconds: float
    iterations: int
    fit_seconds: float
    assign_seconds: float
    gpu: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClusterRound:
    config: ClusterConfig
    k_choice: KChoice
    centroids: np.ndarray  # (k, dim) float32 unit rows
    labels: np.ndarray  # (n,) int32 cluster of each pool row
    cosines: np.ndarray  # (n,) float32 cosine of each pool row to its centroid
    sparse: SparseSet
    fit: FitRecord

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @cached_property
    def members(self) -> ClusterMembers:
        return ClusterMembers(self.labels, self.k)

    @property
    def sizes(self) -> np.ndarray:
        return self.members.sizes

    @property
    def inertia(self) -> float:
        """Spherical k-means objective over the whole pool: Σ (1 − cos to own centroid)."""
        return float(np.sum(1.0 - self.cosines.astype(np.float64)))

    def decide(self, features) -> CandidateDecision:
        """Keep/reject new candidates' features (array or store) by the sparse set of this round."""
        cfg = self.config
        return decide_candidates(
            features, self.centroids, self.sparse.mask,
            batch_size=cfg.batch_size, threads=cfg.threads, device=cfg.device,
        )

    def pick_fewshot(
        self,
        seed: int | Sequence[int],
        *,
        shots: int | None = None,
        mode: FewShotMode | None = None,
    ) -> FewShotPick:
        cfg = self.config
        return pick_fewshot(
            self.members, self.sparse, seed=seed,
            shots=cfg.fewshot_shots if shots is None else shots,
            mode=cfg.fewshot_mode if mode is None else mode,
            smallest_fraction=cfg.fewshot_smallest_fraction, centroids=self.nearest_clusters,
            min_clusters=cfg.fewshot_min_clusters,
        )

    @cached_property
    def nearest_clusters(self) -> NearestClusters:
        """Where prompts from this round's small clusters are filled from, shared by all its prompts."""
        return NearestClusters(self.centroids, self.members, self.sparse)


def build_round(source, config: ClusterConfig | None = None, *, warm: np.ndarray | None = None,
                warm_cosines: np.ndarray | None = None, warm_labels: np.ndarray | None = None) -> ClusterRound:
    """Cluster a pool (array, `FeatureStore` or `Rows`): choose k, fit, assign every row, find sparse.

    `warm`: centroids of the previous fit to start from (a refit, see `incremental.py`); `warm_cosines` and
    `warm_labels`: the leading pool rows' recorded cosines to them and labels (the cosines save searching
    those rows again; with the labels the training steps search each row among the centroids near its old one
    only, on the CPU, `nearby.py`)."""
    config = config or ClusterConfig()
    rows: Rows = as_rows(source)
    k_choice = choose_k(rows.n, config)
    if warm is not None and warm_labels is not None and 0 < config.refit_neighbours < k_choice.k \
            and not use_gpu(config.device):
        fit = fit_nearby(rows, k_choice.k, config, previous=warm, labels=warm_labels, cosines=warm_cosines)
    else:
        fit = fit_spherical_kmeans(rows, k_choice.k, config, warm=warm, warm_cosines=warm_cosines)
    started = time.perf_counter()
    found = assign_nearest(  # every row among all k: labels are nearest centroids (`nearby.py` says why)
        rows, fit.centroids, batch_size=config.batch_size, threads=config.threads, device=config.device
    )
    assign_seconds = time.perf_counter() - started
    sparse = sparse_clusters(found.sizes(k_choice.k), config.sparse_ratio)
    return ClusterRound(
        config=config,
        k_choice=k_choice,
        centroids=fit.centroids,
        labels=found.labels,
        cosines=found.cosines,
        sparse=sparse,
        fit=FitRecord(
            train_size=fit.train_size,
            train_mean_cosine=fit.train_mean_cosine,
            init=fit.init,
            init_size=fit.init_size,
            init_seconds=fit.init_seconds,
            iterations=fit.iterations,
            fit_seconds=fit.seconds,
            assign_seconds=assign_seconds,
            gpu=fit.gpu,
        ),
    )
