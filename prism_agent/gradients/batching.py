"""Length-sorted, token-budgeted batches with right padding and a response-token loss mask.

Sorting by length before batching keeps padding (wasted compute) small; batches carry the positions of
their samples so features are written back in the original order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from prism_agent.gradients.render import Encoded


@dataclass
class Batch:
    positions: list[int]  # indices into the encoded list
    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    target_mask: torch.Tensor  # (B, T-1) float: 1 where token t+1 is a response token


def plan_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Group positions by ascending length so that each batch's padded size B·T_max ≤ max_tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # ascending order: the newcomer is the longest so far
        if current and ((len(current) + 1) * longest > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def collate(encoded: Sequence[Encoded], positions: list[int], pad_id: int) -> Batch:
    items = [encoded[p] for p in positions]
    width = max(len(e) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(items), width), dtype=torch.long)
    tgt = torch.zeros((len(items), width - 1), dtype=torch.float32)
    for b, e in enumerate(items):
        n = len(e)
        ids[b, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        att[b, :n] = 1
        tgt[b, e.response_start - 1 : n - 1] = 1.0  # logits at t predict token t+1
    return Batch(positions=list(positions), input_ids=ids, attention_mask=att, target_mask=tgt)


def per_sample_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean token cross-entropy over each sample's response tokens: (B,) float32."""
    targets = batch.input_ids[:, 1:].to(logits.device)
    mask = batch.target_mask.to(logits.device)
    lp = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(mask)
    return (lp * mask).sum(1) / mask.sum(1).clamp_min(1.0)
