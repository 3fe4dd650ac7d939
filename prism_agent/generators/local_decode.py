"""The embedded backend's decoding loop: shared-prefix prefill and a batch that shrinks as rows finish.

Why not `model.generate`: a request asks for `n` completions of one prompt, and on a CPU the prompt
(a few-shot prompt is ~350 tokens, a new sample ~40) is most of the arithmetic. Here each distinct prompt
is prefilled once and its KV cache copied to its `n` rows; `generate` would prefill it `n` times. And
`generate` keeps decoding finished rows until the longest row ends, while this loop drops a row from the
batch (and the cache) as soon as it ends: at EOS, at its own token cap, or when its text contains one of
its stop strings. `bench/bench_generation.py --engines` measures both side by side (BENCHMARKS.md).

Sampling is per row, with one `torch.Generator` per row seeded from (request seed, completion index), the
row's own temperature and exact top-p, so a row's draws do not depend on global RNG state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class Row:
    """One completion being decoded."""

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


def nucleus(probs: torch.Tensor, top_p: float, k: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One row's top-p filtered probabilities; when its top k already hold the nucleus (the usual case),
    only those k are sorted and their vocabulary ids are returned too. The nucleus is the same either way:
    a full-vocabulary sort was most of a CPU decoding step for a small model."""
    if top_p >= 1.0:
        return probs, None
    for size in (k, 16 * k):  # a flat distribution: a wider top-k is still far cheaper than a full sort
        top, ids = probs.topk(min(size, probs.shape[-1]))  # sorted, descending
        if float(top.sum()) >= top_p:
            break
    else:
        top, ids = probs.sort(descending=True)
    drop = (top.cumsum(-1) - top) > top_p  # keep the smallest prefix whose mass reaches top_p
    return top.masked_fill(drop, 0.0), ids


class _Sampler:
    """Draws each row's next token with its own generator, temperature and top-p."""

    def __init__(self, rows: Sequence[Row], device: torch.device):
        self.rows = rows
        self.gens = []
        for r in rows:
            g = torch.Generator(device=device)
            g.manual_seed(r.seed)
            self.gens.append(g)

    def draw(self, logits: torch.Tensor, active: list[int]) -> list[int]:
        temps = torch.tensor([max(self.rows[i].temperature, 1e-6) for i in active], device=logits.device)
        probs = torch.softmax(logits.float() / temps.unsqueeze(1), dim=-1)
        out = []
        for j, i in enumerate(active):
            r = self.rows[i]
            if r.temperature == 0.0:
                out.append(int(logits[j].argmax()))
                continue
            p, ids = nucleus(probs[j], r.top_p)
            pick = int(torch.multinomial(p, 1, generator=self.gens[i])[0])
            out.append(pick if ids is None else int(ids[pick]))
        return out


def _left_padded(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def prefill(model, prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device):
    """Run distinct prompts once (left-padded); returns (cache, last-position logits, mask, next position)."""
    ids, mask = _left_padded(prompts, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=True,
                logits_to_keep=1)
    return out.past_key_values, out.logits[:, -1, :], mask, mask.sum(-1)


class StopWatcher:
    """Says when a row's newest text contains one of its stop strings, decoding only a short tail."""

    def __init__(self, rows: Sequence[Row], decode: Callable[[list[int]], str]):
        self.rows, self.decode = rows, decode
        self.tail = 2 + max((len(s) for r in rows for s in r.stop), default=0)  # ≥ 1 character per token

    def hit(self, i: int) -> bool:
        r = self.rows[i]
        return bool(r.stop) and any(s in self.decode(r.tokens[-self.tail:]) for s in r.stop)


def decode_rows(model, rows: Sequence[Row], *, pad_id: int, eos_ids: set[int], max_length: int,
                device: torch.device, decode: Callable[[list[int]], str]) -> None:
    """Fill each row's `tokens` and `finish` ("stop": EOS or a stop string; "length": its token cap)."""
    prompts: dict[tuple[int, ...], int] = {}
    for r in rows:
        prompts.setdefault(tuple(r.ids), len(prompts))
    cache, logits, mask, pos = prefill(model, list(prompts), pad_id, device)
    to_prompt = torch.tensor([prompts[tuple(r.ids)] for r in rows], device=device)
    cache.batch_select_indices(to_prompt)
    logits, mask, pos = logits[to_prompt], mask[to_prompt], pos[to_prompt]
    room = max_length - mask.shape[1]
    sampler, stops = _Sampler(rows, device), StopWatcher(rows, decode)
    active = list(range(len(rows)))
    for r in rows:
        r.tokens, r.finish = [], "length"
    while active:
        picks = sampler.draw(logits, active)
        keep: list[int] = []
        for j, (i, t) in enumerate(zip(active, picks, strict=True)):
            r = rows[i]
            if t in eos_ids:
                r.finish = "stop"
                continue
            r.tokens.append(t)
            if stops.hit(i):
                r.finish = "stop"
            elif len(r.tokens) < min(r.max_new, room):
                keep.append(j)
        if not keep:
            break
        if len(keep) < len(active):
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            mask, pos = mask[sel], pos[sel]
        active = [active[j] for j in keep]
        room -= 1
        nxt = torch.tensor([[rows[i].tokens[-1]] for i in active], device=device)
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], dim=1)
        out = model(input_ids=nxt, attention_mask=mask, position_ids=pos.unsqueeze(1), past_key_values=cache,
                    use_cache=True)
        cache, logits, pos = out.past_key_values, out.logits[:, -1, :], pos + 1


def choice_logprobs(model, prompts: Sequence[Sequence[int]], options: Sequence[Sequence[int]], *, pad_id: int,
                    device: torch.device) -> list[list[float]]:
    """log p(option | prompt) for every prompt × option (options already tokenized, end-of-turn included).
    Each prompt is prefilled once; its cache is copied to one row per option, and the options run together,
    right-padded, as a continuation."""
    cache, last, mask, pos = prefill(model, prompts, pad_id, device)
    k, width = len(options), max(len(o) for o in options)
    expand = torch.arange(len(prompts), device=device).repeat_interleave(k)
    cache.batch_select_indices(expand)
    first = torch.log_softmax(last.float(), dim=-1)
    opt = torch.full((k, width), pad_id, dtype=torch.long, device=device)
    opt_mask = torch.zeros((k, width), dtype=mask.dtype, device=device)
    for j, o in enumerate(options):
        opt[j, : len(o)] = torch.tensor(list(o), dtype=torch.long)
        opt_mask[j, : len(o)] = 1
    ids = opt.repeat(len(prompts), 1)
    full_mask = torch.cat([mask[expand], opt_mask.repeat(len(prompts), 1)], dim=1)
    positions = pos[expand].unsqueeze(1) + torch.arange(width, device=device).unsqueeze(0)
    logits = model(input_ids=ids, attention_mask=full_mask, position_ids=positions, past_key_values=cache,
                   use_cache=True).logits
    logp = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for p in range(len(prompts)):
        row = []
        for j, o in enumerate(options):
            b = p * k + j
            total = float(first[p, o[0]])
            if len(o) > 1:
                steps = torch.arange(len(o) - 1, device=device)
                total += float(logp[b, steps, torch.tensor(list(o[1:]), device=device)].sum())
            row.append(total)
        out.append(row)
    return out
