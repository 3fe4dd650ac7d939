"""What crosses the generator boundary: requests (chat messages or a raw prompt, plus sampling) and
results (n completions with finish reasons, token usage and latency).

Every type is a frozen, strict pydantic model so that a request has one canonical JSON form: the replay
cache hashes that form, so two equal requests built anywhere, in any process, share one key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class Sampling(BaseModel):
    """Sampling settings of one request. `seed=None` means the backend's own randomness (not replayable
    across backends, but still recorded and replayed by the cache)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(1, ge=1, le=256)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: tuple[str, ...] = ()
    choices: tuple[str, ...] = Field(
        (), description="when set, every completion is one of these strings, sampled by the model's probability "
        "of each (local: scored; vllm: structured outputs); a backend that cannot constrain returns free text")
    choice_bias: tuple[float, ...] = Field(
        (), description="one offset per choice, added to its log-probability before drawing (a calibrated "
        "solver, quality/calibration.py); only a backend that scores the choices (local) can honour it")

    @model_validator(mode="after")
    def _bias_per_choice(self) -> Sampling:
        if self.choice_bias and len(self.choice_bias) != len(self.choices):
            raise ValueError("choice_bias needs exactly one offset per choice")
        return self


class GenRequest(BaseModel):
    """One call: chat `messages`, or a raw `prompt` for completions mode (a prompt sent to a chat backend
    becomes a single user message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    sampling: Sampling = Sampling()

    @model_validator(mode="after")
    def _one_input(self) -> GenRequest:
        if bool(self.messages) == (self.prompt is not None):
            raise ValueError("a request has either messages or a prompt, not both and not neither")
        return self

    @classmethod
    def chat(cls, messages: list[dict] | list[Message], **sampling) -> GenRequest:
        msgs = tuple(m if isinstance(m, Message) else Message(**m) for m in messages)
        return cls(messages=msgs, sampling=Sampling(**sampling))

    @property
    def prefill(self) -> str | None:
        """The start of the answer when the last message is the assistant's: the model continues it (the
        returned text excludes it). Small models keep a format far better when its first tokens are given."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[-1].content
        return None

    def as_messages(self) -> list[dict]:
        if self.messages:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0


class Completion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: FinishReason
    completion_tokens: int = 0
    endpoint: str | None = None  # the URL that produced it (endpoint backends; for per-endpoint parse yield)
    # False: the endpoint cannot continue a started answer (generators/prefill.py), so the request went
    # without it and `text` is a whole answer, not the continuation of the request's `prefill`
    prefilled: bool = True

    def full_text(self, prefill: str | None) -> str:
        """The answer as the model gave it: the request's started answer, where it was continued, then the text."""
        return (prefill or "") + self.text if self.prefilled else self.text


class GenResult(BaseModel):
    """The answer to one request. `native_choices` is how many of the n completions the backend returned
    in its first call: fewer than n means the server ignored n and the rest were topped up with further
    calls. `calls` counts backend calls including retries; `replayed` marks a result from the cache."""

    model_config = ConfigDict(extra="forbid")

    completions: list[Completion]
    usage: Usage = Usage()
    latency_s: float = 0.0
    model: str = ""
    native_choices: int = 0
    calls: int = 1
    replayed: bool = False
    choice_logprobs: list[float] | None = None  # per choice, before any bias: from backends that score them

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]
