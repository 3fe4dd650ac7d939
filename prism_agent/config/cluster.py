"""Settings of gradient-space clustering, sparse-cluster targeting and few-shot picking.

Where the paper's text and its released code disagree (k as 1 % or 10 % of the pool) the default is the
paper's and the other is one setting away; the choice is recorded with every round (see `KChoice`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PAPER_K_RATIO = 0.01  # "k = 1% of the pool" in the paper's text
RELEASED_CODE_K_RATIO = 0.10  # what the released clustering script uses

InitMethod = Literal["random", "kmeans++", "first-k"]
Device = Literal["auto", "cpu", "gpu"]
FewShotMode = Literal["smallest", "sparse", "pool"]


class ClusterConfig(BaseModel):
    """One round's clustering settings; stored with the round so a resume can refuse a silent change."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    # -- how many clusters
    k_ratio: float = Field(PAPER_K_RATIO, gt=0.0, le=1.0)
    # Below ~10 clusters "sparse" carries no information; above 200K one k-means round costs more than
    # the generation it steers. 200K still admits the released code's 10 % of a 1.5M pool (150K).
    k_min: int = Field(10, ge=1)
    k_max: int = Field(200_000, ge=1)

    # -- spherical k-means
    iterations: int = Field(20, ge=1)
    seed: int = Field(0, ge=0)
    # "kmeans++": greedy k-means++ on `init_points_per_centroid` × k training rows (see seeding.py);
    # "random": faiss' default (k distinct training rows); "first-k": the first k pool rows, as the
    # paper's released code initialises.
    init: InitMethod = "kmeans++"
    init_points_per_centroid: int = Field(8, ge=1)
    # Large pools are trained on a uniform sample of this many rows per centroid (faiss itself recommends
    # 39..256), capped at `train_sample_max` rows so the training copy stays bounded (1M × 1024 fp32 = 4 GiB);
    # every pool row is then assigned to the trained centroids.
    train_points_per_centroid: int = Field(64, ge=1)
    train_sample_max: int = Field(1_000_000, ge=1)

    # -- refit policy (README, "Gradient clusters": what is refit and what is kept)
    # Refit when the pool has grown by this fraction since the last fit; between refits each committed row
    # joins its nearest centroid and the sizes and sparse set are updated. 0 refits every round (the
    # paper's per-batch refit, cost O(n·k·d) per round). Default from BENCHMARKS.md, "Clustering at scale".
    refit_growth: float = Field(0.10, ge=0.0)
    # Below this many pool rows every round is a cold fit with its own seed anyway, as with refit_growth = 0:
    # there a fit costs about a second or less, and a clustering kept for several rounds prompts from the same
    # sparse clusters round after round, which measurably slowed G-Vendi's growth on small runs (BENCHMARKS.md,
    # "Do decisions hold?"). 0: the growth rule from the first round.
    refit_every_round_below: int = Field(20_000, ge=0)
    # A refit warm-started from the previous centroids runs `refit_iterations` Lloyd steps on
    # `refit_points_per_centroid` training rows per centroid (a cold fit: `iterations` on
    # `train_points_per_centroid`): centroids that start fitted need less, and past ~300K pool rows the refit is
    # most of a round's cost. 3 × 32 costs 0.48× the 5 × 64 of a cold fit's sample and its decisions agree with
    # a cold fit's as much as two cold fits with different seeds agree (BENCHMARKS.md, "Clustering at scale").
    refit_iterations: int = Field(3, ge=1)
    refit_points_per_centroid: int = Field(32, ge=1)
    # A refit's Lloyd steps compare each training row with the `refit_neighbours` centroids nearest its previous
    # cluster's, not with all k (n_train·m·d instead of n_train·k·d); every pool row is then assigned among all k
    # as before. At 1.5M rows, k = 15,000, one thread: the refit 760 → 433 CPU s (BENCHMARKS.md, "Clustering at
    # scale"). 0 compares with all k (as on a GPU, where faiss' full search is cheap).
    refit_neighbours: int = Field(32, ge=0)

    # -- sparse set
    sparse_ratio: float = Field(0.5, gt=0.0, lt=1.0)

    # -- execution
    batch_size: int = Field(65_536, ge=1)  # rows per assignment block: bounds the normalised copy
    threads: int | None = Field(None, ge=1)  # None: faiss/OpenMP default
    device: Device = "auto"  # faiss GPU when this faiss build has one and a GPU is visible

    # -- few-shot picking
    fewshot_shots: int = Field(5, ge=1)
    fewshot_mode: FewShotMode = "smallest"
    fewshot_smallest_fraction: float = Field(0.10, gt=0.0, le=1.0)
    # "smallest" draws from at least this many clusters: on a small pool 10 % of k is one cluster, every prompt
    # then shows the same few samples, and a run stalls once its candidates stop landing in sparse clusters
    # (measured: 0 of 53 voted candidates in 5 rounds at k = 10). At k ≥ 50 the fraction alone decides.
    fewshot_min_clusters: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> ClusterConfig:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) is larger than k_max ({self.k_max})")
        return self
