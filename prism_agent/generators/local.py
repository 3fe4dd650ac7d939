"""`local`: embedded transformers generation, the default that works on a laptop with no GPU or server.

Requests are expanded to one row per completion (n rows per request), sorted by prompt length and decoded
in left-padded batches. Sampling happens in a logits processor with one `torch.Generator` per row, seeded
from (request seed, completion index): a row's tokens then depend on its own seed, not on which other
rows share its batch or on global RNG state, and each row may have its own temperature, top_p and
max_tokens. The processor leaves exactly one finite logit per row, so transformers' greedy step takes the
sampled token.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import torch

from prism_agent.config.backends import LocalBackendConfig
from prism_agent.generators.base import EmbeddedGenerator, chat_token_ids
from prism_agent.generators.types import Completion, GenRequest, GenResult, Usage


def row_seed(seed: int | None, index: int) -> int:
    """Seed of completion `index` of a request: stable across processes (no Python `hash`)."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class _Row:
    request: int
    choice: int
    ids: list[int]
    temperature: float
    top_p: float
    max_new: int
    seed: int
    stop: tuple[str, ...] = ()
    tokens: list[int] = field(default_factory=list)
    finish: str = "length"


class _RowSampler:
    """A transformers logits processor that samples each row with its own generator and settings."""

    def __init__(self, rows: list[_Row], eos_id: int, prompt_len: int, device: torch.device, decode=None):
        self.rows = rows
        self.stopped = [False] * len(rows)
        self.stops = decode is not None and any(r.stop for r in rows)
        self.decode = decode
        self.tails: list[list[int]] = [[] for _ in rows]
        self.tail_tokens = 2 + max((len(x) for r in rows for x in r.stop), default=0)  # ≥ 1 char per token
        self.eos_id = eos_id
        self.prompt_len = prompt_len
        self.gens = []
        for r in rows:
            g = torch.Generator(device=device)
            g.manual_seed(r.seed)
            self.gens.append(g)
        self.temps = torch.tensor([max(r.temperature, 1e-6) for r in rows], device=device).unsqueeze(1)
        self.top_p = [r.top_p for r in rows]
        self.greedy = [r.temperature == 0.0 for r in rows]
        self.max_new = [r.max_new for r in rows]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        probs = torch.softmax(scores.float() / self.temps, dim=-1)
        chosen = torch.empty(len(self.rows), dtype=torch.long, device=scores.device)
        for i in range(len(self.rows)):
            if step >= self.max_new[i] or self.stopped[i]:
                chosen[i] = self.eos_id
            elif self.greedy[i]:
                chosen[i] = scores[i].argmax()
            else:
                p, ids = _nucleus(probs[i], self.top_p[i])
                pick = torch.multinomial(p, 1, generator=self.gens[i])[0]
                chosen[i] = pick if ids is None else ids[pick]
        if self.stops:
            self._check_stops(chosen)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen.unsqueeze(1), 0.0)
        return out

    def _check_stops(self, chosen: torch.Tensor) -> None:
        """End a row once its text contains one of its stop strings: the batch then stops waiting for it
        (a stop is otherwise only applied to the finished text, after the longest row has run to its cap)."""
        for i, r in enumerate(self.rows):
            if self.stopped[i] or not r.stop:
                continue
            self.tails[i].append(int(chosen[i]))
            tail = self.decode(self.tails[i][-self.tail_tokens:])
            if any(stop in tail for stop in r.stop):
                self.stopped[i] = True


def _nucleus(probs: torch.Tensor, top_p: float, k: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One row's top-p filtered probabilities; when its top k already hold the nucleus (the usual case),
    only those k are sorted and their vocabulary ids are returned too. The nucleus is the same either way:
    a full-vocabulary sort was most of a CPU decoding step for a small model."""
    if top_p >= 1.0:
        return probs, None
    top, ids = probs.topk(min(k, probs.shape[-1]))  # sorted, descending
    if float(top.sum()) < top_p:
        top, ids = probs.sort(descending=True)
    drop = (top.cumsum(-1) - top) > top_p  # keep the smallest prefix whose mass reaches top_p
    return top.masked_fill(drop, 0.0), ids


class _Engine:
    """A loaded model shared by every role that names the same model, dtype and device."""

    def __init__(self, cfg: LocalBackendConfig):
        from prism_agent.gradients.proxy import load_proxy, resolve_proxy_path
        from prism_agent.models.fingerprint import model_identity

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
        proxy = load_proxy(cfg.model, device=cfg.device, dtype=dtype)
        self.model, self.tokenizer, self.device = proxy.model, proxy.tokenizer, proxy.device
        folder, gguf, _ = resolve_proxy_path(cfg.model)
        self.identity = model_identity(cfg.model, folder, gguf)
        self.max_length = proxy.max_length
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

    def decode_batch(self, rows: list[_Row]) -> None:
        """Generate every row of one batch in place (tokens and finish reason)."""
        from transformers import GenerationConfig, LogitsProcessorList

        width = max(len(r.ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r.ids):] = torch.tensor(r.ids)
            mask[i, width - len(r.ids):] = 1
        max_new = max(r.max_new for r in rows) + 1  # +1: the step that forces EOS after max_new tokens
        max_new = max(1, min(max_new, self.max_length - width))
        sampler = _RowSampler(rows, self.eos_id, width, self.device, decode=self.tokenizer.decode)
        config = GenerationConfig(
            do_sample=False, max_new_tokens=max_new, eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id,
        )
        with self.lock, torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                generation_config=config, logits_processor=LogitsProcessorList([sampler]),
            )
        new = out[:, width:].tolist()
        for r, toks in zip(rows, new, strict=True):
            kept: list[int] = []
            finish = "length"
            for t in toks:
                if t in self.eos_ids:
                    finish = "stop" if len(kept) < r.max_new else "length"
                    break
                kept.append(t)
            r.tokens, r.finish = kept[: r.max_new], finish

    def choice_logprobs(self, prompt_ids: list[int], options: Sequence[str]) -> list[tuple[float, int]]:
        """log p(option + end-of-turn | prompt) per option, and its token count, from one batched forward."""
        seqs = [self.tokenizer(o, add_special_tokens=False)["input_ids"] + [self.eos_id] for o in options]
        width = len(prompt_ids) + max(len(x) for x in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, x in enumerate(seqs):
            row = prompt_ids + x
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        with self.lock, torch.inference_mode():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        out = []
        for i, x in enumerate(seqs):
            start = len(prompt_ids)
            positions = torch.arange(start - 1, start - 1 + len(x), device=logp.device)
            targets = torch.tensor(x, device=logp.device)
            out.append((float(logp[i, positions, targets].sum()), len(x) - 1))
        return out

    def text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)



def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stops if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


class LocalGenerator(EmbeddedGenerator):
    kind = "local"
    cfg: LocalBackendConfig

    def _load(self) -> _Engine:
        return _Engine(self.cfg)

    def _engine_key(self) -> str:  # batch size and threads do not change the loaded model
        return f"{self.cfg.model}|{self.cfg.dtype}|{self.cfg.device}"

    async def stream(self, requests: Sequence[GenRequest]) -> AsyncIterator[tuple[int, GenResult]]:
        if not requests:
            return
        engine = await asyncio.to_thread(lambda: self.engine)
        start = time.perf_counter()
        prompt_ids = [engine.encode(r) for r in requests]
        for i, req in enumerate(requests):
            if req.sampling.choices:
                result = await asyncio.to_thread(self._choose, engine, req, prompt_ids[i], start)
                yield i, result
        rows = [
            _Row(request=i, choice=j, ids=prompt_ids[i], temperature=req.sampling.temperature,
                 top_p=req.sampling.top_p, max_new=req.sampling.max_tokens, seed=row_seed(req.sampling.seed, j),
                 stop=req.sampling.stop)
            for i, req in enumerate(requests) if not req.sampling.choices for j in range(req.sampling.n)
        ]
        pending = {i: req.sampling.n for i, req in enumerate(requests) if not req.sampling.choices}
        by_request: dict[int, list[_Row]] = {i: [] for i in pending}
        order = sorted(rows, key=lambda r: (len(r.ids), r.max_new))
        for b in range(0, len(order), self.cfg.batch_size):
            batch = order[b : b + self.cfg.batch_size]
            await asyncio.to_thread(engine.decode_batch, batch)
            for r in batch:
                by_request[r.request].append(r)
                pending[r.request] -= 1
                if pending[r.request] == 0:
                    yield r.request, self._result(engine, requests[r.request], by_request.pop(r.request), start)

    def _choose(self, engine: _Engine, request: GenRequest, prompt_ids: list[int], start: float) -> GenResult:
        """Constrained choice: each completion is one option, drawn with probability ∝ p(option)^(1/T) (the
        argmax at T = 0), with the same per-completion seeds as free sampling."""
        s = request.sampling
        scored = engine.choice_logprobs(prompt_ids, s.choices)
        logp = torch.tensor([lp for lp, _ in scored], dtype=torch.float64)
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
        usage = Usage(prompt_tokens=len(prompt_ids), completion_tokens=sum(c.completion_tokens for c in completions))
        return GenResult(completions=completions, usage=usage, latency_s=time.perf_counter() - start,
                         model=self.model_id, native_choices=s.n, calls=1)

    def _result(self, engine: _Engine, request: GenRequest, rows: list[_Row], start: float) -> GenResult:
        completions = []
        for r in sorted(rows, key=lambda r: r.choice):
            text, stopped = _cut_at_stop(engine.text(r.tokens), request.sampling.stop)
            completions.append(Completion(text=text, finish_reason="stop" if stopped else r.finish,
                                          completion_tokens=len(r.tokens)))
        usage = Usage(prompt_tokens=len(rows[0].ids), completion_tokens=sum(c.completion_tokens for c in completions))
        return GenResult(completions=completions, usage=usage, latency_s=time.perf_counter() - start,
                         model=self.model_id, native_choices=len(completions), calls=1)
