"""Settings of gradient featurization (the `measure` command and the loop's feature step)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FeaturizerConfig(BaseModel):
    """How samples become d-dimensional gradient features.

    `exact` is the paper's estimator (full per-sample gradient, dense Rademacher projection); `fast`
    projects each linear layer's gradient with a Kronecker-structured random matrix from one batched pass
    (LoGra), then applies a final Rademacher projection to `dim`.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["fast", "exact"] = "fast"
    dim: int = Field(1024, ge=1, description="feature dimension d")
    seed: int = Field(0, ge=0, description="projection seed (the reference uses 0)")
    rank_in: int = Field(32, ge=1, description="fast: projected size of each linear layer's input side")
    rank_out: int = Field(32, ge=1, description="fast: projected size of each linear layer's output side")
    batch_tokens: int = Field(2048, ge=16, description="fast: padded tokens per batch (B·T_max)")
    max_batch: int = Field(64, ge=1, description="fast: samples per batch at most")
    exact_batch: int = Field(16, ge=1, description="exact: per-sample gradients projected together")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="fast: autocast dtype; exact: projection-matrix dtype (gradients are fp32); auto: "
        "bfloat16 where the device runs it natively (CUDA with bf16, CPUs with AMX or AVX512-BF16), else float32"
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    threads: int = Field(1, ge=1, description="torch CPU threads (1 per process is most robust on 2 cores)")
    max_length: int | None = Field(None, ge=8, description="token cap per sample; default the proxy context")
    seed_chunk: int = Field(1024, ge=1, description="run: seed rows featurized and committed per feature shard, "
                            "so a killed run loses at most one chunk (best a multiple of the 128-row projection block)")

    def identity(self) -> dict:
        """The fields that change feature values (not speed): what a feature store is keyed by. The dtype
        must be resolved first (`gradients.base.resolve_featurizer`): "auto" names no feature space."""
        if self.dtype == "auto":
            raise ValueError("FeaturizerConfig.identity() needs a resolved dtype, not 'auto'")
        keys = ["kind", "dim", "seed", "dtype"] + (["rank_in", "rank_out"] if self.kind == "fast" else [])
        return {k: getattr(self, k) for k in keys}
