"""Vendi scores of feature sets through the d×d "dual" matrix, accumulated in float64 as rows stream by.

With rows ĝᵢ normalised to unit length, C = (1/n) Σ ĝᵢ ĝᵢᵀ has trace 1 and shares its non-zero eigenvalues
with the n×n cosine-kernel matrix K/n, so VS = exp(−Σ λ log λ) is the Vendi score of the cosine kernel
(README, "Measuring diversity") at O(d²) memory whatever n is. q-orders: VS_q = (Σ λ^q)^(1/(1−q)), q = ∞ → 1/λ_max.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VendiResult:
    n: int
    q1: float  # the Vendi score (Shannon entropy order); G-Vendi when the rows are gradient features
    q2: float
    qinf: float


class CovarianceAccumulator:
    """Streaming Σ ĝ ĝᵀ in float64; feed row blocks of any size, in any number of calls."""

    def __init__(self, dim: int):
        self.dim = dim
        self.gram = np.zeros((dim, dim), dtype=np.float64)
        self.n = 0
        self.zero_rows = 0

    def add(self, rows: np.ndarray) -> None:
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected rows of width {self.dim}, got shape {x.shape}")
        norms = np.linalg.norm(x, axis=1)
        zero = norms == 0
        self.zero_rows += int(zero.sum())  # an all-zero gradient has no direction; it adds nothing
        x = x[~zero] / norms[~zero, None]
        self.gram += x.T @ x
        self.n += int(x.shape[0])

    def eigenvalues(self) -> np.ndarray:
        return gram_eigenvalues(self.gram, self.n)


def gram_eigenvalues(gram: np.ndarray, n: int) -> np.ndarray:
    """Eigenvalues of C = gram / n, clipped at 0 (rounding makes the smallest ones slightly negative)."""
    if n == 0:
        raise ValueError("no rows were added")
    lam = np.linalg.eigvalsh(gram / n)
    return np.clip(lam, 0.0, None)


def vendi_from_eigenvalues(lam: np.ndarray, q: float = 1.0) -> float:
    lam = lam[lam > 0]
    lam = lam / lam.sum()  # trace is 1 up to rounding; renormalise so VS ∈ [1, rank]
    if q == 1.0:
        return float(math.exp(-np.sum(lam * np.log(lam))))
    if math.isinf(q):
        return float(1.0 / lam.max())
    return float(np.sum(lam**q) ** (1.0 / (1.0 - q)))


def vendi(blocks: Iterable[np.ndarray] | np.ndarray, dim: int | None = None) -> VendiResult:
    """Vendi scores (q = 1, 2, ∞) of the rows of `blocks` (one array or an iterable of row blocks)."""
    if isinstance(blocks, np.ndarray):
        blocks = [blocks]
    acc: CovarianceAccumulator | None = None
    for block in blocks:
        if acc is None:
            acc = CovarianceAccumulator(dim or block.shape[1])
        acc.add(block)
    if acc is None or acc.n == 0:
        raise ValueError("no rows were added")
    return vendi_from_gram(acc.gram, acc.n)


def vendi_from_gram(gram: np.ndarray, n: int) -> VendiResult:
    """Vendi scores (q = 1, 2, ∞) from Σ ĝ ĝᵀ over n unit rows: what `vendi` computes once it has summed the
    rows, for callers that keep that sum themselves (`diversity/gram.py`, the pool's running Gram matrix)."""
    lam = gram_eigenvalues(gram, n)
    return VendiResult(n=n, q1=vendi_from_eigenvalues(lam, 1.0), q2=vendi_from_eigenvalues(lam, 2.0),
                       qinf=vendi_from_eigenvalues(lam, math.inf))
