"""Clustering that is refit rarely and updated always (README, "Gradient clusters").

A full k-means fit costs O(n·k·d) and k grows with n, so refitting the whole pool every round makes a run's
clustering cost grow with the cube of its target. Instead round r's clustering is one of:

- **cold**: a fit from scratch (greedy k-means++ seeds, `iterations` Lloyd steps), as every round did
  before: the first clustering of a run, after a settings change, when the pool no longer matches the saved
  clustering, when nothing was committed since the last clustering (a round that accepts nothing would
  otherwise see the very same sparse set again; its own k-means seed gives it another one, see
  `steps.cluster_config`), and every round when `refit_growth = 0` or while the pool is smaller than
  `refit_every_round_below` rows (there a fit is cheap, and a kept clustering slowed G-Vendi's growth);
- **warm**: a refit started from the previous centroids (`refit_iterations` Lloyd steps, each training row
  compared with the `refit_neighbours` centroids near its previous one, `nearby.py`; new clusters seeded
  where the old centroids cover the pool worst; then every row assigned among all k), once the pool has
  grown by `refit_growth` since the last fit;
- **update**: the previous centroids kept; the rows committed since the previous clustering each join
  their nearest centroid (the same assignment the reject step made for them), and the cluster sizes and
  the sparse set follow: O(batch·k·d) per round.

On disk (`clusters/round-NNNN/`, each written atomically with `round.json` last as its commit marker) a fit
(cold or warm) holds its centroids and the labels and cosines of every pool row; an update holds only the
labels and cosines of the rows added since its base fit, and names that fit (`base`, `base_n`). Kept: every
fit, and the last update; an update is deleted once a later round's clustering is saved, because every
decision made with it is committed by then. A resumed round loads its own saved clustering, so its
decisions are made with exactly the clustering they were first made with.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from prism_agent.atomic import fsync_dir, write_atomic
from prism_agent.cluster.artifacts import (
    FORMAT,
    MARKER,
    committed_rounds,
    load_round,
    pool_fingerprint,
    read_record,
    round_dir,
    save_round,
)
from prism_agent.cluster.assign import assign_nearest
from prism_agent.cluster.kchoice import KChoice
from prism_agent.cluster.round import ClusterRound, FitRecord, build_round
from prism_agent.cluster.rows import Rows, as_rows
from prism_agent.cluster.sparse import sparse_clusters
from prism_agent.config.cluster import ClusterConfig
from prism_agent.config.run import FREE_FIELDS
from prism_agent.errors import BadInputError

Kind = Literal["cold", "warm", "update", "resumed"]

# The settings that define what a clustering is (how many clusters, which are sparse): a change to one of
# them forces a cold fit. The others say how a fit is computed or how it is used, and a refit applies them.
_SHAPING = {"k_ratio", "k_min", "k_max", "sparse_ratio"}


@dataclass(frozen=True)
class Plan:
    kind: Kind
    previous: int | None  # the latest saved clustering before this round
    reason: str


class PrefixRows:
    """The first `n` rows of a source: the pool as it was when an earlier clustering was made."""

    def __init__(self, rows: Rows, n: int):
        self._rows, self._n = rows, n

    @property
    def n(self) -> int:
        return self._n

    @property
    def dim(self) -> int:
        return self._rows.dim

    def iter_blocks(self, rows: int):
        for start, block in self._rows.iter_blocks(rows):
            if start >= self._n:
                return
            yield start, block[: self._n - start]

    def take(self, positions):
        return self._rows.take(positions)


class SliceRows(PrefixRows):
    """Rows [start, n) of a source, renumbered from 0: the rows committed since a clustering."""

    def __init__(self, rows: Rows, start: int, n: int):
        super().__init__(rows, n)
        self._start = start

    @property
    def n(self) -> int:
        return self._n - self._start

    def iter_blocks(self, rows: int):
        for lo in range(self._start, self._n, rows):
            yield lo - self._start, self._rows.take(np.arange(lo, min(lo + rows, self._n), dtype=np.int64))

    def take(self, positions):
        return self._rows.take(np.asarray(positions, dtype=np.int64) + self._start)


# The cluster settings free to change on resume (`config/run.py` FREE_FIELDS: how later refits are computed): a
# saved clustering made with other values is still the one its round's decisions were made with.
_REFIT_ONLY = {f.removeprefix("cluster.") for f in FREE_FIELDS if f.startswith("cluster.")}


def same_settings(a: ClusterConfig, b: ClusterConfig) -> bool:
    return a.model_dump(include=_SHAPING) == b.model_dump(include=_SHAPING)


def same_clustering(a: ClusterConfig, b: ClusterConfig) -> bool:
    """Whether a round saved with settings `a` is the round that settings `b` would load."""
    return a.model_dump(exclude=_REFIT_ONLY) == b.model_dump(exclude=_REFIT_ONLY)


def base_n(record: dict) -> int:
    """Pool size at the fit a saved clustering's centroids come from."""
    return int(record.get("base_n", record["n"]))


def plan_round(rows: Rows, config: ClusterConfig, root: str | Path, r: int) -> Plan:
    """What round r's clustering must be, from the saved clusterings and the pool (see the module doc)."""
    earlier = [i for i in committed_rounds(root) if i < r]
    if not earlier:
        return Plan("cold", None, "first clustering")
    p = earlier[-1]
    record = read_record(root, p)
    if config.refit_growth == 0:
        return Plan("cold", p, "refit_growth = 0: every round")
    if rows.n < config.refit_every_round_below:
        return Plan("cold", p, f"pool under refit_every_round_below = {config.refit_every_round_below}: every round")
    if not same_settings(ClusterConfig.model_validate(record["config"]), config):
        return Plan("cold", p, "cluster settings changed")
    if record["n"] > rows.n or pool_fingerprint(PrefixRows(rows, record["n"])) != record.get("pool_fingerprint"):
        return Plan("cold", p, "the pool no longer matches the saved clustering")
    if record["n"] == rows.n:
        return Plan("cold", p, "nothing committed since the last clustering")
    growth = rows.n / base_n(record) - 1.0
    if growth >= config.refit_growth:
        return Plan("warm", p, f"pool grew {growth:.1%} since the last fit")
    return Plan("update", p, f"pool grew {growth:.1%} since the last fit")


def cluster_round(source, config: ClusterConfig, root: str | Path, r: int) -> tuple[ClusterRound, Plan]:
    """Round r's clustering: loaded if saved (for this pool and these settings), else planned, built, saved;
    then updates no longer needed are pruned."""
    rows: Rows = as_rows(source)
    fingerprint = pool_fingerprint(rows)
    if r in committed_rounds(root):
        record = read_record(root, r)
        if not same_clustering(ClusterConfig.model_validate(record["config"]), config):
            raise BadInputError(f"round {r} under {root} was clustered with other settings; "
                                "delete that round's directory to recluster")
        if record.get("pool_fingerprint") != fingerprint:
            raise BadInputError(f"round {r} under {root} was clustered on another pool ({record['n']} rows "
                                f"saved, {rows.n} now); delete that round's directory to recluster")
        prune(root, keep=r)
        return load_round(root, r, mmap=True), Plan("resumed", None, "saved before")
    plan = plan_round(rows, config, root, r)
    if plan.kind == "update":
        result = _update(rows, config, root, r, plan.previous, fingerprint)
    else:
        warm = warm_cosines = warm_labels = None
        if plan.kind == "warm":
            previous = load_round(root, plan.previous, mmap=True)
            warm, warm_cosines, warm_labels = previous.centroids, previous.cosines, previous.labels
        result = build_round(rows, config, warm=warm, warm_cosines=warm_cosines, warm_labels=warm_labels)
        save_round(root, r, result, fingerprint=fingerprint)
    prune(root, keep=r)
    return result, plan


def _update(rows: Rows, config: ClusterConfig, root, r: int, p: int, fingerprint: str) -> ClusterRound:
    previous = load_round(root, p, mmap=True)
    record = read_record(root, p)
    base, start = int(record.get("base", p)), base_n(record)
    started = time.perf_counter()
    found = assign_nearest(SliceRows(rows, previous.n, rows.n), previous.centroids, batch_size=config.batch_size,
                           threads=config.threads, device=config.device)
    sizes = previous.sizes + found.sizes(previous.k)
    seconds = time.perf_counter() - started
    tail_labels = np.concatenate([np.asarray(previous.labels[start:]), found.labels]).astype(np.int32)
    tail_cosines = np.concatenate([np.asarray(previous.cosines[start:]), found.cosines]).astype(np.float32)
    sparse = sparse_clusters(sizes, config.sparse_ratio)
    labels = np.concatenate([np.asarray(previous.labels[:start]), tail_labels])
    cosines = np.concatenate([np.asarray(previous.cosines[:start]), tail_cosines])
    result = ClusterRound(config=config, k_choice=previous.k_choice, centroids=previous.centroids, labels=labels,
                          cosines=cosines, sparse=sparse, fit=previous.fit)
    path = round_dir(root, r)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).unlink(missing_ok=True)
    for name, array in {"labels": tail_labels, "cosines": tail_cosines}.items():
        write_atomic(path / f"{name}.npy", lambda fh, a=array: np.save(fh, a))
    out = {
        "format": FORMAT, "round": r, "n": rows.n, "k": previous.k, "dim": previous.dim, "base": base,
        "base_n": start, "pool_fingerprint": fingerprint, "config": config.model_dump(mode="json"),
        "k_choice": previous.k_choice.to_dict(), "fit": previous.fit.to_dict(),
        "update": {"previous": p, "rows": int(found.labels.size), "seconds": seconds},
        "sparse": {"ratio": sparse.ratio, "position": sparse.position, "threshold": sparse.threshold,
                   "fallback": sparse.fallback, "count": sparse.count},
        "inertia": result.inertia,
    }
    write_atomic(path / MARKER, lambda fh: fh.write(json.dumps(out, indent=2).encode("utf-8")))
    return result


def load_update(root: str | Path, index: int, record: dict, *, mmap: bool = False) -> ClusterRound:
    """An update round: its base fit's centroids and leading labels, then its own tail of labels."""
    base = load_round(root, int(record["base"]), mmap=mmap)
    path, start = round_dir(root, index), int(record["base_n"])
    try:
        tail_labels = np.load(path / "labels.npy")
        tail_cosines = np.load(path / "cosines.npy")
    except (OSError, ValueError) as exc:
        raise BadInputError(f"round {index} under {root} is damaged: {exc}") from None
    n, k = record["n"], record["k"]
    if base.k != k or tail_labels.shape != (n - start,) or tail_cosines.shape != (n - start,) or base.n < start:
        raise BadInputError(f"round {index} under {root} is damaged: array shapes disagree with {MARKER}")
    labels = np.concatenate([np.asarray(base.labels[:start]), tail_labels])
    cosines = np.concatenate([np.asarray(base.cosines[:start]), tail_cosines])
    sparse = sparse_clusters(np.bincount(labels, minlength=k), record["sparse"]["ratio"])
    if sparse.threshold != record["sparse"]["threshold"] or sparse.count != record["sparse"]["count"]:
        raise BadInputError(f"round {index} under {root} is damaged: labels disagree with the recorded sparse set")
    return ClusterRound(config=ClusterConfig.model_validate(record["config"]), k_choice=KChoice(**record["k_choice"]),
                        centroids=base.centroids, labels=labels, cosines=cosines, sparse=sparse,
                        fit=FitRecord(**record["fit"]))


def prune(root: str | Path, *, keep: int) -> list[int]:
    """Delete the updates before round `keep` (their decisions are committed) and saves cut short by a kill;
    fits are kept. Returns the rounds deleted. The marker goes first, so a kill mid-way leaves an uncommitted
    directory, which counts as absent."""
    root = Path(root)
    saved = set(committed_rounds(root))
    gone = []
    for path in sorted(root.glob("round-*")) if root.is_dir() else []:
        suffix = path.name.removeprefix("round-")
        if not suffix.isdigit() or int(suffix) >= keep:
            continue
        i = int(suffix)
        if i in saved and "base" not in read_record(root, i):
            continue
        if (path / MARKER).exists():
            (path / MARKER).unlink()
            fsync_dir(path)
        shutil.rmtree(path, ignore_errors=True)
        gone.append(i)
    return gone
