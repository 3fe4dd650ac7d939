"""The LM head of the fast featurizer, done by hand in row chunks: loss gradient, δ for the body, head block.

Only the gradient of the loss is needed, never its value: for a response position t of sample b,
∂loss/∂z_t = (softmax(z_t) − onehot(y_t)) / |response_b|. Computing that directly, a few hundred rows at a
time, replaces autograd's chain (bf16 logits → fp32 copy → log-softmax → NLL → their backward → bf16
grad), which made six full passes over an N × V fp32 tensor (V = 49,152 for SmolLM2): measured, the head
took a fifth of the featurizer's time on math samples, most of it memory traffic. The numerics are those
of the autograd route: logits in the compute dtype, softmax in fp32, the gradient rounded once to the
compute dtype before both products that use it.
"""

from __future__ import annotations

import torch

CHUNK_ROWS = 256  # a (256, V) fp32 block is 50 MB for V = 49,152: large GEMMs, bounded memory


class ChunkedHead:
    """∂loss/∂hidden at the response positions, and the head's projected per-sample block."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, p_in: torch.Tensor, p_out: torch.Tensor,
                 cdtype: torch.dtype):
        self.w = weight.detach().to(cdtype)  # (V, H), cast once instead of once per batch
        self.b = None if bias is None else bias.detach().to(cdtype)
        self.p_in, self.p_out, self.cdtype = p_in, p_out, cdtype

    def backward(self, hidden: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor, rows: torch.Tensor,
                 acc: torch.Tensor, offset: int) -> torch.Tensor:
        """Gradient wrt `hidden` (N, H) for loss Σ_n scale_n·CE(head(hidden_n), targets_n).

        Adds Σ_n (P_outᵀ g_n)(P_inᵀ h_n)ᵀ (and P_outᵀ g_n for a bias) into acc[rows[n], offset:…], the
        head's block of each row's sample.
        """
        r_out, r_in = self.p_out.shape[1], self.p_in.shape[1]
        grad = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], CHUNK_ROWS):
            sl = slice(start, start + CHUNK_ROWS)
            h = hidden[sl].to(self.cdtype)
            z = torch.nn.functional.linear(h, self.w, self.b)
            g = torch.softmax(z, dim=-1, dtype=torch.float32)
            del z
            n = g.shape[0]
            g[torch.arange(n, device=g.device), targets[sl]] -= 1.0
            g *= scale[sl, None]
            g = g.to(self.cdtype)
            grad[sl] = g @ self.w
            dt = (g @ self.p_out).float()  # (n, r_out)
            xt = (h @ self.p_in).float()  # (n, r_in)
            block = (dt[:, :, None] * xt[:, None, :]).reshape(n, -1)
            acc[:, offset : offset + r_out * r_in].index_add_(0, rows[sl], block)
            if self.b is not None:
                acc[:, offset + r_out * r_in : offset + r_out * (r_in + 1)].index_add_(0, rows[sl], dt)
        return grad
