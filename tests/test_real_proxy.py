"""The real default proxy (SmolLM2-135M-Instruct from the package index) on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.gradients.fast import FastFeaturizer
from prism_agent.gradients.proxy import load_proxy
from prism_agent.gradients.render import encode
from tests.test_featurizers import _autograd_grads

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def proxy():
    return load_proxy(None, device="cpu", dtype=torch.float32)


def test_fast_equals_autograd_on_real_proxy(proxy, samples):
    enc = [encode(proxy.tokenizer, p, r, 512) for p, r in samples[:3]]
    cfg = FeaturizerConfig(dtype="float32", rank_in=2, rank_out=2)
    fz = FastFeaturizer(proxy, cfg)
    pre = fz.pre_projection(enc)
    fz.close()
    grads = _autograd_grads(proxy, enc)
    head = next(lin for lin in fz.linears if lin.module is fz.head)
    for i in range(len(enc)):
        for lin in (head, fz.linears[0], fz.linears[len(fz.linears) // 2]):
            g = grads[i][id(lin.module.weight)]
            ref = (lin.p_out.T @ g @ lin.p_in).reshape(-1).numpy()
            np.testing.assert_allclose(pre[i][lin.offset : lin.offset + 4], ref, rtol=1e-4, atol=1e-4 * abs(ref).max())


def test_measure_ranks_near_duplicates_below_real_data(tmp_path):
    from prism_agent.measure_dataset import measure

    near = tmp_path / "near.jsonl"
    near.write_text("".join(json.dumps({"id": str(i), "prompt": "Premise: A dog runs.\nHypothesis: An animal "
                                        f"is {w}.", "response": "neutral"}) + "\n"
                            for i, w in enumerate(["moving", "running", "outside", "happy", "fast", "young"] * 4)))
    low = measure(near).g_vendi.q1
    high = measure("gsm8k-train", limit=24).g_vendi.q1
    assert 1.0 <= low < high
