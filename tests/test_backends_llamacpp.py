"""The `openai` backend against a real llama.cpp server on 127.0.0.1: it returns one choice whatever n is
(the top-up path) and serves concurrent requests one at a time. Also `backends check` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prism_agent.config.backends import parse_backend
from prism_agent.generators import GenerationError, GenRequest, make_generator

pytestmark = pytest.mark.slow

Q = [{"role": "user", "content": "Give me a random animal name."}]


def _cfg(server, **extra):
    return parse_backend({"backend": "openai", "base_url": server.base_url, "model": server.model,
                          "max_concurrency": 4, "timeout_s": 60, **extra})


def test_top_up_fills_n_and_seeds_stay_distinct(llamacpp_server):
    gen = make_generator(_cfg(llamacpp_server))
    res = gen.generate_sync([GenRequest.chat(Q, n=3, temperature=1.0, max_tokens=12, seed=11)])[0]
    assert len(res.completions) == 3
    assert res.native_choices == 1 and res.calls == 3  # llama.cpp ignores n: two top-up calls
    assert len(set(res.texts)) > 1  # top-ups carry derived seeds, so they are not copies of the first call
    assert res.usage.completion_tokens > 0 and res.usage.prompt_tokens > 0
    again = gen.generate_sync([GenRequest.chat(Q, n=3, temperature=1.0, max_tokens=12, seed=11)])[0]
    assert again.texts == res.texts  # seeded, topped up the same way: reproducible


def test_sequential_server_serves_every_request(llamacpp_server):
    gen = make_generator(_cfg(llamacpp_server, max_concurrency=6, initial_concurrency=6))
    batch = [GenRequest.chat([{"role": "user", "content": f"Say the number {i}."}], temperature=0.0, max_tokens=6)
             for i in range(8)]
    results = gen.generate_sync(batch)
    assert len(results) == 8 and all(r.texts[0] for r in results)
    assert gen.stats().failures == 0 and gen.limiter.peak_in_flight >= 2  # calls overlapped; the server queued them


def test_completions_mode_renders_the_chat_template(llamacpp_server):
    gen = make_generator(_cfg(llamacpp_server, mode="completions", tokenizer="smollm2-135m-instruct"))
    chat = gen.generate_sync([GenRequest.chat(Q, temperature=0.0, max_tokens=8)])[0]
    raw = gen.generate_sync([GenRequest(prompt="The capital of France is")])[0]
    assert chat.texts[0] and raw.texts[0]


def test_model_not_served_lists_what_is(llamacpp_server):
    gen = make_generator(_cfg(llamacpp_server, model="gpt-17"))
    with pytest.raises(GenerationError, match=r"'gpt-17' is not served here; it serves: smollm2"):
        gen.generate_sync([GenRequest.chat(Q, max_tokens=4)])


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "prism_agent.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_backends_check_cli(llamacpp_server):
    ok = _cli("backends", "check", "--role", "generator", "--backend", "openai", "--base-url",
              llamacpp_server.base_url, "--model", "smollm2", "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["roles"] == ["generator"] and report["model_id"] == "openai/smollm2"
    assert report["n_honoured"] is False and report["n_native"] == 1 and report["tokens_per_s"] > 0

    wrong = _cli("backends", "check", "--backend", "openai", "--base-url", llamacpp_server.base_url, "--model", "x")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "it serves: smollm2" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_backends_check_bad_endpoints(tmp_path):
    from tests.support.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    down = _cli("backends", "check", "--backend", "openai", "--base-url", url, "--model", "m", "--timeout", "5",
                timeout=60)
    assert down.returncode == 2 and down.stderr.strip().startswith("error: cannot reach " + url)
    assert down.stderr.count("\n") == 1
    cfg = tmp_path / "roles.toml"
    cfg.write_text(f'[roles.judge]\nbackend = "openai"\nbase_url = "{url}"\nmodel = "m"\n'
                   'api_key_env = "PRISM_NO_SUCH_KEY"\n')
    nokey = _cli("backends", "check", "--role", "judge", "--config", str(cfg), timeout=60)
    assert nokey.returncode == 2 and "PRISM_NO_SUCH_KEY" in nokey.stderr and nokey.stderr.count("\n") == 1


def test_launcher_keeps_models_off_extra_buffer_types():
    """Our launcher's one change to llama.cpp's server: models load without extra buffer types, the AMX
    buffer among them (the server fixture above uses the launcher, so every test here runs through it).
    Run in a child process because the change is process-wide."""
    code = ("import llama_cpp.llama as m; before = m.llama_cpp.llama_model_default_params().use_extra_bufts; "
            "from prism_agent.models.llamacpp_server import disable_extra_buffer_types as d; "
            "print(before, d(), m.llama_cpp.llama_model_default_params().use_extra_bufts, d())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False", "True"]
