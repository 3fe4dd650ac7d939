"""`local`: embedded transformers generation, the default that works on a laptop with no GPU or server.

Requests are expanded to one row per completion (n rows per request), sorted by prompt length and decoded
in batches by `local_decode.decode_rows` (each distinct prompt prefilled once, rows leaving the batch as
they finish, per-row seeds, temperature, top-p, token cap and stop strings). Constrained-choice requests
(`sampling.choices`, the NLI solver's labels) are scored, not decoded: one prefill per prompt and the
options as a continuation, all choice requests of a call together.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence

import torch

from prism_agent.config.backends import LocalBackendConfig
from prism_agent.generators import grouped_attention
from prism_agent.generators.base import EmbeddedGenerator, chat_token_ids
from prism_agent.generators.local_decode import Row, choice_logprobs, decode_rows
from prism_agent.generators.registry import register
from prism_agent.generators.types import Completion, GenRequest, GenResult, Usage
from prism_agent.models.dtype import backend_dtype
from prism_agent.models.threads import torch_threads, usable_cores
from prism_agent.seeds import row_seed

__all__ = ["LocalGenerator"]


class _Engine:
    """A loaded model shared by every role that names the same model, dtype and device."""

    def __init__(self, cfg: LocalBackendConfig):
        from prism_agent.models.fingerprint import model_identity
        from prism_agent.models.load import load_causal_lm

        self.dtype = backend_dtype(cfg.dtype, cfg.device)
        loaded = load_causal_lm(cfg.model, "local backend model", device=cfg.device, dtype=self.dtype.torch)
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        if self.device.type == "cpu":  # on a CPU, attention that does not copy the KV cache per query head is
            self.model.set_attn_implementation(grouped_attention.register())  # fastest (BENCHMARKS.md)
        self.identity = model_identity(cfg.model, loaded.folder, loaded.gguf)
        self.max_length = loaded.max_length
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = self.tokenizer.eos_token_id
        extra = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
        extra = extra if isinstance(extra, list) else [extra] if extra is not None else []
        self.eos_ids = {i for i in [eos, *extra] if i is not None}
        self.eos_id = eos if eos is not None else next(iter(self.eos_ids))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        self.lock = threading.Lock()  # one generate() at a time per model

    def encode(self, request: GenRequest) -> list[int]:
        return chat_token_ids(self.tokenizer, request)

    def decode_batch(self, rows: list[Row], threads: int | None = None) -> None:
        """Generate every row of one batch in place (tokens and finish reason)."""
        with self.lock, torch_threads(threads or usable_cores()), torch.inference_mode():
            decode_rows(self.model, rows, pad_id=self.pad_id, eos_ids=self.eos_ids, max_length=self.max_length,
                        device=self.device, decode=self.tokenizer.decode)

    def choice_logprobs(self, prompts: Sequence[list[int]], options: Sequence[str],
                        threads: int | None = None) -> list[list[tuple[float, int]]]:
        """log p(option + end-of-turn | prompt) and the option's token count, per prompt and option."""
        seqs = [self.tokenizer(o, add_special_tokens=False)["input_ids"] + [self.eos_id] for o in options]
        with self.lock, torch_threads(threads or usable_cores()), torch.inference_mode():
            scores = choice_logprobs(self.model, prompts, seqs, pad_id=self.pad_id, device=self.device)
        return [[(lp, len(x) - 1) for lp, x in zip(row, seqs, strict=True)] for row in scores]

    def text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)



def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


@register("local")
class LocalGenerator(EmbeddedGenerator):
    kind = "local"
    scores_choices = True
    cfg: LocalBackendConfig

    def _load(self) -> _Engine:
        return _Engine(self.cfg)

    def _engine_key(self) -> str:  # batch size and threads do not change the loaded model
        return f"{self.cfg.model}|{backend_dtype(self.cfg.dtype, self.cfg.device).name}|{self.cfg.device}"

    async def stream(self, requests: Sequence[GenRequest]) -> AsyncIterator[tuple[int, GenResult]]:
        if not requests:
            return
        engine = await asyncio.to_thread(lambda: self.engine)
        start = time.perf_counter()
        prompt_ids = [engine.encode(r) for r in requests]
        choosing: dict[tuple[str, ...], list[int]] = {}
        for i, req in enumerate(requests):
            if req.sampling.choices:
                choosing.setdefault(req.sampling.choices, []).append(i)
        for options, members in choosing.items():
            order = sorted(members, key=lambda i: len(prompt_ids[i]))
            for b in range(0, len(order), self.cfg.batch_size):
                part = order[b : b + self.cfg.batch_size]
                scored = await asyncio.to_thread(engine.choice_logprobs, [prompt_ids[i] for i in part], options,
                                                self.cfg.threads)
                for i, row in zip(part, scored, strict=True):
                    yield i, self._choose(requests[i], row, len(prompt_ids[i]), start)
        rows = [
            Row(request=i, choice=j, ids=prompt_ids[i], temperature=req.sampling.temperature,
                top_p=req.sampling.top_p, max_new=req.sampling.max_tokens, seed=row_seed(req.sampling.seed, j),
                stop=req.sampling.stop)
            for i, req in enumerate(requests) if not req.sampling.choices for j in range(req.sampling.n)
        ]
        pending = {i: req.sampling.n for i, req in enumerate(requests) if not req.sampling.choices}
        by_request: dict[int, list[Row]] = {i: [] for i in pending}
        order = sorted(rows, key=lambda r: (len(r.ids), r.max_new))
        for b in range(0, len(order), self.cfg.batch_size):
            batch = order[b : b + self.cfg.batch_size]
            await asyncio.to_thread(engine.decode_batch, batch, self.cfg.threads)
            for r in batch:
                by_request[r.request].append(r)
                pending[r.request] -= 1
                if pending[r.request] == 0:
                    yield r.request, self._result(engine, requests[r.request], by_request.pop(r.request), start)

    def _choose(self, request: GenRequest, scored: list[tuple[float, int]], prompt_tokens: int,
                start: float) -> GenResult:
        """Constrained choice: each completion is one option, drawn with probability ∝ p(option)^(1/T) (the
        argmax at T = 0), with the same per-completion seeds as free sampling."""
        s = request.sampling
        raw = [lp for lp, _ in scored]
        logp = torch.tensor(raw, dtype=torch.float64)
        if s.choice_bias:
            logp = logp + torch.tensor(s.choice_bias, dtype=torch.float64)
        completions = []
        for j in range(s.n):
            if s.temperature == 0.0:
                pick = int(logp.argmax())
            else:
                g = torch.Generator()
                g.manual_seed(row_seed(s.seed, j))
                pick = int(torch.multinomial(torch.softmax(logp / s.temperature, dim=0), 1, generator=g)[0])
            completions.append(Completion(text=s.choices[pick], finish_reason="stop",
                                          completion_tokens=scored[pick][1]))
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=sum(c.completion_tokens for c in completions))
        return GenResult(completions=completions, usage=usage, latency_s=time.perf_counter() - start,
                         model=self.model_id, native_choices=s.n, calls=1, choice_logprobs=raw)

    def _result(self, engine: _Engine, request: GenRequest, rows: list[Row], start: float) -> GenResult:
        completions = []
        for r in sorted(rows, key=lambda r: r.choice):
            text, stopped = _cut_at_stop(engine.text(r.tokens), request.sampling.stop)
            completions.append(Completion(text=text, finish_reason="stop" if stopped else r.finish,
                                          completion_tokens=len(r.tokens)))
        usage = Usage(prompt_tokens=len(rows[0].ids), completion_tokens=sum(c.completion_tokens for c in completions))
        return GenResult(completions=completions, usage=usage, latency_s=time.perf_counter() - start,
                         model=self.model_id, native_choices=len(completions), calls=1)
