"""Measure datasets: featurize into a resumable feature store, then score G-Vendi (and embedding Vendi).

Features are written in shards of `shard_size` input rows; each shard records how many input rows it
consumed, so a killed run restarts right after the last committed shard with no other state. By
default the store lives in the user cache under a key of (file, proxy, featurizer settings), so
re-running the same `measure` reuses finished shards without being told where they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prism_agent.config.distributed import RayConfig
from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.data.pull import resolve_data
from prism_agent.data.reader import Fields, iter_samples, scan
from prism_agent.diversity.vendi import VendiResult, vendi
from prism_agent.gradients.base import make_featurizer, resolve_featurizer
from prism_agent.gradients.proxy import Proxy, load_proxy, resolve_proxy_path
from prism_agent.gradients.render import encode
from prism_agent.gradients.store import FeatureStore
from prism_agent.models.load import context_length
from prism_agent.models.pull import Step
from prism_agent.paths import features_dir

Progress = Callable[[int, int], None]  # (rows done, rows total)


@dataclass
class FeaturizeStats:
    rows: int  # usable input rows
    bad_rows: int  # malformed rows skipped under --skip-bad
    featurized: int  # rows with features (rows − too_long)
    too_long: int  # skipped: the prompt alone exceeds the token limit
    truncated: int  # response tail cut to the token limit
    computed: int  # rows featurized in this call (the rest came from finished shards)
    seconds: float
    dtype: str = "float32"  # the featurizer's resolved compute dtype (it shapes the features)
    dtype_reason: str = ""


@dataclass
class MeasureResult:
    path: str
    store: FeatureStore
    stats: FeaturizeStats
    g_vendi: VendiResult
    embedding_vendi: VendiResult | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        s = self.stats
        return {
            "path": self.path,
            "n": s.featurized,
            "g_vendi": self.g_vendi.q1,
            "g_vendi_q2": self.g_vendi.q2,
            "g_vendi_qinf": self.g_vendi.qinf,
            "embedding_vendi": self.embedding_vendi.q1 if self.embedding_vendi else None,
            "seconds": round(self.seconds, 3),
            "samples_per_s": round(s.computed / s.seconds, 3) if s.seconds > 0 and s.computed else None,
            "computed": s.computed,
            "bad_rows": s.bad_rows,
            "too_long": s.too_long,
            "truncated": s.truncated,
            "features_dir": str(self.store.root),
            "dtype": s.dtype,
            "dtype_reason": s.dtype_reason,
        }


def _store_meta(path: Path, fields: Fields, proxy_id: str, config: FeaturizerConfig, max_length: int,
                shard_size: int) -> dict:
    st = path.stat()
    return {
        "source": str(path.resolve()),
        "source_size": st.st_size,
        "source_mtime_ns": st.st_mtime_ns,
        "fields": [fields.id, fields.prompt, fields.response],
        "proxy": proxy_id,
        "featurizer": config.identity(),
        "max_length": max_length,
        "shard_size": shard_size,
    }


def default_features_dir(meta: dict) -> Path:
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    return features_dir() / f"{Path(meta['source']).stem}-{key}"


def featurize(path: str | Path, *, config: FeaturizerConfig | None = None, proxy: str | Proxy | None = None,
              fields: Fields = Fields(), features_dir: str | Path | None = None, skip_bad: bool = False,
              shard_size: int | None = None, limit: int | None = None, progress: Progress | None = None,
              step: Step | None = None, ray: RayConfig | None = None):
    """Featurize a data file (or its first `limit` usable rows) into a store, resuming a partial one; on a Ray
    cluster when `ray` is given (the same features and shards: `distributed/featurize.py`). Returns (store,
    stats)."""
    config = config or FeaturizerConfig()
    shard_size = shard_size or int(os.environ.get("PRISM_AGENT_SHARD_SIZE", "256"))  # rows per commit
    path = resolve_data(path, step=step)
    report = scan(path, fields=fields, skip_bad=skip_bad)
    rows_wanted = min(report.rows, limit) if limit else report.rows
    torch.set_num_threads(config.threads)
    if isinstance(proxy, Proxy):
        loaded, proxy_id, context = proxy, proxy.name, proxy.max_length
    else:
        folder, gguf, proxy_id = resolve_proxy_path(proxy, step)
        loaded, context = None, context_length(folder, gguf)
    max_length = config.max_length or context
    config, dtype = resolve_featurizer(config, loaded.device if loaded is not None else None)
    meta = _store_meta(path, fields, proxy_id, config, max_length, shard_size)
    if limit:
        meta["limit"] = limit
    root = Path(features_dir) if features_dir else default_features_dir(meta)
    store = FeatureStore.open(root, dim=config.dim, meta=meta)
    start_row = sum(s.info().get("consumed", s.rows) for s in store.shards)
    t0 = time.perf_counter()
    computed = 0
    if progress:
        progress(min(start_row, rows_wanted), rows_wanted)
    if start_row < rows_wanted and ray is not None:
        computed = _featurize_on_ray(ray, store, config, proxy.name if isinstance(proxy, Proxy) else proxy, max_length,
                                     iter_samples(path, fields=fields, start=start_row, stop=rows_wanted),
                                     start_row, rows_wanted, shard_size, progress)
    elif start_row < rows_wanted:
        if loaded is None:
            loaded = load_proxy(proxy, device=config.device, dtype=torch.float32, step=step)
        featurizer = make_featurizer(loaded, config)
        try:
            batch: list = []
            done = start_row

            def flush(items: list) -> None:
                nonlocal computed, done
                encoded, ids, too_long, truncated = [], [], 0, 0
                for s in items:
                    enc = encode(loaded.tokenizer, s.prompt, s.response, max_length)
                    if enc is None:
                        too_long += 1
                        continue
                    truncated += int(enc.truncated)
                    encoded.append(enc)
                    ids.append(s.id)
                feats = featurizer.featurize(encoded) if encoded else torch.empty(0, config.dim).numpy()
                store.append(ids, feats, info={"consumed": len(items), "too_long": too_long,
                                               "truncated": truncated})
                computed += len(encoded)
                done += len(items)
                if progress:
                    progress(done, rows_wanted)

            for sample in iter_samples(path, fields=fields, start=start_row, stop=rows_wanted):
                batch.append(sample)
                if len(batch) == shard_size:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
        finally:
            featurizer.close()
    infos = [s.info() for s in store.shards]
    stats = FeaturizeStats(
        rows=rows_wanted, bad_rows=report.bad, featurized=len(store),
        too_long=sum(i.get("too_long", 0) for i in infos), truncated=sum(i.get("truncated", 0) for i in infos),
        computed=computed, seconds=time.perf_counter() - t0, dtype=dtype.name, dtype_reason=dtype.reason,
    )
    return store, stats


def _featurize_on_ray(ray: RayConfig, store: FeatureStore, config: FeaturizerConfig, proxy: str | None, max_length: int,
                      samples, start_row: int, rows_wanted: int, shard_size: int, progress: Progress | None) -> int:
    """The rows from `start_row` on, featurized by the Ray cluster's actors in one job and committed here, a
    shard per `shard_size` input rows in order, as the local path commits them. Returns the rows featurized."""
    from prism_agent.distributed.featurize import TOO_LONG, TRUNCATED, RayFeaturizer
    from prism_agent.distributed.session import RaySession

    items = list(samples)
    session = RaySession.open(ray)
    computed, done = 0, start_row
    try:
        # one bulk job: Ray Data's own pool, started for it (a run keeps a pool instead: distributed/pool.py)
        featurizer = RayFeaturizer(ray, config, proxy=proxy, max_length=max_length, engine="data")
        for chunk in featurizer.chunks([(s.prompt, s.response) for s in items], shard_size):
            part = items[chunk.start: chunk.start + len(chunk.status)]
            kept = chunk.kept
            store.append([part[i].id for i in kept], chunk.feats[kept], info={
                "consumed": len(part), "too_long": int((chunk.status == TOO_LONG).sum()),
                "truncated": int((chunk.status == TRUNCATED).sum())})
            computed += len(kept)
            done += len(part)
            if progress:
                progress(done, rows_wanted)
    finally:
        session.close()
    return computed


def featurize_to_store(path: str | Path, **options) -> FeatureStore:
    """The feature store of a data file (computed or resumed as needed)."""
    return featurize(path, **options)[0]


def g_vendi_of_store(store: FeatureStore) -> VendiResult:
    return vendi(store.iter_blocks(), dim=store.dim)


def measure(path: str | Path, *, embedding: bool = False, fields: Fields = Fields(), **options) -> MeasureResult:
    """Featurize (or resume) and score one dataset."""
    t0 = time.perf_counter()
    path = resolve_data(path, step=options.get("step"))
    store, stats = featurize(path, fields=fields, **options)
    if len(store) == 0:
        from prism_agent.errors import BadInputError

        raise BadInputError(f"{path}: no sample fits the proxy's context; nothing to measure")
    result = MeasureResult(path=str(path), store=store, stats=stats, g_vendi=g_vendi_of_store(store))
    if embedding:
        from prism_agent.diversity.embedding import SentenceEmbedder

        kept = set(store.ids())
        texts = (f"{s.prompt}\n\n{s.response}" for s in iter_samples(path, fields=fields) if s.id in kept)
        result.embedding_vendi = vendi(SentenceEmbedder(step=options.get("step")).embed_stream(texts), dim=384)
    result.seconds = time.perf_counter() - t0
    return result
