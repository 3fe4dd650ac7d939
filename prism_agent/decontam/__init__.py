"""Two-stage decontamination against evaluation benchmarks (METHOD §2 step 8): word 10-gram overlap
through a MinHash LSH index confirmed exactly, then the nearest benchmark item by sentence embedding
checked by the judge role. Every drop is written to an audit file."""

from __future__ import annotations

from prism_agent.decontam.audit import AuditRecord
from prism_agent.decontam.benchmarks import Benchmark, BenchmarkItem, load_all, parse_spec
from prism_agent.decontam.config import DecontamConfig
from prism_agent.decontam.decontaminator import Counts, Decontaminator, Verdict
from prism_agent.decontam.ngram_index import NgramIndex, NgramMatch
from prism_agent.decontam.normalize import ngrams, words

__all__ = ["AuditRecord", "Benchmark", "BenchmarkItem", "Counts", "DecontamConfig", "Decontaminator", "NgramIndex",
           "NgramMatch", "Verdict", "load_all", "ngrams", "parse_spec", "words"]
