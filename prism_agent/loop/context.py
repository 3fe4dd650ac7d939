"""Everything a round needs, built once per run from the run directory.

The loop's runner (`loop/runner.py`) opens a `RunContext` and hands it to the graph as LangGraph's runtime
context (`context_schema`); nodes read it from `runtime.context`, never from a global. The checkpointed
state therefore holds no reference to the process or the path the run was opened under, and a run whose
folder was moved or copied resumes from wherever it now is. The context gives the loaded proxy, the role
backends (behind the run's replay log), the task, the pool and the event log. Heavy parts load lazily, so
`status` and a resume that has nothing left to do stay cheap.

It is a dataclass of (run directory, config) so that LangGraph can describe the graph's context schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from prism_agent.config.run import RunConfig
from prism_agent.run.compute import ComputeDtypes
from prism_agent.run.events import EventLog
from prism_agent.run.manifest import Manifest, open_manifest
from prism_agent.run.paths import RunPaths
from prism_agent.run.pool import Pool


@dataclass(eq=False)
class RunContext:
    """Opening one creates or resumes the run directory `root` (its manifest: a changed config that shapes
    the data is refused unless `allow_config_change`)."""

    root: Path
    cfg: RunConfig
    allow_config_change: bool = field(default=False, kw_only=True)
    # the config's dtypes as `loop.setup.run_config` pinned them, with their reasons ("auto: …"); a caller
    # that built `cfg` another way leaves it None and the dtypes are pinned here
    compute: ComputeDtypes | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        from prism_agent.run.dtypes import pin_dtypes

        self.root = Path(self.root)
        self.paths = RunPaths(self.root)
        if self.compute is None:  # "auto" decided once; a resumed run keeps its own
            self.cfg, self.compute = pin_dtypes(self.paths, self.cfg)
        self.manifest: Manifest = open_manifest(self.paths, self.cfg, allow_config_change=self.allow_config_change)
        self.pool = Pool(self.paths)
        self.events = EventLog(self.paths.events)

    @classmethod
    def open(cls, root: Path, cfg: RunConfig, *, allow_config_change: bool = False,
             compute: ComputeDtypes | None = None) -> RunContext:
        return cls(root, cfg, allow_config_change=allow_config_change, compute=compute)

    @property
    def target(self) -> int:
        return self.manifest.target

    @cached_property
    def task(self):
        from prism_agent.tasks.registry import get_task

        task = get_task(self.cfg.task)
        task.prompts_dir = self.cfg.prompts
        task.check_templates()
        return task

    @cached_property
    def strategy(self):
        """How this run picks few-shot examples and keeps candidates (`loop/strategy.py`), by its graph."""
        from prism_agent.loop.strategy import get_strategy

        return get_strategy(self.cfg.graph)

    @cached_property
    def replay(self):
        from prism_agent.generators import ReplayStore

        return ReplayStore(self.paths.calls)

    @cached_property
    def roles(self):
        from prism_agent.generators import make_role_generators

        return make_role_generators(self.cfg.roles, replay=self.replay, state_dir=self.paths.root)

    @cached_property
    def aio(self):
        """The run's one event loop (`loop/eventloop.py`): the backends' clients and admission limiters are
        made in it once and live as long as the run, not one step."""
        from prism_agent.loop.eventloop import RunLoop

        return RunLoop()

    def run_async(self, coro):
        """Run a step's backend calls on the run's event loop and return their result."""
        return self.aio.run(coro)

    def close(self) -> None:
        """Close the backends' network clients (each shared backend once), then the event loop, and leave the
        Ray cluster if the run connected to it. The loaded models stay (they are shared by the process). A
        later `run_async` opens a new loop (a later featurization, a new Ray connection)."""
        session = self.__dict__.pop("_ray_session", None)
        featurizer = self.__dict__.pop("ray_featurizer", None)
        if featurizer is not None:
            featurizer.close()  # the run's actor pool, before leaving the cluster
        if session is not None:
            session.close()
        if "aio" not in self.__dict__:
            return
        backends = {}
        for g in (self.roles.values() if "roles" in self.__dict__ else ()):
            inner = getattr(g, "inner", g)
            backends[id(inner)] = inner
        self.aio.close([b.aclose for b in backends.values()])

    def usage_since_last(self) -> dict[str, dict]:
        """Per role: model, completion tokens, seconds waiting on the backend and backend requests since the
        last call in this process. Empty before any backend was built. Feeds the per-round `usage` event."""
        if "roles" not in self.__dict__:
            return {}
        mark = self.__dict__.setdefault("_usage_mark", {})
        out = {}
        for role, g in self.roles.items():
            now = (g.tokens, g.busy_s, g.backend_requests)
            before = mark.get(role, (0, 0.0, 0))
            mark[role] = now
            out[role] = {"model": g.model_id, "tokens": now[0] - before[0], "busy_s": round(now[1] - before[1], 3),
                         "calls": now[2] - before[2]}
        return out

    def backend_errors_since_last(self) -> dict[str, dict]:
        """Per backend (roles sharing one count once, keyed "generator+solver"): retries, calls that failed
        for good, and retry reasons since the last call in this process. For status and the dashboard."""
        if "roles" not in self.__dict__:
            return {}
        mark = self.__dict__.setdefault("_errors_mark", {})
        by_backend: dict[int, list[str]] = {}
        inner = {}
        for role, g in self.roles.items():
            b = getattr(g, "inner", g)
            by_backend.setdefault(id(b), []).append(role)
            inner[id(b)] = b
        out = {}
        for key, roles in by_backend.items():
            stats = inner[key].stats()
            name = "+".join(roles)
            before = mark.get(name, (0, 0, {}))
            reasons = {k: v - before[2].get(k, 0) for k, v in stats.reasons.items() if v - before[2].get(k, 0)}
            out[name] = {"retries": stats.retries - before[0], "failures": stats.failures - before[1],
                         "reasons": reasons}
            if stats.endpoints:  # per endpoint URL: requests, failures, failovers, downs (since the last call)
                seen = before[3] if len(before) > 3 else {}
                out[name]["endpoints"] = {url: {k: v - seen.get(url, {}).get(k, 0) for k, v in counts.items()}
                                          for url, counts in stats.endpoints.items()}
            mark[name] = (stats.retries, stats.failures, dict(stats.reasons),
                          {url: dict(c) for url, c in stats.endpoints.items()})
        return out

    @cached_property
    def proxy(self):
        import torch

        from prism_agent.gradients.proxy import load_proxy

        torch.set_num_threads(self.cfg.featurizer.threads)
        return load_proxy(self.cfg.proxy, device=self.cfg.featurizer.device, dtype=torch.float32)

    @cached_property
    def featurizer(self):
        from prism_agent.gradients.base import make_featurizer

        return make_featurizer(self.proxy, self.cfg.featurizer)

    @cached_property
    def ray_featurizer(self):
        """The run's featurizer on a Ray cluster (`distributed/featurize.py`), or None when the run does not ask
        for Ray (`[ray]`, `--ray`). Connecting happens here, at the first featurization, not at open; its actor
        pool (`distributed/pool.py`) is started at that first featurization and kept for every later one (the
        seeds and each round), until `close`."""
        if self.cfg.ray is None:
            return None
        from prism_agent.distributed.featurize import RayFeaturizer
        from prism_agent.distributed.session import RaySession

        self.__dict__["_ray_session"] = RaySession.open(self.cfg.ray)
        return RayFeaturizer(self.cfg.ray, self.cfg.featurizer, proxy=self.cfg.proxy)

    @property
    def proxy_name(self) -> str:
        """What identifies the proxy's weights in the feature store, without loading it when Ray featurizes."""
        if self.cfg.ray is None or "proxy" in self.__dict__:
            return self.proxy.name
        from prism_agent.gradients.proxy import resolve_proxy_path

        return resolve_proxy_path(self.cfg.proxy)[2]

    def feature_store(self):
        from prism_agent.gradients.store import FeatureStore

        meta = {"proxy": self.proxy_name, "featurizer": self.cfg.featurizer.identity(), "run": self.manifest.run_id}
        return FeatureStore.open(self.paths.features, dim=self.cfg.featurizer.dim, meta=meta)

    @cached_property
    def decontaminator(self):
        from prism_agent.decontam.benchmarks import load_all
        from prism_agent.decontam.decontaminator import Decontaminator

        names = list(self.cfg.benchmarks or self.task.benchmarks)
        return Decontaminator(self.task, load_all(names, self.task), self.cfg.decontam_settings(),
                              judge=self.roles["judge"])
