"""The proxy model whose loss gradients define G-Vendi's feature space.

`spec` is a pinned model name (default: SmolLM2-135M-Instruct, pulled on first use), a local Hugging Face
folder, or a GGUF file (models/load.py says what a spec means and loads it). The proxy must be
instruction-tuned, so that its tokenizer carries a chat template: each sample is rendered with it as
[user: prompt, assistant: response] before its gradient is taken (README, "Measuring diversity").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from prism_agent.config.defaults import DEFAULT_PROXY
from prism_agent.models.load import load_causal_lm, resolve_model
from prism_agent.models.pull import Step


@dataclass
class Proxy:
    model: torch.nn.Module
    tokenizer: object
    name: str  # what identifies the weights in feature-store manifests
    max_length: int
    device: torch.device


def resolve_proxy_path(spec: str | None, step: Step | None = None) -> tuple[Path, str | None, str]:
    """(folder, gguf file name or None, identity string) for a proxy spec (None: the default proxy)."""
    return resolve_model(spec or DEFAULT_PROXY, "proxy", step=step)


def load_proxy(spec: str | None = None, *, device: str = "auto", dtype: torch.dtype = torch.float32,
               step: Step | None = None) -> Proxy:
    m = load_causal_lm(spec or DEFAULT_PROXY, "proxy", device=device, dtype=dtype, step=step)
    return Proxy(model=m.model, tokenizer=m.tokenizer, name=m.identity, max_length=m.max_length, device=m.device)
