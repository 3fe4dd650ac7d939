"""`prism-agent clusters`: look at what the gradient clusters of a dataset capture.

Clusters the features (a feature store, or a data file featurized first), then shows the distribution of
cluster sizes, the smallest clusters with a few member texts each, and how many clusters the sparse rule
selects. The paper's observation is that gradient clusters group solution templates rather than topics;
reading the members of a few small clusters is the quickest way to check that on one's own data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from prism_agent.cluster.artifacts import pool_fingerprint, save_round
from prism_agent.cluster.round import ClusterRound, build_round
from prism_agent.config.cluster import ClusterConfig, InitMethod
from prism_agent.errors import BadInputError
from prism_agent.gradients.store import MANIFEST, FeatureStore

_TEXT_WIDTH = 110


def _load_store(path: Path) -> FeatureStore:
    if not path.exists():
        raise BadInputError(f"{path}: no such file or directory")
    if path.is_dir() and (path / MANIFEST).is_file():
        return FeatureStore.load(path)
    try:
        from prism_agent.measure_dataset import featurize_to_store
    except ImportError as exc:  # a partial install; say so in one line rather than a traceback
        raise BadInputError(f"{path} is a data file, but featurizing is unavailable here ({exc})") from None
    return featurize_to_store(path)


def size_histogram(sizes: np.ndarray) -> list[dict[str, int]]:
    """Cluster counts in power-of-two size buckets: 0, 1, 2–3, 4–7, … (sizes span orders of magnitude)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    buckets = [(0, 0)]
    lo = 1
    top = int(sizes.max()) if sizes.size else 0
    while lo <= top:
        buckets.append((lo, 2 * lo - 1))
        lo *= 2
    out = []
    for lo, hi in buckets:
        count = int(((sizes >= lo) & (sizes <= hi)).sum())
        if count:
            out.append({"min": lo, "max": hi, "clusters": count})
    return out


def _ids_at(store: FeatureStore, positions: Sequence[int]) -> dict[int, str]:
    """Sample ids at these pool positions, reading only the id files of the shards involved."""
    wanted = sorted(set(int(p) for p in positions))
    out: dict[int, str] = {}
    start, i = 0, 0
    for shard in store.shards:
        stop = start + shard.rows
        if i < len(wanted) and wanted[i] < stop:
            ids = shard.ids()
            while i < len(wanted) and wanted[i] < stop:
                out[wanted[i]] = ids[wanted[i] - start]
                i += 1
        start = stop
    return out


def _texts_for(store: FeatureStore, ids: set[str]) -> dict[str, str]:
    """Prompts of these ids from the data file the store was made from, when it is still readable."""
    source = store.meta.get("source")
    if not source or not ids:
        return {}
    try:
        from prism_agent.data.reader import Fields, iter_samples

        fields = store.meta.get("fields")
        fields = Fields(**fields) if isinstance(fields, dict) else Fields()
        found: dict[str, str] = {}
        for sample in iter_samples(Path(source), fields=fields):
            if sample.id in ids:
                found[sample.id] = sample.prompt
                if len(found) == len(ids):
                    break
        return found
    except (BadInputError, OSError, ValueError, TypeError, ImportError):
        return {}


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _TEXT_WIDTH else flat[: _TEXT_WIDTH - 1] + "…"


def summarize(
    result: ClusterRound, store: FeatureStore, *, smallest: int, members: int, seed: int
) -> dict[str, Any]:
    """The JSON view of a clustering: what `--json` prints and what the tables are drawn from."""
    sizes = result.sizes
    chosen = result.members.smallest(smallest)
    rng = np.random.default_rng(seed)
    shown: dict[int, np.ndarray] = {}
    for c in chosen:
        pool = result.members.of(int(c))
        shown[int(c)] = pool[rng.choice(pool.size, size=min(members, pool.size), replace=False)]
    all_positions = [int(p) for ps in shown.values() for p in ps]
    ids = _ids_at(store, all_positions)
    texts = _texts_for(store, set(ids.values()))
    cosines = np.asarray(result.cosines)
    smallest_out = []
    for c, ps in shown.items():
        member_ids = [ids[int(p)] for p in ps]
        entry: dict[str, Any] = {
            "cluster": c,
            "size": int(sizes[c]),
            "sparse": bool(result.sparse.mask[c]),
            "mean_cosine": round(float(cosines[result.members.of(c)].mean()), 4),
            "member_ids": member_ids,
        }
        if texts:
            entry["member_prompts"] = [texts.get(i) for i in member_ids]
        smallest_out.append(entry)
    return {
        "n": result.n,
        "dim": result.dim,
        "k": result.k,
        "k_ratio": result.k_choice.k_ratio,
        "k_choice": result.k_choice.to_dict(),
        "init": result.fit.init,
        "iterations": result.fit.iterations,
        "train_size": result.fit.train_size,
        "inertia": round(result.inertia, 4),
        "mean_cosine": round(float(cosines.mean()), 4),
        "sizes": {
            "min": int(sizes.min()),
            "median": float(np.median(sizes)),
            "mean": round(float(sizes.mean()), 3),
            "max": int(sizes.max()),
            "empty": int((sizes == 0).sum()),
        },
        "histogram": size_histogram(sizes),
        "sparse_ratio": result.sparse.ratio,
        "sparse_count": result.sparse.count,
        "sparse_threshold": result.sparse.threshold,
        "sparse_position": result.sparse.position,
        "sparse_fallback": result.sparse.fallback,
        "smallest": smallest_out,
        "source": store.meta.get("source"),
    }


def _render(console: Console, summary: dict[str, Any]) -> None:
    choice = summary["k_choice"]
    console.print(
        f"[bold]{summary['n']:,}[/] samples · dim {summary['dim']} · [bold]k = {summary['k']:,}[/] "
        f"(k-ratio {summary['k_ratio']:g}, {choice['ratio_origin']}"
        + (f", set by {choice['decided_by']}" if choice["decided_by"] != "ratio" else "")
        + f") · init {summary['init']}, {summary['iterations']} iterations on {summary['train_size']:,} rows"
    )
    sizes = summary["sizes"]
    console.print(
        f"cluster sizes: min {sizes['min']}, median {sizes['median']:g}, mean {sizes['mean']:g}, "
        f"max {sizes['max']}, empty {sizes['empty']} · mean cosine to centroid {summary['mean_cosine']:.3f}"
    )

    hist = Table(title="Cluster sizes", title_justify="left")
    hist.add_column("size", justify="right")
    hist.add_column("clusters", justify="right")
    hist.add_column("", no_wrap=True)
    hist.add_column("sparse", justify="center")
    peak = max(b["clusters"] for b in summary["histogram"])
    threshold = summary["sparse_threshold"]
    for b in summary["histogram"]:
        label = str(b["min"]) if b["min"] == b["max"] else f"{b['min']}–{b['max']}"
        bar = "█" * max(1, round(40 * b["clusters"] / peak))
        if summary["sparse_fallback"] or b["max"] < threshold:
            mark = "yes"
        elif b["min"] < threshold:
            mark = "part"
        else:
            mark = ""
        hist.add_row(label, f"{b['clusters']:,}", f"[cyan]{bar}[/]", mark)
    console.print(hist)

    small = Table(title="Smallest clusters", title_justify="left", show_lines=True)
    small.add_column("cluster", justify="right")
    small.add_column("size", justify="right")
    small.add_column("cos", justify="right")
    small.add_column("members")
    for entry in summary["smallest"]:
        prompts = entry.get("member_prompts") or [None] * len(entry["member_ids"])
        lines = [
            f"[dim]{sid}[/] {_one_line(text)}" if text else f"[dim]{sid}[/]"
            for sid, text in zip(entry["member_ids"], prompts, strict=True)
        ]
        cohesion = f"{entry['mean_cosine']:.3f}"
        small.add_row(str(entry["cluster"]), str(entry["size"]), cohesion, "\n".join(lines))
    console.print(small)
    if summary["source"] is None:
        console.print("[dim]member texts unavailable: the feature store does not name its data file[/]")

    ratio = summary["sparse_ratio"]
    if summary["sparse_fallback"]:
        console.print(
            f"sparse set: [bold]all {summary['k']:,}[/] clusters (no cluster is smaller than the size "
            f"{threshold} at position ⌊K·{ratio:g}⌋ = {summary['sparse_position']}, so all qualify)"
        )
    else:
        console.print(
            f"sparse set: [bold]{summary['sparse_count']:,}[/] of {summary['k']:,} clusters "
            f"(size < {threshold}, the size at position ⌊K·{ratio:g}⌋ = {summary['sparse_position']})"
        )


def clusters(
    data_or_features: Annotated[
        Path,
        typer.Argument(help="A feature store directory, or a data file (.jsonl/.parquet/HF folder)."),
    ],
    k_ratio: Annotated[
        float, typer.Option("--k-ratio", help="k = ratio × pool size; paper 0.01, released code 0.10.")
    ] = 0.01,
    sparse_ratio: Annotated[
        float, typer.Option("--sparse-ratio", help="Sparse = smaller than the size at position ⌊K·ratio⌋.")
    ] = 0.5,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object, no tables.")] = False,
    smallest: Annotated[int, typer.Option("--smallest", help="How many smallest clusters to show.")] = 10,
    members: Annotated[int, typer.Option("--members", help="Member samples shown per cluster.")] = 3,
    init: Annotated[
        str, typer.Option("--init", help="Seeding: kmeans++ (greedy), random (faiss), first-k (paper code).")
    ] = "kmeans++",
    seed: Annotated[int, typer.Option("--seed", help="Seed: training sample, init, shown members.")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for faiss.")] = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Also save the centroids and assignments (round 0) here.")
    ] = None,
) -> None:
    """Cluster gradient features and show cluster sizes, the smallest clusters and the sparse set."""
    if not 0.0 < k_ratio <= 1.0:
        raise BadInputError(f"--k-ratio must be in (0, 1], got {k_ratio:g}")
    if not 0.0 < sparse_ratio < 1.0:
        raise BadInputError(f"--sparse-ratio must be in (0, 1), got {sparse_ratio:g}")
    if smallest < 0 or members < 0:
        raise BadInputError("--smallest and --members cannot be negative")
    if init not in ("random", "kmeans++", "first-k"):
        raise BadInputError(f"--init must be kmeans++, random or first-k, got {init!r}")
    if threads is not None and threads < 1:
        raise BadInputError("--threads must be at least 1")
    if seed < 0:
        raise BadInputError("--seed cannot be negative")
    method: InitMethod = init  # type: ignore[assignment]
    config = ClusterConfig(
        k_ratio=k_ratio, sparse_ratio=sparse_ratio, init=method, seed=seed, threads=threads
    )

    store = _load_store(data_or_features)
    if len(store) == 0:
        raise BadInputError(f"{data_or_features}: the feature store has no rows")
    err = Console(stderr=True)
    if not json_output:
        err.print(f"[dim]clustering {len(store):,} feature rows …[/]")
    result = build_round(store, config)
    if save is not None:
        save_round(save, 0, result, fingerprint=pool_fingerprint(store))
    summary = summarize(result, store, smallest=smallest, members=members, seed=seed)
    if save is not None:
        summary["saved_to"] = str(save)
    if json_output:
        typer.echo(json.dumps(summary))
        return
    _render(Console(), summary)
    if save is not None:
        Console().print(f"[dim]saved centroids and assignments to {save}[/]")
