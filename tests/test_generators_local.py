"""The embedded `local` backend with the real SmolLM2-135M-Instruct, and the replay cache in front of it."""

from __future__ import annotations

import pytest
import torch

from prism_agent.config.backends import LocalBackendConfig
from prism_agent.generators import GenRequest, ReplayingGenerator, ReplayStore, make_generator

pytestmark = pytest.mark.slow

Q = [{"role": "user", "content": "Write one short sentence about the sea."}]
Q2 = [{"role": "user", "content": "What is 12 + 7? Answer with a number."}]


@pytest.fixture(scope="module")
def local():
    return make_generator(LocalBackendConfig(batch_size=8))


def test_n_seed_and_reproducibility(local):
    batch = [GenRequest.chat(Q, n=3, temperature=1.0, max_tokens=20, seed=7),
             GenRequest.chat(Q2, n=2, temperature=1.0, max_tokens=20, seed=7)]
    first = local.generate_sync(batch)
    again = local.generate_sync(batch)
    assert [len(r.completions) for r in first] == [3, 2]
    assert [r.texts for r in first] == [r.texts for r in again]  # same batch, same seeds: same text
    assert len(set(first[0].texts)) > 1  # n samples, not n copies
    other = local.generate_sync([GenRequest.chat(Q, n=3, temperature=1.0, max_tokens=20, seed=8), batch[1]])
    assert other[0].texts != first[0].texts
    r = first[0]
    assert r.native_choices == 3 and r.usage.prompt_tokens > 5
    assert r.usage.completion_tokens == sum(c.completion_tokens for c in r.completions)
    assert all(0 < c.completion_tokens <= 20 for c in r.completions)


def test_greedy_matches_bare_transformers_and_limits(local):
    req = GenRequest.chat(Q2, n=2, temperature=0.0, max_tokens=12, seed=0)
    res = local.generate_sync([req])[0]
    assert res.texts[0] == res.texts[1]
    engine = local.engine
    ids = torch.tensor([engine.encode(req)])
    with torch.inference_mode():
        out = engine.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                                    pad_token_id=engine.pad_id)
    bare = engine.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert res.texts[0] == bare
    short = local.generate_sync([GenRequest.chat(Q, temperature=0.0, max_tokens=3)])[0]
    assert short.completions[0].finish_reason == "length" and short.completions[0].completion_tokens == 3
    stop = local.generate_sync([GenRequest.chat(Q2, temperature=0.0, max_tokens=12, stop=("9",))])[0]
    assert "9" not in stop.texts[0] and stop.completions[0].finish_reason == "stop"


def test_replay_makes_zero_backend_calls(local, tmp_path):
    store = ReplayStore(tmp_path / "calls.sqlite")
    gen = ReplayingGenerator(local, store)
    batch = [GenRequest.chat(Q, n=2, temperature=0.9, max_tokens=10, seed=s) for s in range(3)]
    batch.append(batch[0])  # an identical request in the same batch is sent once
    first = gen.generate_sync(batch)
    assert gen.backend_requests == 3 and len(store) == 3
    assert first[3].texts == first[0].texts
    second = gen.generate_sync(batch)
    assert gen.backend_requests == 3  # zero backend calls the second time
    assert all(r.replayed for r in second) and [r.texts for r in second] == [r.texts for r in first]
    store.close()
    # a resumed run opens the store from disk, with a new backend object: still a replay
    fresh = make_generator(LocalBackendConfig(batch_size=8))
    reopened = ReplayingGenerator(fresh, ReplayStore(tmp_path / "calls.sqlite"))
    third = reopened.generate_sync(batch[:3])
    assert reopened.backend_requests == 0 and [r.texts for r in third] == [r.texts for r in first[:3]]


def test_constrained_choices_are_scored_and_seeded(local):
    labels = ("entailment", "neutral", "contradiction")
    q = [{"role": "user", "content": "Premise: A man plays a guitar on stage.\nHypothesis: A man performs music.\n"
                                     "Answer with one word: entailment, neutral or contradiction."}]
    sampled = local.generate_sync([GenRequest.chat(q, n=8, temperature=1.0, seed=4, choices=labels)])[0]
    assert len(sampled.texts) == 8 and set(sampled.texts) <= set(labels)
    assert local.generate_sync([GenRequest.chat(q, n=8, temperature=1.0, seed=4, choices=labels)])[0].texts == \
        sampled.texts
    greedy = local.generate_sync([GenRequest.chat(q, temperature=0.0, choices=labels)])[0]
    engine = local.engine
    scores = engine.choice_logprobs([engine.encode(GenRequest.chat(q))], labels)[0]
    assert greedy.texts == [labels[max(range(3), key=lambda i: scores[i][0])]]
    assert all(lp < 0 for lp, _ in scores)


def test_grouped_attention_matches_eager_on_a_padded_batch(local):
    """Same arithmetic as eager attention: equal to float32 rounding in float32. In bf16 the decoding step
    runs matmuls of other shapes (3 query rows per key/value head instead of 1), which on AMX CPUs round
    differently (measured: up to 0.2 on logits of 18, 1.5 bf16 ulps), so there only the greedy token and
    a few ulps are asked of it."""
    from prism_agent.generators import grouped_attention
    from prism_agent.generators.local_decode import prefill

    engine = local.engine
    prompts = [engine.encode(GenRequest.chat(Q)), engine.encode(GenRequest.chat(Q2))]  # different lengths
    dtype = engine.model.dtype
    out = {}
    try:
        for dt in (torch.float32, dtype):
            engine.model.to(dt)
            for impl in ("eager", grouped_attention.register()):
                engine.model.set_attn_implementation(impl)
                with torch.inference_mode():
                    cache, logits, _, _ = prefill(engine.model, prompts, engine.pad_id, engine.device)
                    step = engine.model(input_ids=logits.argmax(-1, keepdim=True), past_key_values=cache).logits
                out[dt, impl] = (logits.float(), step.float())
    finally:
        engine.model.to(dtype)  # bf16 -> fp32 -> bf16 is exact
        engine.model.set_attn_implementation(grouped_attention.NAME)
    for dt in (torch.float32, dtype):
        (a, a2), (b, b2) = out[dt, "eager"], out[dt, grouped_attention.NAME]
        assert torch.equal(a, b)  # prefill over left padding: bit for bit
        assert torch.equal(a2.argmax(-1), b2.argmax(-1))
    a2, b2 = out[torch.float32, "eager"][1], out[torch.float32, grouped_attention.NAME][1]
    assert torch.allclose(a2, b2, rtol=0, atol=1e-4 * a2.abs().max().item())  # a decoding step (no mask passed)
    a2, b2 = out[dtype, "eager"][1], out[dtype, grouped_attention.NAME][1]
    ulp = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -10
    assert (a2 - b2).abs().max() <= 4 * ulp * a2.abs().max()
