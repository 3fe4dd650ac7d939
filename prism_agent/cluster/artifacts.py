"""Per-round clustering artifacts on disk, written atomically, so a run can be inspected and resumed.

Layout under a clusters directory (e.g. `<run dir>/clusters/`)::

    round-0003/centroids.npy   (k, dim) float32 unit centroids
    round-0003/labels.npy      (n,) int32 cluster of each pool row, in pool (feature store) order
    round-0003/cosines.npy     (n,) float32 cosine of each pool row to its centroid
    round-0003/round.json      settings, k choice, sparse rule outcome, fit record, pool fingerprint

Each file goes to a temporary name, is fsynced, then renamed; `round.json` is written last and is the
commit marker. A round without it (killed mid-save) is treated as absent and overwritten. Sizes and the
sparse set are recomputed from the labels on load and checked against what was recorded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from prism_agent.atomic import fsync_dir, write_atomic
from prism_agent.cluster.kchoice import KChoice
from prism_agent.cluster.round import ClusterRound, FitRecord, build_round
from prism_agent.cluster.rows import Rows, as_rows
from prism_agent.cluster.sparse import sparse_clusters
from prism_agent.config.cluster import ClusterConfig
from prism_agent.errors import BadInputError

FORMAT = 1
MARKER = "round.json"


def round_dir(root: str | Path, index: int) -> Path:
    return Path(root) / f"round-{index:04d}"


def committed_rounds(root: str | Path) -> list[int]:
    """Indices of rounds whose save completed, ascending."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("round-*"):
        suffix = path.name.removeprefix("round-")
        if suffix.isdigit() and (path / MARKER).is_file():
            found.append(int(suffix))
    return sorted(found)


def pool_fingerprint(source) -> str:
    """A cheap identity of a pool: size, dim and the bytes of its first, middle and last rows.

    Enough to notice that saved labels belong to another or a re-ordered pool, without reading 6 GiB.
    """
    rows: Rows = as_rows(source)
    h = hashlib.sha256(f"{rows.n}x{rows.dim}".encode())
    if rows.n:
        picks = sorted({0, rows.n // 2, rows.n - 1})
        h.update(np.ascontiguousarray(rows.take(picks), dtype=np.float32).tobytes())
    return h.hexdigest()[:32]


def save_round(root: str | Path, index: int, result: ClusterRound, *, fingerprint: str | None = None) -> Path:
    """Write round `index` under `root` and return its directory."""
    path = round_dir(root, index)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER
    if marker.exists():  # re-saving: uncommit first so a crash never pairs new arrays with an old marker
        marker.unlink()
        fsync_dir(path)
    arrays = {"centroids": result.centroids, "labels": result.labels, "cosines": result.cosines}
    for name, array in arrays.items():
        write_atomic(path / f"{name}.npy", lambda fh, a=array: np.save(fh, a))
    record = {
        "format": FORMAT,
        "round": index,
        "n": result.n,
        "k": result.k,
        "dim": result.dim,
        "pool_fingerprint": fingerprint,
        "config": result.config.model_dump(mode="json"),
        "k_choice": result.k_choice.to_dict(),
        "fit": result.fit.to_dict(),
        "sparse": {
            "ratio": result.sparse.ratio,
            "position": result.sparse.position,
            "threshold": result.sparse.threshold,
            "fallback": result.sparse.fallback,
            "count": result.sparse.count,
        },
        "inertia": result.inertia,
    }
    write_atomic(marker, lambda fh: fh.write(json.dumps(record, indent=2).encode("utf-8")))
    return path


def read_record(root: str | Path, index: int) -> dict:
    marker = round_dir(root, index) / MARKER
    if not marker.is_file():
        raise BadInputError(f"no saved clustering for round {index} under {root}")
    return json.loads(marker.read_text(encoding="utf-8"))


def load_round(root: str | Path, index: int, *, mmap: bool = False) -> ClusterRound:
    """Load a committed round; `mmap=True` maps labels/cosines instead of reading them (large pools)."""
    record = read_record(root, index)
    if record.get("format") != FORMAT:
        raise BadInputError(f"round {index} under {root} has unknown format {record.get('format')!r}")
    if "base" in record:  # an update between refits: its base fit plus the rows added since
        from prism_agent.cluster.incremental import load_update

        return load_update(root, index, record, mmap=mmap)
    path = round_dir(root, index)
    mode = "r" if mmap else None
    try:
        centroids = np.load(path / "centroids.npy")
        labels = np.load(path / "labels.npy", mmap_mode=mode)
        cosines = np.load(path / "cosines.npy", mmap_mode=mode)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"round {index} under {root} is damaged: {exc}") from None
    n, k, dim = record["n"], record["k"], record["dim"]
    if centroids.shape != (k, dim) or labels.shape != (n,) or cosines.shape != (n,):
        raise BadInputError(f"round {index} under {root} is damaged: array shapes disagree with {MARKER}")
    config = ClusterConfig.model_validate(record["config"])
    sparse = sparse_clusters(np.bincount(labels, minlength=k), record["sparse"]["ratio"])
    if sparse.threshold != record["sparse"]["threshold"] or sparse.count != record["sparse"]["count"]:
        raise BadInputError(
            f"round {index} under {root} is damaged: labels disagree with the recorded sparse set"
        )
    return ClusterRound(
        config=config,
        k_choice=KChoice(**record["k_choice"]),
        centroids=centroids,
        labels=labels,
        cosines=cosines,
        sparse=sparse,
        fit=FitRecord(**record["fit"]),
    )


def load_or_build_round(
    source, config: ClusterConfig, root: str | Path, index: int
) -> tuple[ClusterRound, bool]:
    """Resume round `index` if it was saved for this pool and these settings, else fit and save it.

    Returns (round, resumed). A saved round made with other settings, or for another pool, is refused
    rather than silently refit: the loop's earlier decisions were made with it.
    """
    rows: Rows = as_rows(source)
    fingerprint = pool_fingerprint(rows)
    if index in committed_rounds(root):
        record = read_record(root, index)
        if ClusterConfig.model_validate(record["config"]) != config:
            raise BadInputError(
                f"round {index} under {root} was clustered with other settings; "
                "delete that round's directory to recluster"
            )
        if record.get("pool_fingerprint") != fingerprint:
            raise BadInputError(
                f"round {index} under {root} was clustered on another pool "
                f"({record['n']} rows saved, {rows.n} now); delete that round's directory to recluster"
            )
        return load_round(root, index), True
    result = build_round(rows, config)
    save_round(root, index, result, fingerprint=fingerprint)
    return result, False
