"""Both featurizers against first principles, on tiny random models of the real architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.gradients.batching import collate, per_sample_loss
from prism_agent.gradients.exact import ExactFeaturizer
from prism_agent.gradients.fast import FastFeaturizer
from prism_agent.gradients.projection import stream_key
from prism_agent.gradients.proxy import load_proxy
from prism_agent.gradients.render import encode
from tests.test_projection import numpy_signs


def _encode_all(proxy, samples, max_length=256):
    return [encode(proxy.tokenizer, p, r, max_length) for p, r in samples]


def _autograd_grads(proxy, enc):
    """Per-sample gradients, one sample at a time with no padding: {param id: grad}."""
    model = proxy.model
    for p in model.parameters():
        p.requires_grad_(True)
    out = []
    for e in enc:
        model.zero_grad(set_to_none=True)
        b = collate([e], [0], proxy.tokenizer.pad_token_id)
        per_sample_loss(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, b)[0].backward()
        out.append({id(p): p.grad.detach().clone() for p in model.parameters() if p.grad is not None})
    return out


@pytest.mark.parametrize("which", ["tiny_llama_dir", "tiny_qwen_dir"])
def test_fast_blocks_equal_autograd_on_padded_batch(which, request, samples):
    proxy = load_proxy(str(request.getfixturevalue(which)), device="cpu")
    enc = _encode_all(proxy, samples)
    assert len({len(e) for e in enc}) > 1  # the batch really is padded
    cfg = FeaturizerConfig(dtype="float32", rank_in=4, rank_out=3)
    fz = FastFeaturizer(proxy, cfg)
    pre = fz.pre_projection(enc)  # one padded batch of all samples
    fz.close()
    grads = _autograd_grads(proxy, enc)
    r = cfg.rank_in * cfg.rank_out
    checked = 0
    for i in range(len(enc)):
        ref = np.zeros(fz.pre_dim)
        for lin in fz.linears:
            g = grads[i][id(lin.module.weight)].double()
            ref[lin.offset : lin.offset + r] = (lin.p_out.double().T @ g @ lin.p_in.double()).reshape(-1).numpy()
            if lin.module.bias is not None:
                ref[lin.offset + r : lin.offset + r + cfg.rank_out] = (
                    lin.p_out.double().T @ grads[i][id(lin.module.bias)].double()).numpy()
                checked += 1
        for norm, off in fz.norms:
            ref[off : off + norm.weight.numel()] = grads[i][id(norm.weight)].double().numpy()
        if not fz.tied:
            g = grads[i][id(fz.embedding.weight)].double()
            ref[fz.emb_offset : fz.emb_offset + r] = (fz.emb_p_out.double().T @ g @ fz.emb_p_in.double()).reshape(-1)
        np.testing.assert_allclose(pre[i], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert checked > 0 if which == "tiny_qwen_dir" else True  # biases exercised on Qwen2


def test_fast_is_batching_invariant(tiny_llama_dir, samples):
    proxy = load_proxy(str(tiny_llama_dir), device="cpu")
    enc = _encode_all(proxy, samples)
    one = FastFeaturizer(proxy, FeaturizerConfig(dtype="float32", max_batch=1))
    a = one.featurize(enc)
    one.close()
    many = FastFeaturizer(proxy, FeaturizerConfig(dtype="float32", max_batch=64))
    b = many.featurize(enc)
    many.close()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_exact_equals_direct_dense_projection(tiny_llama_dir, samples):
    proxy = load_proxy(str(tiny_llama_dir), device="cpu")
    enc = _encode_all(proxy, samples)
    d = 16
    fz = ExactFeaturizer(proxy, FeaturizerConfig(kind="exact", dim=d, dtype="float32", exact_batch=3))
    feats = fz.featurize(enc)
    flat = [torch.cat([g[id(p)].reshape(-1) for p in fz.params]).double().numpy() for g in _autograd_grads(proxy, enc)]
    dense = numpy_signs(stream_key(0, "exact"), fz.num_params, d) / np.sqrt(d)
    direct = np.stack(flat) @ dense
    np.testing.assert_allclose(feats, direct, rtol=1e-4, atol=1e-4 * np.abs(direct).max())


@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-5), ("bfloat16", 2.0 ** -8)])
def test_exact_same_features_whatever_batch_and_threads(tiny_llama_dir, samples, dtype, tol):
    """The projection is a pure function of the seed; what varies with the thread count is the fp32 gradient's
    summation order. A bf16 projection rounds each gradient entry to 8 bits, so a last-bit difference can flip
    a rounding: rows then agree to bf16 precision (measured 4e-4), fp32 rows to 2e-6."""
    proxy = load_proxy(str(tiny_llama_dir), device="cpu")
    enc = _encode_all(proxy, samples)
    runs = []
    for batch, threads in ((1, 1), (4, 1), (3, 2)):
        torch.set_num_threads(threads)
        fz = ExactFeaturizer(proxy, FeaturizerConfig(kind="exact", dim=64, exact_batch=batch, dtype=dtype))
        runs.append(fz.featurize(enc))
    torch.set_num_threads(1)
    for other in runs[1:]:
        err = np.linalg.norm(runs[0] - other, axis=1) / np.linalg.norm(runs[0], axis=1)
        assert err.max() < tol, err
