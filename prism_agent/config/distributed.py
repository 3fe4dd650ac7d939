"""`[ray]`: featurization on a Ray cluster (README "Running on a Ray cluster").

It changes where and how fast features are computed, never their values (the actors use the run's pinned
featurizer config, projection seed and dtype), so the whole table is free to change when a run resumes: a run
started on one machine may continue on a cluster and back.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# `auto` (the cluster this machine belongs to: `ray start` ran here), `local` (start a private one-machine Ray
# for this process), `HOST:PORT` (a head node's GCS address, as `ray start --head` prints it) or a
# `ray://HOST:PORT` client address.
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s:/]+:\d{1,5}|[^\s:/]+:\d{1,5})$")


class RayConfig(BaseModel):
    """Where the featurizer's actor pool runs and how it is shaped. Each actor loads the proxy and the
    featurizer once and featurizes `batch_size` rows per call; `gpus_per_actor` > 0 puts each actor on a GPU
    (one per actor is the usual choice), otherwise actors run on `cpus_per_actor` CPU cores with as many torch
    threads."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    address: str = Field("auto", description="auto | local | HOST:PORT | ray://HOST:PORT")
    actors: int = Field(2, ge=1, le=4096, description="featurizer actors in the pool")
    gpus_per_actor: float = Field(0.0, ge=0.0, le=8.0, description="GPUs per actor (0: CPU actors)")
    cpus_per_actor: int = Field(1, ge=1, le=256, description="CPU cores per actor (torch threads of each actor)")
    # On CPUs a call of 32 rows cost 25–40 % more per row than one of 96 or more (the featurizer's own batch
    # plan and projection blocks fill better), so calls are not made small (BENCHMARKS.md "Ray featurization").
    batch_size: int = Field(64, ge=1, le=65536, description="rows per map_batches call")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS.match(value.strip()):
            raise ValueError(f"{value!r} is not a Ray address; expected auto, local, HOST:PORT or ray://HOST:PORT")
        return value.strip()

    @field_validator("gpus_per_actor", mode="before")
    @classmethod
    def _gpus(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
