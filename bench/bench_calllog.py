"""Calls/s the run's call log (`calls.sqlite`, generators/replay.py) can record: `synchronous=FULL` (one fsync
per call, the old setting) against `synchronous=NORMAL` (the WAL fsynced at checkpoints only), side by side
in one process on the same disk. Each call is one `put` of a realistic NLI generator result (2 completions
of ≈60 tokens), as the replay wrapper writes it the moment a call finishes.

    python bench/bench_calllog.py [--calls 2000] [--dir DIR]

Prints one JSON object: per mode, calls, seconds, calls/s and ms per call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from prism_agent.generators.replay import ReplayStore, request_key
from prism_agent.generators.types import Completion, GenRequest, GenResult, Usage

TEXT = ("Premise: A man in a blue shirt is riding a bicycle down a busy city street.\nHypothesis: A person is "
        "outside.\n</pair>")


def _call(i: int) -> tuple[GenRequest, GenResult]:
    req = GenRequest.chat([{"role": "user", "content": f"Write a new premise/hypothesis pair. #{i} " + TEXT * 5}],
                          n=2, temperature=1.0, top_p=0.95, max_tokens=96, seed=i)
    res = GenResult(completions=[Completion(text=TEXT, finish_reason="stop", completion_tokens=60)] * 2,
                    usage=Usage(prompt_tokens=400, completion_tokens=120), latency_s=1.0, model="openai/m",
                    native_choices=1, calls=2)
    return req, res


def measure(folder: Path, mode: str, calls: int) -> dict:
    store = ReplayStore(folder / f"calls-{mode}.sqlite", synchronous=mode)
    items = [_call(i) for i in range(calls)]
    keys = [request_key("openai/m", q) for q, _ in items]
    started = time.perf_counter()
    for key, (req, res) in zip(keys, items, strict=True):
        store.put(key, "openai/m", req, res)
    seconds = time.perf_counter() - started
    assert len(store) == calls
    store.close()
    return {"calls": calls, "seconds": round(seconds, 3), "calls_per_s": round(calls / seconds, 1),
            "ms_per_call": round(1000 * seconds / calls, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = {mode: measure(Path(tmp), mode, args.calls) for mode in ("FULL", "NORMAL")}
    out["speedup"] = round(out["NORMAL"]["calls_per_s"] / out["FULL"]["calls_per_s"], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
