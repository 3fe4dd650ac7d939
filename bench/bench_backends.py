"""Orchestration efficiency of the generator backends (BENCHMARKS.md, "Generator backends").

A. `openai` backend vs a bare `openai` client loop (asyncio + semaphore) at the same concurrency, against
   the same vLLM OpenAI server on 127.0.0.1: completion tokens/s.
B. `local` backend vs a bare transformers `generate` on the same prompts (left-padded batches of the same
   size): completion tokens/s, greedy (identical tokens on both sides) and sampled.

Runs alternate (bare, ours, bare, ours, ...) so that drift on a shared machine hits both sides.

    python bench/bench_backends.py --out bench/out/backends [--parts A,B] [--prompts 64] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prism_agent.config.backends import LocalBackendConfig, parse_backend  # noqa: E402
from prism_agent.data.pull import ensure as ensure_data  # noqa: E402
from prism_agent.data.reader import iter_samples  # noqa: E402
from prism_agent.generators import GenRequest, make_generator  # noqa: E402
from prism_agent.models.pull import ensure  # noqa: E402


def prompts(k: int) -> list[str]:
    """Real GSM8K training questions: realistic prompt lengths."""
    path = ensure_data("gsm8k-train")
    return [s.prompt for s in iter_samples(path, stop=k)]


# ---- A: openai backend vs bare client ----------------------------------------------------------------


async def bare_openai(base_url: str, model: str, texts: list[str], max_tokens: int, concurrency: int) -> int:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=600)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int, text: str) -> int:
        async with sem:
            resp = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens,
                temperature=0.8, top_p=1.0, seed=i, n=1)
            return resp.usage.completion_tokens

    try:
        return sum(await asyncio.gather(*(one(i, t) for i, t in enumerate(texts))))
    finally:
        await client.close()


def ours_openai(base_url: str, model: str, texts: list[str], max_tokens: int, concurrency: int) -> int:
    cfg = parse_backend({"backend": "openai", "base_url": base_url, "model": model,
                         "max_concurrency": concurrency, "initial_concurrency": concurrency})
    gen = make_generator(cfg)
    reqs = [GenRequest.chat([{"role": "user", "content": t}], max_tokens=max_tokens, temperature=0.8, seed=i)
            for i, t in enumerate(texts)]
    return sum(r.usage.completion_tokens for r in gen.generate_sync(reqs))


def part_a(args, out: dict) -> None:
    from tests.support.servers import start_vllm

    texts = prompts(args.prompts)
    server = start_vllm(ensure("smollm2-135m-instruct"), Path(args.out) / "vllm-server.log")
    try:
        rows = []
        asyncio.run(bare_openai(server.base_url, server.model, texts[:8], 8, args.concurrency))  # warm-up
        for rep in range(args.reps):
            for side in ("bare", "ours"):
                t0 = time.perf_counter()
                if side == "bare":
                    toks = asyncio.run(bare_openai(server.base_url, server.model, texts, args.max_tokens,
                                                   args.concurrency))
                else:
                    toks = ours_openai(server.base_url, server.model, texts, args.max_tokens, args.concurrency)
                dt = time.perf_counter() - t0
                rows.append({"rep": rep, "side": side, "tokens": toks, "seconds": dt, "tok_s": toks / dt})
                print(f"A rep {rep} {side}: {toks} tokens in {dt:.2f} s = {toks / dt:.1f} tok/s", flush=True)
    finally:
        server.stop()
    out["A"] = summarise(rows)


# ---- B: local backend vs bare transformers generate --------------------------------------------------


def bare_generate(engine, texts: list[str], max_tokens: int, batch: int, greedy: bool) -> int:
    import torch

    tok = engine.tokenizer
    tok.padding_side = "left"
    total = 0
    for b in range(0, len(texts), batch):
        chunk = [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False)
                 for t in texts[b:b + batch]]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs = {"do_sample": False} if greedy else {"do_sample": True, "temperature": 0.8, "top_p": 1.0}
        with torch.inference_mode():
            outp = engine.model.generate(**enc, max_new_tokens=max_tokens, pad_token_id=engine.pad_id, **kwargs)
        new = outp[:, enc["input_ids"].shape[1]:]
        for row in new.tolist():
            n = 0
            for t in row:
                if t in engine.eos_ids:
                    break
                n += 1
            total += n
    return total


def part_b(args, out: dict) -> None:
    import torch

    torch.set_num_threads(args.threads)
    texts = prompts(args.local_prompts)
    gen = make_generator(LocalBackendConfig(batch_size=args.batch))
    engine = gen.engine
    for mode in ("greedy", "sampled"):
        rows = []
        for rep in range(args.reps):
            for side in ("bare", "ours"):
                t0 = time.perf_counter()
                if side == "bare":
                    toks = bare_generate(engine, texts, args.max_tokens, args.batch, mode == "greedy")
                else:
                    reqs = [GenRequest.chat([{"role": "user", "content": t}], max_tokens=args.max_tokens,
                                            temperature=0.0 if mode == "greedy" else 0.8, seed=i)
                            for i, t in enumerate(texts)]
                    toks = sum(r.usage.completion_tokens for r in gen.generate_sync(reqs))
                dt = time.perf_counter() - t0
                rows.append({"rep": rep, "side": side, "tokens": toks, "seconds": dt, "tok_s": toks / dt})
                print(f"B {mode} rep {rep} {side}: {toks} tokens in {dt:.2f} s = {toks / dt:.1f} tok/s", flush=True)
        out[f"B-{mode}"] = summarise(rows)


def summarise(rows: list[dict]) -> dict:
    bare = [r["tok_s"] for r in rows if r["side"] == "bare"]
    ours = [r["tok_s"] for r in rows if r["side"] == "ours"]
    return {"rows": rows, "bare_tok_s": statistics.median(bare), "ours_tok_s": statistics.median(ours),
            "ratio": statistics.median(ours) / statistics.median(bare)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/out/backends")
    ap.add_argument("--parts", default="A,B")
    ap.add_argument("--prompts", type=int, default=64, help="A: requests per run")
    ap.add_argument("--local-prompts", type=int, default=32, help="B: prompts per run")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    out: dict = {"args": vars(args)}
    parts = args.parts.split(",")
    if "B" in parts:
        part_b(args, out)
    if "A" in parts:
        part_a(args, out)
    (Path(args.out) / "results.json").write_text(json.dumps(out, indent=2))
    for key, val in out.items():
        if key != "args":
            print(f"{key}: bare {val['bare_tok_s']:.1f} tok/s, ours {val['ours_tok_s']:.1f} tok/s, "
                  f"ratio {val['ratio']:.3f}")


if __name__ == "__main__":
    main()
