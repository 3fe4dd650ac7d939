"""Stage 2, first half: the single nearest benchmark item of each sample by sentence embedding.

all-MiniLM-L6-v2 (the paper's released code uses multi-qa-MiniLM-L6-cos-v1, which no offline package
carries; both are 384-dimensional MiniLM sentence encoders with cosine similarity). Benchmark embeddings
are computed once per benchmark content and cached as a float32 .npy file; a sample's nearest item is an
exact inner-product search over them (a few thousand to tens of thousands of rows: a matrix product per
batch is exact and fast, no approximate index needed). Embedding is the slow part on a CPU (MiniLM reads
up to 256 tokens a text): ≈20–60 texts/s on 2 cores, so the first run against all math benchmarks spends
minutes on them, later runs none.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from prism_agent.atomic import write_atomic
from prism_agent.decontam.benchmarks import Benchmark, BenchmarkItem, fingerprint
from prism_agent.diversity.embedding import SentenceEmbedder
from prism_agent.models.registry import DEFAULT_EMBEDDER

EMBED_VERSION = 1


def embed_sorted(embedder: SentenceEmbedder, texts: list[str], batch: int) -> np.ndarray:
    """Embeddings in input order, computed in batches of similar length: a batch is padded to its longest
    text, so sorting first saves most of the padding (≈1.5× faster on MATH problems)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        out[idx] = embedder.embed([texts[i] for i in idx])
    return out


class EmbeddingIndex:
    def __init__(self, items: list[BenchmarkItem], vectors: np.ndarray, embedder: SentenceEmbedder, batch: int = 64):
        self.items = items
        self.vectors = vectors
        self.embedder = embedder
        self.batch = batch

    @classmethod
    def cached(cls, benchmarks: list[Benchmark], embedder: SentenceEmbedder, cache_dir: Path, *,
               batch: int = 64, model: str = DEFAULT_EMBEDDER) -> tuple[EmbeddingIndex, bool]:
        items = [it for b in benchmarks for it in b.items]
        key = fingerprint(benchmarks, "embed", EMBED_VERSION, model, embedder.max_length)
        path = cache_dir / f"embed-{key[:32]}.npy"
        if path.is_file():
            try:
                vectors = np.load(path)
                if vectors.shape == (len(items), 384):
                    return cls(items, vectors, embedder, batch), True
            except (ValueError, OSError, EOFError):
                pass  # torn or stale: recompute
        vectors = embed_sorted(embedder, [it.text for it in items], batch)
        cache_dir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, vectors)
        write_atomic(path, lambda fh: fh.write(buf.getvalue()))
        return cls(items, vectors, embedder, batch), False

    def nearest(self, texts: list[str]) -> list[tuple[BenchmarkItem, float]]:
        """(nearest item, cosine similarity) per text."""
        if not texts:
            return []
        queries = embed_sorted(self.embedder, texts, self.batch)
        sims = queries @ self.vectors.T
        best = sims.argmax(axis=1)
        return [(self.items[int(j)], float(sims[i, j])) for i, j in enumerate(best)]
