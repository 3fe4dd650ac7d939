"""The pool's running Gram matrix: Σ ĝ ĝᵀ over the normalised rows of a feature store, kept up to date as
shards are appended, so G-Vendi of a growing pool costs O(batch·d² + d³) a round instead of O(n·d²).

It is a cache derived from the store, never a source of truth (ARCHITECTURE.md, "What is the source of
truth on disk"). The file `gram.npz` in the store's folder holds up to two generations, each the sum over
the store's first `shards` shards, with the row count and a stamp of the last shard it covers (its row count
and a hash of its ids file). A generation is used only while the store still starts with exactly those
shards; the store only ever appends shards or drops them from the end (`FeatureStore.truncate`), so checking
the last covered shard checks them all. On every read the best valid generation is extended by the shards
it lacks; one covering more than the store (a kill between a round's feature append and its commit record,
whose shard `steps.reconcile` then removed) is dropped, and the second generation, which covers every
shard but the last, takes its place (a downdate without the removed rows). With neither valid the sum is
recomputed from the store. The file is written atomically, so a kill leaves the old cache or the new one.

Rows are summed shard by shard in the blocks `FeatureStore.iter_blocks` yields, the order a full recompute
(`measure.g_vendi_of_store`) uses, so the two agree to the last bit in practice; `audit` checks it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_agent.atomic import write_atomic
from prism_agent.diversity.vendi import CovarianceAccumulator, VendiResult, vendi_from_gram
from prism_agent.gradients.store import FeatureStore, Shard

GRAM_FILE = "gram.npz"
BLOCK_ROWS = 65536  # FeatureStore.iter_blocks' default: the same summation order as a full recompute
AUDIT_RTOL = 1e-9  # an audit repairs the cache when max |G_cache − G_full| exceeds this × max |G_full|


@dataclass
class PoolGram:
    """Σ ĝ ĝᵀ (float64, d×d) over the non-zero rows of a store's first `shards` shards."""

    gram: np.ndarray
    n: int  # rows summed (all-zero rows have no direction and are left out, as in `vendi`)
    zero_rows: int
    rows: int  # store rows covered, zero rows included
    shards: int
    stamp: str  # identifies the last covered shard ("" when none)

    @classmethod
    def empty(cls, dim: int) -> PoolGram:
        return cls(np.zeros((dim, dim), np.float64), 0, 0, 0, 0, "")

    def copy(self) -> PoolGram:
        return PoolGram(self.gram.copy(), self.n, self.zero_rows, self.rows, self.shards, self.stamp)

    def add_shard(self, shard: Shard) -> None:
        acc = CovarianceAccumulator(self.gram.shape[0])
        acc.gram = self.gram  # accumulate in place, in the order of a full recompute
        feats = shard.features()
        for start in range(0, feats.shape[0], BLOCK_ROWS):
            acc.add(feats[start : start + BLOCK_ROWS])
        self.n += acc.n
        self.zero_rows += acc.zero_rows
        self.rows += shard.rows
        self.shards += 1
        self.stamp = shard_stamp(shard)

    def vendi(self) -> VendiResult:
        """G-Vendi (q = 1, 2, ∞) of the covered rows; raises ValueError when there are none."""
        return vendi_from_gram(self.gram, self.n)

    def meta(self) -> dict[str, Any]:
        return {"n": self.n, "zero_rows": self.zero_rows, "rows": self.rows, "shards": self.shards,
                "stamp": self.stamp}


def shard_stamp(shard: Shard) -> str:
    """Row count and ids hash: a shard dropped and written again with other rows gets another stamp."""
    digest = hashlib.sha256(shard.ids_path.read_bytes()).hexdigest()[:16]
    return f"{shard.rows}:{digest}"


def _valid(g: PoolGram, shards: list[Shard]) -> bool:
    if g.shards > len(shards) or sum(s.rows for s in shards[: g.shards]) != g.rows:
        return False
    return g.shards == 0 or shard_stamp(shards[g.shards - 1]) == g.stamp


def _load(store: FeatureStore) -> list[PoolGram]:
    path = store.root / GRAM_FILE
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as z:
            metas = json.loads(str(z["meta"]))
            out = [PoolGram(gram=z[f"gram{i}"], **m) for i, m in enumerate(metas)]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):  # unreadable: recompute, never trust
        return []
    return [g for g in out if g.gram.shape == (store.dim, store.dim)]


def _save(store: FeatureStore, gens: list[PoolGram]) -> None:
    arrays = {f"gram{i}": g.gram for i, g in enumerate(gens)}
    meta = np.array(json.dumps([g.meta() for g in gens]))
    write_atomic(store.root / GRAM_FILE, lambda fh: np.savez(fh, meta=meta, **arrays))


def full_gram(store: FeatureStore) -> PoolGram:
    """Σ ĝ ĝᵀ over the whole store, from scratch (O(n·d²)); nothing is written."""
    g = PoolGram.empty(store.dim)
    for shard in store.shards:
        g.add_shard(shard)
    return g


def refresh(store: FeatureStore) -> tuple[PoolGram, str]:
    """The store's Gram matrix, from its cache extended by the shards the cache lacks (saved when it changed).
    Also says how it was obtained: "cached" (nothing to add), "updated" (shards added to a valid
    generation) or "recomputed" (no valid generation: the whole store was summed)."""
    shards = store.shards
    valid = [g for g in _load(store) if _valid(g, shards)]
    if valid and max(g.shards for g in valid) == len(shards):
        return max(valid, key=lambda g: g.shards), "cached"
    base = max(valid, key=lambda g: g.shards) if valid else None
    how = "updated" if base is not None and base.shards > 0 else "recomputed"
    g = base.copy() if base is not None else PoolGram.empty(store.dim)
    previous = None
    for shard in shards[g.shards :]:
        if g.shards == len(shards) - 1:
            previous = g.copy()  # the generation a truncation of the last shard falls back to
        g.add_shard(shard)
    _save(store, [g] + ([previous] if previous is not None and previous.shards > 0 else []))
    return g, how


def pool_gram(source: Any) -> tuple[np.ndarray, int]:
    """(Σ ĝ ĝᵀ, n) of a feature store, or of a run's pool (anything with `feature_store()`, e.g. a
    `RunContext`), brought up to date. C = G / n is the matrix whose eigenvalues give G-Vendi; a candidate
    batch X (normalised rows) would make it (G + XᵀX) / (n + len(X)). The array is the caller's to keep."""
    store = source if isinstance(source, FeatureStore) else source.feature_store()
    g, _ = refresh(store)
    return g.gram.copy(), g.n


def g_vendi(gram: np.ndarray, n: int) -> VendiResult:
    """G-Vendi (q1, the Vendi score; q2; q∞) of a pool given as (Σ ĝ ĝᵀ, n): the same numbers `vendi`
    computes from the rows."""
    return vendi_from_gram(gram, n)


def audit(store: FeatureStore, cached: PoolGram) -> tuple[PoolGram, dict[str, Any]]:
    """Recompute from scratch and compare with `cached`; on a disagreement beyond AUDIT_RTOL (or another row
    count) replace the cache by the recomputed sum. Returns the recomputed sum and what was found."""
    full = full_gram(store)
    scale = float(np.abs(full.gram).max()) if full.n else 0.0
    diff = float(np.abs(full.gram - cached.gram).max())
    rel = diff / scale if scale > 0 else diff
    bad = rel > AUDIT_RTOL or full.n != cached.n or full.rows != cached.rows
    if bad:
        _save(store, [full])
    return full, {"rel_err": rel, "rows": full.rows, "repaired": bad}


def measure_store(store: FeatureStore, *, audit_now: bool = False) -> tuple[VendiResult, dict[str, Any]]:
    """G-Vendi of a store through its running Gram matrix, with a full-recompute audit when asked (skipped
    when the cache was just recomputed: that was a full recompute). Returns the scores and what to record
    (`gram`: how the matrix was obtained; `audit`: the audit's finding, when one ran)."""
    g, how = refresh(store)
    info: dict[str, Any] = {"gram": how}
    if audit_now and how != "recomputed":
        g, info["audit"] = audit(store, g)
    return g.vendi(), info
