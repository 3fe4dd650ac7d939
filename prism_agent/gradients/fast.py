"""Fast featurizer: Kronecker-structured gradient projection from one batched pass (LoGra).

For a linear layer y = x·Wᵀ, a sample's weight gradient is Σ_t δ_t x_tᵀ. Projecting it with
P_outᵀ ⊗ P_inᵀ gives Σ_t (P_outᵀ δ_t)(P_inᵀ x_t)ᵀ, an r_out×r_in block computed from the layer's input
(forward hook) and output gradient (tensor hook) without forming the full gradient. Why it is fast:
- weights are frozen, so backward computes activation gradients only (no weight-gradient GEMMs);
- the per-sample loss is a sum over samples, and samples never attend to each other, so one batched
  backward yields every sample's own δ_t; batches are right-padded and run without a padding mask (the
  causal mask alone keeps real positions from seeing padding), so attention uses its causal kernels;
- the LM head is done by hand at response positions only (`fast_head`: the softmax gradient in row
  chunks, never the loss value), RMSNorm by a function whose backward also yields each sample's weight
  gradient (`fast_norm`), rotary tables in the compute dtype, and on CPU short batches run attention in
  fp32, where PyTorch's bf16 backward is slower (`attention`);
- the final projection takes 128 rows at a time.
Each step was measured side by side; BENCHMARKS.md has the figures.

Parameters outside linear layers are handled too: RMSNorm weights exactly (Σ_t δ_t ⊙ x̂_t, H values),
linear biases (P_outᵀ Σ_t δ_t), and a tied embedding/LM-head matrix, whose gradient is the sum of the
head's part and the embedding's scatter part Σ_t e_{id_t} g_tᵀ, projected with the head's own P_out and
P_in so both parts land in one block. A model with any other parameter is refused (use `exact`).
The concatenated blocks (norm-preserving in expectation) go through a final Rademacher projection to d.
While a featurizer is open it changes its proxy (hooks, norm forwards, attention implementation);
`close()` restores it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.errors import BadInputError
from prism_agent.gradients import attention
from prism_agent.gradients.base import DTYPES, Featurizer
from prism_agent.gradients.batching import Batch, collate, plan_batches
from prism_agent.gradients.fast_head import ChunkedHead
from prism_agent.gradients.fast_norm import sample_grad_forward
from prism_agent.gradients.projection import RademacherProjector
from prism_agent.gradients.proxy import Proxy
from prism_agent.gradients.render import Encoded

# Rows projected together by the final Rademacher projection: its signs are regenerated per call and a
# GEMM with a few rows runs far below peak (measured 19.5 ms for 28 rows × 16384 × 1024, where 128 rows
# take about 4× the work at GEMM speed). 128 rows of pre_dim = 251,200 floats (SmolLM2) hold 129 MB.
PROJECT_ROWS = 128


def _is_rmsnorm(m: nn.Module) -> bool:
    w = getattr(m, "weight", None)
    return (isinstance(w, nn.Parameter) and w.dim() == 1 and getattr(m, "bias", None) is None
            and hasattr(m, "variance_epsilon"))


@dataclass
class _Linear:
    name: str
    module: nn.Linear
    offset: int  # start of the r_out·r_in block (then r_out for the bias, if any)
    p_in: torch.Tensor  # (in_features, r_in), entries ±1/√r_in
    p_out: torch.Tensor  # (out_features, r_out)


class _Context:
    """Per-batch tensors the hooks read and the accumulator they write."""

    def __init__(self, acc: torch.Tensor, mask: torch.Tensor):
        self.acc = acc  # (B, pre_dim) float32
        self.mask = mask  # (B, T, 1) float32 attention mask


class FastFeaturizer(Featurizer):
    def __init__(self, proxy: Proxy, config: FeaturizerConfig):
        super().__init__(proxy, config)
        model = proxy.model
        for p in model.parameters():
            p.requires_grad_(False)
        config = self.config  # with its dtype resolved
        self.cdtype = DTYPES[config.dtype]
        self.decoder = getattr(model, model.base_model_prefix)
        self.embedding = model.get_input_embeddings()
        self.head = model.get_output_embeddings()
        if not isinstance(self.head, nn.Linear):
            raise BadInputError("fast featurizer needs a linear LM head; use --featurizer exact")
        self.tied = self.head.weight is self.embedding.weight
        r_in, r_out = config.rank_in, config.rank_out

        def side(n: int, r: int, stream: str) -> torch.Tensor:
            proj = RademacherProjector(n, r, config.seed, stream=stream, dtype=torch.float32, device=self.device)
            return (proj.dense() / math.sqrt(r)).to(self.cdtype)

        offset = 0
        self.linears: list[_Linear] = []
        covered: set[int] = set()
        for name, m in model.named_modules():
            if isinstance(m, nn.Linear):
                lin = _Linear(name, m, offset, side(m.in_features, r_in, f"{name}/in"),
                              side(m.out_features, r_out, f"{name}/out"))
                self.linears.append(lin)
                offset += r_out * r_in + (r_out if m.bias is not None else 0)
                covered.update({id(m.weight)} | ({id(m.bias)} if m.bias is not None else set()))
        self.norms: list[tuple[nn.Module, int]] = []
        for _name, m in model.named_modules():
            if _is_rmsnorm(m):
                self.norms.append((m, offset))
                offset += m.weight.numel()
                covered.add(id(m.weight))
        head_lin = next(lin for lin in self.linears if lin.module is self.head)
        if self.tied:  # the embedding's part lands in the head's block, projected by the head's P_out, P_in
            self.emb_offset, self.emb_p_out, self.emb_p_in = head_lin.offset, head_lin.p_out, head_lin.p_in
        else:
            w = self.embedding.weight
            self.emb_offset = offset
            self.emb_p_out = side(w.shape[0], r_out, "embedding/out")
            self.emb_p_in = side(w.shape[1], r_in, "embedding/in")
            offset += r_out * r_in
        covered.add(id(self.embedding.weight))
        missing = [n for n, p in model.named_parameters() if id(p) not in covered]
        if missing:
            raise BadInputError(f"fast featurizer cannot project parameter {missing[0]!r} "
                                f"({len(missing)} unsupported); use --featurizer exact")
        self.pre_dim = offset
        self.final = RademacherProjector(offset, config.dim, config.seed, stream="fast/final",
                                         dtype=torch.float32, device=self.device)
        self._ctx: _Context | None = None
        self.head_offset = head_lin.offset
        self.chunked_head = ChunkedHead(self.head.weight, self.head.bias, head_lin.p_in, head_lin.p_out, self.cdtype)
        self._handles = [lin.module.register_forward_hook(self._linear_hook(lin)) for lin in self.linears
                         if lin.module is not self.head]  # the head is done by hand (fast_head)
        for m, off in self.norms:  # an instance attribute shadows the class's forward until close()
            m.forward = self._norm_forward(m, off)
        rotary = getattr(self.decoder, "rotary_emb", None)
        if rotary is not None and self.cdtype != torch.float32:
            self._handles.append(rotary.register_forward_hook(self._rotary_in_compute_dtype))
        self._attn_before = model.config._attn_implementation
        if self._attn_before == "sdpa" and self.device.type == "cpu" and self.cdtype != torch.float32:
            model.set_attn_implementation(attention.register())

    # ------------------------------------------------------------------ hooks
    def _rotary_in_compute_dtype(self, _mod, _inputs, output):
        """cos and sin in the compute dtype: q and k leave their projections in it, and with fp32 tables the
        rotation promoted them to fp32 (then cast back for attention), doubling its memory traffic."""
        return tuple(t.to(self.cdtype) for t in output)

    def _linear_hook(self, lin: _Linear):
        r_in, r_out = self.config.rank_in, self.config.rank_out
        has_bias = lin.module.bias is not None

        def forward_hook(_mod, inputs, output):
            ctx = self._ctx
            if ctx is None or not output.requires_grad:
                return
            # Padding is masked on the input side only: a padded position's x̃ is 0, so its δ (0 anyway:
            # nothing real attends to it and it has no loss) cannot reach the block.
            with torch.no_grad():  # x̃ is a constant of the backward hook: no graph for it
                xt = (inputs[0].to(self.cdtype) @ lin.p_in).float() * ctx.mask

            def backward_hook(grad):
                dt = (grad.to(self.cdtype) @ lin.p_out).float()
                block = torch.bmm(dt.transpose(1, 2), xt).reshape(dt.shape[0], -1)
                ctx.acc[:, lin.offset : lin.offset + r_out * r_in] += block
                if has_bias:
                    ctx.acc[:, lin.offset + r_out * r_in : lin.offset + r_out * (r_in + 1)] += (dt * ctx.mask).sum(1)

            output.register_hook(backward_hook)

        return forward_hook

    def _norm_forward(self, norm: nn.Module, offset: int):
        """The norm's forward while a batch is featurized: its backward writes the per-sample weight block."""
        size = norm.weight.numel()
        original = type(norm).forward.__get__(norm)

        def sink(dw: torch.Tensor) -> None:
            self._ctx.acc[:, offset : offset + size] += dw

        patched = sample_grad_forward(norm, sink)

        def forward(hidden_states: torch.Tensor) -> torch.Tensor:
            return patched(hidden_states) if self._ctx is not None and torch.is_grad_enabled() else original(
                hidden_states)

        return forward

    # ------------------------------------------------------------------ passes
    def _batch_features(self, batch: Batch) -> torch.Tensor:
        """(B, pre_dim) projected per-sample gradients for one padded batch."""
        dev = self.device
        ids = batch.input_ids.to(dev)
        att = batch.attention_mask.to(dev)
        tmask = batch.target_mask.to(dev) > 0
        b_idx, t_idx = tmask.nonzero(as_tuple=True)
        counts = tmask.sum(1).float()
        acc = torch.zeros(ids.shape[0], self.pre_dim, dtype=torch.float32, device=dev)
        self._ctx = _Context(acc, att[:, :, None].float())
        try:
            with torch.autocast(dev.type, dtype=self.cdtype, enabled=self.cdtype != torch.float32):
                embeds = self.embedding(ids).detach().requires_grad_(True)
                # No padding mask: batches are right-padded, so under the causal mask no real position sees a
                # padded one, and a padded position gets δ = 0 (nothing real depends on it, it has no loss).
                # Left out, the mask lets attention use its causal kernels, which skip the upper triangle.
                hidden = self.decoder(inputs_embeds=embeds).last_hidden_state
            sel = hidden[b_idx, t_idx]  # (N, H): response positions only, the head's only rows with a loss
            grad_sel = self.chunked_head.backward(sel.detach(), ids[b_idx, t_idx + 1], 1.0 / counts[b_idx], b_idx,
                                                  acc, self.head_offset)
            (g_emb,) = torch.autograd.grad(sel, embeds, grad_outputs=grad_sel.to(sel.dtype))
            g_in = (g_emb.to(self.cdtype) @ self.emb_p_in).float() * self._ctx.mask
            p_out = self.emb_p_out[ids].float()  # rows of P_out at the token ids (the scatter part)
            pad_idx = getattr(self.embedding, "padding_idx", None)
            if pad_idx is not None:  # nn.Embedding gives its padding row no gradient, even for real tokens
                p_out = p_out * (ids != pad_idx)[:, :, None]
            r = self.config.rank_out * self.config.rank_in
            acc[:, self.emb_offset : self.emb_offset + r] += torch.einsum("bto,bti->boi", p_out, g_in).reshape(
                ids.shape[0], -1)
        finally:
            self._ctx = None
        return acc

    def featurize(self, encoded: Sequence[Encoded]) -> np.ndarray:
        out = np.empty((len(encoded), self.dim), dtype=np.float32)
        lengths = [len(e) for e in encoded]
        pending: list[tuple[list[int], torch.Tensor]] = []

        def flush() -> None:
            rows = torch.cat([pre for _, pre in pending])
            out[[i for positions, _ in pending for i in positions]] = self.final.project(rows).cpu().numpy()
            pending.clear()

        for positions in plan_batches(lengths, self.config.batch_tokens, self.config.max_batch):
            pending.append((positions, self._batch_features(collate(encoded, positions, self.pad_id))))
            if sum(len(p) for p, _ in pending) >= PROJECT_ROWS:
                flush()
        if pending:
            flush()
        return out

    def pre_projection(self, encoded: Sequence[Encoded]) -> np.ndarray:
        """Per-sample blocks before the final projection, in input order (for tests and diagnostics)."""
        out = np.empty((len(encoded), self.pre_dim), dtype=np.float32)
        for positions in plan_batches([len(e) for e in encoded], self.config.batch_tokens, self.config.max_batch):
            out[positions] = self._batch_features(collate(encoded, positions, self.pad_id)).cpu().numpy()
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        for m, _off in self.norms:
            m.__dict__.pop("forward", None)
        if self.proxy.model.config._attn_implementation != self._attn_before:
            self.proxy.model.set_attn_implementation(self._attn_before)
