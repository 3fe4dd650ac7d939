"""Generator request shapes with the embedded model (BENCHMARKS.md): the paper's shape (one completion asked for
`num_new` = 2 samples in tag blocks) against prism-agent's (2 completions of one sample each, the answer
started with the task's opening tag, stopped at the closing tag or the start of a second sample). The same
few-shot prompts (5 random seed rows each), the same sampling (T 1.0, top_p 0.95), run side by side.

    python bench/bench_generation.py --task nli --requests 16

Prints samples read per request and seconds per sample read; the results are in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from prism_agent.config.backends import LocalBackendConfig
from prism_agent.generators.local import LocalGenerator
from prism_agent.generators.types import GenRequest
from prism_agent.run.pool import Pool, sample_seeds
from prism_agent.tasks.generation import fewshot_prompt, generation_messages, generation_stops, parse_candidates
from prism_agent.tasks.registry import get_task

PAPER_CAP = {"nli": 256, "math": 768}  # tokens for two samples in one completion (the previous defaults)


def requests(task, shape: str, n: int) -> list[GenRequest]:
    rng = random.Random(0)
    samples = [Pool.as_sample(r) for r in sample_seeds(list(task.seeds), 300, 0)]
    out = []
    for j in range(n):
        examples = rng.sample(samples, 5)
        if shape == "paper":
            out.append(GenRequest.chat([{"role": "user", "content": fewshot_prompt(task, examples, 2)}], n=1,
                                       temperature=1.0, top_p=0.95, max_tokens=PAPER_CAP[task.name], seed=j))
        else:
            out.append(GenRequest.chat(generation_messages(task, examples, 2, True), n=2, temperature=1.0,
                                       top_p=0.95, max_tokens=task.max_new_tokens, seed=j,
                                       stop=generation_stops(task, True)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="nli")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    task = get_task(args.task)
    gen = LocalGenerator(LocalBackendConfig(batch_size=32, threads=args.threads))
    _ = gen.engine  # load once, outside the timings
    for shape in ("paper", "prism-agent"):
        reqs = requests(task, shape, args.requests)
        started = time.perf_counter()
        results = asyncio.run(gen.generate(reqs))
        seconds = time.perf_counter() - started
        read = sum(len(parse_candidates(task, (q.prefill or "") + t)) for q, r in zip(reqs, results, strict=True)
                   for t in r.texts)
        tokens = sum(r.usage.completion_tokens for r in results)
        print(f"{args.task} {shape:11s}: {read} samples read from {args.requests} requests "
              f"({read / args.requests:.2f}/request), {tokens} tokens, {seconds:.1f} s, "
              f"{seconds / max(read, 1):.2f} s per sample read", flush=True)


if __name__ == "__main__":
    main()
