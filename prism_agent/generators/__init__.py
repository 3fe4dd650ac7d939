"""Text backends per role (generator, solver, judge): `local`, `openai`, `vllm`, plus the replay cache."""

from __future__ import annotations

from prism_agent.generators.base import GenerationError, Generator
from prism_agent.generators.factory import make_generator, make_role_generators
from prism_agent.generators.replay import ReplayingGenerator, ReplayStore, request_key
from prism_agent.generators.types import Completion, GenRequest, GenResult, Message, Sampling, Usage

__all__ = [
    "Completion", "GenRequest", "GenResult", "GenerationError", "Generator", "Message", "ReplayStore",
    "ReplayingGenerator", "Sampling", "Usage", "make_generator", "make_role_generators", "request_key",
]
