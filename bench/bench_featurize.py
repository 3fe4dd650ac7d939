"""Benchmark the gradient featurizers: throughput, peak RSS, and fidelity of `fast` to `exact`.

Three real sets of known diversity (64 samples each, 192 in all):
  near-dup-nli  one SNLI premise, hypotheses from one template with a single word changed;
  snli          64 SNLI training pairs;
  math          32 GSM8K + 32 MATH training problems with their solutions.
Each mode runs in its own process (so peak RSS is its own) on the same samples, 1 thread:
  exact   the paper's estimator (full per-sample gradient, dense Rademacher projection);
  fast    Kronecker-projected per-layer gradients from one batched pass;
  plain   a plain batched forward+backward (weight gradients) on the same batches, for the ratio.
Fidelity: Pearson correlation of all pairwise cosines (exact vs fast), G-Vendi per set and its ratio,
and whether the ranking of the sets by G-Vendi is preserved.

Each mode first runs untimed on `--warmup` rows (the same rows for every mode; its time is reported as
`warmup_seconds`): on this VM the first touch of fresh memory costs seconds of system time (measured:
the first 30 × 117-token batch of `fast` took 14.8 s, 7.7 s of it in the kernel, and the second 6.5 s),
which would otherwise be charged to whichever mode allocates most at its start.

    python bench/bench_featurize.py --out bench/out/featurize          # all modes, then the report
    python bench/bench_featurize.py --out D --modes fast --rank 32     # one mode
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SETS = ("near-dup-nli", "snli", "math")
VERBS = ["walking", "running", "sitting", "standing", "eating", "sleeping", "reading", "singing"]
PLACES = ["outside", "indoors", "at home", "in a park", "on a street", "at a beach", "in a car", "on a boat"]


def build_sets(n_per_set: int, seed: int = 0) -> list[dict]:
    from prism_agent.data.pull import ensure

    rng = random.Random(seed)
    snli = [json.loads(line) for line in ensure("snli-train").open()][:20000]
    gsm = [json.loads(line) for line in ensure("gsm8k-train").open()]
    math = [json.loads(line) for line in ensure("math-train").open()]
    premise = snli[0]["premise"]
    rows: list[dict] = []
    for i in range(n_per_set):
        hyp = f"A person is {VERBS[i % 8]} {PLACES[(i // 8) % 8]}."
        rows.append({"id": f"near-dup-nli-{i}", "set": "near-dup-nli", "prompt": f"Premise: {premise}\n"
                     f"Hypothesis: {hyp}", "response": "neutral"})
    for i, r in enumerate(rng.sample(snli, n_per_set)):
        rows.append({"id": f"snli-{i}", "set": "snli", "prompt": r["prompt"], "response": r["response"]})
    half = n_per_set // 2
    for i, r in enumerate(rng.sample(gsm, half) + rng.sample(math, n_per_set - half)):
        rows.append({"id": f"math-{i}", "set": "math", "prompt": r["prompt"], "response": r["response"]})
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mode(mode: str, rows: list[dict], args) -> dict:
    """One featurizer (or the plain pass) over all rows in this process."""
    import torch

    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.gradients.base import make_featurizer
    from prism_agent.gradients.batching import collate, per_sample_loss, plan_batches
    from prism_agent.gradients.proxy import load_proxy
    from prism_agent.gradients.render import encode

    torch.set_num_threads(args.threads)
    proxy = load_proxy(None, device=args.device, dtype=torch.float32)
    enc = [encode(proxy.tokenizer, r["prompt"], r["response"], 2048) for r in rows]
    tokens = sum(len(e) for e in enc)
    batch_tokens = args.batch_tokens or FeaturizerConfig().batch_tokens
    warm = warmup_rows(rows, args.warmup)
    if mode == "plain":
        model = proxy.model
        for p in model.parameters():
            p.requires_grad_(True)

        def run(items):
            for pos in plan_batches([len(e) for e in items], batch_tokens, 64):
                b = collate(items, pos, proxy.tokenizer.eos_token_id)
                with torch.autocast(proxy.device.type, dtype=torch.bfloat16):
                    logits = model(input_ids=b.input_ids.to(proxy.device),
                                   attention_mask=b.attention_mask.to(proxy.device)).logits
                per_sample_loss(logits, b).sum().backward()
                model.zero_grad(set_to_none=True)
    else:
        kind, _, rank = mode.partition("-r")
        cfg = FeaturizerConfig(kind=kind, rank_in=int(rank or 32), rank_out=int(rank or 32),
                               batch_tokens=batch_tokens, exact_batch=args.exact_batch,
                               threads=args.threads, device=args.device)
        run = make_featurizer(proxy, cfg).featurize
    t0 = time.perf_counter()
    if warm:
        run([enc[i] for i in warm])
    warmup_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = run(enc)
    seconds = time.perf_counter() - t0
    if mode != "plain":
        np.save(Path(args.out) / f"features-{mode}.npy", feats)
    return {"mode": mode, "n": len(rows), "tokens": tokens, "batch_tokens": batch_tokens, "seconds": seconds,
            "samples_per_s": len(rows) / seconds, "warmup_rows": len(warm), "warmup_seconds": warmup_seconds,
            "peak_rss_mb": peak_rss_mb()}


def warmup_rows(rows: list[dict], n: int) -> list[int]:
    """The first n/3 rows of each set: the same warm-up for every mode."""
    per = n // len(SETS)
    return [i for s in SETS for i in [j for j, r in enumerate(rows) if r["set"] == s][:per]]


def fidelity(out: Path, rows: list[dict], fast_mode: str) -> dict:
    from prism_agent.diversity.vendi import vendi

    ex = np.load(out / "features-exact.npy").astype(np.float64)
    fa = np.load(out / f"features-{fast_mode}.npy").astype(np.float64)

    def cos(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        c = x @ x.T
        return c[np.triu_indices(len(x), 1)]

    sets = np.array([r["set"] for r in rows])
    per_set = {}
    for s in SETS:
        m = sets == s
        ge, gf = vendi(ex[m]).q1, vendi(fa[m]).q1
        per_set[s] = {"g_vendi_exact": ge, "g_vendi_fast": gf, "ratio": gf / ge}
    rank_e = sorted(SETS, key=lambda s: per_set[s]["g_vendi_exact"])
    rank_f = sorted(SETS, key=lambda s: per_set[s]["g_vendi_fast"])
    within = [float(np.corrcoef(cos(ex[sets == s]), cos(fa[sets == s]))[0, 1]) for s in SETS]
    return {"fast_mode": fast_mode, "pairwise_cosine_pearson": float(np.corrcoef(cos(ex), cos(fa))[0, 1]),
            "pairwise_cosine_pearson_within_sets": dict(zip(SETS, within, strict=True)), "per_set": per_set,
            "ranking_exact": rank_e, "ranking_fast": rank_f, "ranking_preserved": rank_e == rank_f,
            "g_vendi_all_exact": vendi(ex).q1, "g_vendi_all_fast": vendi(fa).q1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/featurize")
    ap.add_argument("--modes", default="plain,fast,exact", help="comma list: plain, fast, fast-rR, exact")
    ap.add_argument("--n-per-set", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-tokens", type=int, default=None, help="default: the featurizer's (FeaturizerConfig)")
    ap.add_argument("--warmup", type=int, default=24, help="untimed rows per mode first (0: none)")
    ap.add_argument("--exact-batch", type=int, default=16)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    if args.worker:
        rows = [json.loads(line) for line in rows_path.open()]
        print(json.dumps(run_mode(args.worker, rows, args)), flush=True)
        return
    rows = build_sets(args.n_per_set)
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = {}
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--worker", mode, "--out", str(out), "--threads", str(args.threads),
               "--device", args.device, "--exact-batch", str(args.exact_batch), "--warmup", str(args.warmup)]
        if args.batch_tokens:
            cmd += ["--batch-tokens", str(args.batch_tokens)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(results[mode]), flush=True)
    report: dict = {"modes": results}
    fast_modes = [m for m in results if m.startswith("fast")]
    if "exact" in results or (out / "features-exact.npy").exists():
        report["fidelity"] = [fidelity(out, rows, m) for m in fast_modes]
        if "exact" in results:
            for m in fast_modes:
                report[f"speedup_{m}_over_exact"] = results[m]["samples_per_s"] / results["exact"]["samples_per_s"]
    if "plain" in results:
        for m in fast_modes:
            report[f"{m}_over_plain"] = results[m]["samples_per_s"] / results["plain"]["samples_per_s"]
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
