"""The proxy model whose loss gradients define G-Vendi's feature space.

`spec` is a pinned model name (default: SmolLM2-135M-Instruct, pulled on first use), a local Hugging Face
folder, or a GGUF file. Instruction-tuned proxies matter (METHOD §1): the tokenizer must carry a chat
template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from prism_agent.errors import ModelNotFoundError
from prism_agent.models.pull import Step, ensure
from prism_agent.models.registry import DEFAULT_PROXY, PINNED


@dataclass
class Proxy:
    model: torch.nn.Module
    tokenizer: object
    name: str  # what identifies the weights in feature-store manifests
    max_length: int
    device: torch.device


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotFoundError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


def resolve_proxy_path(spec: str | None, step: Step | None = None) -> tuple[Path, str | None, str]:
    """(folder, gguf file name or None, identity string) for a proxy spec."""
    spec = spec or DEFAULT_PROXY
    if spec in PINNED:
        return ensure(spec, step=step), None, spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"proxy {spec!r}: no such file or folder (or pinned model name)")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelNotFoundError(f"proxy {spec}: a file proxy must be a .gguf model")
        return path.parent, path.name, str(path.resolve())
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"proxy {spec}: folder has no config.json (not a Hugging Face model folder)")
    return path, None, str(path.resolve())


def context_length(folder: Path, gguf: str | None) -> int:
    """The proxy's context window, read from its config without loading weights."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot read the config of proxy {folder}: {str(exc).splitlines()[0]}") from None
    return int(getattr(cfg, "max_position_embeddings", 2048) or 2048)


def load_proxy(spec: str | None = None, *, device: str = "auto", dtype: torch.dtype = torch.float32,
               step: Step | None = None) -> Proxy:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf, identity = resolve_proxy_path(spec, step)
    dev = resolve_device(device)
    kwargs = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"cannot load proxy {spec or DEFAULT_PROXY}: {first}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ModelNotFoundError(f"proxy {identity}: tokenizer has no chat template (use an instruction-tuned model)")
    model.to(dev).eval()  # eval: no dropout, as in the reference
    max_length = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    return Proxy(model=model, tokenizer=tokenizer, name=identity, max_length=max_length, device=dev)
