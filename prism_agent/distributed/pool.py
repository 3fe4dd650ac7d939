"""A featurizer actor pool that lives as long as the run (README "Running on a Ray cluster", ARCHITECTURE.md).

Ray Data builds a map's actor pool for one dataset and tears it down at the end (Ray 2.60 has no way to hand a
`map_batches` existing actors), so every Ray Data job starts its actors and loads the proxy in each: ≈ 4.5 s on
a quiet 2-core machine, 6–14 s under load (BENCHMARKS.md "Ray featurization"). A run featurizes its seeds and
then a few hundred candidates per round, so that start cost came back every round and ate the gain of the
second core. Here the actors are plain Ray Core actors created once, at the run's first featurization, and
kept until the run's context closes: each round's rows go to actors that already hold the proxy.

Dispatch is one batch in flight per loaded actor: an actor that finishes gets the next batch, so a slow or
restarted actor holds up one batch, not a queue, and an actor still loading holds none. A job of n rows is cut
into at least as many batches as there are actors (up to `batch_size` rows each), so a small round keeps
every actor busy.

Faults: the actors are created with `max_restarts=-1` and `max_task_retries=-1`, so an actor whose worker or
node dies is restarted (on another node when its own is gone: `SPREAD` scheduling, the same resources) and
the batch it held is submitted to it again; each batch's result reaches the driver once. An error raised by
the featurizer itself is not retried: it ends the job as one `error:` line. An actor that cannot load (a
missing model) is not restarted (Ray restarts dead processes, not constructors that raise): the pool's wait
for it to load ends the job with the loader's error. The caller (`featurize.ordered`) still checks that every
position came back exactly once before anything is committed.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence

from prism_agent.config.distributed import RayConfig
from prism_agent.errors import PrismError


def batch_bounds(n: int, batch_size: int, actors: int) -> list[tuple[int, int]]:
    """[start, end) of each batch of a job of `n` rows: at most `batch_size` rows each, and a number of batches
    that is a multiple of the actors (when n allows), as even as possible, so no actor idles at the end of a
    small job while another works through a second batch."""
    if n <= 0:
        return []
    count = math.ceil(n / batch_size)
    count = min(n, math.ceil(count / actors) * actors)
    size, extra = divmod(n, count)
    bounds, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def _one_line(exc: BaseException) -> str:
    """The last non-empty line of a Ray error (it wraps the worker's traceback): the cause, for the user."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return text[-1] if text else type(exc).__name__


class FeaturizerPool:
    """`ray_config.actors` Ray Core actors of `actor_cls` (`featurize.FeaturizeActor`, or the bench's no-op),
    built with `constructor`, started at the first use and kept until `close()`.

    Batches go only to actors that have loaded: one still loading (or one the cluster has no room for: more
    actors asked for than it can place) holds no batch, so the others take its share instead of the job
    waiting on it. A cluster with no node that can hold an actor is an error, not a wait."""

    def __init__(self, ray_config: RayConfig, actor_cls, constructor: dict):
        self.ray_config = ray_config
        self.actor_cls = actor_cls
        self.constructor = constructor
        self.actors: list = []
        self._loaded: list = []  # actors whose constructor has returned, in the order they did
        self._loading: dict = {}  # ready() reference → actor, for the actors still loading

    def start(self) -> float:
        """Create the actors (if not yet) and wait until each has loaded; returns the seconds waited. Optional:
        `batches` starts them too."""
        t0 = time.perf_counter()
        self._create()
        while self._loading:
            self._wait_loaded(list(self._loading))
        return time.perf_counter() - t0

    def _create(self) -> None:
        if self.actors:
            return
        import ray

        rc = self.ray_config
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if not any(n.get("CPU", 0) >= rc.cpus_per_actor and n.get("GPU", 0) >= rc.gpus_per_actor for n in nodes):
            most = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
            raise PrismError(f"no node of the Ray cluster can hold a featurizer actor ({rc.cpus_per_actor} CPUs, "
                             f"{rc.gpus_per_actor:g} GPUs: [ray] cpus_per_actor, gpus_per_actor); the largest has "
                             f"{most.get('CPU', 0):g} CPUs and {most.get('GPU', 0):g} GPUs")
        remote = ray.remote(self.actor_cls).options(
            num_cpus=rc.cpus_per_actor, num_gpus=rc.gpus_per_actor or 0, max_restarts=-1, max_task_retries=-1,
            scheduling_strategy="SPREAD")
        self.actors = [remote.remote(**self.constructor) for _ in range(rc.actors)]
        self._loading = {a.ready.remote(): a for a in self.actors}

    def _wait_loaded(self, refs: list):
        """Wait for one of `refs` (results or ready() calls); an actor that finished loading joins `_loaded`.
        Returns the reference that finished."""
        import ray

        (ref,), _ = ray.wait(refs, num_returns=1)
        if ref in self._loading:
            try:
                ray.get(ref)
            except ray.exceptions.RayError as exc:  # a constructor that raised: the same on every actor
                raise PrismError(f"featurization on Ray failed: {_one_line(exc)}") from exc
            self._loaded.append(self._loading.pop(ref))
        return ref

    def batches(self, pairs: Sequence[tuple[str, str]]) -> Iterator[dict]:
        """Result batches ({pos, status, feat}) of featurizing `pairs`, as they finish (any order)."""
        import ray

        self._create()
        todo = deque(batch_bounds(len(pairs), self.ray_config.batch_size, len(self.actors)))
        inflight: dict = {}  # result reference → actor
        try:
            while todo or inflight:
                busy = set(inflight.values())
                for actor in [a for a in self._loaded if a not in busy]:
                    if not todo:
                        break
                    start, end = todo.popleft()
                    part = pairs[start:end]
                    batch = {"pos": list(range(start, end)), "prompt": [p for p, _ in part],
                             "response": [r for _, r in part]}
                    inflight[actor.featurize.remote(batch)] = actor
                if not inflight and not self._loading:
                    raise PrismError("featurization on Ray failed: no featurizer actor is left")
                ref = self._wait_loaded(list(inflight) + list(self._loading))
                if ref not in inflight:
                    continue  # an actor finished loading: it gets a batch on the next pass
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise PrismError(f"featurization on Ray failed: {_one_line(exc)}") from exc
                del inflight[ref]
                yield result
        finally:
            for ref in inflight:  # the caller stopped early (an error): queued batches are not worth running
                with contextlib.suppress(Exception):  # (already finished, or the actor is gone)
                    ray.cancel(ref)

    def close(self) -> None:
        """End the actors (no restart). Idempotent; a Ray already shut down has ended them."""
        if not self.actors:
            return
        import ray

        if ray.is_initialized():
            for actor in self.actors:
                with contextlib.suppress(Exception):  # (already dead)
                    ray.kill(actor, no_restart=True)
        self.actors, self._loaded, self._loading = [], [], {}
