"""Attention for the fast featurizer's backward pass on CPU: fp32 for short sequences, SDPA as is otherwise.

PyTorch's CPU flash-attention backward is slow in bf16 when a batch holds many short rows: measured here
(1 thread, 9 query / 3 key-value heads of 64, causal, forward + backward of one layer call), bf16 took
146 ms on 33 × 110 tokens and fp32 56 ms; at 16 × 250 both took ≈ 100 ms, and from 11 × 331 up bf16 was
as fast or faster (8 × 512: 128 vs 177 ms). NLI samples are ≈ 100 tokens, so their batches run attention in
fp32, which is also the more exact arithmetic; long batches keep bf16. On other devices this is plain SDPA.
Registered with transformers' `AttentionInterface` under NAME, with SDPA's mask format.
"""

from __future__ import annotations

import torch

NAME = "prism_featurize"
FP32_MAX_LENGTH = 256  # query length up to which CPU attention runs in fp32 (the crossover measured above)


def featurize_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.device.type == "cpu" and torch.is_autocast_enabled("cpu") and query.shape[2] <= FP32_MAX_LENGTH:
        with torch.autocast("cpu", enabled=False):  # else autocast casts SDPA's inputs to bf16
            return sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                          **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register() -> str:
    """Make NAME available to `model.set_attn_implementation` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, featurize_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
