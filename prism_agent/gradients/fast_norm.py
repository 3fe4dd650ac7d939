"""RMSNorm with its backward written out, so each sample's weight gradient comes free with the input's.

The fast featurizer needs Σ_t δ_t ⊙ x̂_t per sample for every RMSNorm weight. A tensor hook on the
norm's output recomputed x̂ in backward while autograd ran the norm's own chain of ops (pow, mean, rsqrt
and three products, each with its backward): measured, 28 ms per call on an 11 × 331 × 576 batch against
12 ms for this function, whose backward computes the input gradient dx = r·(δ⊙w − x̂·mean(δ⊙w⊙x̂))
and the per-sample weight gradient from one x̂, in eight passes; its forward is torch's fused RMSNorm.
Semantics are those of Llama-style norms (transformers' LlamaRMSNorm, Qwen2RMSNorm): y = w ⊙ x̂ with
x̂ = x·rsqrt(mean(x²) + ε), computed in fp32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class _SampleGradRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float, sink: Callable[[torch.Tensor], None]):
        if x.dtype == weight.dtype == torch.float32:  # one fused pass (4.2 vs 6.0 ms measured), same values
            y, rstd = torch.ops.aten._fused_rms_norm(x, [x.shape[-1]], weight, eps)
        else:
            xf = x.float()
            rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
            y = weight * (xf * rstd).to(x.dtype)
        ctx.save_for_backward(x, rstd, weight)
        ctx.sink = sink
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, rstd, weight = ctx.saved_tensors
        xhat = x.float() * rstd
        g = grad.float()
        ctx.sink((g * xhat).sum(1))  # (B, H): Σ_t δ_t ⊙ x̂_t for each sample (δ is 0 at padded positions)
        dxhat = g * weight.float()
        dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdim=True))
        return dx.to(x.dtype), None, None, None


def sample_grad_forward(norm: torch.nn.Module, sink: Callable[[torch.Tensor], None]) -> Callable:
    """A replacement `forward` for `norm` that hands each batch's per-sample weight gradients to `sink`
    during backward. The weight itself gets no gradient (the featurizer freezes it)."""

    def forward(hidden_states: torch.Tensor) -> torch.Tensor:
        return _SampleGradRMSNorm.apply(hidden_states, norm.weight, norm.variance_epsilon, sink)

    return forward
