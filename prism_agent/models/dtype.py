"""Which floating-point type the embedded models compute in: bf16 where the hardware runs it natively, fp32
elsewhere.

bf16 is only fast with native kernels. Measured (BENCHMARKS.md, "Compute dtype"): on CPUs with AVX512-BF16
or AMX a 256×576 @ 576×1536 matmul runs 2.3–4.7× faster in bf16 than in fp32, while on an AVX2-only CPU it
runs ≈40× slower (0.9 vs 38 GFLOP/s), and the whole embedded default with it. So `dtype = "auto"` (the
default of the featurizer and of the `local` and `vllm` backends) decides by capability:

- CUDA: bf16 where `torch.cuda.is_bf16_supported()` (Ampere and newer), else fp32;
- CPU: bf16 where the processor has AMX-BF16 or AVX512-BF16 (torch's own probe, else /proc/cpuinfo's flags),
  else fp32.

Capability rather than a timed micro-benchmark: a benchmark on a shared, noisy machine can flip between two
runs (and two runs of one job must agree), while the flags are fixed. `PRISM_AGENT_NATIVE_BF16=0|1`
overrides the detection (tests, or a machine whose flags lie); an explicit dtype in the config still wins
over both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

NATIVE_BF16_ENV = "PRISM_AGENT_NATIVE_BF16"
DTYPE_NAMES = ("bfloat16", "float32")
TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
# What bf16 costs without native kernels, measured on an AVX2-only EPYC (BENCHMARKS.md): a single matmul
# ≈40× slower, `measure` on 16 rows 9.7× slower end to end.
SLOWDOWN_WITHOUT_NATIVE_BF16 = "≈10–40×"


@dataclass(frozen=True)
class DtypeChoice:
    """A resolved dtype and the one-line reason shown to the user (run header, `measure`, `backends check`)."""

    name: str  # "bfloat16" | "float32"
    reason: str

    @property
    def torch(self) -> torch.dtype:
        return TORCH_DTYPES[self.name]

    def as_json(self) -> dict:
        return {"dtype": self.name, "dtype_reason": self.reason}


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@lru_cache(maxsize=1)
def _cpu_bf16_feature() -> str | None:
    """The CPU feature that gives native bf16 matmuls ("amx_bf16", "avx512_bf16"), or None."""
    probes = (("amx_bf16", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported"))
    for flag, probe in probes:  # torch's own probe (private, so guarded); the kernel's flags as a fallback
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return flag
        except Exception:
            pass
    flags = _cpu_flags()
    return next((flag for flag, _ in probes if flag in flags), None)


def cpu_capability() -> str:
    """torch's name for the widest vector ISA its CPU kernels use here (AVX2, AVX512, …)."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        return "unknown"


def _device(device: torch.device | str) -> torch.device:
    if device == "auto":  # the same rule as the proxy's and the backends' device "auto"
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def native_bf16(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """(whether `device` computes bf16 natively, why) — the why names the feature or the override."""
    override = os.environ.get(NATIVE_BF16_ENV, "").strip().lower()
    if override in ("0", "1", "false", "true", "no", "yes"):
        yes = override in ("1", "true", "yes")
        return yes, f"{NATIVE_BF16_ENV}={override} (detection overridden)"
    if override:
        from prism_agent.errors import BadInputError

        raise BadInputError(f"{NATIVE_BF16_ENV}={override!r}: expected 0 or 1 (or unset to detect)")
    dev = _device(device)
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "this GPU supports bf16" if ok else "this GPU has no bf16 support"
    feature = _cpu_bf16_feature()
    if feature:
        return True, f"this CPU has {feature}"
    return False, f"no native bf16 on this CPU ({cpu_capability()} only)"


def resolve_dtype(requested: str, device: torch.device | str = "cpu") -> DtypeChoice:
    """`auto` → bf16 where native, else fp32; an explicit name is kept (and says so)."""
    if requested != "auto":
        if requested not in DTYPE_NAMES:
            from prism_agent.errors import BadInputError

            raise BadInputError(f"dtype {requested!r}: expected auto, {' or '.join(DTYPE_NAMES)}")
        return DtypeChoice(requested, "set explicitly")
    ok, why = native_bf16(device)
    return DtypeChoice("bfloat16", f"auto: {why}") if ok else DtypeChoice("float32", f"auto: {why}")


def backend_dtype(requested: str, device: torch.device | str = "auto", *, engine: str = "local") -> DtypeChoice:
    """An embedded backend's dtype. As `resolve_dtype`, except that vLLM on a GPU without bf16 gets float16
    (its kernels' native half type there) and an explicit float16 is passed through to vLLM."""
    if requested == "float16":
        return DtypeChoice("float16", "set explicitly")
    choice = resolve_dtype(requested, device)
    if engine == "vllm" and requested == "auto" and choice.name == "float32" and _device(device).type == "cuda":
        return DtypeChoice("float16", choice.reason)
    return choice


def slow_dtype_note(name: str, device: torch.device | str = "cpu") -> str | None:
    """A one-line warning when `name` is bf16 and `device` has no native bf16 (None otherwise)."""
    if name != "bfloat16":
        return None
    ok, why = native_bf16(device)
    if ok:
        return None
    return f"bfloat16 without native support here ({why}): expect it {SLOWDOWN_WITHOUT_NATIVE_BF16} slower than float32"
