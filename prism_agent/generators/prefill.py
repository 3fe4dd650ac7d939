"""Does an endpoint continue a started answer (a final assistant message), and how?

The generator role starts each answer for the model (`<pair>\\nPremise:`), which keeps a small model in the
task's format. Servers differ: llama.cpp's `llama-server` continues a final assistant message as sent;
vLLM's OpenAI server does when asked (`continue_final_message`, `add_generation_prompt=False`);
llama-cpp-python's server (the project's launcher, `models/llamacpp_server.py`) renders it as a finished
turn and opens a new one, so the model starts over and most completions do not parse. A request sent with
a prefix the server ignores is worse than one sent without it, so each endpoint is asked once with a real
request: the start of a well-known sentence is given as the answer, and the completion either goes on
with the sentence (the endpoint continues) or starts it again (it does not).

The answer is one of `PREFILL_MODES`: message (send as is), vllm (send with vLLM's flags), template (the
role names a `tokenizer`: the chat is rendered here with the started answer left open and sent as a raw
prompt to `/v1/completions`, which every llama.cpp server continues), none (send without the started
answer: the completion is then a whole answer, `Completion.prefilled` is False; a small model then often
chats instead of writing the block). A run keeps each endpoint's answer in `endpoints.json` in its run
directory, so it asks once per endpoint.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from prism_agent.atomic import write_atomic

PREFILL_MODES = ("message", "vllm", "template", "none")
VLLM_CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}

PROBE_MESSAGES = [
    {"role": "user", "content": "Repeat this sentence exactly: The quick brown fox jumps over the lazy dog."},
    {"role": "assistant", "content": "The quick brown fox jumps over the"},
]
PROBE_MAX_TOKENS = 8


def continues(text: str) -> bool:
    """The completion goes on with the started sentence ("lazy dog.") rather than starting it again or
    chatting ("The quick brown fox…", "Sure! …")."""
    words = re.findall(r"[a-z]+", text.lower())
    return bool(words) and words[0] == "lazy"


async def detect(send: Callable[[dict | None], Awaitable[str]],
                 send_rendered: Callable[[], Awaitable[str]] | None = None) -> str:
    """`send(extra_body)` sends `PROBE_MESSAGES` (greedy, a few tokens) and returns the text. Plain first,
    then with vLLM's flags (a server that refuses them with a 4xx does not know them), then, where the role
    names a tokenizer, `send_rendered()`: the same chat rendered here and sent to `/v1/completions`."""
    import openai

    if continues(await send(None)):
        return "message"
    try:
        if continues(await send(dict(VLLM_CONTINUE))):
            return "vllm"
    except (openai.BadRequestError, openai.UnprocessableEntityError):  # "not vLLM"; anything else is real
        pass
    if send_rendered is not None:
        try:
            if continues(await send_rendered()):
                return "template"
        except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError):  # no route
            pass
    return "none"


async def ask_endpoint(client, model: str, render: Callable[[], str] | None = None) -> str:
    """`detect` over an `openai.AsyncOpenAI` client; `render()` gives `PROBE_MESSAGES` as a raw prompt (the
    role's tokenizer's chat template), or None when the role names no tokenizer."""

    async def send(extra: dict | None) -> str:
        args: dict = dict(model=model, messages=PROBE_MESSAGES, temperature=0.0, max_tokens=PROBE_MAX_TOKENS, seed=0)
        if extra:
            args["extra_body"] = extra
        resp = await client.chat.completions.create(**args)
        return (resp.choices[0].message.content or "") if resp.choices else ""

    async def send_rendered() -> str:
        assert render is not None
        resp = await client.completions.create(model=model, prompt=render(), temperature=0.0,
                                               max_tokens=PROBE_MAX_TOKENS, seed=0)
        return (resp.choices[0].text or "") if resp.choices else ""

    return await detect(send, send_rendered if render is not None else None)


def describe(mode: str) -> str:
    return {"message": "continues a started answer as sent",
            "vllm": "continues a started answer with continue_final_message (vLLM)",
            "template": "continues a started answer rendered with the role's tokenizer (/v1/completions)",
            "none": "does not continue a started answer: requests go without it (set the role's tokenizer "
                    "to send it rendered to /v1/completions)"}[mode]


class PrefillCache:
    """`endpoints.json` in a run directory: each endpoint's (URL and model) prefill mode, found once. The
    file is a cache: deleting it costs one probe request per endpoint; nothing else reads it to decide."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        self._data: dict[str, dict] = data if isinstance(data, dict) else {}

    @staticmethod
    def _key(url: str, model: str) -> str:
        return f"{model} @ {url}"

    def get(self, url: str, model: str) -> str | None:
        entry = self._data.get(self._key(url, model))
        mode = entry.get("prefill") if isinstance(entry, dict) else None
        return mode if mode in PREFILL_MODES else None

    def entries(self) -> list[dict]:
        """The valid entries (url, model, prefill), for `status`."""
        return [e for e in self._data.values() if isinstance(e, dict) and e.get("prefill") in PREFILL_MODES
                and isinstance(e.get("url"), str)]

    def put(self, url: str, model: str, mode: str) -> None:
        with self._lock:
            self._data[self._key(url, model)] = {"url": url, "model": model, "prefill": mode, "probed": time.time()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self._data, indent=1, sort_keys=True) + "\n"
            write_atomic(self.path, lambda fh: fh.write(text.encode()))
