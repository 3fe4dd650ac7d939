"""A run's compute dtypes: decided once, recorded, and shown in its first lines.

The featurizer's dtype shapes the features, so it is part of the run's identity: a new run resolves
`dtype = "auto"` for this machine (`models.dtype`) and its manifest records the result; a resumed run keeps
the dtype it started with, even on a machine where that dtype is slow (it says so, with the expected
slowdown, in one line). Switching is explicit: `--dtype float32 --force-config` (fp32 and bf16 features of the
same rows agree within the fidelity bounds of BENCHMARKS.md, so a pool that mixes them stays usable).

The embedded backends' dtype (`roles.*.dtype`) only changes how fast and, slightly, which tokens a new call
samples; calls already made replay from the call log whatever the dtype. So `auto` is resolved afresh on each
machine, and the field is free to change on resume.
"""

from __future__ import annotations

from prism_agent.config.backends import ROLES, LocalBackendConfig, VLLMBackendConfig
from prism_agent.config.run import RunConfig
from prism_agent.errors import PrismError
from prism_agent.models.dtype import DTYPE_NAMES, DtypeChoice, backend_dtype, slow_dtype_note
from prism_agent.run.compute import ComputeDtypes
from prism_agent.run.manifest import read_manifest
from prism_agent.run.paths import RunPaths

KEPT = "kept from the run's start: it shapes the features"


def _recorded_featurizer_dtype(paths: RunPaths) -> str | None:
    if not paths.manifest.exists():
        return None
    try:
        found = read_manifest(paths)
    except PrismError:
        return None  # preflight reports an unreadable manifest in its own words
    value = (found.config.get("featurizer") or {}).get("dtype")
    return value if value in DTYPE_NAMES else None


def role_dtype(cfg: LocalBackendConfig | VLLMBackendConfig) -> DtypeChoice:
    """An embedded backend's resolved dtype (what its engine loads the model in)."""
    if isinstance(cfg, LocalBackendConfig):
        return backend_dtype(cfg.dtype, cfg.device)
    return backend_dtype(cfg.dtype, "auto", engine="vllm")


def pin_dtypes(paths: RunPaths, cfg: RunConfig) -> tuple[RunConfig, ComputeDtypes]:
    """`cfg` with the featurizer's dtype decided (the recorded one for a run that exists), and what every
    embedded part will compute in, with a note where a kept dtype is slow on this machine."""
    from prism_agent.gradients.base import resolve_featurizer

    notes: list[str] = []
    f = cfg.featurizer
    recorded = _recorded_featurizer_dtype(paths) if f.dtype == "auto" else None
    if recorded is not None:
        choice = DtypeChoice(recorded, KEPT)
        pinned = f.model_copy(update={"dtype": recorded})
        slow = slow_dtype_note(recorded, f.device)
        if slow:
            notes.append(f"note: this run's features are {slow}; it continues in {recorded}. To switch: the same "
                         "command with --dtype float32 --force-config")
    else:
        pinned, choice = resolve_featurizer(f)
        slow = slow_dtype_note(choice.name, f.device) if f.dtype != "auto" else None
        if slow:
            notes.append(f"note: featurizer dtype {slow}")
    roles: dict[str, tuple[str, str]] = {}
    for role in ROLES:
        rc = cfg.roles.of(role)
        if isinstance(rc, LocalBackendConfig | VLLMBackendConfig):
            rchoice = role_dtype(rc)
            roles[role] = (rchoice.name, rchoice.reason)
    cfg = cfg.model_copy(update={"featurizer": pinned})
    return cfg, ComputeDtypes(featurizer=choice.name, featurizer_reason=choice.reason, roles=roles, notes=notes)


def with_dtype(cfg: RunConfig, dtype: str) -> RunConfig:
    """`--dtype`: the featurizer and every embedded backend compute in `dtype` (auto | bfloat16 | float32)."""
    if dtype != "auto" and dtype not in DTYPE_NAMES:
        from prism_agent.errors import BadInputError

        raise BadInputError(f"--dtype {dtype!r}: expected auto, bfloat16 or float32")
    roles = {}
    for role in ROLES:
        rc = cfg.roles.of(role)
        roles[role] = rc.model_copy(update={"dtype": dtype}) if isinstance(
            rc, LocalBackendConfig | VLLMBackendConfig) else rc
    return cfg.model_copy(update={"featurizer": cfg.featurizer.model_copy(update={"dtype": dtype}),
                                  "roles": cfg.roles.model_copy(update=roles)})
