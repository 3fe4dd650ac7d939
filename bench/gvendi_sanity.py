"""G-Vendi sanity on real data: `prism-agent measure` must rank sets of known diversity as
near-duplicates < one task's real data < a mix of tasks. Writes the sets as JSONL, then runs the real CLI.

    python bench/gvendi_sanity.py --out bench/out/gvendi-sanity --n 64

Sets (n rows each, drawn with one seed): near-dup-nli (one SNLI premise, template hypotheses with a word
changed), snli (real SNLI train pairs), gsm8k (real GSM8K train problems with solutions), mix (half SNLI,
half GSM8K/MATH). The result and this command are in EVIDENCE.md.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from bench_featurize import build_sets  # same near-duplicate construction as the featurizer benchmark

from prism_agent.data.pull import ensure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = build_sets(args.n)
    rng = random.Random(1)
    gsm = [json.loads(line) for line in ensure("gsm8k-train").open()]
    sets = {
        "near-dup-nli": [r for r in rows if r["set"] == "near-dup-nli"],
        "snli": [r for r in rows if r["set"] == "snli"],
        "gsm8k": [{"id": f"gsm8k-{i}", "prompt": r["prompt"], "response": r["response"]}
                  for i, r in enumerate(rng.sample(gsm, args.n))],
        "mix": ([r for r in rows if r["set"] == "snli"][: args.n // 2]
                + [r for r in rows if r["set"] == "math"][: args.n - args.n // 2]),
    }
    paths = []
    for name, items in sets.items():
        path = args.out / f"{name}.jsonl"
        path.write_text("".join(json.dumps({k: r[k] for k in ("id", "prompt", "response")}) + "\n" for r in items))
        paths.append(str(path))
    done = subprocess.run([sys.executable, "-m", "prism_agent.cli.app", "measure", *paths, "--json", "--threads", "1"],
                          capture_output=True, text=True, check=True)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    for r in sorted(results, key=lambda r: r["g_vendi"]):
        print(f"{Path(r['path']).stem:14s} n={r['n']:4d}  G-Vendi {r['g_vendi']:.3f}  ({r['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
