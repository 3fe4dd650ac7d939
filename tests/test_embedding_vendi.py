"""The embedding-Vendi baseline with the real all-MiniLM-L6-v2 (pulled from the package index)."""

from __future__ import annotations

import numpy as np
import pytest
from vendi_score import vendi as ref

from prism_agent.diversity.embedding import SentenceEmbedder, embedding_vendi

pytestmark = pytest.mark.slow

TOPICS = [
    "A man is playing a guitar on the street.",
    "The stock market fell sharply on Monday.",
    "Photosynthesis converts light into chemical energy.",
    "The recipe calls for two cups of flour.",
    "A child is building a sandcastle at the beach.",
    "The committee postponed the vote until next week.",
    "Jupiter is the largest planet in the solar system.",
    "She solved the quadratic equation by factoring.",
    "The train to Boston leaves at seven in the morning.",
    "Regular exercise lowers the risk of heart disease.",
]


@pytest.fixture(scope="module")
def embedder():
    return SentenceEmbedder()


def test_embeddings_are_unit_norm_and_batch_independent(embedder):
    batch = embedder.embed(TOPICS)
    assert batch.shape == (10, 384) and np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    alone = np.stack([embedder.embed([t])[0] for t in TOPICS[:3]])
    assert np.allclose(batch[:3], alone, atol=1e-5)  # padding is masked out of the mean pooling


def test_paraphrases_are_closer_than_unrelated_sentences(embedder):
    a, b, c = embedder.embed(["A man is playing a guitar.", "Someone plays the guitar.", "Interest rates rose."])
    assert a @ b > 0.6 > a @ c


def test_embedding_vendi_orders_diversity_and_matches_reference(embedder):
    same = embedding_vendi(["A man is playing a guitar."] * 12, embedder)
    assert same.q1 == pytest.approx(1.0, abs=1e-3)
    varied = embedding_vendi(TOPICS, embedder)
    near = embedding_vendi([f"A man is playing a guitar {w}." for w in
                            ("now", "today", "outside", "loudly", "slowly", "again", "here", "there", "well", "badly")],
                           embedder)
    assert 1.0 < near.q1 < varied.q1 <= 10.0 and varied.q1 > 6.0
    x = embedder.embed(TOPICS).astype(np.float64)
    assert varied.q1 == pytest.approx(ref.score_dual(x, q=1), rel=1e-5)
