"""Seed featurization in chunks, each committed as one feature-store shard (README "Generating data").

A run's seeds (up to ≈100K rows) take hours to featurize on a CPU. Done as one call written at the end, a
kill lost all of it; here every `[featurizer] seed_chunk` rows (default 1,024) are featurized and appended
as a shard, and a progress event (`seed_features`) is emitted, so a kill loses at most one chunk and a
resumed run continues after the last complete one.

The invariant that makes this safe: the feature store is always a prefix of `pool/seeds.jsonl`, pool
position i ↔ feature row i, whatever moment a kill hits. Seed rows too long for the proxy are dropped from
the pool too; a chunk that finds some first rewrites `seeds.jsonl` (atomically) without them, keeping every
row before the chunk where it was, and only then appends the chunk's shard. A kill between the two leaves
seeds.jsonl shorter and the store unchanged, still a prefix; the chunk is redone from the same position.
Chunks never overlap, so a resumed run does not recompute the rows of a committed chunk, and a chunk is
rebuilt from the same rows in the same order, so its features are the ones an uninterrupted run computes.

`steps.reconcile` only cuts the store down to the committed count (seeds while nothing is committed): a
store that is a prefix of the seeds is never cut, and a shard torn by a kill (no `.npy`) is removed by the
store on open.
"""

from __future__ import annotations

import itertools
import time

from prism_agent.loop.context import RunContext


def _seed_prefix(ctx: RunContext, store) -> int:
    """Rows of the store that are seed rows in pool order (its leading `seeds` shards, checked by id). A store
    that is not such a prefix (written before seed shards existed, or by a config forced through) is cut back
    to the part that is, so alignment with the pool never rests on a guess."""
    seeds = ctx.pool.iter_seeds()
    good = 0
    for shard in store.shards:
        if shard.info().get("kind") != "seeds":
            break
        want = [row["id"] for row in itertools.islice(seeds, shard.rows)]
        if shard.ids() != want:
            break
        good += shard.rows
    if len(store) > good:
        store.truncate(good)
    return good


def _drop_rows(ctx: RunContext, start: int, drop: set[int]) -> None:
    """Rewrite seeds.jsonl without the rows at positions `drop` (all ≥ `start`): rows before `start`, already
    featurized, keep their positions."""
    rows = [row for i, row in enumerate(ctx.pool.iter_seeds()) if i not in drop]
    ctx.pool.write_seeds(rows)


def _local_chunks(ctx: RunContext, start: int, size: int):
    """(rows, features of the kept ones, kept indices, seconds) per chunk of `size` seed rows from position
    `start`, featurized in this process. After a chunk that dropped rows the caller has rewritten seeds.jsonl,
    so the next chunk is read from the rewritten file, after the rows the caller kept."""
    from prism_agent.loop.steps import _featurize

    pending = itertools.islice(ctx.pool.iter_seeds(), start, None)  # one pass over the file, chunk after chunk
    while True:
        rows = list(itertools.islice(pending, size))
        if not rows:
            return
        started = time.perf_counter()
        feats, kept = _featurize(ctx, rows)
        yield rows, feats, kept, time.perf_counter() - started
        start += len(kept)
        if len(kept) < len(rows):
            pending = itertools.islice(ctx.pool.iter_seeds(), start, None)


def _ray_chunks(ctx: RunContext, start: int, size: int):
    """The same chunks from the Ray cluster: every remaining seed row goes out in one Ray Data job (the actors
    load the proxy once), and chunks come back in order as their rows finish. The rows are read once, before
    any rewrite, so they are the rows `_local_chunks` would read after each one."""
    rest = list(itertools.islice(ctx.pool.iter_seeds(), start, None))
    yield from ctx.ray_featurizer.row_chunks(rest, size)


def featurize_seeds(ctx: RunContext) -> dict:
    """Featurize the seed rows the store lacks, chunk by chunk. Returns {"seeds", "featurized", "chunks"}:
    the pool's seed rows, the rows featurized by this call, and the shards it committed."""
    store = ctx.feature_store()
    start = _seed_prefix(ctx, store)
    total = ctx.pool.seed_count()
    size = ctx.cfg.featurizer.seed_chunk
    featurized = chunks = 0
    if start >= total:
        return {"seeds": total, "featurized": 0, "chunks": 0}
    source = _ray_chunks if ctx.ray_featurizer is not None else _local_chunks
    for rows, feats, kept, seconds in source(ctx, start, size):
        dropped = len(rows) - len(kept)
        if dropped:  # too long for the proxy: out of the pool before the shard lands, so positions stay aligned
            _drop_rows(ctx, start, {start + i for i in set(range(len(rows))) - set(kept)})
            rows = [rows[i] for i in kept]
            total -= dropped
        if rows:
            shard = store.append([r["id"] for r in rows], feats, info={
                "kind": "seeds", "seed_rows": [start, start + len(rows)], "dropped": dropped})
            chunks += 1
            ctx.events.emit("seed_features", rows=start + len(rows), of=total, shard=shard.index,
                            chunk_rows=len(rows), dropped=dropped, seconds=round(seconds, 3))
        start += len(rows)
        featurized += len(rows)
    return {"seeds": total, "featurized": featurized, "chunks": chunks}
