"""MiniLM cosine of SNLI test items with light paraphrases of themselves (synonyms, one swap, one dropped
word), against other items: the basis of the embedded judge's similarity floor (RunConfig.decontam_settings).

    python bench/paraphrase_cosines.py
"""

from __future__ import annotations

import json
import random

import numpy as np

from prism_agent.data.pull import ensure
from prism_agent.diversity.embedding import SentenceEmbedder

SYNONYMS = {"man": "guy", "woman": "lady", "people": "persons", "a": "one", "dog": "puppy", "walking": "strolling",
            "sitting": "seated", "young": "little", "two": "2", "boy": "kid", "girl": "child", "street": "road",
            "shirt": "top", "standing": "stands", "playing": "plays", "wearing": "in", "group": "bunch",
            "outside": "outdoors"}


def text(row: dict) -> str:
    return f"{row['premise']} {row['hypothesis']}" if "premise" in row else row["prompt"]


def paraphrase(t: str, rng: random.Random) -> str:
    words = [SYNONYMS.get(w.lower(), w) for w in t.split()]
    if len(words) > 6:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        del words[rng.randrange(len(words))]
    return " ".join(words)


def main() -> None:
    rng = random.Random(0)
    with ensure("snli-test").open() as fh:
        rows = [json.loads(line) for _, line in zip(range(3000), fh, strict=False)]
    rows = rng.sample(rows, 200)
    emb = SentenceEmbedder()
    a = emb.embed([text(r) for r in rows])
    same = (a * emb.embed([paraphrase(text(r), rng) for r in rows])).sum(1)
    other = (a * np.roll(a, 1, axis=0)).sum(1)
    sim = a @ a.T
    np.fill_diagonal(sim, -1)
    for name, v in (("paraphrase", same), ("random other item", other), ("nearest other item", sim.max(1))):
        print(f"{name}: min {v.min():.3f} p5 {np.percentile(v, 5):.3f} median {np.median(v):.3f} "
              f"p95 {np.percentile(v, 95):.3f}, share >= 0.75: {(v >= 0.75).mean():.3f}")


if __name__ == "__main__":
    main()
