"""How many clusters: k = ratio × pool size, clamped, with the reason recorded.

The paper's text says 1 % of the pool, its released code 10 %; a run must say which it used, and when a
bound rather than the ratio decided k (tiny pools hit `k_min`, huge pools at 10 % can hit `k_max`), the
record says so instead of silently reporting the ratio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Literal

from prism_agent.config.cluster import PAPER_K_RATIO, RELEASED_CODE_K_RATIO, ClusterConfig
from prism_agent.errors import BadInputError

KSource = Literal["ratio", "k_min", "k_max", "pool_size"]


@dataclass(frozen=True)
class KChoice:
    n: int  # pool size
    k_ratio: float
    ratio_origin: str  # "paper (1%)", "released code (10%)" or "custom"
    k_from_ratio: int  # ⌊n · k_ratio⌋ before clamping
    k: int  # what was used
    decided_by: KSource

    def to_dict(self) -> dict:
        return asdict(self)


def ratio_origin(k_ratio: float) -> str:
    if k_ratio == PAPER_K_RATIO:
        return "paper (1%)"
    if k_ratio == RELEASED_CODE_K_RATIO:
        return "released code (10%)"
    return "custom"


def choose_k(n: int, config: ClusterConfig) -> KChoice:
    """k = ⌊n · k_ratio⌋ clamped to [k_min, k_max], and never more clusters than rows."""
    if n < 1:
        raise BadInputError("cannot cluster an empty pool")
    # Exact decimal product, so 0.29 × 100 is 29 and not 28 (0.29 * 100 == 28.999999999999996 in floats).
    raw = math.floor(Fraction(repr(config.k_ratio)) * n)
    k, source = raw, "ratio"
    if k < config.k_min:
        k, source = config.k_min, "k_min"
    if k > config.k_max:
        k, source = config.k_max, "k_max"
    if k > n:
        k, source = n, "pool_size"
    return KChoice(
        n=n,
        k_ratio=config.k_ratio,
        ratio_origin=ratio_origin(config.k_ratio),
        k_from_ratio=raw,
        k=k,
        decided_by=source,
    )
