"""Exact marginal G-Vendi gains of candidate rows given a pool's Gram matrix: the loop's `gain` acceptance rule.

A pool of n unit rows ĝᵢ is summarised by its Gram matrix G = Σ ĝᵢ ĝᵢᵀ (d×d, float64): its G-Vendi is the
exponential of the entropy of eig(G / n) (`vendi.py`). Adding a unit row x gives G + x xᵀ over n + 1 rows.
Recomputing d×d eigenvalues per candidate would cost d³ each (d = 1024: too slow for a greedy pass over a
round's batch), so the pool is kept as G = B M Bᵀ with B an orthonormal d×r basis of G's range (r ≤ min(n, d))
and M an r×r matrix. With z = Bᵀx and p = x − Bz (the part of x outside the pool's span, |p| = ρ), G + x xᵀ
is, in the basis [B, p/ρ], the (r+1)×(r+1) matrix [[M + z zᵀ, ρ z], [ρ zᵀ, ρ²]]: its eigenvalues are the
non-zero eigenvalues of G + x xᵀ, at r³ instead of d³. Taking a candidate extends the basis by p/ρ.

The rule keeps candidates greedily: at each step, the remaining candidate with the largest gain, if its gain
exceeds its floor. The floor is what a copy of the candidate's nearest row (in the pool, or among the
candidates kept before it) would add, and at least 0: a candidate is kept only if it raises G-Vendi, and
by more than re-adding the sample it most resembles. So an exact duplicate of a pool row is never kept (its
gain equals its floor), whatever the pool looks like, while a row far from everything (outside the pool's
span) adds a new direction and is. A fixed floor such as "the pool's average contribution per sample",
(G-Vendi − 1)/(n − 1), does not have that guarantee (a copy of a rare row can beat it) and on the loop's
nli pool it sits at ≈ 3× what a typical new sample adds (EVIDENCE.md), so it would reject almost everything.

This exact greedy costs up to b·(b+1) eigenproblems of size r+1 for b candidates: seconds for a small run's
few candidates, hopeless for a round of 8,192 on a full-rank 1024-d pool. `keep_by_gain` runs it while
b·(b+1)·(min(n, d)+1)³ ≤ `EXACT_BUDGET` (≈ 17 s at most on one thread of this repository's CPU, e.g. 16
candidates at d = 1024) and otherwise the first-order rule of `gain_fast.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prism_agent.diversity.vendi import vendi_from_eigenvalues

_RANK_TOL = 1e-10  # eigenvalues of G below this fraction of the largest are treated as 0 (rounding)
_TIE = 1e-12  # a gain must beat its floor by more than rounding
EXACT_BUDGET = 3e11  # b·(b+1)·(r+1)³ at most for the exact greedy (an eigvalsh of size r costs ≈ 5.8e-11·r³ s)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


class PoolSpectrum:
    """A pool's Gram matrix as B M Bᵀ over n rows; `g_vendi_with(x)` is the pool's G-Vendi with x added."""

    def __init__(self, gram: np.ndarray, n: int):
        gram = np.asarray(gram, dtype=np.float64)
        self.n = int(n)
        self.dim = gram.shape[0]
        if self.n == 0:
            self.basis, self.m = np.zeros((self.dim, 0)), np.zeros((0, 0))
            self.g_vendi = 0.0
            return
        lam, vec = np.linalg.eigh(gram)
        keep = lam > _RANK_TOL * max(float(lam.max()), 1e-300)
        self.basis = vec[:, keep]
        self.m = np.diag(lam[keep])
        self.g_vendi = vendi_from_eigenvalues(lam[keep] / self.n)

    def _extended(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The small matrix of the pool plus unit row x, and the new basis direction (None: x is in the span)."""
        z = self.basis.T @ x
        p = x - self.basis @ z
        rho = float(np.linalg.norm(p))
        m = self.m + np.outer(z, z)
        if rho <= 1e-7:
            return m, None
        r = m.shape[0]
        out = np.empty((r + 1, r + 1))
        out[:r, :r], out[:r, r], out[r, :r], out[r, r] = m, rho * z, rho * z, rho * rho
        return out, p / rho

    def g_vendi_with(self, x: np.ndarray) -> float:
        m, _ = self._extended(x)
        lam = np.clip(np.linalg.eigvalsh(m), 0.0, None)
        return vendi_from_eigenvalues(lam / (self.n + 1))

    def gain(self, x: np.ndarray) -> float:
        return self.g_vendi_with(x) - self.g_vendi

    def add(self, x: np.ndarray) -> None:
        m, direction = self._extended(x)
        if direction is not None:
            self.basis = np.concatenate([self.basis, direction[:, None]], axis=1)
        self.m = m
        self.n += 1
        self.g_vendi = vendi_from_eigenvalues(np.clip(np.linalg.eigvalsh(m), 0.0, None) / self.n)


def marginal_gains(gram: np.ndarray, n: int, rows: np.ndarray) -> np.ndarray:
    """G-Vendi gain of adding each row alone to the pool (Gram `gram` of `n` unit rows)."""
    spec = PoolSpectrum(gram, n)
    return np.array([spec.gain(x) for x in unit_rows(rows)])


@dataclass(frozen=True)
class GainPicks:
    order: list[int]  # indices of the kept candidates, in the order taken
    gains: list[float]  # G-Vendi increase of each, given the pool and the candidates taken before it
    floors: list[float]  # the floor each had to beat when taken
    before: float  # the pool's G-Vendi
    after: float  # with the kept candidates


def greedy_gain_keep(gram: np.ndarray, n: int, rows: np.ndarray, nearest: np.ndarray) -> GainPicks:
    """Greedy gain rule over a batch (see the module docstring). `rows` (b, d) are the candidates and
    `nearest` (b, d) each one's nearest pool row; a candidate kept earlier replaces that reference for the
    others when it is nearer to them."""
    x, ref = unit_rows(rows), unit_rows(nearest)
    spec = PoolSpectrum(gram, n)
    before = spec.g_vendi
    ref_cos = np.einsum("ij,ij->i", x, ref)
    remaining = list(range(x.shape[0]))
    order: list[int] = []
    gains: list[float] = []
    floors: list[float] = []
    while remaining:
        best, best_gain, best_floor = -1, -math.inf, 0.0
        for i in remaining:
            g = spec.gain(x[i])
            floor = max(0.0, spec.gain(ref[i]))
            if g > floor + _TIE and g > best_gain:
                best, best_gain, best_floor = i, g, floor
        if best < 0:
            break
        spec.add(x[best])
        order.append(best)
        gains.append(best_gain)
        floors.append(best_floor)
        remaining.remove(best)
        for i in remaining:  # the kept row is now part of the pool: it may be i's nearest
            c = float(x[i] @ x[best])
            if c > ref_cos[i]:
                ref[i], ref_cos[i] = x[best], c
    return GainPicks(order, gains, floors, before, spec.g_vendi)


def exact_affordable(b: int, n: int, dim: int) -> bool:
    """Whether the exact greedy fits `EXACT_BUDGET` for b candidates on a pool of n rows of dimension dim."""
    r = min(int(n), int(dim))
    return b * (b + 1) * float(r + 1) ** 3 <= EXACT_BUDGET


def keep_by_gain(gram: np.ndarray, n: int, rows: np.ndarray, nearest) -> GainPicks:
    """The gain rule: the exact greedy where affordable (`exact_affordable`), else first-order (`gain_fast`).
    `nearest`: each candidate's nearest pool row, (b, d), or a lookup from candidate indices to those rows,
    asked only for what the rule needs (`gain_fast.first_order_keep`)."""
    b = np.atleast_2d(rows).shape[0]
    if exact_affordable(b, n, np.asarray(gram).shape[0]):
        refs = nearest(np.arange(b)) if callable(nearest) else nearest
        return greedy_gain_keep(gram, n, rows, refs)
    from prism_agent.diversity.gain_fast import first_order_keep

    return first_order_keep(gram, n, rows, nearest)
