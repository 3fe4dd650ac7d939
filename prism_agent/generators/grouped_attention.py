"""Attention for CPU decoding that reads each key/value head once, whatever the number of query heads.

SmolLM2-135M has 9 query heads sharing 3 key/value heads. transformers' eager attention first copies every
key/value head 3 times (`repeat_kv`), and in a decoding step that copy of the whole KV cache is most of the
attention's cost on a CPU. Here the query heads of a group are stacked instead, so one matmul per
key/value head serves its whole group: the same arithmetic, the same result, no copy.
Registered with transformers' `AttentionInterface` under NAME, with the eager mask format.
"""

from __future__ import annotations

import torch

NAME = "prism_grouped"


def grouped_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0, **_):
    b, heads, q, d = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    group = heads // kv_heads
    qg = query.reshape(b, kv_heads, group * q, d)  # head i uses key/value head i // group, as repeat_kv does
    weights = torch.matmul(qg, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        mask = attention_mask[:, :, :, :length]
        weights = (weights.view(b, kv_heads, group, q, length) + mask.unsqueeze(2)).view(b, kv_heads, group * q,
                                                                                          length)
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights, value).view(b, heads, q, d)
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make NAME available to `model.set_attn_implementation` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(NAME, grouped_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, eager_mask)
    return NAME
