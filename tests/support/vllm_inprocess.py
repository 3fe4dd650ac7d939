"""Runs the in-process `vllm` backend in its own interpreter and prints what the tests check, as JSON.

vLLM changes process-wide state when it loads (torch thread count, signal handlers, env defaults), so the
test runs it here rather than inside the pytest process that runs every other test."""

from __future__ import annotations

import json
import sys

from prism_agent.config.backends import VLLMBackendConfig
from prism_agent.generators import GenRequest, make_generator

Q = [{"role": "user", "content": "Write one short sentence about the sea."}]


def main() -> None:
    gen = make_generator(VLLMBackendConfig(model=sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct"))
    batch = [GenRequest.chat(Q, n=3, temperature=1.0, max_tokens=16, seed=5),
             GenRequest.chat(Q, n=2, temperature=0.0, max_tokens=8),
             GenRequest.chat(Q, n=1, temperature=0.8, max_tokens=4, stop=("sea",)),
             GenRequest.chat(Q, n=4, temperature=1.0, max_tokens=8, seed=2, choices=("calm", "stormy", "blue"))]
    first = gen.generate_sync(batch)
    again = gen.generate_sync(batch[:1])
    other = gen.generate_sync([GenRequest.chat(Q, n=3, temperature=1.0, max_tokens=16, seed=6)])
    print(json.dumps({
        "model_id": gen.model_id,
        "first": [r.model_dump() for r in first],
        "again": again[0].texts,
        "other": other[0].texts,
    }))


if __name__ == "__main__":
    main()
