"""The paper's estimator: the full per-sample loss gradient over all parameters, projected to d.

Each sample is run alone (batch size 1, no padding), as in the reference. Gradients of up to
`exact_batch` samples are kept in one (B, P) buffer in the projection dtype so each block of the sign
matrix is generated once per B samples; the projection matrix is a pure function of the seed, so the
features do not depend on B or the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.gradients.base import DTYPES, Featurizer
from prism_agent.gradients.batching import collate, per_sample_loss
from prism_agent.gradients.projection import RademacherProjector
from prism_agent.gradients.proxy import Proxy
from prism_agent.gradients.render import Encoded


class ExactFeaturizer(Featurizer):
    def __init__(self, proxy: Proxy, config: FeaturizerConfig):
        super().__init__(proxy, config)
        config = self.config  # with its dtype resolved
        self.params = [p for p in proxy.model.parameters()]  # unique: tied weights appear once
        for p in self.params:
            p.requires_grad_(True)
        self.num_params = sum(p.numel() for p in self.params)
        self.proj_dtype = DTYPES[config.dtype]
        self.projector = RademacherProjector(
            self.num_params, config.dim, config.seed, stream="exact", dtype=self.proj_dtype, device=self.device
        )

    def _gradient_into(self, row: torch.Tensor, enc: Encoded) -> None:
        model = self.proxy.model
        model.zero_grad(set_to_none=True)
        batch = collate([enc], [0], self.pad_id)
        logits = model(input_ids=batch.input_ids.to(self.device),
                       attention_mask=batch.attention_mask.to(self.device)).logits
        per_sample_loss(logits, batch)[0].backward()
        offset = 0
        for p in self.params:
            n = p.numel()
            if p.grad is None:
                row[offset : offset + n].zero_()
            else:
                row[offset : offset + n].copy_(p.grad.reshape(-1))
            offset += n

    def featurize(self, encoded: Sequence[Encoded]) -> np.ndarray:
        out = np.empty((len(encoded), self.dim), dtype=np.float32)
        step = self.config.exact_batch
        buf = None
        for start in range(0, len(encoded), step):
            chunk = encoded[start : start + step]
            if buf is None or buf.shape[0] < len(chunk):
                buf = torch.empty((len(chunk), self.num_params), dtype=self.proj_dtype, device=self.device)
            for b, enc in enumerate(chunk):
                self._gradient_into(buf[b], enc)
            out[start : start + len(chunk)] = self.projector.project(buf[: len(chunk)]).cpu().numpy()
        self.proxy.model.zero_grad(set_to_none=True)
        return out
