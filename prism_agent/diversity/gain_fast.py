"""The `gain` rule for a round's full batch on a full-rank pool: first-order G-Vendi gains, O(d³) a refresh and
O(d²) a candidate, instead of an (r+1)² eigenproblem per candidate per greedy step (`gain.py`).

With K = G/n (trace 1), H its entropy and G-Vendi V = exp(H), adding one unit row x makes
K' = (1 − ε)K + ε x xᵀ with ε = 1/(n + 1), and to first order in ε

    ΔH ≈ ε · (q(x) − H),  q(x) = −xᵀ log(K) x,        ΔV ≈ V · ΔH.

One eigendecomposition K = Q diag(μ) Qᵀ gives q(x) = Σₖ (Qᵀx)ₖ² · (−log μₖ) for every candidate at once. An
eigenvalue of 0 (a direction the pool does not span) would make q infinite; eigenvalues are raised to ε/e, the
value that makes the formula exact to first order for a row orthogonal to the pool's span (its exact gain is
ε(−log ε + 1 − H)V + O(ε²): a new eigenvalue ε, the others scaled by 1 − ε). The first-order gain is accurate
while ε is small against the eigenvalues x loads, i.e. for pools much larger than d; `tests/test_gain_fast.py`
states the tolerance measured against the exact gain.

The decision is the exact rule's (`gain.py`): keep a candidate when its gain beats the gain of a copy of its
nearest row (its nearest pool row, or a candidate kept before it if that is nearer) and 0. Both gains carry
the same factor εV, so the test is q(x) > max(q(ref), H). Greedily over the batch, in blocks: one
eigendecomposition of the pool's Gram matrix plus the candidates kept so far scores every remaining
candidate; they are taken best first until the block has added `SHIFT`·n rows (the kept rows then move K by
about SHIFT, and the scores go stale), and the Gram matrix is updated and decomposed again. Within a block a
candidate whose nearest row is a candidate kept in the same block is deferred to the next block, where that
row is part of K and the copy's gain (its floor) is right; a cosine of `COPY` or more to its nearest row is a
copy and never kept, whatever the rounding of two scores. How closely the kept set follows the exact greedy
is measured in BENCHMARKS.md ("Acceptance rules at scale").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from prism_agent.diversity.gain import GainPicks, unit_rows
from prism_agent.diversity.vendi import vendi_from_eigenvalues

SHIFT = 0.005  # a block's kept rows, as a fraction of the rows in K, before the scores are recomputed
MAX_BLOCKS = 64  # refreshes at most (each O(d³ + b·d²)); what is still deferred after them is not kept
Lookup = Callable[[np.ndarray], np.ndarray]  # candidate indices → their nearest pool rows (rows of zeros: none)
COPY = 1.0 - 1e-6  # a cosine this close to 1 is a copy of its nearest row (float32 features), never kept
_CHUNK = 256  # candidates compared with the kept set per matrix product
_ROWS = 4096  # candidates projected per matrix product


class _Spectrum:
    """K = G/m decomposed once: the entropy, G-Vendi and the quadratic form q of a refresh."""

    def __init__(self, gram: np.ndarray, m: int):
        lam, vec = np.linalg.eigh(gram)
        mu = np.clip(lam, 0.0, None) / max(m, 1)
        total = mu.sum()
        pos = mu[mu > 0] / total if total > 0 else mu[:0]
        self.h = float(-np.sum(pos * np.log(pos)))
        self.v = math.exp(self.h) if total > 0 else 0.0
        self.eps = 1.0 / (m + 1)
        self.weight = -np.log(np.maximum(mu, self.eps / math.e))  # −log μ, μ floored at ε/e
        self.q32 = vec.astype(np.float32)

    def q(self, x: np.ndarray) -> np.ndarray:
        """q(x) = −xᵀ log(K) x for unit rows x (float32 product, float64 sum)."""
        out = np.empty(x.shape[0])
        for lo in range(0, x.shape[0], _ROWS):
            y = (x[lo : lo + _ROWS].astype(np.float32) @ self.q32).astype(np.float64)
            out[lo : lo + _ROWS] = (y * y) @ self.weight
        return out

    def gain(self, q):
        return self.eps * self.v * (q - self.h)


def first_order_gain(gram: np.ndarray, n: int, rows: np.ndarray) -> np.ndarray:
    """First-order G-Vendi gain of adding each row alone to the pool (Gram `gram` of `n` unit rows)."""
    spec = _Spectrum(np.asarray(gram, dtype=np.float64), n)
    return np.asarray(spec.gain(spec.q(unit_rows(rows))))


def _g_vendi(gram: np.ndarray, m: int) -> float:
    return vendi_from_eigenvalues(np.clip(np.linalg.eigvalsh(gram), 0.0, None) / m) if m else 0.0


def first_order_keep(gram: np.ndarray, n: int, rows: np.ndarray, nearest: np.ndarray | Lookup, *,
                     shift: float = SHIFT, max_blocks: int = MAX_BLOCKS) -> GainPicks:
    """The greedy gain rule with first-order gains (module docstring); arguments as `gain.greedy_gain_keep`,
    except that `nearest` may be a lookup (candidate indices → their nearest pool rows), asked only for the
    candidates that can still be kept: a floor is 0 or more, so only a candidate whose score beats the
    entropy (positive gain) ever needs one. On a large pool the nearest-row search is most of the decision
    and about half of a round's candidates have no positive gain. The decisions are those of passing every
    nearest row up front. The recorded gains and floors are first-order; `before` and `after` are exact
    G-Vendi."""
    x = unit_rows(rows)
    b = x.shape[0]
    gram = np.array(gram, dtype=np.float64)
    m = int(n)
    before = _g_vendi(gram, m)
    ref = np.zeros_like(x)
    pool_cos = np.zeros(b)
    have = np.zeros(b, dtype=bool)

    def fetch(idx: np.ndarray) -> None:
        found = unit_rows(nearest(idx) if callable(nearest) else np.asarray(nearest)[idx])
        ref[idx] = found
        pool_cos[idx] = np.einsum("ij,ij->i", x[idx], found)
        have[idx] = True

    if not callable(nearest):
        fetch(np.arange(b))
    x32 = x.astype(np.float32)
    taken = np.zeros(b, dtype=bool)
    order: list[int] = []
    gains: list[float] = []
    floors: list[float] = []
    for _ in range(max_blocks):
        spec = _Spectrum(gram, m)
        q_x = spec.q(x)
        left = np.flatnonzero(~taken)
        # only a candidate with a positive gain can beat its floor (≥ 0): the others are neither looked up nor
        # walked
        positive = left[q_x[left] > spec.h]
        hopeful = positive[~have[positive]]  # no nearest row yet
        if hopeful.size:
            fetch(hopeful)
        ranked = positive[np.argsort(-q_x[positive], kind="stable")]  # best first
        block = _block(x32, ref, order, ranked, pool_cos, q_x, spec, max(1, math.ceil(shift * m)))
        if not block:
            break
        for i, g, f in block:
            taken[i] = True
            order.append(i)
            gains.append(g)
            floors.append(f)
        new = x[[i for i, _, _ in block]]
        gram += new.T @ new
        m += len(block)
    return GainPicks(order, gains, floors, before, _g_vendi(gram, m))


def _block(x32: np.ndarray, ref: np.ndarray, kept: list[int], ranked: np.ndarray, pool_cos: np.ndarray,
           q_x: np.ndarray, spec: _Spectrum, cap: int) -> list[tuple[int, float, float]]:
    """One block: candidates in `ranked` order, each kept when it beats its floor, until `cap` are kept.

    A chunk's tests are computed together (its nearest rows, scores and floors; the pool references' scores
    only for chunks the block reaches); only the candidates that pass them are then walked in order, for
    the one test that depends on what this chunk keeps (a nearer candidate kept just before) and the cap."""
    earlier = np.asarray(kept, dtype=np.int64)  # kept in previous blocks: part of K
    earlier_rows = x32[earlier]
    out: list[tuple[int, float, float]] = []
    for lo in range(0, ranked.size, _CHUNK):
        chunk = ranked[lo : lo + _CHUNK]
        rows = x32[chunk]
        cos, ref_q = pool_cos[chunk].copy(), spec.q(ref[chunk])
        if earlier.size:
            sims = rows @ earlier_rows.T
            arg = sims.argmax(axis=1)
            best_cos = sims[np.arange(chunk.size), arg].astype(np.float64)
            nearer = best_cos > cos
            cos[nearer], ref_q[nearer] = best_cos[nearer], q_x[earlier[arg[nearer]]]
        fresh = np.asarray([i for i, _, _ in out], dtype=np.int64)  # kept in this block: not yet in K
        near_fresh = (rows @ x32[fresh].T).max(axis=1) if fresh.size else np.full(chunk.size, -np.inf)
        gain = spec.gain(q_x[chunk])
        floor = np.maximum(0.0, spec.gain(ref_q))
        # deferred when its nearest row joined this block (decided next block, against it); a copy never
        passing = (near_fresh <= cos) & (cos < COPY) & (gain > floor + 1e-12 * np.maximum(1.0, np.abs(floor)))
        within = rows @ rows.T  # candidates of this chunk kept before one another
        added: list[int] = []  # chunk-local positions of this chunk's kept candidates
        for j in np.flatnonzero(passing):
            if added and float(within[j, added].max()) > cos[j]:
                continue  # a candidate kept earlier in this chunk is its nearest row: next block
            out.append((int(chunk[j]), float(gain[j]), float(floor[j])))
            added.append(int(j))
            if len(out) >= cap:
                return out
    return out
