"""Measure the gradient diversity of your own dataset with the library API.

    python examples/measure_dataset.py my_data.jsonl --prompt-field question --response-field answer

Rows need a prompt and a response (any column names); ids are optional. Features are cached, so a
second run only re-scores.
"""

from __future__ import annotations

import argparse

from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.data.reader import Fields
from prism_agent.measure_dataset import measure


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", help="JSONL / Parquet / HF datasets folder, or a built-in name such as gsm8k-train")
    ap.add_argument("--prompt-field", default="prompt")
    ap.add_argument("--response-field", default="response")
    ap.add_argument("--limit", type=int, default=64)
    args = ap.parse_args()
    result = measure(args.data, fields=Fields(prompt=args.prompt_field, response=args.response_field),
                     config=FeaturizerConfig(kind="fast"), limit=args.limit, embedding=True)
    print(f"n={result.stats.featurized}  G-Vendi={result.g_vendi.q1:.2f}  "
          f"embedding Vendi={result.embedding_vendi.q1:.2f}  features in {result.store.root}")


if __name__ == "__main__":
    main()
