"""Connecting the driver to Ray: `auto`, `HOST:PORT`, `ray://HOST:PORT`, or a private local instance.

Workers must import the same `prism_agent` as the driver (the featurizer's code decides the features), so the
package folder travels as a `py_modules` entry of the job's runtime environment: a cluster whose nodes have no
prism-agent installed, or an older one, still runs this code. The model and data cache is not shipped: each
node pulls the pinned proxy into its own cache on first use, as a local run does. The environment variables
that steer that (`PRISM_AGENT_*`, `HF_*`) are forwarded when the driver has them set.

Every failure to connect is one `error:` line (a `PrismError`): Ray not installed, no cluster at `auto`, an
address nobody answers at. A plain TCP probe of `HOST:PORT` runs first, since Ray itself retries an
unreachable GCS for a minute before it gives up.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from prism_agent.config.distributed import RayConfig
from prism_agent.errors import BadInputError, PrismError

INSTALL_HINT = "pip install 'prism-agent[ray]'"
_FORWARDED_PREFIXES = ("PRISM_AGENT_", "HF_")


def import_ray():
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # (the featurizer needs Ray Data, the `ray[data]` extra)
    except ImportError as exc:
        raise BadInputError(f"Ray was asked for but is not installed ({exc.name or exc}): {INSTALL_HINT}") from None
    return ray


def runtime_env() -> dict:
    """The job's runtime environment: this `prism_agent` package and the cache-steering variables."""
    import prism_agent

    package = Path(prism_agent.__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}
    return {"py_modules": [str(package)], "excludes": ["__pycache__", "*.pyc"], "env_vars": env}


def probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with the address in the message, when nothing listens at HOST:PORT."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PrismError(f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head` "
                         "there, or use --ray local") from None


@dataclass
class RaySession:
    """One connection of this process to Ray. `close()` disconnects only what `open()` connected: a Ray
    already initialized by the caller (a notebook, a test) is used and left running."""

    config: RayConfig
    owned: bool = False
    resources: dict = field(default_factory=dict)

    @classmethod
    def open(cls, config: RayConfig) -> RaySession:
        ray = import_ray()
        if ray.is_initialized():
            return cls(config, owned=False, resources=ray.cluster_resources())
        address = config.address
        kwargs: dict = {"runtime_env": runtime_env(), "log_to_driver": False, "logging_level": logging.WARNING,
                        "include_dashboard": False, "namespace": "prism-agent"}
        if address == "local":
            kwargs["num_cpus"] = max(os.cpu_count() or 1, config.actors * config.cpus_per_actor)
        else:
            kwargs["address"] = address
            if address != "auto":
                probe(address)
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = "start one with `ray start --head`, or use --ray local" if address == "auto" else "is it running?"
            raise PrismError(f"could not connect to Ray at {address}: {first} ({hint})") from None
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PrismError(f"could not start Ray ({address}): {first}") from None
        _quiet_data()
        return cls(config, owned=True, resources=ray.cluster_resources())

    def close(self) -> None:
        if self.owned:
            import ray

            ray.shutdown()
            self.owned = False


def _quiet_data() -> None:
    """No progress bars or execution banners from Ray Data on the CLI's screen (the dashboard, `--json`)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # e.g. "Progress bars disabled", on every job


def check(config: RayConfig) -> None:
    """Before a run writes anything: Ray is installed, and a cluster answers at the address (`auto`: one was
    started on this machine, as Ray itself finds it; HOST:PORT: something listens there). `local` needs none."""
    import_ray()
    if config.address == "local":
        return
    if config.address != "auto":
        probe(config.address)
        return
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # a Ray whose private helper moved: the connection itself will say
        return
    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError:
        found = None
    except Exception:  # (private API: anything else leaves the check to ray.init)
        return
    if found is None:
        raise PrismError("--ray auto: no Ray cluster was started on this machine; run `ray start --head` first, "
                         "give its address (--ray HOST:PORT), or use --ray local")
