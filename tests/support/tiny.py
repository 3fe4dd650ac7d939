"""Pieces of the tiny real runs that several slow tests share."""

from __future__ import annotations

from pathlib import Path


def benchmark_head(tmp: Path, name: str = "snli-test", n: int = 200) -> Path:
    """The first `n` rows of a built-in benchmark set as a JSONL file: a small real benchmark keeps stage-1
    index building and stage-2 retrieval fast in tests. Use as `benchmarks = ["NAME=<path>"]`."""
    from prism_agent.data.pull import ensure

    out = Path(tmp) / f"{name}-{n}.jsonl"
    with ensure(name).open() as src, out.open("w") as dst:
        for _, line in zip(range(n), src, strict=False):
            dst.write(line)
    return out
