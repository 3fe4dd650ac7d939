"""bf16 against fp32 on this machine, side by side in one process: what `dtype = "auto"` decides from.

Three measurements, each alternating the two dtypes `--reps` times (best time kept; the machine is shared):
  matmul      one 256×576 @ 576×1536 product (SmolLM2's MLP shape at 256 tokens), GFLOP/s;
  featurizer  the `fast` featurizer on real rows (SNLI pairs and GSM8K/MATH solutions), samples/s, plus the
              fidelity of bf16 features to fp32 ones: Pearson of all pairwise cosines and G-Vendi ratio
              (BENCHMARKS.md's bounds for fast vs exact: r ≥ 0.98, G-Vendi within ±5 %);
  local       the embedded `local` backend generating NLI pairs (16 requests × 2 completions), tokens/s.
It also prints what `auto` resolves to here and why.

    python bench/bench_dtype.py --out bench/out/dtype --threads 1
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

DTYPES = ("bfloat16", "float32")


def matmul(reps: int) -> dict:
    out = {}
    for name in DTYPES:
        dt = getattr(torch, name)
        a, b = torch.randn(256, 576, dtype=dt), torch.randn(576, 1536, dtype=dt)
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            for _ in range(20):
                a @ b
            best = min(best, (time.perf_counter() - t) / 20)
        out[name] = {"gflop_s": 2 * 256 * 576 * 1536 / best / 1e9}
    out["bf16_over_fp32"] = out["bfloat16"]["gflop_s"] / out["float32"]["gflop_s"]
    return out


def rows(n: int) -> list[dict]:
    from prism_agent.data.pull import ensure

    rng = random.Random(0)
    snli = [json.loads(line) for line in ensure("snli-train").open()][:20000]
    gsm = [json.loads(line) for line in ensure("gsm8k-train").open()]
    return rng.sample(snli, n - n // 4) + rng.sample(gsm, n // 4)


def featurizer(n: int, reps: int, threads: int) -> tuple[dict, dict]:
    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.diversity.vendi import vendi
    from prism_agent.gradients.base import make_featurizer
    from prism_agent.gradients.proxy import load_proxy
    from prism_agent.gradients.render import encode

    proxy = load_proxy(None, device="cpu", dtype=torch.float32)
    enc = [encode(proxy.tokenizer, r["prompt"], r["response"], 2048) for r in rows(n)]
    best = dict.fromkeys(DTYPES, float("inf"))
    feats = {}
    for name in DTYPES:  # untimed warm-up: first touch of fresh memory costs seconds on this VM
        f = make_featurizer(proxy, FeaturizerConfig(dtype=name, threads=threads))
        f.featurize(enc[:16])
        f.close()
    for _ in range(reps):
        for name in DTYPES:
            f = make_featurizer(proxy, FeaturizerConfig(dtype=name, threads=threads))
            t = time.perf_counter()
            feats[name] = f.featurize(enc).astype(np.float64)
            best[name] = min(best[name], time.perf_counter() - t)
            f.close()

    def cos(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        c = x @ x.T
        return c[np.triu_indices(len(x), 1)]

    speed = {name: {"samples_per_s": n / best[name], "seconds": best[name]} for name in DTYPES}
    speed["bf16_over_fp32"] = speed["bfloat16"]["samples_per_s"] / speed["float32"]["samples_per_s"]
    g16, g32 = vendi(feats["bfloat16"]).q1, vendi(feats["float32"]).q1
    fidelity = {"pairwise_cosine_pearson": float(np.corrcoef(cos(feats["bfloat16"]), cos(feats["float32"]))[0, 1]),
                "g_vendi_bf16": g16, "g_vendi_fp32": g32, "g_vendi_ratio": g16 / g32,
                "row_cosine_min": float(min(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)
                                            for a, b in zip(feats["bfloat16"], feats["float32"], strict=True)))}
    return speed, fidelity


def local(requests_n: int, reps: int, threads: int) -> dict:
    import asyncio

    from bench.bench_generation import requests
    from prism_agent.config.backends import LocalBackendConfig
    from prism_agent.generators.local import LocalGenerator
    from prism_agent.tasks.registry import get_task

    reqs = requests(get_task("nli"), "prism-agent", requests_n)
    gens = {name: LocalGenerator(LocalBackendConfig(dtype=name, threads=threads)) for name in DTYPES}
    best = {name: (0.0, 0) for name in DTYPES}
    for name in DTYPES:
        asyncio.run(gens[name].generate(reqs[:2]))  # load and warm up, untimed
    for _ in range(reps):
        for name in DTYPES:
            t = time.perf_counter()
            results = asyncio.run(gens[name].generate(reqs))
            s = time.perf_counter() - t
            tokens = sum(r.usage.completion_tokens for r in results)
            if tokens / s > best[name][0]:
                best[name] = (tokens / s, tokens)
    out = {name: {"tokens_per_s": best[name][0], "tokens": best[name][1]} for name in DTYPES}
    out["bf16_over_fp32"] = out["bfloat16"]["tokens_per_s"] / out["float32"]["tokens_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/out/dtype")
    ap.add_argument("--rows", type=int, default=64, help="featurizer rows (3/4 SNLI, 1/4 GSM8K)")
    ap.add_argument("--requests", type=int, default=16, help="local backend NLI generator requests (n = 2)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", default="matmul,featurizer,local")
    args = ap.parse_args()
    from prism_agent.models.dtype import cpu_capability, resolve_dtype

    torch.set_num_threads(args.threads)
    auto = resolve_dtype("auto", "cpu")
    report: dict = {"auto": {"dtype": auto.name, "reason": auto.reason, "cpu_capability": cpu_capability()},
                    "threads": args.threads}
    parts = args.parts.split(",")
    if "matmul" in parts:
        report["matmul"] = matmul(args.reps * 3)
        print(json.dumps({"matmul": report["matmul"]}), flush=True)
    if "featurizer" in parts:
        report["featurizer"], report["fidelity_bf16_vs_fp32"] = featurizer(args.rows, args.reps, args.threads)
        print(json.dumps({k: report[k] for k in ("featurizer", "fidelity_bf16_vs_fp32")}), flush=True)
    if "local" in parts:
        report["local"] = local(args.requests, args.reps, args.threads)
        print(json.dumps({"local": report["local"]}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
