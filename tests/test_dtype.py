"""The compute dtype follows the hardware: `auto` gives bf16 only where it runs natively.

`PRISM_AGENT_NATIVE_BF16` overrides the detection, so both machines are tested on any one: with 0 (an
AVX2-only CPU) every embedded component must compute in fp32, with 1 (AMX / AVX512-BF16) in bf16. The checks
look at what the real components compute (the dtype of the tensors the model's linear layers produce, the
weights the local engine loaded), not at the config alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from prism_agent.config.backends import LocalBackendConfig
from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.config_files import build_run_config
from prism_agent.errors import BadInputError
from prism_agent.gradients.base import make_featurizer
from prism_agent.gradients.proxy import load_proxy
from prism_agent.gradients.render import encode
from prism_agent.models.dtype import NATIVE_BF16_ENV, backend_dtype, native_bf16, resolve_dtype, slow_dtype_note
from prism_agent.run.dtypes import pin_dtypes, with_dtype
from prism_agent.run.manifest import check_resume, open_manifest
from prism_agent.run.paths import RunPaths


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")


@pytest.fixture
def native(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")


def test_auto_follows_the_override_and_an_explicit_value_wins(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    choice = resolve_dtype("auto", "cpu")
    assert (choice.name, choice.torch) == ("float32", torch.float32)
    assert NATIVE_BF16_ENV in choice.reason
    assert resolve_dtype("bfloat16", "cpu").name == "bfloat16"  # explicit beats detection
    assert "10–40×" in slow_dtype_note("bfloat16", "cpu")
    assert slow_dtype_note("float32", "cpu") is None
    assert backend_dtype("auto", "cpu", engine="vllm").name == "float32"
    assert backend_dtype("float16", "cpu", engine="vllm").name == "float16"
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    assert resolve_dtype("auto", "cpu").name == "bfloat16"
    assert resolve_dtype("float32", "cpu").name == "float32"
    assert slow_dtype_note("bfloat16", "cpu") is None
    monkeypatch.setenv(NATIVE_BF16_ENV, "maybe")
    with pytest.raises(BadInputError, match="expected 0 or 1"):
        resolve_dtype("auto", "cpu")


def test_detection_reads_the_cpu(monkeypatch):
    """Without the override the answer names a CPU feature (or its absence) and matches /proc/cpuinfo."""
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    ok, why = native_bf16("cpu")
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert ok == ("amx_bf16" in flags or "avx512_bf16" in flags)
    assert ("amx_bf16" in why or "avx512_bf16" in why) if ok else "no native bf16" in why


def _linear_output_dtypes(featurizer, proxy, samples) -> set[torch.dtype]:
    seen: set[torch.dtype] = set()
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
               for m in proxy.model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        featurizer.featurize([encode(proxy.tokenizer, p, r, 256) for p, r in samples])
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize(("env", "want"), [("0", torch.float32), ("1", torch.bfloat16)])
def test_every_embedded_component_computes_in_the_resolved_dtype(monkeypatch, tiny_llama_dir, samples, env, want):
    monkeypatch.setenv(NATIVE_BF16_ENV, env)
    proxy = load_proxy(str(tiny_llama_dir), device="cpu", dtype=torch.float32)
    fast = make_featurizer(proxy, FeaturizerConfig())
    assert fast.config.dtype == str(want).removeprefix("torch.")
    assert _linear_output_dtypes(fast, proxy, samples) == {want}  # the layers' matmuls, under autocast or not
    fast.close()
    exact = make_featurizer(proxy, FeaturizerConfig(kind="exact", exact_batch=2))
    assert exact.proj_dtype == want and exact.projector.dtype == want
    exact.close()

    from prism_agent.generators.local import LocalGenerator
    from prism_agent.generators.types import GenRequest

    gen = LocalGenerator(LocalBackendConfig(model=str(tiny_llama_dir), batch_size=4, threads=1))
    request = GenRequest.chat([{"role": "user", "content": "Say hi."}], n=2, temperature=1.0, max_tokens=4, seed=0)
    result = asyncio.run(gen.generate([request]))[0]
    assert len(result.texts) == 2
    assert {p.dtype for p in gen.engine.model.parameters()} == {want}
    assert gen.engine.dtype.name == str(want).removeprefix("torch.")
    assert backend_dtype("auto", "cpu", engine="vllm").torch == want


def _cfg(**over):
    return build_run_config(None, {"task": "nli", "target": 10, **over})


def test_a_new_run_records_the_resolved_featurizer_dtype_and_a_resumed_run_keeps_it(monkeypatch, tmp_path):
    paths = RunPaths(tmp_path / "run")
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")  # started on a machine with native bf16
    cfg, compute = pin_dtypes(paths, _cfg())
    assert cfg.featurizer.dtype == "bfloat16" and compute.featurizer_reason.startswith("auto:")
    assert compute.roles == {r: ("bfloat16", compute.featurizer_reason) for r in ("generator", "solver", "judge")}
    assert compute.header().startswith("compute: featurizer bfloat16 (auto: ")
    assert open_manifest(paths, cfg).config["featurizer"]["dtype"] == "bfloat16"

    monkeypatch.setenv(NATIVE_BF16_ENV, "0")  # resumed on an AVX2-only machine
    again, compute = pin_dtypes(paths, _cfg())
    assert again.featurizer.dtype == "bfloat16"  # the features keep their space
    assert compute.roles["generator"][0] == "float32"  # the backends follow the machine (free field)
    assert len(compute.notes) == 1
    assert "10–40×" in compute.notes[0] and "--dtype float32 --force-config" in compute.notes[0]
    assert check_resume(paths, again) == (check_resume(paths, again)[0], [])  # no config change to refuse

    switched, _ = pin_dtypes(paths, with_dtype(_cfg(), "float32"))
    with pytest.raises(BadInputError, match=r"featurizer\.dtype: \"bfloat16\" → \"float32\""):
        check_resume(paths, switched)
    _, changes = check_resume(paths, switched, force=True)
    assert [c[0] for c in changes] == ["featurizer.dtype"]
    assert open_manifest(paths, switched, allow_config_change=True).config["featurizer"]["dtype"] == "float32"


def test_a_run_started_without_native_bf16_is_float32_everywhere(no_native_bf16, tmp_path):
    cfg, compute = pin_dtypes(RunPaths(tmp_path / "run"), _cfg())
    assert cfg.featurizer.dtype == "float32" and not compute.notes
    assert {name for name, _ in compute.roles.values()} == {"float32"}
    assert "no native bf16" not in compute.header() or NATIVE_BF16_ENV in compute.header()


def test_an_endpoint_role_has_no_dtype(no_native_bf16, tmp_path):
    from prism_agent.config.backends import parse_roles

    cfg = _cfg().model_copy(update={"roles": parse_roles({"generator": {
        "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}})})
    _, compute = pin_dtypes(RunPaths(tmp_path / "run"), cfg)
    assert set(compute.roles) == {"solver", "judge"}
    assert with_dtype(cfg, "bfloat16").roles.generator == cfg.roles.generator
    with pytest.raises(BadInputError, match="--dtype"):
        with_dtype(cfg, "fp8")
