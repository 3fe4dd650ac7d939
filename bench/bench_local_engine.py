"""The embedded backend's decoding loop against transformers' `generate` (BENCHMARKS.md), side by side in one
process on the same requests: 16 NLI generator requests (5 random seed rows each, 2 completions, T 1.0,
top_p 0.95, the task's stops and token cap) and 48 NLI solver requests scored over the three labels.

    python bench/bench_local_engine.py --requests 16 --threads 1

`generate` is the previous engine (kept here as the baseline): every completion row prefilled on its own
and the batch decoded until its longest row ends. `decode_rows` prefills each prompt once and drops rows as
they finish. Both run with each attention implementation given (prism_grouped: generators/grouped_attention.py,
the CPU default). Results in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from bench.bench_generation import requests
from prism_agent.config.backends import LocalBackendConfig
from prism_agent.config.vote import VoteConfig
from prism_agent.generators import grouped_attention
from prism_agent.generators.local import LocalGenerator
from prism_agent.generators.local_decode import Row
from prism_agent.quality.solve import solve_requests
from prism_agent.run.pool import Pool, sample_seeds
from prism_agent.seeds import row_seed
from prism_agent.tasks.registry import get_task


class _Processor:
    """The previous engine's per-row sampler, as a transformers logits processor (baseline only)."""

    def __init__(self, rows, eos_id, width, engine):
        from prism_agent.generators.local_decode import StopWatcher, _Sampler

        self.rows, self.eos_id, self.width = rows, eos_id, width
        self.sampler, self.stops = _Sampler(rows, engine.device), StopWatcher(rows, engine.tokenizer.decode)
        self.done = [False] * len(rows)

    def __call__(self, input_ids, scores):
        picks = self.sampler.draw(scores, list(range(len(self.rows))))
        for i, t in enumerate(picks):
            r = self.rows[i]
            if self.done[i] or len(r.tokens) >= r.max_new or t == self.eos_id:
                self.done[i], picks[i] = True, self.eos_id
                continue
            r.tokens.append(t)
            self.done[i] = self.stops.hit(i)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, torch.tensor(picks).unsqueeze(1), 0.0)
        return out


def generate_baseline(engine, rows: list[Row]) -> None:
    from transformers import GenerationConfig, LogitsProcessorList

    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), engine.pad_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r.ids):] = torch.tensor(r.ids)
        mask[i, width - len(r.ids):] = 1
        r.tokens = []
    cfg = GenerationConfig(do_sample=False, max_new_tokens=max(r.max_new for r in rows) + 1,
                           eos_token_id=sorted(engine.eos_ids), pad_token_id=engine.pad_id)
    with torch.inference_mode():
        engine.model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg,
                              logits_processor=LogitsProcessorList([_Processor(rows, engine.eos_id, width, engine)]))


def choice_baseline(engine, prompt: list[int], options) -> None:
    """The previous scoring: one forward over prompt + option per option (the prompt run once per option)."""
    seqs = [engine.tokenizer(o, add_special_tokens=False)["input_ids"] + [engine.eos_id] for o in options]
    width = len(prompt) + max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), engine.pad_id)
    mask = torch.zeros_like(ids)
    for i, x in enumerate(seqs):
        ids[i, : len(prompt) + len(x)] = torch.tensor(prompt + x)
        mask[i, : len(prompt) + len(x)] = 1
    with torch.inference_mode():
        engine.model(input_ids=ids, attention_mask=mask)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--solves", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--attn", nargs="+", default=["sdpa", "eager", grouped_attention.NAME])
    args = ap.parse_args()
    task = get_task("nli")
    gen = LocalGenerator(LocalBackendConfig(batch_size=32, threads=args.threads))
    engine = gen.engine
    grouped_attention.register()
    torch.set_num_threads(args.threads)
    reqs = requests(task, "prism-agent", args.requests)
    rng = random.Random(1)
    samples = [Pool.as_sample(r) for r in rng.sample(sample_seeds(list(task.seeds), 300, 0), args.solves)]
    solves = solve_requests(task, samples, VoteConfig.for_task("nli"))
    solve_ids = [engine.encode(q) for q in solves]
    for attn in args.attn:
        engine.model.set_attn_implementation(attn)
        for name in ("generate", "decode_rows"):
            rows = [Row(request=i, choice=j, ids=engine.encode(q), temperature=1.0, top_p=0.95,
                        max_new=q.sampling.max_tokens, seed=row_seed(i, j), stop=q.sampling.stop)
                    for i, q in enumerate(reqs) for j in range(q.sampling.n)]
            t = time.perf_counter()
            if name == "generate":
                generate_baseline(engine, rows)
            else:
                engine.decode_batch(rows, args.threads)
            gen_s = time.perf_counter() - t
            t = time.perf_counter()
            if name == "generate":
                for p in solve_ids:
                    choice_baseline(engine, p, task.solve_choices)
            else:
                for b in range(0, len(solve_ids), 32):
                    engine.choice_logprobs(solve_ids[b:b + 32], task.solve_choices, args.threads)
            solve_s = time.perf_counter() - t
            tokens = sum(len(r.tokens) for r in rows)
            print(f"attn {attn:5s} {name:11s}: generate {len(rows)} rows {gen_s:6.1f} s ({tokens} tokens, "
                  f"{tokens / gen_s:5.1f} tok/s); score {len(solve_ids)} solver prompts {solve_s:5.1f} s", flush=True)


if __name__ == "__main__":
    main()
