"""Finding and loading a causal language model: a pinned name, a Hugging Face folder or a GGUF file.

The proxy (gradients/proxy.py), the local backend, and the tokenizer-only users (the vllm backend, the
openai backend's completions mode) all accept the same model specs; this module is the one place that says
what a spec means, checks it, and loads it. Preflight checks a spec with `check_spec` before a run spends
anything, without pulling a pinned model (that is verified when pulled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prism_agent.errors import ModelNotFoundError
from prism_agent.models.pull import Step, ensure
from prism_agent.models.registry import PINNED

if TYPE_CHECKING:
    import torch


def check_spec(spec: str, what: str = "model", *, gguf_ok: bool = True) -> Path | None:
    """The local path `spec` names, or None for a pinned model name; raises ModelNotFoundError naming
    `what` (e.g. "proxy", "roles.solver.model") when it is neither a folder with a config.json nor, where
    `gguf_ok`, a .gguf file."""
    if spec in PINNED:
        return None
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"{what} {spec!r}: no such file or folder, and not a pinned model name "
                                 "(see `prism-agent models list`)")
    if path.is_file():
        if not (gguf_ok and path.suffix.lower() == ".gguf"):
            kind = "a Hugging Face folder or a .gguf file" if gguf_ok else "a Hugging Face folder"
            raise ModelNotFoundError(f"{what} {spec}: expected {kind}")
    elif not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{what} {spec}: folder has no config.json (not a Hugging Face model folder)")
    return path


def resolve_model(spec: str, what: str = "model", *, step: Step | None = None) -> tuple[Path, str | None, str]:
    """(folder, GGUF file name in it or None, identity string) for a model spec; a pinned model is pulled on
    first use. The identity is what feature-store manifests and call logs record: the pinned name, or the
    resolved path."""
    path = check_spec(spec, what)
    if path is None:
        return ensure(spec, step=step), None, spec
    if path.is_file():
        return path.parent, path.name, str(path.resolve())
    return path, None, str(path.resolve())


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotFoundError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


def context_length(folder: Path, gguf: str | None) -> int:
    """The model's context window, read from its config without loading weights."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot read the config of {folder}: {str(exc).splitlines()[0]}") from None
    return int(getattr(cfg, "max_position_embeddings", 2048) or 2048)


def load_tokenizer(spec: str, what: str = "model", *, step: Step | None = None):
    """The tokenizer of a model spec alone (chat templates for the openai backend's completions mode)."""
    from transformers import AutoTokenizer

    folder, gguf, _ = resolve_model(spec, what, step=step)
    return AutoTokenizer.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {}))


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    identity: str  # what identifies the weights in feature-store manifests
    folder: Path
    gguf: str | None
    max_length: int
    device: torch.device


def load_causal_lm(spec: str, what: str = "model", *, device: str = "auto", dtype: torch.dtype | None = None,
                   step: Step | None = None) -> LoadedModel:
    """Weights and tokenizer on `device`, in eval mode (no dropout). The tokenizer must carry a chat
    template: every caller renders chat messages, and an untuned base model has none."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf, identity = resolve_model(spec, what, step=step)
    dev = resolve_device(device)
    kwargs = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"cannot load {what} {spec}: {first}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ModelNotFoundError(f"{what} {identity}: tokenizer has no chat template (use an instruction-tuned model)")
    model.to(dev).eval()
    max_length = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    return LoadedModel(model, tokenizer, identity, folder, gguf, max_length, dev)
