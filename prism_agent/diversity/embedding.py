"""Sentence-embedding baseline: the Vendi score of all-MiniLM-L6-v2 embeddings (semantic diversity).

The paper contrasts this with G-Vendi; both are cosine-kernel Vendi scores, over different features.
The model is the sentence-transformers checkpoint (mean pooling, L2 normalisation, 256-token limit),
run with plain transformers so that sentence-transformers is not needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from prism_agent.diversity.vendi import VendiResult, vendi
from prism_agent.models.pull import Step, ensure
from prism_agent.models.registry import DEFAULT_EMBEDDER


class SentenceEmbedder:
    max_length = 256

    def __init__(self, name: str = DEFAULT_EMBEDDER, *, device: str = "cpu", step: Step | None = None):
        from transformers import AutoModel, AutoTokenizer

        folder = ensure(name, step=step)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).to(device).eval()
        self.device = device

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) unit-norm float32 embeddings."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()

    def embed_stream(self, texts: Iterable[str], batch: int = 64) -> Iterator[np.ndarray]:
        buf: list[str] = []
        for t in texts:
            buf.append(t)
            if len(buf) == batch:
                yield self.embed(buf)
                buf = []
        if buf:
            yield self.embed(buf)


def embedding_vendi(texts: Iterable[str], embedder: SentenceEmbedder | None = None) -> VendiResult:
    embedder = embedder or SentenceEmbedder()
    return vendi(embedder.embed_stream(texts), dim=384)
