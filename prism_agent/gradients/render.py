"""Render a sample as `[user: prompt, assistant: response]` and mark the response tokens.

The loss covers only what follows the assistant header (README, "Measuring diversity"). The header
boundary is found by rendering the prompt alone with the generation prompt and checking it is a token prefix of the full
rendering, which holds for ChatML and Llama-style templates; a template that breaks it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from prism_agent.errors import BadInputError


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    response_start: int  # index of the first response token
    truncated: bool  # response tail cut to fit `max_length`

    def __len__(self) -> int:
        return len(self.input_ids)


def _ids(tokenizer, messages, **kw) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, **kw)
    if isinstance(out, dict) or hasattr(out, "input_ids"):  # BatchEncoding in newer transformers
        out = out["input_ids"]
    return list(out)


def encode(tokenizer, prompt: str, response: str, max_length: int) -> Encoded | None:
    """Token ids with the response boundary, or None when the prompt alone leaves no room for a response
    token within `max_length` (the caller counts those as skipped)."""
    user = [{"role": "user", "content": prompt}]
    head = _ids(tokenizer, user, add_generation_prompt=True)
    full = _ids(tokenizer, [*user, {"role": "assistant", "content": response}])
    if full[: len(head)] != head:
        raise BadInputError("the proxy's chat template does not render the prompt as a prefix of the "
                            "conversation; response-only loss needs a prefix-stable template")
    if len(full) <= len(head):
        return None
    truncated = len(full) > max_length
    if truncated:
        if len(head) + 1 > max_length:
            return None
        full = full[:max_length]
    return Encoded(input_ids=full, response_start=len(head), truncated=truncated)
