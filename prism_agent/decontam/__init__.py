"""Two-stage decontamination against evaluation benchmarks (README, "Quality gates"): word 10-gram overlap
through a MinHash LSH index confirmed exactly, then the nearest benchmark item by sentence embedding
checked by the judge role. Every drop is written to an audit file.

Names are imported on first use: importing one submodule (the loop needs only the decontaminator) would
otherwise pay for torch and the embedding model's imports (≈1.6 s) of all of them. The settings are
`prism_agent.config.decontam`."""

from __future__ import annotations

import importlib

_WHERE = {
    "AuditRecord": "audit", "Benchmark": "benchmarks", "BenchmarkItem": "benchmarks", "load_all": "benchmarks",
    "parse_spec": "benchmarks", "Counts": "decontaminator",
    "Decontaminator": "decontaminator", "Verdict": "decontaminator", "NgramIndex": "ngram_index",
    "NgramMatch": "ngram_index", "ngrams": "normalize", "words": "normalize",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"prism_agent.decontam.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
