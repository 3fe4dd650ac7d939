"""Gradient-space clustering for Prismatic Synthesis (README, "Gradient clusters").

Spherical k-means of the pool's features (faiss, trained on a bounded sample, every row assigned),
the sparse set of under-populated clusters, few-shot picking from them, and the nearest-centroid
accept/reject rule for new candidates; rounds are saved so runs can be inspected and resumed.
"""

from __future__ import annotations

from prism_agent.cluster.artifacts import (
    committed_rounds,
    load_or_build_round,
    load_round,
    pool_fingerprint,
    round_dir,
    save_round,
)
from prism_agent.cluster.assign import Assignment, CandidateDecision, assign_nearest, decide_candidates
from prism_agent.cluster.fewshot import FewShotPick, pick_fewshot
from prism_agent.cluster.kchoice import KChoice, choose_k
from prism_agent.cluster.kmeans import KMeansFit, fit_spherical_kmeans
from prism_agent.cluster.members import ClusterMembers
from prism_agent.cluster.round import ClusterRound, FitRecord, build_round
from prism_agent.cluster.rows import ArrayRows, Rows, StoreRows, as_rows
from prism_agent.cluster.sparse import SparseSet, sparse_clusters
from prism_agent.config.cluster import PAPER_K_RATIO, RELEASED_CODE_K_RATIO, ClusterConfig

__all__ = [
    "PAPER_K_RATIO",
    "RELEASED_CODE_K_RATIO",
    "ArrayRows",
    "Assignment",
    "CandidateDecision",
    "ClusterConfig",
    "ClusterMembers",
    "ClusterRound",
    "FewShotPick",
    "FitRecord",
    "KChoice",
    "KMeansFit",
    "Rows",
    "SparseSet",
    "StoreRows",
    "as_rows",
    "assign_nearest",
    "build_round",
    "choose_k",
    "committed_rounds",
    "decide_candidates",
    "fit_spherical_kmeans",
    "load_or_build_round",
    "load_round",
    "pick_fewshot",
    "pool_fingerprint",
    "round_dir",
    "save_round",
    "sparse_clusters",
]
