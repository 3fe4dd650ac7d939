"""The featurizer interface and its factory.

A featurizer turns encoded samples into (n, d) float32 gradient features in input order. Both
implementations share the proxy, the batching and the response-only loss; they differ in how the
per-sample gradient is projected.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from prism_agent.config.featurize import FeaturizerConfig
from prism_agent.gradients.proxy import Proxy, resolve_device
from prism_agent.gradients.render import Encoded
from prism_agent.models.dtype import TORCH_DTYPES, DtypeChoice, resolve_dtype

DTYPES = TORCH_DTYPES


def resolve_featurizer(config: FeaturizerConfig, device: torch.device | str | None = None
                       ) -> tuple[FeaturizerConfig, DtypeChoice]:
    """`config` with its dtype decided for `device` (default: the config's own device), and why. Feature
    stores and run manifests record the resolved name, since the dtype shapes the features."""
    choice = resolve_dtype(config.dtype, device if device is not None else resolve_device(config.device))
    return config.model_copy(update={"dtype": choice.name}), choice


class Featurizer(ABC):
    def __init__(self, proxy: Proxy, config: FeaturizerConfig):
        self.proxy = proxy
        self.config, self.dtype_choice = resolve_featurizer(config, proxy.device)
        self.device = proxy.device

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def pad_id(self) -> int:
        tok = self.proxy.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @abstractmethod
    def featurize(self, encoded: Sequence[Encoded]) -> np.ndarray:
        """(len(encoded), dim) float32 features, row i for encoded[i]."""

    def close(self) -> None:
        """Release hooks or buffers held on the proxy."""


def make_featurizer(proxy: Proxy, config: FeaturizerConfig) -> Featurizer:
    if config.kind == "exact":
        from prism_agent.gradients.exact import ExactFeaturizer

        return ExactFeaturizer(proxy, config)
    from prism_agent.gradients.fast import FastFeaturizer

    return FastFeaturizer(proxy, config)
