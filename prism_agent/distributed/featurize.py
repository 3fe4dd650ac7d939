"""Gradient features on a Ray cluster: featurizer actors that load the proxy once, fed batches of rows.

Two ways to run the actors (README "Running on a Ray cluster" says which command uses which): a run keeps a
pool of Ray Core actors for its whole life (`pool.py`, `engine="pool"`), so each round's candidates go to
actors that already hold the proxy; `measure --ray`, one bulk job, uses Ray Data (`Dataset.map_batches` over an
`ActorPoolStrategy`, `engine="data"`), which builds its pool for that job.

Each actor (`FeaturizeActor`) loads the proxy and the project's own featurizer (`gradients.base.make_featurizer`)
once, with the driver's resolved `FeaturizerConfig`: the same kind, rank, projection seed and dtype as the local
path, so a row's features do not depend on which worker made them: the projection is seeded, and a batch of the
same rows gives the same features on any worker of the same device kind. (In bf16 a row's features shift slightly
with the padding of the batch it is in, a median ≤ 1 % and at most ≈5 % here, as they do between the local path's
own batch plans; tests/test_ray_featurize.py pins both.) Actors also tokenize (`gradients.render.encode`), so the
driver needs neither the model nor the tokenizer: it only ships (prompt, response) pairs and gets back, per row,
its position, a status (featurized, featurized after truncation, too long for the proxy) and its feature row.

Faults (the run's pool: `pool.py`): Ray Data creates a pool's actors with `max_restarts=-1` and
`max_task_retries=-1` unless told otherwise (`ActorPoolMapOperator._apply_default_remote_args` in Ray 2.60;
passing them, or a `ray_remote_args_fn`, to `map_batches` is deprecated there), so an actor whose worker or node dies is
restarted (on another node when its own is gone) and the batch it held runs again; a batch's output reaches
the driver once, from the attempt that finished. An actor that dies while loading (a missing model) is not
restarted forever: `DataContext.max_consecutive_actor_init_deaths` ends the job with its error. The driver
still checks that every position came back exactly once before it commits a chunk, and fails the step
(nothing more written) otherwise.

Results stream back as they finish and are put in row order on the driver (`ordered`), so the seeds and
`measure` commit a shard as soon as its rows are in, while the pool's actors stay busy with the next ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from prism_agent.config.distributed import RayConfig
from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.errors import PrismError

OK, TRUNCATED, TOO_LONG = 0, 1, 2  # a row's status as the actor reports it


class FeaturizeActor:
    """The map_batches UDF, and the pool's actor class: loaded once per actor, then called with batches of
    {pos, prompt, response}."""

    def __init__(self, proxy: str | None, config: dict, max_length: int | None, threads: int):
        import torch

        from prism_agent.gradients.base import make_featurizer
        from prism_agent.gradients.proxy import load_proxy

        torch.set_num_threads(threads)
        cfg = FeaturizerConfig.model_validate(config)
        self.proxy = load_proxy(proxy, device=cfg.device, dtype=torch.float32)
        self.featurizer = make_featurizer(self.proxy, cfg)
        self.max_length = max_length or self.proxy.max_length
        self.dim = cfg.dim

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from prism_agent.gradients.render import encode

        n = len(batch["pos"])
        status = np.full(n, TOO_LONG, dtype=np.int8)
        encoded, where = [], []
        for i, (prompt, response) in enumerate(zip(batch["prompt"], batch["response"], strict=True)):
            enc = encode(self.proxy.tokenizer, str(prompt), str(response), self.max_length)
            if enc is not None:
                status[i] = TRUNCATED if enc.truncated else OK
                encoded.append(enc)
                where.append(i)
        feats = np.zeros((n, self.dim), dtype=np.float32)
        if encoded:
            feats[where] = self.featurizer.featurize(encoded)
        return {"pos": np.asarray(batch["pos"], dtype=np.int64), "status": status, "feat": feats}

    def featurize(self, batch: dict) -> dict[str, np.ndarray]:
        """The pool's call (a Ray Core actor method; Ray Data calls the instance)."""
        return self(batch)

    def ready(self) -> bool:
        """Returns once the constructor has run: what the pool waits on to time the actors' start."""
        return True


class NoOpActor:
    """The same pool and batches without the work: what `bench/bench_ray_featurize.py` times as Ray's own
    overhead per batch (scheduling, serialization, the object store)."""

    def __init__(self, dim: int):
        self.dim = dim

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["pos"])
        return {"pos": np.asarray(batch["pos"], dtype=np.int64), "status": np.zeros(n, dtype=np.int8),
                "feat": np.zeros((n, self.dim), dtype=np.float32)}

    featurize = FeaturizeActor.featurize
    ready = FeaturizeActor.ready


@dataclass
class Chunk:
    """Rows [start, start + len(status)) of one call, in order: each row's status and feature row."""

    start: int
    status: np.ndarray
    feats: np.ndarray

    @property
    def kept(self) -> list[int]:
        return [i for i, s in enumerate(self.status) if s != TOO_LONG]


def ordered(batches, total: int, size: int) -> Iterator[Chunk]:
    """Chunks of `size` rows in row order from batches that arrive in any order; only rows not yet handed on
    are held. A position that comes back twice or never is an error (the caller commits nothing after it)."""
    seen = np.zeros(total, dtype=bool)
    held: dict[int, tuple[int, np.ndarray]] = {}
    next_start = 0
    for batch in batches:
        pos = np.asarray(batch["pos"], dtype=np.int64)
        values, counts = np.unique(pos, return_counts=True)
        again = pos[seen[pos]].tolist() + values[counts > 1].tolist()
        if again:
            raise PrismError(f"Ray returned rows {sorted(set(again))[:5]} twice; nothing after them was committed "
                             "(rerun to continue)")
        seen[pos] = True
        for p, st, f in zip(pos.tolist(), batch["status"], batch["feat"], strict=True):
            held[p] = (int(st), f)
        while next_start < total:
            end = min(total, next_start + size)
            if not seen[next_start:end].all():
                break
            rows = [held.pop(i) for i in range(next_start, end)]
            yield Chunk(next_start, np.array([st for st, _ in rows], dtype=np.int8),
                        np.stack([f for _, f in rows]).astype(np.float32, copy=False))
            next_start = end
    if next_start < total:
        raise PrismError(f"Ray returned {int(seen.sum())} of {total} rows; the rest were lost (rerun to continue)")


class RayFeaturizer:
    """Featurizes (prompt, response) pairs on the connected Ray cluster with the given resolved config.

    `engine="pool"` (a run): the actors are started at the first call and kept until `close()`, every later
    call reuses them. `engine="data"` (`measure`): each call is a Ray Data job with its own actors."""

    def __init__(self, ray_config: RayConfig, config: FeaturizerConfig, proxy: str | None = None,
                 max_length: int | None = None, engine: str = "pool"):
        if config.dtype == "auto":
            raise ValueError("RayFeaturizer needs a resolved featurizer dtype (gradients.base.resolve_featurizer)")
        if engine not in ("pool", "data"):
            raise ValueError(f"engine must be 'pool' or 'data', not {engine!r}")
        self.ray_config = ray_config
        self.config = config.model_copy(update={"threads": ray_config.cpus_per_actor})
        self.proxy = proxy
        self.max_length = max_length
        self.engine = engine
        self._pool = None

    def constructor(self) -> dict:
        """FeaturizeActor's arguments: the driver's resolved config, so every actor makes the same features."""
        return {"proxy": self.proxy, "config": self.config.model_dump(), "max_length": self.max_length,
                "threads": self.ray_config.cpus_per_actor}

    def pool(self, actor=None, constructor: dict | None = None):
        """The long-lived actor pool (`pool.py`), made on first use (its actors start at the first batch)."""
        if self._pool is None:
            from prism_agent.distributed.pool import FeaturizerPool

            self._pool = FeaturizerPool(self.ray_config, actor or FeaturizeActor,
                                        (constructor or {}) if actor is not None else self.constructor())
        return self._pool

    def close(self) -> None:
        """End the pool's actors, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _map_args(self) -> dict:
        import ray.data

        rc = self.ray_config
        # one batch in flight per actor: Ray Data's default queues several on the first actor that is ready,
        # and with compute-bound batches the others, still loading the proxy, then get none of them
        pool = ray.data.ActorPoolStrategy(size=rc.actors, max_tasks_in_flight_per_actor=1)
        args = {"compute": pool, "batch_size": rc.batch_size,
                "batch_format": "numpy", "num_cpus": rc.cpus_per_actor}
        if rc.gpus_per_actor:
            args["num_gpus"] = rc.gpus_per_actor
        return args

    def _dataset(self, pairs: Sequence[tuple[str, str]]):
        import ray.data

        items = [{"pos": i, "prompt": p, "response": r} for i, (p, r) in enumerate(pairs)]
        blocks = max(1, math.ceil(len(items) / self.ray_config.batch_size))  # one batch per block: even spread
        return ray.data.from_items(items, override_num_blocks=blocks)

    def batches(self, pairs: Sequence[tuple[str, str]], actor=None, constructor: dict | None = None):
        """The result batches of featurizing `pairs`, as they finish (any order). `actor`/`constructor`: another
        actor class (the bench's no-op); with the pool engine they apply to the pool's first creation only."""
        if self.engine == "pool":
            yield from self.pool(actor, constructor).batches(pairs)
            return
        if actor is None:
            actor, constructor = FeaturizeActor, self.constructor()
        ds = self._dataset(pairs).map_batches(actor, fn_constructor_kwargs=constructor or {}, **self._map_args())
        try:
            yield from ds.iter_batches(batch_size=None, batch_format="numpy")
        except PrismError:
            raise
        except Exception as exc:  # a Ray task error wraps the worker's traceback: one line for the user
            text = str(exc).strip().splitlines()
            cause = next((line for line in reversed(text) if line.strip()), type(exc).__name__)
            raise PrismError(f"featurization on Ray failed: {cause.strip()}") from exc

    def chunks(self, pairs: Sequence[tuple[str, str]], size: int) -> Iterator[Chunk]:
        """`pairs` featurized, in order, `size` rows per chunk (the last may be shorter)."""
        if not pairs:
            return
        yield from ordered(self.batches(pairs), len(pairs), size)

    def featurize_rows(self, rows: Sequence[dict]) -> tuple[np.ndarray, list[int]]:
        """As the local `loop.steps._featurize`: features of the rows that fit the proxy, and their indices."""
        if not rows:
            return np.zeros((0, self.config.dim), dtype=np.float32), []
        chunk = next(self.chunks([(r["prompt"], r.get("response", "")) for r in rows], len(rows)))
        kept = chunk.kept
        return chunk.feats[kept], kept

    def row_chunks(self, rows: Sequence[dict], size: int) -> Iterator[tuple[list[dict], np.ndarray, list[int], float]]:
        """Run rows (seeds) in chunks of `size`: (rows, features of the kept ones, kept indices, seconds since
        the previous chunk), in order."""
        last = time.perf_counter()
        for chunk in self.chunks([(r["prompt"], r.get("response", "")) for r in rows], size):
            part = list(rows[chunk.start: chunk.start + len(chunk.status)])
            kept = chunk.kept
            now = time.perf_counter()
            yield part, chunk.feats[kept], kept, now - last
            last = now
