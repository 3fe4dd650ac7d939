"""Generation throughput with two endpoints behind one role against one (BENCHMARKS.md, "Several endpoints
per role").

Two llama.cpp servers of SmolLM2-135M-Instruct (the project's launcher, one thread each) on 127.0.0.1. The
same N generator requests (real SNLI few-shot prompts, the loop's own shape: 2 completions of one new pair
each, the answer started, 96 tokens at most; llama.cpp answers one choice per call, so each request is
two calls) go through the `openai` backend once with one endpoint and once with both. Runs alternate
(one, two, one, two, …) so that drift on a shared machine hits both sides; the load average before and
after each run is reported beside it, since the machine is shared.

    python bench/bench_endpoints.py --out bench/out/endpoints [--requests 24] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prism_agent.config.backends import parse_backend  # noqa: E402
from prism_agent.data.pull import ensure as ensure_data  # noqa: E402
from prism_agent.data.reader import iter_samples  # noqa: E402
from prism_agent.generators import GenRequest, make_generator  # noqa: E402
from prism_agent.models.pull import gguf_path  # noqa: E402
from prism_agent.tasks.generation import generation_messages, generation_stops  # noqa: E402
from prism_agent.tasks.registry import get_task  # noqa: E402
from tests.support.servers import start_llamacpp  # noqa: E402


def requests(k: int, seed: int) -> list[GenRequest]:
    task = get_task("nli")
    rows = list(iter_samples(ensure_data("snli-train"), stop=5 * k))
    return [GenRequest.chat(generation_messages(task, rows[5 * j:5 * j + 5], 2, True), n=2, temperature=1.0,
                            top_p=0.95, max_tokens=96, seed=seed + j, stop=generation_stops(task, True))
            for j in range(k)]


def one_run(urls: list[str], batch: list[GenRequest]) -> dict:
    # 2 in flight per endpoint: llama.cpp's server serves one at a time, the second call waits in its queue
    gen = make_generator(parse_backend({"backend": "openai", "base_url": urls if len(urls) > 1 else urls[0],
                                        "model": "smollm2", "max_concurrency": 2, "initial_concurrency": 2,
                                        "timeout_s": 600, "prefill": "none"}))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results = gen.generate_sync(batch)
    seconds = time.perf_counter() - started
    tokens = sum(r.usage.completion_tokens for r in results)
    per = {url: c["requests"] for url, c in gen.stats().endpoints.items()}
    return {"endpoints": len(urls), "seconds": round(seconds, 2), "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 2), "calls_per_endpoint": per,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gguf = gguf_path("smollm2-135m-instruct")
    servers = [start_llamacpp(gguf, args.out / f"server-{i}.log") for i in range(2)]
    rows = []
    try:
        urls = [s.base_url for s in servers]
        one_run(urls, requests(2, seed=10_000))  # warm both servers (first prompt evaluation, page cache)
        for rep in range(args.repeats):
            batch = requests(args.requests, seed=100 * rep)  # the same requests on both sides of one repeat
            for n in (1, 2):
                row = one_run(urls[:n], batch) | {"repeat": rep}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for s in servers:
            s.stop()
    one = statistics.median(r["tokens_per_s"] for r in rows if r["endpoints"] == 1)
    two = statistics.median(r["tokens_per_s"] for r in rows if r["endpoints"] == 2)
    summary = {"requests": args.requests, "repeats": args.repeats, "one_tokens_per_s": one, "two_tokens_per_s": two,
               "speedup": round(two / one, 2), "cpus": os.cpu_count(), "runs": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))


if __name__ == "__main__":
    main()
