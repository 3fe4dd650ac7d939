"""The endpoint probe: does an OpenAI-compatible server answer, accept the key and serve the model?

One listing call (`GET /models`) answers all three. Preflight asks it before a run spends anything,
`backends check` before its test request, and the openai backend once before its first call (llama.cpp
answers for any model name with the one it has, so a misspelt model would otherwise go unnoticed). They
differ only in what they do with the answer: the backend lets an unreachable server surface on its first
call, where retries and backoff apply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prism_agent.config.backends import OpenAIBackendConfig
from prism_agent.errors import BadInputError


class EndpointError(BadInputError):
    """The endpoint cannot be used as configured; the message is the one line to show."""


class Unreachable(EndpointError):
    """No answer: refused, unresolvable, TLS failure or timed out."""


class KeyRefused(EndpointError):
    """401 or 403 on the listing."""


class ModelNotServed(EndpointError):
    """The listing does not name the configured model."""


def not_served(cfg: OpenAIBackendConfig, served: list[str]) -> str:
    return f"{cfg.base_url}: model {cfg.model!r} is not served here; it serves: {', '.join(served)}"


def _reason(exc: BaseException) -> str:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "no answer in time"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc.__cause__ or exc).strip() or type(exc).__name__


async def probe(cfg: OpenAIBackendConfig, list_models: Callable[[], Awaitable[list[str]]]) -> None:
    """Raise `Unreachable`, `KeyRefused` or `ModelNotServed`, or return when the endpoint looks usable.
    A server without the listing route (any other HTTP error) passes: it is optional in the protocol, and
    the first real call will tell."""
    import openai

    try:
        served = await list_models()
    except openai.APIConnectionError as exc:  # includes APITimeoutError
        raise Unreachable(f"cannot reach {cfg.base_url} ({_reason(exc)}); start the server or fix base_url") from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        var = cfg.api_key_env or "PRISM_AGENT_API_KEY"
        raise KeyRefused(f"{cfg.base_url}: the key was refused ({exc.status_code}); check ${var}") from None
    except openai.APIStatusError:
        return
    if served and cfg.model not in served:
        raise ModelNotServed(not_served(cfg, served))
