"""Benchmark decontamination (BENCHMARKS.md): stage-1 throughput, recall on planted benchmark items, false drops
on clean seed data, and what stage 2 costs.

Run by hand, e.g. (as recorded in BENCHMARKS.md; stage 1 is single-threaded Python, pinned to one core)::

    taskset -c 0 python bench/bench_decontam.py --samples 100000
    taskset -c 0 python bench/bench_decontam.py --samples 100000 --stage2 32   # + embedding and judge cost

Data (all real, offline, from the data registry):
- the stream: the 14,973 GSM8K + MATH train problems, cycled with a "Variant k:" prefix to 100K samples;
- planted items: every item of every built-in math benchmark (7,151), verbatim and with light edits
  (whitespace, case, punctuation, a "Question:" prefix, all of them at once), and inside a longer problem
  (a GSM8K train problem prepended: a partial overlap, not a light edit);
- clean seed data: GSM8K train and MATH train against the math benchmarks, SNLI train (99,890) against
  SNLI test. A "false drop" here is a seed that shares a 10-gram with a benchmark item; many are templated
  wording (Asymptote preambles, "m and n are relatively prime positive integers"), some are real
  near-duplicates between MATH train and test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import tempfile
import time
from pathlib import Path

from prism_agent.config.decontam import DecontamConfig
from prism_agent.data.pull import ensure
from prism_agent.data.reader import Sample
from prism_agent.decontam.benchmarks import load_all
from prism_agent.decontam.decontaminator import Decontaminator
from prism_agent.decontam.ngram_index import NgramIndex
from prism_agent.tasks import get_task


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in ensure(name).open(encoding="utf-8")]


def _edits(rng: random.Random, seeds: list[str]) -> dict:
    def whitespace(t: str) -> str:
        return "  " + re.sub(r" ", lambda _: rng.choice([" ", "  ", "\n", " \t"]), t) + " \n"

    def case(t: str) -> str:
        return rng.choice([str.upper, str.lower, str.title])(t)

    def punctuation(t: str) -> str:  # sentence punctuation and math delimiters, not the inside of numbers
        t = re.sub(r"[.,;:!?](?=\s|$)", lambda m: rng.choice(["", " " + m.group(0), m.group(0) * 2]), t)
        return t.replace("$", "")

    def prefix(t: str) -> str:
        return rng.choice(["Question: ", "Problem 3. ", "Q: "]) + t

    def all_of_them(t: str) -> str:
        return prefix(whitespace(punctuation(case(t))))

    def inside(t: str) -> str:  # not a light edit: a whole item inside a longer problem (partial overlap)
        return rng.choice(seeds) + " " + t

    return {"verbatim": lambda t: t, "whitespace": whitespace, "case": case, "punctuation": punctuation,
            "prefix": prefix, "all edits": all_of_them, "inside a longer problem": inside}


def stage1(args, task, sets) -> dict:
    items = [it for b in sets for it in b.items]
    seeds = [r["prompt"] for name in task.seeds for r in _rows(name)]
    out: dict = {"benchmark_items": len(items), "rules": {}}
    for rule, threshold in args.rules:
        cfg = DecontamConfig(rule=rule, lsh_threshold=threshold, judge=False)
        cache = Path(tempfile.mkdtemp(prefix="bench-decontam-"))
        t = time.perf_counter()
        _, cached = NgramIndex.cached(sets, cfg, cache)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        decon = Decontaminator(task, sets, cfg, cache_dir=cache)
        load_s = time.perf_counter() - t
        assert decon.ngram_cached and not cached
        index = decon.ngram
        # throughput: the full stage-1 path of the CLI (compared text, match, audit record) per sample
        stream = (Sample(f"s{i}", f"Variant {i // len(seeds)}: {seeds[i % len(seeds)]}", "")
                  for i in range(args.samples))
        t = time.perf_counter()
        dropped = sum(decon.stage1(s) is not None for s in stream)
        secs = time.perf_counter() - t
        # recall on planted items
        rng = random.Random(0)
        recall = {name: sum(index.match(edit(it.text)) is not None for it in items) / len(items)
                  for name, edit in _edits(rng, seeds[:7473]).items()}
        # false drops on clean seeds
        false = {name: sum(index.match(task.compare_text(Sample(r["id"], r["prompt"], "", r))) is not None
                           for r in _rows(name)) for name in task.seeds}
        label = f"{rule}" + (f" (Jaccard ≥ {threshold})" if rule == "lsh" else "")
        out["rules"][label] = {
            "build_s": round(build_s, 2), "cache_load_s": round(load_s, 2), "samples": args.samples,
            "seconds": round(secs, 2), "samples_per_s": round(args.samples / secs), "stream_dropped": dropped,
            "recall": {k: round(v, 4) for k, v in recall.items()},
            "false_drops": {k: f"{v} of {len(_rows(k))} ({100 * v / len(_rows(k)):.2f}%)" for k, v in false.items()},
        }
        print(json.dumps({label: out["rules"][label]}), flush=True)
    return out


def nli(args) -> dict:
    task = get_task("nli")
    sets = load_all(task.benchmarks, task)
    out = {}
    for rule, threshold in args.rules:
        cfg = DecontamConfig(rule=rule, lsh_threshold=threshold, judge=False)
        decon = Decontaminator(task, sets, cfg, cache_dir=Path(tempfile.mkdtemp(prefix="bench-decontam-")))
        rows = _rows("snli-train")
        t = time.perf_counter()
        dropped = sum(decon.stage1(Sample(r["id"], r["prompt"], "", r)) is not None for r in rows)
        secs = time.perf_counter() - t
        items = sets[0].items
        verbatim = sum(decon.ngram.match(it.text) is not None for it in items) / len(items)
        label = f"{rule}" + (f" (Jaccard ≥ {threshold})" if rule == "lsh" else "")
        out[label] = {"snli_train": len(rows), "false_drops": dropped, "samples_per_s": round(len(rows) / secs),
                      "recall_verbatim": round(verbatim, 4)}
        print(json.dumps({"nli " + label: out[label]}), flush=True)
    return out


def stage2(args, task, sets) -> dict:
    """Cost of stage 2 with the embedded defaults, and how the 135M judge answers clear cases."""
    from prism_agent.config.backends import LocalBackendConfig
    from prism_agent.generators import make_generator

    judge = make_generator(LocalBackendConfig())
    cache = Path(tempfile.mkdtemp(prefix="bench-decontam-"))
    t = time.perf_counter()
    decon = Decontaminator(task, sets, DecontamConfig(), judge=judge, cache_dir=cache)
    embed_items_s = time.perf_counter() - t
    rng = random.Random(1)
    items = [it for b in sets for it in b.items]
    seeds = [r["prompt"] for r in _rows("gsm8k-train")]
    k = args.stage2
    # same question (an item vs a copy the judge sees; stage 1 bypassed) and unrelated (seed vs nearest item)
    same = rng.sample(items, k)
    clean = [Sample(f"c{i}", s, "") for i, s in enumerate(rng.sample(seeds, k))]
    t = time.perf_counter()
    nearest = decon.embeddings.nearest([s.prompt for s in clean])
    embed_s = time.perf_counter() - t
    from prism_agent.decontam.judge import judge_request, parse_verdict

    reqs = [judge_request(task, it.text, it.text, f"same{i}", decon.cfg) for i, it in enumerate(same)]
    reqs += [judge_request(task, s.prompt, it.text, s.id, decon.cfg) for s, (it, _) in zip(clean, nearest, strict=True)]
    asyncio.run(judge.generate(reqs[:1]))  # load the model outside the timing
    t = time.perf_counter()
    results = asyncio.run(judge.generate(reqs))
    judge_s = time.perf_counter() - t
    verdicts = [parse_verdict(r.texts[0]) for r in results]
    out = {
        "benchmark_items_embedded": len(items), "embed_items_s": round(embed_items_s, 1),
        "embed_samples_per_s": round(k / embed_s, 1), "judge_calls": len(reqs),
        "judge_calls_per_s": round(len(reqs) / judge_s, 2),
        "judge_yes_on_identical_pairs": f"{sum(v is True for v in verdicts[:k])} of {k}",
        "judge_yes_on_unrelated_pairs": f"{sum(v is True for v in verdicts[k:])} of {k}",
        "judge_unclear": sum(v is None for v in verdicts),
        "mean_similarity_clean_to_nearest": round(sum(s for _, s in nearest) / k, 3),
    }
    print(json.dumps({"stage 2": out}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--stage2", type=int, default=0, help="also time stage 2 on this many pairs of each kind")
    ap.add_argument("--no-nli", action="store_true")
    ns = ap.parse_args()
    ns.rules = [("lsh", 0.3), ("lsh", 0.5), ("exact", 0.3)]
    task = get_task("math")
    sets = load_all(task.benchmarks, task)
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
                         f"affinity {sorted(os.sched_getaffinity(0))}",
              "math": stage1(ns, task, sets)}
    if not ns.no_nli:
        report["nli"] = nli(ns)
    if ns.stage2:
        report["stage2"] = stage2(ns, task, sets)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
